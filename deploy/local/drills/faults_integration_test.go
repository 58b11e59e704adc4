//go:build integration

package drills

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/testsuite"

	"github.com/flowproof/flowproof/activities"
	"github.com/flowproof/flowproof/flinksql"
	"github.com/flowproof/flowproof/internal/drillapi"
	"github.com/flowproof/flowproof/internal/endpointapi"
	"github.com/flowproof/flowproof/internal/errtype"
	"github.com/flowproof/flowproof/internal/health"
	"github.com/flowproof/flowproof/internal/localstack"
)

// These tests hurt the real local stack: run them one at a time, holding
// the stack's lock (flock -o /tmp/flowproof/stack.lock go test -tags
// integration -run X ./deploy/local/drills/). Each leaves every component it
// touched up again, also when it fails.

// stackctlBinary is built once from this checkout by TestMain.
var stackctlBinary string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "drills-stackctl-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	stackctlBinary = filepath.Join(dir, "stackctl")
	build := exec.Command("go", "build", "-o", stackctlBinary, "./deploy/local/stackctl")
	build.Dir = repoDir()
	if out, err := build.CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "build stackctl: %v\n%s", err, out)
		os.Exit(1)
	}
	code := m.Run()
	_ = os.RemoveAll(dir)
	os.Exit(code)
}

func repoDir() string {
	dir, err := filepath.Abs("../../..")
	if err != nil {
		panic(err)
	}
	return dir
}

// newFaults builds Faults as the drill worker does.
func newFaults(t *testing.T) *Faults {
	t.Helper()
	local := localstack.FromEnv()
	kafka, err := kgo.NewClient(kgo.SeedBrokers(local.KafkaBrokers...))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(kafka.Close)
	jm, err := flinksql.NewJobManager(local.FlinkURL, flinksql.Options{})
	if err != nil {
		t.Fatal(err)
	}
	token, err := endpointapi.LoadAdminToken(localstack.StackDir())
	if err != nil {
		t.Fatal(err)
	}
	return &Faults{
		Stackctl: stackctlBinary, RepoDir: repoDir(),
		Kafka: kadm.NewClient(kafka), Flink: jm,
		Endpoint:        endpointapi.AdminClient{BaseURL: local.EndpointURL, Token: token},
		WorkerStopLimit: localstack.WorkerStopTimeout + localstack.WorkerExitMargin,
	}
}

// applyFault runs ApplyFault as an activity, with heartbeat details of an
// earlier attempt when retried is set.
func applyFault(t *testing.T, f *Faults, req drillapi.FaultRequest, retried *injection) (drillapi.FaultReport, error) {
	t.Helper()
	var suite testsuite.WorkflowTestSuite
	env := suite.NewTestActivityEnvironment()
	env.SetTestTimeout(20 * time.Minute)
	env.RegisterActivity(f)
	if retried != nil {
		env.SetHeartbeatDetails(*retried)
	}
	val, err := env.ExecuteActivity(f.ApplyFault, req)
	if err != nil {
		return drillapi.FaultReport{}, err
	}
	var report drillapi.FaultReport
	if err := val.Get(&report); err != nil {
		t.Fatal(err)
	}
	t.Logf("report: %+v", report)
	return report, nil
}

// keepWhole starts the components again when the test ends, whatever
// happened in it.
func keepWhole(t *testing.T, components ...string) {
	t.Cleanup(func() {
		cmd := exec.Command(stackctlBinary, "up", "--only", strings.Join(components, ","))
		cmd.Dir = repoDir()
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Errorf("restore %v: %v\n%s", components, err, out)
		}
	})
}

// withStackWorker has the stack's worker running for the test and leaves
// the stack as it found it: a worker that ran before (make test starts one
// for the drills) runs after, and one the test started is stopped.
func withStackWorker(t *testing.T) {
	t.Helper()
	status := exec.Command(stackctlBinary, "status", "--only", "worker")
	status.Dir = repoDir()
	ranBefore := status.Run() == nil
	up := exec.Command(stackctlBinary, "up", "--only", "worker")
	up.Dir = repoDir()
	if out, err := up.CombinedOutput(); err != nil {
		t.Fatalf("start the worker: %v\n%s", err, out)
	}
	t.Cleanup(func() {
		args := []string{"stop", "worker"}
		if ranBefore { // up, since a fault that failed midway may have left it down
			args = []string{"up", "--only", "worker"}
		}
		cmd := exec.Command(stackctlBinary, args...)
		cmd.Dir = repoDir()
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Errorf("stackctl %v: %v\n%s", args, err, out)
		}
	})
}

// pidOf reads the pid a process of the stack was recorded with.
func pidOf(t *testing.T, process string) int {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(localstack.StackDir(), "run", process+".pid"))
	if err != nil {
		t.Fatalf("pid of %s: %v", process, err)
	}
	pid, err := strconv.Atoi(strings.Fields(string(raw))[0])
	if err != nil {
		t.Fatalf("pid file of %s: %v", process, err)
	}
	return pid
}

func testRunID(label string) string {
	return fmt.Sprintf("it-drill-%s-%s", label, strconv.FormatInt(time.Now().UnixNano(), 36))
}

func TestKillBrokerHitsTheLeaderOfMostPartitionsAndLeavesTheClusterWhole(t *testing.T) {
	f := newFaults(t)
	keepWhole(t, "kafka")
	ctx := context.Background()
	run := testRunID("broker")
	topic := activities.RunNamesOf(run).RawTopic
	if _, err := f.Kafka.CreateTopic(ctx, 100, 3, nil, topic); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _, _ = f.Kafka.DeleteTopics(context.Background(), topic) })
	if err := waitFullISR(ctx, f.Kafka, injection{}); err != nil {
		t.Fatal(err)
	}
	leaders, _, err := partitionLeaders(ctx, f.Kafka, topic)
	if err != nil {
		t.Fatal(err)
	}
	want := "kafka-" + strconv.Itoa(int(mostLeading(leaders)))
	pidBefore := pidOf(t, want)

	// The hold outlasts the controller's broker session timeout (9 s), so
	// that the cluster notices the kill and moves the leaders away.
	req := drillapi.FaultRequest{Fault: drillapi.KillBroker, RunID: run, HoldSeconds: 24}
	var report drillapi.FaultReport
	done := make(chan error, 1)
	go func() {
		var err error
		report, err = applyFault(t, f, req, nil)
		done <- err
	}()
	time.Sleep(18 * time.Second)
	during, _, err := partitionLeaders(ctx, f.Kafka, topic)
	if err != nil {
		t.Errorf("leaders during the hold: %v", err)
	}
	// A run that ends during the hold deletes its topics before the lift;
	// the lift must still see the cluster whole, not wait for the topic.
	if _, err := f.Kafka.DeleteTopics(ctx, topic); err != nil {
		t.Errorf("delete %s during the hold: %v", topic, err)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if n := during[mostLeading(leaders)]; n > 0 || len(during) == 0 {
		t.Errorf("during the hold %s still led %d partitions (leaders %v): it was not down", want, n, during)
	}
	if !strings.HasPrefix(report.Target, want+" ") {
		t.Errorf("target %q; want %s, the leader of %v partitions (leaders %v)", report.Target, want, leaders[mostLeading(leaders)], leaders)
	}
	if pidAfter := pidOf(t, want); pidAfter == pidBefore {
		t.Errorf("%s still runs as pid %d: it was not killed and restarted", want, pidBefore)
	}
	if held := report.LiftedAt.Sub(report.InjectedAt); held < 24*time.Second {
		t.Errorf("fault lasted %s; want at least the 24 s hold", held)
	}
	if res := health.Kafka(ctx, localstack.FromEnv().KafkaBrokers, health.BrokerNeed{Min: 3}); !res.Healthy {
		t.Errorf("cluster not whole after the drill: %s", res.Detail)
	}
	if err := waitFullISR(ctx, f.Kafka, injection{}); err != nil {
		t.Errorf("replicas not in sync after the drill: %v", err)
	}
}

func TestKillTaskManagerOfARunWithoutJobsFailsForGoodAndKillsNothing(t *testing.T) {
	f := newFaults(t)
	keepWhole(t, "flink")
	before := map[string]int{}
	for i := 1; i <= 3; i++ {
		tm := taskManagerProcessPrefix + strconv.Itoa(i)
		before[tm] = pidOf(t, tm)
	}
	_, err := applyFault(t, f, drillapi.FaultRequest{Fault: drillapi.KillTaskManager, RunID: testRunID("tm"), HoldSeconds: 1}, nil)
	var appErr *temporal.ApplicationError
	if !errors.As(err, &appErr) || appErr.Type() != errtype.NoFaultTarget || !appErr.NonRetryable() {
		t.Fatalf("error %v; want a non-retryable %s", err, errtype.NoFaultTarget)
	}
	if !strings.Contains(err.Error(), "no TaskManager runs a task of run") {
		t.Errorf("error %q does not say what is missing", err)
	}
	for tm, pid := range before {
		if now := pidOf(t, tm); now != pid {
			t.Errorf("%s was restarted (pid %d, before %d)", tm, now, pid)
		}
	}
}

func TestStopWorkerMeasuresTheExitAndStartsAnotherWorker(t *testing.T) {
	f := newFaults(t)
	withStackWorker(t)
	pidBefore := pidOf(t, "worker")

	report, err := applyFault(t, f, drillapi.FaultRequest{Fault: drillapi.StopWorker, RunID: testRunID("stop-worker"), HoldSeconds: 2}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(report.Detail, fmt.Sprintf("SIGTERM pid %d, exited after", pidBefore)) {
		t.Errorf("detail %q does not say how long pid %d took to exit", report.Detail, pidBefore)
	}
	if len(report.Problems) > 0 {
		t.Errorf("an idle worker was reported slow to stop: %v", report.Problems)
	}
	if pidAfter := pidOf(t, "worker"); pidAfter == pidBefore {
		t.Errorf("worker still pid %d: it was not stopped and started again", pidBefore)
	}
}

// runFaults is the endpoint's setting for run, if any.
func runFaults(t *testing.T, f *Faults, run string) (endpointapi.Faults, bool) {
	t.Helper()
	state, err := f.Endpoint.State(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range state.Runs {
		if len(s.RunIDs) == 1 && s.RunIDs[0] == run {
			return s, true
		}
	}
	return endpointapi.Faults{}, false
}

// duringHold runs ApplyFault in the background and returns once the hold
// is half over, with a channel of its outcome.
func duringHold(t *testing.T, f *Faults, req drillapi.FaultRequest, retried *injection) <-chan error {
	done := make(chan error, 1)
	go func() {
		_, err := applyFault(t, f, req, retried)
		done <- err
	}()
	time.Sleep(time.Duration(req.HoldSeconds) * time.Second / 2)
	return done
}

func TestEndpointThrottleHoldsForTheRunOnlyAndIsClearedAfter(t *testing.T) {
	f := newFaults(t)
	run := testRunID("throttle")
	t.Cleanup(func() { _ = f.Endpoint.Reset(context.Background(), run) })
	done := duringHold(t, f, drillapi.FaultRequest{Fault: drillapi.EndpointThrottle, RunID: run, HoldSeconds: 4}, nil)
	setting, ok := runFaults(t, f, run)
	if !ok || setting.ThrottleRate != endpointThrottle.ThrottleRate || setting.RetryAfterSeconds != endpointThrottle.RetryAfterSeconds {
		t.Errorf("during the hold the endpoint has %+v (found %v) for the run; want %+v", setting, ok, endpointThrottle)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if setting, ok := runFaults(t, f, run); ok {
		t.Errorf("after the hold the endpoint still has %+v for the run", setting)
	}
}

func TestARetriedFaultIsHeldAndLiftedButNotInjectedAgain(t *testing.T) {
	f := newFaults(t)
	run := testRunID("retried")
	t.Cleanup(func() { _ = f.Endpoint.Reset(context.Background(), run) })
	// The first attempt injected the fault and died; the endpoint was
	// restarted meanwhile and lost the setting. A retry must not set it
	// again: the drill's fault happened once, at InjectedAt.
	earlier := injection{Target: "endpoint, run " + run, InjectedAt: time.Now()}
	done := duringHold(t, f, drillapi.FaultRequest{Fault: drillapi.EndpointLatency, RunID: run, HoldSeconds: 4}, &earlier)
	if setting, ok := runFaults(t, f, run); ok {
		t.Errorf("the retry injected the fault again: the endpoint has %+v for the run", setting)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

// TestProcessFaultsRestartWhatTheyHit runs each fault on a fixed process of
// the stack with a short hold: the process must run under a new pid after.
func TestProcessFaultsRestartWhatTheyHit(t *testing.T) {
	f := newFaults(t)
	for _, c := range []struct{ fault, process, component string }{
		{drillapi.KillEndpoint, "endpoint", "refsvc"},
		{drillapi.StopTokenService, "token-service", "refsvc"},
		{drillapi.KillJobManager, "flink-jobmanager", "flink"},
		{drillapi.StopTemporal, "temporal", "temporal"},
		{drillapi.KillWorker, "worker", "worker"},
	} {
		t.Run(c.fault, func(t *testing.T) {
			if c.component == "worker" {
				withStackWorker(t)
			} else {
				keepWhole(t, c.component)
			}
			before := pidOf(t, c.process)
			report, err := applyFault(t, f, drillapi.FaultRequest{Fault: c.fault, RunID: testRunID("process"), HoldSeconds: 2}, nil)
			if err != nil {
				t.Fatal(err)
			}
			if after := pidOf(t, c.process); after == before {
				t.Errorf("%s still pid %d: not hit and restarted", c.process, before)
			}
			if report.Target != c.process {
				t.Errorf("target %q; want %s", report.Target, c.process)
			}
		})
	}
}
