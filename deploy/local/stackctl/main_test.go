package main

import (
	"bytes"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/flowproof/flowproof/internal/localstack"
)

// runCLI runs stackctl's command line against an empty stack dir.
func runCLI(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	t.Setenv("FLOWPROOF_STACK_DIR", t.TempDir())
	var out, errOut bytes.Buffer
	code = run(args, &out, &errOut)
	return code, out.String(), errOut.String()
}

func TestVersionAndHelpExitZero(t *testing.T) {
	for _, args := range [][]string{{"--version"}, {"-version"}} {
		code, stdout, _ := runCLI(t, args...)
		if code != 0 || !strings.HasPrefix(stdout, "stackctl ") {
			t.Errorf("%v: code %d, stdout %q; want 0 and the version", args, code, stdout)
		}
	}
	for _, args := range [][]string{{"-h"}, {"--help"}, {"up", "-h"}, {"down", "--help"}, {"status", "-h"}, {"kafka-class", "-h"}} {
		code, _, stderr := runCLI(t, args...)
		if code != 0 || !strings.Contains(stderr, "usage: stackctl") {
			t.Errorf("%v: code %d, stderr %q; want 0 and the usage", args, code, stderr)
		}
	}
	if code, stdout, _ := runCLI(t, "help"); code != 0 || !strings.Contains(stdout, "Commands:") {
		t.Errorf("help: code %d, stdout %q", code, stdout)
	}
}

func TestWrongCommandLinesExitTwo(t *testing.T) {
	for _, args := range [][]string{
		{},
		{"bogus"},
		{"--bogus"},
		{"up", "--only", "kafka,nope"},
		{"up", "--taskmanagers", "x"},
		{"up", "extra"},
		{"down", "extra"},
		{"status", "--json", "extra"},
		{"logs", "a", "b"},
		{"kafka-class"},
	} {
		if code, _, stderr := runCLI(t, args...); code != 2 {
			t.Errorf("%v: code %d; want 2 (stderr %q)", args, code, stderr)
		}
	}
}

func TestLogsListsTheStackLogs(t *testing.T) {
	dir := t.TempDir()
	t.Setenv("FLOWPROOF_STACK_DIR", dir)
	if err := os.MkdirAll(filepath.Join(dir, "logs"), 0o755); err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(dir, "logs", "worker.log"), "started\n")
	var out, errOut bytes.Buffer
	if code := run([]string{"logs"}, &out, &errOut); code != 0 || !strings.Contains(out.String(), "worker.log") {
		t.Errorf("logs: code %d, stdout %q, stderr %q", code, out.String(), errOut.String())
	}
	out.Reset()
	if code := run([]string{"logs", "worker"}, &out, &errOut); code != 0 || out.String() != "started\n" {
		t.Errorf("logs worker: code %d, stdout %q", code, out.String())
	}
}

func TestSavedOptionsAreTheNextCommandsDefaults(t *testing.T) {
	dir := t.TempDir()
	t.Setenv("FLOWPROOF_STACK_DIR", dir)
	s := &stack{dir: dir, opts: options{taskManagers: 5, withPrometheus: true, withWorker: true}}
	if err := os.MkdirAll(filepath.Join(dir, "run"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := s.saveOptions(); err != nil {
		t.Fatal(err)
	}
	loaded, err := newStack()
	if err != nil {
		t.Fatal(err)
	}
	if loaded.opts.taskManagers != 5 || !loaded.opts.withPrometheus {
		t.Errorf("loaded options %+v; want 5 TaskManagers with Prometheus", loaded.opts)
	}
	if loaded.opts.withWorker {
		t.Error("the worker was remembered; a later up must not start it unasked")
	}
}

func stopOrder(plan []stopStep) []string {
	var names []string
	for _, step := range plan {
		names = append(names, step.process)
	}
	return names
}

func TestDownStopsTheWorkerFirstWithItsOwnGrace(t *testing.T) {
	s := testStack(t)
	s.opts.taskManagers = 2
	plan := stopPlan(s)
	want := []string{
		"drill-worker", "worker", "prometheus", "endpoint", "token-service", "redis", "temporal",
		"flink-sql-gateway", "flink-taskmanager-2", "flink-taskmanager-1", "flink-jobmanager",
		"kafka-3", "kafka-2", "kafka-1",
	}
	if got := stopOrder(plan); !slices.Equal(got, want) {
		t.Fatalf("stop order %v; want %v", got, want)
	}
	if plan[1].grace != workerStopTimeout+workerExitMargin {
		t.Errorf("worker grace %s; want its stop timeout %s and a margin", plan[1].grace, workerStopTimeout)
	}
	if plan[1].grace <= workerStopTimeout {
		t.Errorf("worker grace %s is not longer than its -stop-timeout %s", plan[1].grace, workerStopTimeout)
	}
	if plan[2].grace != defaultStopGrace {
		t.Errorf("prometheus grace %s; want %s", plan[2].grace, defaultStopGrace)
	}

	s.opts.only = []string{"kafka"}
	if got := stopOrder(stopPlan(s)); !slices.Equal(got, []string{"kafka-3", "kafka-2", "kafka-1"}) {
		t.Errorf("down --only kafka stops %v", got)
	}
}

func TestTheWorkerIsOptIn(t *testing.T) {
	s := testStack(t)
	if containsComponent(components(s), "worker") {
		t.Error("a plain up starts the worker")
	}
	s.opts.withWorker = true
	list := components(s)
	if !containsComponent(list, "worker") || list[len(list)-1].name() != "worker" {
		t.Errorf("up --with-worker: components %v; want the worker last", names(list))
	}
	s.opts = options{only: []string{"worker"}}
	if list := components(s); len(list) != 1 || list[0].name() != "worker" {
		t.Errorf("--only worker: components %v", names(list))
	}
}

func TestTheDrillWorkerIsOptInAndComesAfterTheWorker(t *testing.T) {
	s := testStack(t)
	if containsComponent(components(s), drillWorkerProcess) {
		t.Error("a plain up starts the drill worker")
	}
	s.opts.withWorker, s.opts.withDrills = true, true
	list := names(components(s))
	if n := len(list); n < 2 || list[n-2] != "worker" || list[n-1] != drillWorkerProcess {
		t.Errorf("up --with-worker --with-drills: components %v; want the worker, then the drill worker, last", list)
	}
	s.opts = options{only: []string{drillWorkerProcess}}
	if list := names(components(s)); !slices.Equal(list, []string{drillWorkerProcess}) {
		t.Errorf("--only %s: components %v", drillWorkerProcess, list)
	}
}

func TestTheDrillWorkerRunsThisStackctlOnThisStack(t *testing.T) {
	s := testStack(t)
	p, err := drillWorkerProcessSpec(s)
	if err != nil {
		t.Fatal(err)
	}
	self, _ := os.Executable()
	args := strings.Join(p.argv, " ")
	for _, want := range []string{"-stackctl " + self, "-stack-dir " + s.dir, "-repo-dir " + s.repoDir, "-worker-stop-limit 40s"} {
		if !strings.Contains(args, want) {
			t.Errorf("drill worker command line %q lacks %q", args, want)
		}
	}
	if p.dir != s.repoDir {
		t.Errorf("drill worker runs in %q; want the checkout %q", p.dir, s.repoDir)
	}
}

func names(list []component) []string {
	var out []string
	for _, c := range list {
		out = append(out, c.name())
	}
	return out
}

func TestWorkerStartedReadsTheSDKCounterOfItsTaskQueue(t *testing.T) {
	metrics := `# HELP temporal_worker_start_total Temporal SDK metric temporal_worker_start.
# TYPE temporal_worker_start_total counter
temporal_worker_start_total{namespace="default",task_queue="other",worker_type="ActivityWorker"} 1
`
	if workerStarted(metrics, "flowproof") {
		t.Error("another task queue's start counts")
	}
	metrics += `temporal_worker_start_total{namespace="default",task_queue="flowproof",worker_type="WorkflowWorker"} 1` + "\n"
	if !workerStarted(metrics, "flowproof") {
		t.Error("the task queue's start counter is not seen")
	}
}

func TestWorkerRunsWithTheSettingsItsCheckExpects(t *testing.T) {
	s := testStack(t)
	// A fake binary records its arguments instead of being a worker.
	if err := os.MkdirAll(filepath.Join(s.repoDir, "bin"), 0o755); err != nil {
		t.Fatal(err)
	}
	writeFile(t, workerBinary(s), "#!/bin/sh\necho \"args: $*\"\nexec sleep 60\n")
	if err := os.Chmod(workerBinary(s), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := (worker{}).start(t.Context(), s); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.stop(workerProcess, time.Second) })
	waitForLog(t, s.logFile(workerProcess), "args: -task-queue flowproof -metrics-addr 127.0.0.1:19464 -stop-timeout 30s -reference-endpoint-url "+localstack.FromEnv().EndpointURL+
		" -temporal-ui-url "+localstack.FromEnv().TemporalUIURL+"\n")
}
