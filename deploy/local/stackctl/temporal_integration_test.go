//go:build integration

package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/client"
	tlog "go.temporal.io/sdk/log"
	sdkworker "go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"

	"github.com/flowproof/flowproof/internal/localstack"
)

// TestTemporalDevServerJournalsAhead reads the header of the running dev
// server's SQLite file: its read and write format versions (bytes 18 and
// 19) are 2 once the database is in WAL mode, 1 with the rollback journal.
// The CLI once accepted --sqlite-pragma without applying it
// (temporalio/cli#681), so the flag on the command line proves nothing.
func TestTemporalDevServerJournalsAhead(t *testing.T) {
	s, err := newStack()
	if err != nil {
		t.Fatal(err)
	}
	if s.opts.profile != profileDefault {
		t.Skipf("the %s profile's Temporal server keeps its data in PostgreSQL", s.opts.profile)
	}
	if _, ok := s.running("temporal"); !ok {
		t.Fatal("temporal is not running: is the stack up (bin/stackctl status)?")
	}
	f, err := os.Open(temporal{}.databaseFile(s))
	if err != nil {
		t.Fatal(err)
	}
	header := make([]byte, 20)
	_, err = io.ReadFull(f, header)
	_ = f.Close() // read only
	if err != nil {
		t.Fatalf("read the database header: %v", err)
	}
	if string(header[:16]) != "SQLite format 3\x00" {
		t.Fatalf("temporal.db does not start with SQLite's header: %q", header[:16])
	}
	if header[18] != 2 || header[19] != 2 {
		t.Errorf("format versions %d/%d: the database is not in WAL mode (2/2)", header[18], header[19])
	}
}

// TestTemporalDevServerStartsActivitiesEagerly runs a workflow of one
// activity on a task queue of its own and reads the dev server's metrics:
// the activity was handed to the worker in the answer to its workflow task
// (activity_eager_execution), not through the task queue. The flag alone
// proves nothing: the server ignores a dynamic config key it does not know.
func TestTemporalDevServerStartsActivitiesEagerly(t *testing.T) {
	s, err := newStack()
	if err != nil {
		t.Fatal(err)
	}
	if s.opts.profile != profileDefault {
		t.Skipf("the %s profile's Temporal server is configured as a user's would be", s.opts.profile)
	}
	addrs := localstack.FromEnv()
	c, err := client.Dial(client.Options{HostPort: addrs.TemporalAddress, Namespace: addrs.TemporalNamespace,
		Logger: tlog.NewStructuredLogger(slog.New(slog.NewTextHandler(io.Discard, nil)))})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	// Underscores only: the metrics write a queue's other characters as underscores.
	taskQueue := fmt.Sprintf("stackctl_eager_%d", time.Now().UnixNano())
	w := sdkworker.New(c, taskQueue, sdkworker.Options{})
	w.RegisterActivityWithOptions(func(context.Context) (string, error) { return "done", nil }, activity.RegisterOptions{Name: "EagerProbe"})
	w.RegisterWorkflowWithOptions(func(ctx workflow.Context) (string, error) {
		ctx = workflow.WithActivityOptions(ctx, workflow.ActivityOptions{StartToCloseTimeout: 30 * time.Second})
		var out string
		err := workflow.ExecuteActivity(ctx, "EagerProbe").Get(ctx, &out)
		return out, err
	}, workflow.RegisterOptions{Name: "EagerProbeWorkflow"})
	if err := w.Start(); err != nil {
		t.Fatal(err)
	}
	defer w.Stop()

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	run, err := c.ExecuteWorkflow(ctx, client.StartWorkflowOptions{TaskQueue: taskQueue}, "EagerProbeWorkflow")
	if err != nil {
		t.Fatal(err)
	}
	var out string
	if err := run.Get(ctx, &out); err != nil || out != "done" {
		t.Fatalf("probe workflow: %q, %v", out, err)
	}

	// The server reports its counters a second or so after they change.
	metrics := fmt.Sprintf("http://%s:%d/metrics", localstack.Host, localstack.TemporalMetricsPort)
	var last string
	for deadline := time.Now().Add(15 * time.Second); time.Now().Before(deadline); time.Sleep(500 * time.Millisecond) {
		if last = eagerActivities(t, metrics, taskQueue); strings.HasSuffix(last, "} 1") {
			t.Logf("%s", last)
			return
		}
	}
	t.Fatalf("%s counts no eager activity on task queue %s (%q): the dev server started the activity through the queue", metrics, taskQueue, last)
}

// eagerActivities is the line of metrics that counts the activities
// started eagerly on taskQueue, "" if there is none.
func eagerActivities(t *testing.T, metrics, taskQueue string) string {
	t.Helper()
	resp, err := http.Get(metrics)
	if err != nil {
		t.Fatal(err)
	}
	body, err := io.ReadAll(resp.Body)
	_ = resp.Body.Close()
	if err != nil {
		t.Fatal(err)
	}
	for line := range strings.SplitSeq(string(body), "\n") {
		if strings.HasPrefix(line, "activity_eager_execution{") && strings.Contains(line, `taskqueue="`+taskQueue+`"`) {
			return line
		}
	}
	return ""
}
