//go:build integration

package main

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	commonpb "go.temporal.io/api/common/v1"
	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/operatorservice/v1"
	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/flowproof/flowproof/internal/searchattr"
)

// freshNamespace registers a namespace of its own, without flowproof's
// search attributes (the dev server adds them only to the namespaces it
// starts with), waits until the frontend serves it, and deletes it when
// the test ends.
func freshNamespace(t *testing.T, c client.Client) string {
	t.Helper()
	ns := uniqueName("setup")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := c.WorkflowService().RegisterNamespace(ctx, &workflowservice.RegisterNamespaceRequest{
		Namespace: ns, WorkflowExecutionRetentionPeriod: durationpb.New(24 * time.Hour),
	}); err != nil {
		t.Fatalf("register namespace %s: %v", ns, err)
	}
	t.Cleanup(func() {
		_, _ = c.OperatorService().DeleteNamespace(context.Background(), &operatorservice.DeleteNamespaceRequest{Namespace: ns})
	})
	eventually(t, 30*time.Second, "namespace "+ns+" served", func() error {
		_, err := c.OperatorService().ListSearchAttributes(ctx, &operatorservice.ListSearchAttributesRequest{Namespace: ns})
		return err
	})
	return ns
}

// starterIn runs starter against namespace ns.
func starterIn(t *testing.T, ns string, args ...string) (int, string, string) {
	t.Helper()
	return starter(t, append([]string{"--namespace", ns}, args...)...)
}

// On a namespace without flowproof's search attributes, setup registers
// them; run again, it finds them and changes nothing; both times it exits 0.
func TestSetupRegistersSearchAttributesOnce(t *testing.T) {
	c := dialForTest(t)
	ns := freshNamespace(t, c)
	ctx := context.Background()

	var missing *searchattr.MissingError
	if err := searchattr.Check(ctx, c.OperatorService(), ns); !errors.As(err, &missing) || len(missing.Missing) != len(searchattr.Definitions()) {
		t.Fatalf("fresh namespace: check = %v, want all %d missing", err, len(searchattr.Definitions()))
	}
	code, out, errOut := starterIn(t, ns, "setup", "--check-pollers=false")
	t.Logf("first setup (exit %d):\n%s%s", code, out, errOut)
	if code != 0 || !strings.Contains(out, "registered FlowproofStage (Keyword), FlowproofStatus (Keyword), FlowproofMessageCount (Int), FlowproofInputHash (Keyword) on namespace "+ns) {
		t.Fatalf("first setup: exit %d, stdout %q, stderr %q", code, out, errOut)
	}
	if err := searchattr.Check(ctx, c.OperatorService(), ns); err != nil {
		t.Fatalf("after setup: %v", err)
	}
	code, out, errOut = starterIn(t, ns, "setup", "--check-pollers=false")
	t.Logf("second setup (exit %d):\n%s%s", code, out, errOut)
	if code != 0 || !strings.Contains(out, "already registered on namespace "+ns) || strings.Contains(out, "registered Flowproof") {
		t.Fatalf("second setup: exit %d, stdout %q, stderr %q", code, out, errOut)
	}
}

// An attribute of flowproof's name under another type cannot be fixed by
// registering: setup says so and exits 1, and makes no schedule.
func TestSetupRefusesAnAttributeOfAnotherType(t *testing.T) {
	c := dialForTest(t)
	ns := freshNamespace(t, c)
	if _, err := c.OperatorService().AddSearchAttributes(context.Background(), &operatorservice.AddSearchAttributesRequest{
		Namespace: ns, SearchAttributes: map[string]enumspb.IndexedValueType{searchattr.StatusName: enumspb.INDEXED_VALUE_TYPE_INT},
	}); err != nil {
		t.Fatal(err)
	}
	code, out, errOut := starterIn(t, ns, "setup", "--check-pollers=false", "--schedule", "--schedule-id", uniqueName("setup-conflict"))
	t.Logf("setup (exit %d):\n%s%s", code, out, errOut)
	if code != 1 || !strings.Contains(out, "has search attribute FlowproofStatus as Int, flowproof needs Keyword") || !strings.Contains(out, "not created") {
		t.Fatalf("exit %d, stdout %q, stderr %q", code, out, errOut)
	}
}

// setup checks that a worker polls the task queue: it fails (exit 1) and
// says how to start one while none does, and passes once one does.
func TestSetupChecksPollers(t *testing.T) {
	c := dialForTest(t)
	ns := freshNamespace(t, c)
	taskQueue := uniqueName("setup-tq")
	code, out, errOut := starterIn(t, ns, "--task-queue", taskQueue, "setup")
	t.Logf("setup without a worker (exit %d):\n%s%s", code, out, errOut)
	if code != 1 || !strings.Contains(out, "no worker polls task queue "+taskQueue) || !strings.Contains(out, "worker -task-queue "+taskQueue+" -temporal-namespace "+ns) {
		t.Fatalf("exit %d, stdout %q, stderr %q", code, out, errOut)
	}

	nsClient, err := client.NewClientFromExisting(c, client.Options{Namespace: ns})
	if err != nil {
		t.Fatal(err)
	}
	defer nsClient.Close()
	w := worker.New(nsClient, taskQueue, worker.Options{})
	w.RegisterWorkflowWithOptions(func(workflow.Context) error { return nil }, workflow.RegisterOptions{Name: "SetupProbe"})
	w.RegisterActivityWithOptions(func(context.Context) error { return nil }, activity.RegisterOptions{Name: "SetupProbeActivity"})
	if err := w.Start(); err != nil {
		t.Fatal(err)
	}
	defer w.Stop()
	eventually(t, 30*time.Second, "setup sees the worker", func() error {
		code, out, errOut = starterIn(t, ns, "--task-queue", taskQueue, "setup")
		if code != 0 {
			return errors.New(out + errOut)
		}
		return nil
	})
	t.Logf("setup with a worker:\n%s", out)
	if !strings.Contains(out, "task queue "+taskQueue+" has 1 workflow poller(s), 1 activity poller(s)") {
		t.Fatalf("stdout %q", out)
	}
}

// setup --schedule creates the schedule, brings it to new flags in place,
// and replaces it for a new cron expression, whose text only a new
// schedule can carry.
func TestSetupCreatesAndUpdatesTheSchedule(t *testing.T) {
	c := dialForTest(t)
	ns := freshNamespace(t, c)
	nsClient, err := client.NewClientFromExisting(c, client.Options{Namespace: ns})
	if err != nil {
		t.Fatal(err)
	}
	defer nsClient.Close()
	id := uniqueName("setup-nightly")
	t.Cleanup(func() { _ = nsClient.ScheduleClient().GetHandle(context.Background(), id).Delete(context.Background()) })
	setup := func(args ...string) string {
		t.Helper()
		code, out, errOut := starterIn(t, ns, append([]string{"setup", "--check-pollers=false", "--schedule", "--schedule-id", id}, args...)...)
		if code != 0 {
			t.Fatalf("setup %v: exit %d, stdout %q, stderr %q", args, code, out, errOut)
		}
		return out
	}
	describe := func() *client.ScheduleDescription {
		t.Helper()
		desc, err := nsClient.ScheduleClient().GetHandle(context.Background(), id).Describe(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		return desc
	}

	if out := setup("--messages", "1000"); !strings.Contains(out, "schedule "+id+": created (0 2 * * * UTC") {
		t.Fatalf("first: %q", out)
	}
	if out := setup("--messages", "2000", "--catchup-window", "2h"); !strings.Contains(out, "schedule "+id+": updated") {
		t.Fatalf("second: %q", out)
	}
	desc := describe()
	if desc.Schedule.Policy.CatchupWindow != 2*time.Hour || !strings.Contains(scheduleInput(t, desc), `"messages":2000`) {
		t.Fatalf("after the update: catch-up window %s, input %s", desc.Schedule.Policy.CatchupWindow, scheduleInput(t, desc))
	}
	if out := setup("--cron", "30 3 * * *"); !strings.Contains(out, "schedule "+id+": replaced (30 3 * * * UTC") {
		t.Fatalf("third: %q", out)
	}
	if cron := memoString(describe().Memo, memoCron); cron != "30 3 * * *" {
		t.Fatalf("cron memo after the replacement: %q", cron)
	}
}

// scheduleInput is the JSON of the schedule's workflow input.
func scheduleInput(t *testing.T, desc *client.ScheduleDescription) string {
	t.Helper()
	action, ok := desc.Schedule.Action.(*client.ScheduleWorkflowAction)
	if !ok || len(action.Args) != 1 {
		t.Fatalf("schedule action %#v", desc.Schedule.Action)
	}
	payload, ok := action.Args[0].(*commonpb.Payload)
	if !ok {
		t.Fatalf("schedule argument %T", action.Args[0])
	}
	return string(payload.GetData())
}
