//go:build integration

package main

import (
	"testing"
	"time"
)

// TestUsageOfTheLiveStack reads (never changes, beyond resetting peak RSS)
// every running process of the local stack twice, two seconds apart, and
// checks the figures against each other and against the machine's own
// count of busy CPU time.
func TestUsageOfTheLiveStack(t *testing.T) {
	s, err := newStack()
	if err != nil {
		t.Fatal(err)
	}
	before, err := takeUsage(s, true)
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(2 * time.Second)
	after, err := takeUsage(s, false)
	if err != nil {
		t.Fatal(err)
	}

	byName := map[string]processUsage{}
	for _, p := range after.Processes {
		byName[p.Process] = p
	}
	for _, c := range coreComponents(s) {
		for _, name := range c.processes(s) {
			pid, ok := s.running(name)
			if !ok {
				t.Fatalf("%s is not running: is the stack up (bin/stackctl status)?", name)
			}
			p := byName[name]
			if p.State != stateRunning || p.PID != pid || p.Component != c.name() {
				t.Errorf("%s = %+v, want component %s running as pid %d", name, p, c.name(), pid)
				continue
			}
			// A Go service restarted a moment ago (a drill's fault test
			// restarts the token service) may not have used a 10 ms tick yet.
			if p.CPUSeconds < 0 || p.RSSMiB <= 0 || p.PeakRSSMiB < p.RSSMiB-1 {
				t.Errorf("%s: CPU %v s, RSS %v MiB, peak %v MiB; want CPU not negative, RSS above 0 and the peak at least the RSS", name, p.CPUSeconds, p.RSSMiB, p.PeakRSSMiB)
			}
		}
	}

	r := diffUsage(before, after)
	for _, p := range r.Processes {
		if p.CPUSeconds < 0 {
			t.Errorf("%s spent %v CPU s", p.Process, p.CPUSeconds)
		}
		if p.Note != "" {
			t.Errorf("%s: %s (nothing may restart the stack while a test holds its lock)", p.Process, p.Note)
		}
	}
	// Kafka's brokers heartbeat and replicate their internal topics all
	// the time; two seconds without a tick of CPU means nothing was read.
	if k := componentOf(r, "kafka"); k.CPUSeconds <= 0 {
		t.Errorf("kafka spent %v CPU s in %v s", k.CPUSeconds, r.WallSeconds)
	}
	// Each process's figure is rounded down to a tick (10 ms).
	slack := 0.01 * float64(len(r.Processes)+1)
	if r.StackCPU > r.Machine.BusySeconds+slack || r.Machine.BusySeconds > r.Machine.CapacitySeconds+slack {
		t.Errorf("stack %v CPU s, machine busy %v of %v: the stack cannot spend more than the machine, nor the machine more than its CPUs", r.StackCPU, r.Machine.BusySeconds, r.Machine.CapacitySeconds)
	}
	t.Logf("in %.1f s: stack %.2f CPU s, machine busy %.2f of %.2f", r.WallSeconds, r.StackCPU, r.Machine.BusySeconds, r.Machine.CapacitySeconds)
}

func componentOf(r usageReport, name string) componentDelta {
	for _, c := range r.Components {
		if c.Component == name {
			return c
		}
	}
	return componentDelta{}
}
