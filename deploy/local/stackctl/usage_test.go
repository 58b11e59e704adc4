package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/procfs"

	"github.com/flowproof/flowproof/workflows"
)

// fakeProc writes /proc/PID/stat and /proc/PID/status as Linux formats
// them, under a directory of the test's own.
func fakeProc(t *testing.T, pid int, stat, status string) procfs.Proc {
	t.Helper()
	root := t.TempDir()
	if err := os.Mkdir(filepath.Join(root, fmt.Sprint(pid)), 0o755); err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(root, fmt.Sprint(pid), "stat"), stat)
	writeFile(t, filepath.Join(root, fmt.Sprint(pid), "status"), status)
	fs, err := procfs.NewFS(root)
	if err != nil {
		t.Fatal(err)
	}
	proc, err := fs.Proc(pid)
	if err != nil {
		t.Fatal(err)
	}
	return proc
}

func TestReadJVMThreadUsageGroupsCompilerAndGCThreads(t *testing.T) {
	// A JVM's threads as /proc/PID/task lists them: the comm is the
	// thread's name cut to 15 bytes; utime and stime are fields 14 and 15.
	root := t.TempDir()
	threads := map[int]struct {
		comm         string
		utime, stime int
	}{
		1: {"java", 500, 20}, 2: {"C2 CompilerThre", 1700, 100}, 3: {"C1 CompilerThre", 180, 20},
		4: {"GC Thread#0", 90, 10}, 5: {"G1 Conc#0", 40, 0}, 6: {"G1 Refine#0", 9, 1},
		7: {"data-plane-kafk", 1300, 200},
	}
	for tid, th := range threads {
		dir := filepath.Join(root, "4242", "task", fmt.Sprint(tid))
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		writeFile(t, filepath.Join(dir, "stat"), fmt.Sprintf(
			"%d (%s) S 1 4242 4242 0 -1 4194560 5000 0 0 0 %d %d 0 0 20 0 93 0 987654 6000000000 200000 18446744073709551615 1 1 0 0 0 0 0 2 16800972 0 0 0 17 1 0 0 0 0 0 0 0 0 0 0 0 0 0\n",
			tid, th.comm, th.utime, th.stime))
	}
	fs, err := procfs.NewFS(root)
	if err != nil {
		t.Fatal(err)
	}
	jit, gc := readJVMThreadUsage(fs, 4242)
	if math.Abs(jit-20) > 1e-9 || math.Abs(gc-1.5) > 1e-9 {
		t.Errorf("JIT %v s, GC %v s; want 20 and 1.5", jit, gc)
	}
	if jit, gc := readJVMThreadUsage(fs, 4343); jit != 0 || gc != 0 {
		t.Errorf("a process that is gone: JIT %v s, GC %v s; want 0", jit, gc)
	}
}

func TestReadProcessUsageSumsUserSystemAndWaitedChildren(t *testing.T) {
	// A JVM's stat line: the comm has a space and parentheses; utime 12345,
	// stime 678, cutime 20, cstime 2, start time 987654 ticks.
	stat := "4242 (java (main)) S 1 4242 4242 0 -1 4194560 5000 0 0 0 12345 678 20 2 20 0 93 0 987654 6000000000 200000 18446744073709551615 1 1 0 0 0 0 0 2 16800972 0 0 0 17 1 0 0 0 0 0 0 0 0 0 0 0 0 0\n"
	status := "Name:\tjava\nPid:\t4242\nVmPeak:\t 9000000 kB\nVmSize:\t 8000000 kB\nVmHWM:\t  900000 kB\nVmRSS:\t  800000 kB\nThreads:\t93\n"
	u, err := readProcessUsage(fakeProc(t, 4242, stat, status))
	if err != nil {
		t.Fatal(err)
	}
	if u.PID != 4242 || u.StartTicks != 987654 {
		t.Errorf("identity = pid %d start %d, want 4242 987654", u.PID, u.StartTicks)
	}
	if want := (12345.0 + 678 + 20 + 2) / 100; math.Abs(u.CPUSeconds-want) > 1e-9 {
		t.Errorf("CPU = %v s, want %v", u.CPUSeconds, want)
	}
	if want := 800000.0 / 1024; math.Abs(u.RSSMiB-want) > 1e-9 {
		t.Errorf("RSS = %v MiB, want %v", u.RSSMiB, want)
	}
	if want := 900000.0 / 1024; math.Abs(u.PeakRSSMiB-want) > 1e-9 {
		t.Errorf("peak RSS = %v MiB, want %v", u.PeakRSSMiB, want)
	}
}

func running(component, process string, pid int, start uint64, cpu, peak float64) processUsage {
	return processUsage{Component: component, Process: process, State: stateRunning, PID: pid, StartTicks: start, CPUSeconds: cpu, RSSMiB: peak / 2, PeakRSSMiB: peak}
}

func TestDiffUsageSubtractsOnlyTheSameProcessAndFlagsTheRest(t *testing.T) {
	t0 := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	before := usageSnapshot{
		TakenAt: t0, PeaksReset: true,
		Machine: machineUsage{CPUs: 2, BusySeconds: 1000, StealSeconds: 5, FixedTaskCPUMillis: 9.4, LoadAverage: [3]float64{1, 2, 3}},
		Processes: []processUsage{
			running("kafka", "kafka-1", 10, 100, 50, 700),
			running("kafka", "kafka-2", 11, 100, 60, 700),
			running("flink", "flink-taskmanager-1", 20, 200, 30, 800),
			running("temporal", "temporal", 30, 300, 5, 200),
			{Component: "worker", Process: "worker", State: stateNotRunning},
			{Component: "redis", Process: "redis", State: stateStale},
		},
	}
	after := usageSnapshot{
		TakenAt: t0.Add(100 * time.Second),
		Machine: machineUsage{CPUs: 2, BusySeconds: 1150, StealSeconds: 17, FixedTaskCPUMillis: 12.6, LoadAverage: [3]float64{4, 5, 6}},
		Processes: []processUsage{
			running("kafka", "kafka-1", 10, 100, 90, 750), // +40
			running("kafka", "kafka-2", 11, 100, 80, 720), // +20
			// Restarted: another pid, its CPU since its own start is all that is known.
			running("flink", "flink-taskmanager-1", 21, 250, 12, 600),
			{Component: "temporal", Process: "temporal", State: stateNotRunning},
			running("worker", "worker", 40, 400, 8, 100),
			{Component: "redis", Process: "redis", State: stateStale},
		},
	}
	r := diffUsage(before, after)

	if r.WallSeconds != 100 || !r.PeaksSinceFrom {
		t.Errorf("wall %v s, peaks since from %v; want 100 s, true", r.WallSeconds, r.PeaksSinceFrom)
	}
	got := map[string]processDelta{}
	for _, p := range r.Processes {
		got[p.Process] = p
	}
	want := map[string]struct {
		cpu     float64
		partial bool
		note    string
	}{
		"kafka-1":             {40, false, ""},
		"kafka-2":             {20, false, ""},
		"flink-taskmanager-1": {12, true, "restarted (pid 20, then 21)"},
		"temporal":            {0, true, "stopped after the first snapshot"},
		"worker":              {8, false, "started after the first snapshot"},
	}
	if len(got) != len(want) {
		t.Errorf("processes %v, want %d (a stale pid file at both ends is no process)", r.Processes, len(want))
	}
	for name, w := range want {
		p := got[name]
		if math.Abs(p.CPUSeconds-w.cpu) > 1e-9 || p.Partial != w.partial || !strings.HasPrefix(p.Note, w.note) || (w.note == "") != (p.Note == "") {
			t.Errorf("%s = %+v, want CPU %v partial %v note %q...", name, p, w.cpu, w.partial, w.note)
		}
	}
	if !r.Incomplete || r.StackCPU != 80 {
		t.Errorf("stack CPU %v incomplete %v, want 80 and incomplete", r.StackCPU, r.Incomplete)
	}
	// Of the 150 busy seconds the stack took 80 and the hypervisor 12.
	if r.Machine.BusySeconds != 150 || r.Machine.StealSeconds != 12 || r.Machine.OtherCPUSeconds != 58 || r.Machine.CapacitySeconds != 200 {
		t.Errorf("machine %+v, want busy 150, stolen 12, other 58, capacity 200", r.Machine)
	}
	if r.Machine.FixedTaskStartMillis != 9.4 || r.Machine.FixedTaskEndMillis != 12.6 {
		t.Errorf("fixed task %v ms at the start, %v at the end; want each snapshot's, 9.4 and 12.6", r.Machine.FixedTaskStartMillis, r.Machine.FixedTaskEndMillis)
	}
	var out bytes.Buffer
	printUsageReport(&out, r)
	if !strings.Contains(out.String(), "took 9.4 ms of one core's CPU at the start, 12.6 ms at the end") {
		t.Errorf("report lacks the core speed line:\n%s", out.String())
	}

	comps := map[string]componentDelta{}
	var order []string
	for _, c := range r.Components {
		comps[c.Component] = c
		order = append(order, c.Component)
	}
	if strings.Join(order, ",") != "kafka,flink,temporal,worker" {
		t.Errorf("components in order %v, want the snapshot's order", order)
	}
	if k := comps["kafka"]; k.CPUSeconds != 60 || k.PeakRSSMiB != 1470 || math.Abs(k.Share-0.75) > 1e-9 || k.Flagged {
		t.Errorf("kafka = %+v, want CPU 60, peaks 750+720, share 0.75, not flagged", k)
	}
	if !comps["flink"].Flagged || !comps["temporal"].Flagged {
		t.Errorf("a component with a restarted or stopped process is not flagged: %+v", r.Components)
	}
}

func TestAttachRunDividesTheStackCPUByTheRunsMessages(t *testing.T) {
	r := usageReport{StackCPU: 440}
	r.attachRun(workflows.PipelineResult{Status: workflows.StatusSucceeded, Metrics: workflows.Metrics{Messages: 1_000_000, Verified: 1_000_000}})
	if r.Run == nil || math.Abs(r.Run.CPUMicrosPerMessage-440) > 1e-9 || r.Run.Status != string(workflows.StatusSucceeded) {
		t.Fatalf("run = %+v, want 440 µs per message, Succeeded", r.Run)
	}
	var out bytes.Buffer
	printUsageReport(&out, r)
	if !strings.Contains(out.String(), "CPU per message end to end: 440 µs (440.0 CPU s of the stack / 1,000,000 messages") {
		t.Errorf("report lacks the per-message line:\n%s", out.String())
	}
}

func TestPrintUsageReportMarksALowerBound(t *testing.T) {
	before := usageSnapshot{TakenAt: time.Unix(0, 0), Processes: []processUsage{running("kafka", "kafka-1", 10, 100, 1, 1)}}
	after := usageSnapshot{TakenAt: time.Unix(60, 0), Processes: []processUsage{running("kafka", "kafka-1", 11, 200, 3, 1)}}
	var out bytes.Buffer
	printUsageReport(&out, diffUsage(before, after))
	for _, want := range []string{"kafka *", "stack total (at least)", "* kafka-1: restarted (pid 10, then 11)"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("report lacks %q:\n%s", want, out.String())
		}
	}
}

func TestUsageProcessesListsOptionalOnesOnlyWithAPidFileAndUnknownPidFilesAsTheirOwn(t *testing.T) {
	s := testStack(t)
	writeFile(t, s.pidFile(workerProcess), "1 1\n")
	writeFile(t, s.pidFile("redis"), "1 1\n")
	var names []string
	component := map[string]string{}
	for _, p := range usageProcesses(s) {
		names = append(names, p.process)
		component[p.process] = p.component
	}
	for _, want := range []string{"kafka-1", "flink-taskmanager-3", "temporal", "endpoint", workerProcess, "redis"} {
		if component[want] == "" {
			t.Errorf("%s missing from %v", want, names)
		}
	}
	if component["prometheus"] != "" || component[drillWorkerProcess] != "" {
		t.Errorf("optional components without a pid file listed: %v", names)
	}
	if component["redis"] != "redis" || component["endpoint"] != "refsvc" || component["flink-taskmanager-3"] != "flink" {
		t.Errorf("components = %v", component)
	}
	if len(names) != len(component) {
		t.Errorf("a process listed twice: %v", names)
	}
}

// TestTakeUsageReadsOnlyTheProcessThePidFileRecorded uses real processes:
// one recorded with its start time, and one whose pid file has another.
func TestTakeUsageReadsOnlyTheProcessThePidFileRecorded(t *testing.T) {
	s := testStack(t)
	ours, theirs := startUnrelated(t), startUnrelated(t)
	ourStat, err := procStat(ours.Process.Pid)
	if err != nil {
		t.Fatal(err)
	}
	theirStat, err := procStat(theirs.Process.Pid)
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, s.pidFile("kafka-1"), fmt.Sprintf("%d %d\n", ours.Process.Pid, ourStat.Starttime))
	writeFile(t, s.pidFile("kafka-2"), fmt.Sprintf("%d %d\n", theirs.Process.Pid, theirStat.Starttime-1))

	snap, err := takeUsage(s, true)
	if err != nil {
		t.Fatal(err)
	}
	state := map[string]processUsage{}
	for _, p := range snap.Processes {
		state[p.Process] = p
	}
	k1 := state["kafka-1"]
	if k1.State != stateRunning || k1.PID != ours.Process.Pid || k1.StartTicks != ourStat.Starttime || k1.RSSMiB <= 0 || k1.PeakRSSMiB < k1.RSSMiB {
		t.Errorf("kafka-1 = %+v, want the recorded process running with its RSS", k1)
	}
	if state["kafka-2"].State != stateStale || state["kafka-3"].State != stateNotRunning {
		t.Errorf("kafka-2 %+v, kafka-3 %+v: want stale and not running", state["kafka-2"], state["kafka-3"])
	}
	// The fixed task is about 10 ms here; a reading of nothing, or of
	// seconds, would be a broken clock, not a slow core.
	if ms := snap.Machine.FixedTaskCPUMillis; ms <= 0.1 || ms > 5000 {
		t.Errorf("fixed task took %v ms of CPU; want a reading of the task", ms)
	}
	if snap.Machine.CPUs < 1 || snap.Machine.BusySeconds <= 0 || !snap.PeaksReset {
		t.Errorf("machine %+v, peaks reset %v", snap.Machine, snap.PeaksReset)
	}

	// What --json writes, --since reads back unchanged.
	raw, err := json.Marshal(snap)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "before.json")
	if err := os.WriteFile(path, raw, 0o644); err != nil {
		t.Fatal(err)
	}
	back, err := readUsageSnapshot(path)
	if err != nil {
		t.Fatal(err)
	}
	if !back.TakenAt.Equal(snap.TakenAt) || len(back.Processes) != len(snap.Processes) || back.Processes[0] != snap.Processes[0] {
		t.Errorf("read back %+v, want %+v", back, snap)
	}
}
