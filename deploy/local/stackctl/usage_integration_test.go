//go:build integration

package main

import (
	"context"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/flowproof/flowproof/internal/localstack"
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

// TestKafkaRequestsOfTheLiveStack reads the brokers' request counts before
// and after this test's own metadata requests, which every count must
// include.
func TestKafkaRequestsOfTheLiveStack(t *testing.T) {
	s, err := newStack()
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	before, err := readKafkaRequests(ctx)
	if err != nil {
		t.Fatalf("%v (is the stack up, and its brokers started with deploy/jmx-exporter/kafka.yml?)", err)
	}
	security, err := kafkaClientOptions(s)
	if err != nil {
		t.Fatal(err)
	}
	client, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(localstack.FromEnv().KafkaBrokers...)}, security...)...)
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	const asked = 5
	for range asked {
		// A request to every broker, one after the other.
		for _, broker := range []int32{1, 2, 3} {
			req := kmsg.NewPtrMetadataRequest()
			if _, err := client.Broker(int(broker)).Request(ctx, req); err != nil {
				t.Fatalf("metadata from broker %d: %v", broker, err)
			}
		}
	}
	after, err := readKafkaRequests(ctx)
	if err != nil {
		t.Fatal(err)
	}
	counts, err := kafkaRequestsBetween(before, after)
	if err != nil {
		t.Fatal(err)
	}
	for broker, now := range after {
		if got := now["Metadata"] - before[broker]["Metadata"]; got < asked {
			t.Errorf("%s answered %v metadata requests, want at least the test's %d", broker, got, asked)
		}
	}
	t.Log(kafkaRequestsLine(counts, 0))
}
