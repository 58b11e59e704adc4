//go:build integration

package main

import (
	"context"
	"crypto/rand"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	enumspb "go.temporal.io/api/enums/v1"
	workflowpb "go.temporal.io/api/workflow/v1"
	"go.temporal.io/sdk/client"
	tlog "go.temporal.io/sdk/log"

	"github.com/flowproof/flowproof/internal/localstack"
	"github.com/flowproof/flowproof/workflows"
)

// exitMargin is what a stopping worker may take beyond its -stop-timeout:
// the SDK's stop of its workflow side and closing its clients.
const exitMargin = 7 * time.Second

// TestSIGTERMWhileActivitiesRun stops a worker, as `stackctl down` and a
// terminal's Ctrl-C do, while its production chunks run far longer than its
// stop timeout. The worker must exit within its stop timeout and a margin,
// hand the chunks back to Temporal at once (a failed attempt that is retried,
// not one that waits out its heartbeat timeout), and the run must end
// Succeeded with every hop exact once another worker has taken over.
func TestSIGTERMWhileActivitiesRun(t *testing.T) {
	h := newStopHarness(t)
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	defer cancel()

	const stopTimeout = 3 * time.Second
	first := h.startWorker(t, "worker-1", stopTimeout)
	// Two chunks of 25,000 at 2,000 messages/s between them: each runs for
	// about 25 s, so both are in flight when the worker is told to stop.
	id := "stop-midrun-" + time.Now().UTC().Format("150405")
	run, err := h.client.ExecuteWorkflow(ctx, client.StartWorkflowOptions{ID: id, TaskQueue: h.taskQueue}, "PipelineWorkflow",
		workflows.PipelineInput{Messages: 50_000, Partitions: 12, LogicalQueues: 100, ChunkSize: 25_000, RatePerSecond: 2_000})
	require.NoError(t, err)
	h.terminateAtEnd(t, id)

	running := h.waitForRunningActivity(t, ctx, id+"/produce", "ProduceChunk", 2*time.Second)
	t.Logf("chunk activity %s running since %s", running.GetActivityId(), running.GetLastStartedTime().AsTime().Format(time.RFC3339Nano))
	took := first.stop(t)
	t.Logf("worker 1 exited %s after SIGTERM (stop timeout %s)", took, stopTimeout)
	require.Less(t, took, stopTimeout+exitMargin, "worker 1 took too long to exit; its log: %s", first.logPath)

	// Handed back: the attempt that was running failed and its retry is
	// scheduled, seconds after the exit; a worker that vanished without
	// answering would leave it running until its 30 s heartbeat timeout.
	handedBack := h.activity(t, ctx, id+"/produce", running.GetActivityId())
	require.NotNil(t, handedBack, "the chunk activity is gone from the pending activities")
	require.Greater(t, handedBack.GetAttempt(), running.GetAttempt(), "the interrupted chunk was not handed back to Temporal")
	require.NotEqual(t, enumspb.PENDING_ACTIVITY_STATE_STARTED, handedBack.GetState())
	t.Logf("handed back: attempt %d, state %s, last failure %q", handedBack.GetAttempt(), handedBack.GetState(), handedBack.GetLastFailure().GetMessage())

	h.startWorker(t, "worker-2", 30*time.Second)
	var res workflows.PipelineResult
	require.NoError(t, run.Get(ctx, &res))
	requireExact(t, res, 50_000)
}

// TestSIGTERMRightAfterRun stops a worker that has just finished a run,
// with Prometheus-style scrapes on a kept-alive connection going on: it
// has nothing left to do and must exit at once.
func TestSIGTERMRightAfterRun(t *testing.T) {
	h := newStopHarness(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()

	w := h.startWorker(t, "worker", 30*time.Second)
	id := "stop-afterrun-" + time.Now().UTC().Format("150405")
	run, err := h.client.ExecuteWorkflow(ctx, client.StartWorkflowOptions{ID: id, TaskQueue: h.taskQueue}, "PipelineWorkflow",
		workflows.PipelineInput{Messages: 20_000, Partitions: 12, LogicalQueues: 100})
	require.NoError(t, err)
	h.terminateAtEnd(t, id)
	var res workflows.PipelineResult
	require.NoError(t, run.Get(ctx, &res))
	requireExact(t, res, 20_000)

	took := w.stop(t)
	t.Logf("worker exited %s after SIGTERM, right after its run", took)
	require.Less(t, took, exitMargin, "an idle worker should exit at once; its log: %s", w.logPath)
}

// stopHarness runs worker processes built from this checkout on a task
// queue of their own, against the local stack.
type stopHarness struct {
	dir, bin, keyFile, taskQueue string
	client                       client.Client
}

func newStopHarness(t *testing.T) *stopHarness {
	t.Helper()
	dir := t.TempDir()
	bin := filepath.Join(dir, "worker")
	out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput()
	require.NoError(t, err, "build worker: %s", out)
	// Both workers of a test must unseal the tokens the other one sealed.
	key := make([]byte, 32)
	_, _ = rand.Read(key)
	keyFile := filepath.Join(dir, "token.key")
	require.NoError(t, os.WriteFile(keyFile, key, 0o600))

	addrs := localstack.FromEnv()
	c, err := client.Dial(client.Options{HostPort: addrs.TemporalAddress, Namespace: addrs.TemporalNamespace,
		Logger: tlog.NewStructuredLogger(slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})))})
	require.NoError(t, err)
	t.Cleanup(c.Close)
	return &stopHarness{dir: dir, bin: bin, keyFile: keyFile, client: c,
		taskQueue: fmt.Sprintf("flowproof-stop-%d", time.Now().UnixNano())}
}

// terminateAtEnd ends the run if a failed test left it without a worker;
// the next run's PrepareTopics (or `starter cleanup`) removes its topics
// and Flink jobs.
func (h *stopHarness) terminateAtEnd(t *testing.T, workflowID string) {
	t.Cleanup(func() {
		_ = h.client.TerminateWorkflow(context.Background(), workflowID, "", "test ended") // a finished run refuses; fine
	})
}

type workerProcess struct {
	cmd     *exec.Cmd
	exited  chan struct{}
	logPath string
}

// startWorker starts a worker as a user would, its metrics server on (on a
// free port) and scraped every quarter second over one kept-alive
// connection, as Prometheus does.
func (h *stopHarness) startWorker(t *testing.T, name string, stopTimeout time.Duration) *workerProcess {
	t.Helper()
	metricsAddr := freeAddr(t)
	logPath := filepath.Join(h.dir, name+".log")
	logFile, err := os.Create(logPath)
	require.NoError(t, err)
	cmd := exec.Command(h.bin, "-task-queue", h.taskQueue, "-token-key-file", h.keyFile,
		"-metrics-addr", metricsAddr, "-stop-timeout", stopTimeout.String(),
		"-reference-endpoint-url", localstack.FromEnv().EndpointURL)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	require.NoError(t, cmd.Start())
	p := &workerProcess{cmd: cmd, exited: make(chan struct{}), logPath: logPath}
	go func() { _ = cmd.Wait(); close(p.exited) }()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-p.exited
		_ = logFile.Close()
		if t.Failed() {
			if out, err := os.ReadFile(logPath); err == nil {
				t.Logf("log of %s (last 4 KB):\n%s", name, tail(out, 4<<10))
			}
		}
	})
	go scrape(p.exited, "http://"+metricsAddr+"/metrics")
	return p
}

// stop sends SIGTERM and returns how long the worker took to exit; a
// worker still running after two minutes fails the test.
func (p *workerProcess) stop(t *testing.T) time.Duration {
	t.Helper()
	began := time.Now()
	require.NoError(t, p.cmd.Process.Signal(syscall.SIGTERM))
	select {
	case <-p.exited:
	case <-time.After(2 * time.Minute):
		_ = p.cmd.Process.Signal(syscall.SIGQUIT) // its goroutines go to its log
		<-p.exited
		t.Fatalf("worker still running 2 minutes after SIGTERM; goroutine dump in %s", p.logPath)
	}
	took := time.Since(began)
	require.True(t, p.cmd.ProcessState.Success(), "worker exit: %s", p.cmd.ProcessState)
	return took
}

// scrape GETs url every quarter second until done, on one kept-alive
// connection.
func scrape(done <-chan struct{}, url string) {
	c := &http.Client{Timeout: 5 * time.Second}
	tick := time.NewTicker(250 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-done:
			c.CloseIdleConnections()
			return
		case <-tick.C:
			if resp, err := c.Get(url); err == nil {
				_, _ = io.Copy(io.Discard, resp.Body)
				_ = resp.Body.Close()
			}
		}
	}
}

// waitForRunningActivity waits until workflowID has a started activity of
// activityType that has run for at least minRunning.
func (h *stopHarness) waitForRunningActivity(t *testing.T, ctx context.Context, workflowID, activityType string, minRunning time.Duration) *workflowPendingActivity {
	t.Helper()
	var found *workflowPendingActivity
	require.Eventually(t, func() bool {
		for _, a := range h.pending(ctx, workflowID) {
			if a.GetActivityType().GetName() == activityType && a.GetState() == enumspb.PENDING_ACTIVITY_STATE_STARTED &&
				time.Since(a.GetLastStartedTime().AsTime()) >= minRunning {
				found = a
				return true
			}
		}
		return false
	}, 5*time.Minute, 200*time.Millisecond, "no %s of %s running", activityType, workflowID)
	return found
}

// activity waits up to 5 s for activityID of workflowID to have been handed
// back (no longer started), and returns it as it is then; nil when it is
// no longer pending.
func (h *stopHarness) activity(t *testing.T, ctx context.Context, workflowID, activityID string) *workflowPendingActivity {
	t.Helper()
	var last *workflowPendingActivity
	deadline := time.Now().Add(5 * time.Second)
	for {
		last = nil
		for _, a := range h.pending(ctx, workflowID) {
			if a.GetActivityId() == activityID {
				last = a
			}
		}
		if last == nil || last.GetState() != enumspb.PENDING_ACTIVITY_STATE_STARTED || time.Now().After(deadline) {
			return last
		}
		time.Sleep(200 * time.Millisecond)
	}
}

type workflowPendingActivity = workflowpb.PendingActivityInfo

func (h *stopHarness) pending(ctx context.Context, workflowID string) []*workflowPendingActivity {
	desc, err := h.client.DescribeWorkflow(ctx, workflowID, "")
	if err != nil {
		return nil
	}
	return desc.RawResponse.GetPendingActivities()
}

// requireExact wants the run Succeeded with every message verified once
// and every hop exact.
func requireExact(t *testing.T, res workflows.PipelineResult, messages int64) {
	t.Helper()
	m := res.Metrics
	require.Equal(t, workflows.StatusSucceeded, res.Status, m.FailureMessage)
	require.Equal(t, messages, m.Verified)
	require.Zero(t, m.Verification.Duplicates)
	require.Zero(t, m.Verification.Missing)
	require.NotEmpty(t, m.Hops)
	for _, hop := range m.Hops {
		require.True(t, hop.Exact(messages), "hop %s not exact: %+v", hop.Hop, hop)
	}
}

func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := l.Addr().String()
	require.NoError(t, l.Close())
	return addr
}

func tail(b []byte, n int) string {
	if len(b) > n {
		b = b[len(b)-n:]
	}
	return strings.TrimSpace(string(b))
}
