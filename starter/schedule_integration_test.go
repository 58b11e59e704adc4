//go:build integration

package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	commonpb "go.temporal.io/api/common/v1"
	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/converter"
	"go.uber.org/zap"

	"github.com/flowproof/flowproof/internal/temporalclient"
	"github.com/flowproof/flowproof/workflows"
)

// These tests talk to the Temporal server of the local stack (bin/stackctl
// up --only temporal) or whatever TEMPORAL_ADDRESS names. Their runs use a
// task queue of their own that no worker polls, so a triggered run stays
// Running until the test terminates it and never touches Kafka.

func dialForTest(t *testing.T) client.Client {
	t.Helper()
	opts, err := temporalclient.Options(temporalclient.Overrides{}, temporalclient.Logger(zap.NewNop()))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := temporalclient.Dial(ctx, opts)
	if err != nil {
		t.Fatalf("%v (is the local stack's Temporal up? bin/stackctl status --only temporal)", err)
	}
	t.Cleanup(c.Close)
	return c
}

func uniqueName(prefix string) string {
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	return fmt.Sprintf("%s-%d-%s", prefix, time.Now().Unix(), hex.EncodeToString(b))
}

// starter runs the real command line and returns its exit code and output.
func starter(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	code := execute(ctx, args, &stdout, &stderr)
	return code, stdout.String(), stderr.String()
}

// eventually retries check until it returns nil or timeout passes; the
// visibility store trails writes by a moment.
func eventually(t *testing.T, timeout time.Duration, what string, check func() error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		err := check()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: still failing after %s: %v", what, timeout, err)
		}
		time.Sleep(250 * time.Millisecond)
	}
}

func TestScheduleLifecycle(t *testing.T) {
	c := dialForTest(t)
	ctx := context.Background()
	scheduleID := uniqueName("flowproof-it-schedule")
	taskQueue := uniqueName("flowproof-it-noworker")
	t.Cleanup(func() {
		// Only reached with a schedule left over when the test failed midway.
		err := c.ScheduleClient().GetHandle(context.Background(), scheduleID).Delete(context.Background())
		var notFound *serviceerror.NotFound
		if err != nil && !errors.As(err, &notFound) {
			t.Errorf("cleanup: delete schedule %s: %v", scheduleID, err)
		}
	})

	// create
	code, out, errOut := starter(t, "schedule", "create", "--schedule-id", scheduleID, "--task-queue", taskQueue,
		"--cron", "30 3 * * *", "--timezone", "Europe/Berlin", "--catchup-window", "90m", "--messages", "100", "--partitions", "3")
	if code != 0 {
		t.Fatalf("schedule create: exit %d\nstdout: %s\nstderr: %s", code, out, errOut)
	}
	if !strings.Contains(out, "created schedule "+scheduleID) || !strings.Contains(out, "/schedules/"+scheduleID) {
		t.Errorf("create output lacks the schedule and its link:\n%s", out)
	}
	// A second create with the same id is refused, not replaced.
	if code, _, errOut := starter(t, "schedule", "create", "--schedule-id", scheduleID, "--task-queue", taskQueue); code != 1 || !strings.Contains(errOut, "already exists") {
		t.Errorf("duplicate create: exit %d, stderr %q", code, errOut)
	}

	// list
	berlin, err := time.LoadLocation("Europe/Berlin")
	if err != nil {
		t.Fatal(err)
	}
	eventually(t, 15*time.Second, "schedule list shows the schedule", func() error {
		code, out, errOut := starter(t, "schedule", "list", "--json")
		if code != 0 {
			return fmt.Errorf("exit %d: %s", code, errOut)
		}
		var rows []scheduleRow
		if err := json.Unmarshal([]byte(out), &rows); err != nil {
			return fmt.Errorf("list --json output %q: %w", out, err)
		}
		for _, r := range rows {
			if r.ID != scheduleID {
				continue
			}
			if r.Cron != "30 3 * * *" || r.Timezone != "Europe/Berlin" || r.Paused {
				return fmt.Errorf("row %+v: want cron 30 3 * * *, Europe/Berlin, active", r)
			}
			if len(r.NextRuns) == 0 {
				return fmt.Errorf("row %+v has no next runs", r)
			}
			for _, next := range r.NextRuns {
				if local := next.In(berlin); local.Hour() != 3 || local.Minute() != 30 {
					return fmt.Errorf("next run %s is %s in Berlin, want 03:30", next, local.Format("15:04"))
				}
			}
			return nil
		}
		return fmt.Errorf("schedule %s not listed among %d", scheduleID, len(rows))
	})
	if code, out, _ := starter(t, "schedule", "list"); code != 0 || !strings.Contains(out, scheduleID) || !strings.Contains(out, "30 3 * * *") {
		t.Errorf("table list: exit %d\n%s", code, out)
	}

	// describe
	desc, err := c.ScheduleClient().GetHandle(ctx, scheduleID).Describe(ctx)
	if err != nil {
		t.Fatalf("describe: %v", err)
	}
	if got := desc.Schedule.Policy.Overlap; got != enumspb.SCHEDULE_OVERLAP_POLICY_SKIP {
		t.Errorf("overlap policy = %v, want Skip", got)
	}
	if got := desc.Schedule.Policy.CatchupWindow; got != 90*time.Minute {
		t.Errorf("catch-up window = %s, want 1h30m", got)
	}
	spec := desc.Schedule.Spec
	if spec.TimeZoneName != "Europe/Berlin" || len(spec.Calendars) != 1 {
		t.Fatalf("spec = %+v, want one calendar in Europe/Berlin", spec)
	}
	if got := describeSpec(spec); got != "30 3 * * *" {
		t.Errorf("compiled calendar renders as %q, want 30 3 * * *", got)
	}
	if got := memoString(desc.Memo, memoCron); got != "30 3 * * *" {
		t.Errorf("cron memo = %q", got)
	}
	action, ok := desc.Schedule.Action.(*client.ScheduleWorkflowAction)
	if !ok {
		t.Fatalf("action is %T, want a workflow action", desc.Schedule.Action)
	}
	if action.Workflow != "PipelineWorkflow" || action.TaskQueue != taskQueue || action.ID != scheduleID {
		t.Errorf("action = workflow %v, task queue %s, id %s", action.Workflow, action.TaskQueue, action.ID)
	}
	if len(action.Args) != 1 {
		t.Fatalf("action has %d args, want 1", len(action.Args))
	}
	var scheduledInput workflows.PipelineInput
	if err := converter.GetDefaultDataConverter().FromPayload(action.Args[0].(*commonpb.Payload), &scheduledInput); err != nil {
		t.Fatalf("decode scheduled input: %v", err)
	}
	if scheduledInput.Messages != 100 || scheduledInput.Partitions != 3 || scheduledInput.RunID != "" {
		t.Errorf("scheduled input = %+v", scheduledInput)
	}

	// trigger
	code, out, errOut = starter(t, "schedule", "trigger", "--schedule-id", scheduleID)
	if code != 0 || !strings.Contains(out, "workflow "+scheduleID+"-") {
		t.Fatalf("trigger: exit %d\nstdout: %s\nstderr: %s", code, out, errOut)
	}
	var started *workflowservice.ListWorkflowExecutionsResponse
	query := fmt.Sprintf("TemporalScheduledById = '%s'", scheduleID)
	eventually(t, 20*time.Second, "the triggered run is visible", func() error {
		resp, err := c.ListWorkflow(ctx, &workflowservice.ListWorkflowExecutionsRequest{Query: query})
		if err != nil {
			return err
		}
		if len(resp.Executions) != 1 {
			return fmt.Errorf("%d executions match %s, want 1", len(resp.Executions), query)
		}
		started = resp
		return nil
	})
	run := started.Executions[0]
	workflowID := run.GetExecution().GetWorkflowId()
	if !strings.HasPrefix(workflowID, scheduleID+"-") || run.GetType().GetName() != "PipelineWorkflow" || run.GetTaskQueue() != taskQueue {
		t.Errorf("triggered execution = %s (%s on %s)", workflowID, run.GetType().GetName(), run.GetTaskQueue())
	}
	if run.GetStatus() != enumspb.WORKFLOW_EXECUTION_STATUS_RUNNING {
		t.Errorf("triggered execution is %v, want Running (no worker polls %s)", run.GetStatus(), taskQueue)
	}
	if !strings.Contains(out, workflowID) {
		t.Errorf("trigger printed %q, not the started workflow %s", out, workflowID)
	}

	// While that run is open, the Skip policy refuses another.
	if code, _, errOut := starter(t, "schedule", "trigger", "--schedule-id", scheduleID); code != 1 || !strings.Contains(errOut, "overlap policy is Skip") {
		t.Errorf("overlapping trigger: exit %d, stderr %q; want the Skip refusal", code, errOut)
	}

	if err := c.TerminateWorkflow(ctx, workflowID, "", "schedule integration test done"); err != nil {
		t.Fatalf("terminate %s: %v", workflowID, err)
	}
	described, err := c.DescribeWorkflow(ctx, workflowID, "")
	if err != nil {
		t.Fatal(err)
	}
	if described.Status != enumspb.WORKFLOW_EXECUTION_STATUS_TERMINATED {
		t.Errorf("after terminate: %v", described.Status)
	}

	// delete
	if code, out, errOut := starter(t, "schedule", "delete", "--schedule-id", scheduleID); code != 0 || !strings.Contains(out, "deleted schedule "+scheduleID) {
		t.Fatalf("delete: exit %d\nstdout: %s\nstderr: %s", code, out, errOut)
	}
	_, err = c.ScheduleClient().GetHandle(ctx, scheduleID).Describe(ctx)
	var notFound *serviceerror.NotFound
	if !errors.As(err, &notFound) {
		t.Errorf("describe after delete: %v, want NotFound", err)
	}
	if code, _, errOut := starter(t, "schedule", "delete", "--schedule-id", scheduleID); code != 1 || !strings.Contains(errOut, "no such schedule") {
		t.Errorf("second delete: exit %d, stderr %q", code, errOut)
	}
}

// TestScheduleDrill schedules a drill instead of a pipeline run: the
// triggered execution is a DrillWorkflow on the drill task queue whose
// input names the drill and the pipeline's task queue.
func TestScheduleDrill(t *testing.T) {
	c := dialForTest(t)
	ctx := context.Background()
	scheduleID := uniqueName("flowproof-it-drill-schedule")
	drillQueue := uniqueName("flowproof-it-nodrillworker")
	t.Cleanup(func() {
		_ = c.ScheduleClient().GetHandle(context.Background(), scheduleID).Delete(context.Background())
	})

	if code, _, errOut := starter(t, "schedule", "create", "--schedule-id", scheduleID, "--drill", "kill-everything"); code != 2 || !strings.Contains(errOut, "kill-broker") {
		t.Errorf("unknown drill: exit %d, stderr %q; want 2 and the list of drills", code, errOut)
	}
	code, out, errOut := starter(t, "schedule", "create", "--schedule-id", scheduleID, "--drill", "kill-taskmanager",
		"--drill-task-queue", drillQueue, "--task-queue", "flowproof-it-pipeline", "--messages", "50000")
	if code != 0 {
		t.Fatalf("schedule create --drill: exit %d\nstdout: %s\nstderr: %s", code, out, errOut)
	}
	if code, out, errOut = starter(t, "schedule", "trigger", "--schedule-id", scheduleID); code != 0 {
		t.Fatalf("trigger: exit %d\nstdout: %s\nstderr: %s", code, out, errOut)
	}
	query := fmt.Sprintf("TemporalScheduledById = '%s'", scheduleID)
	var run *workflowservice.ListWorkflowExecutionsResponse
	eventually(t, 20*time.Second, "the triggered drill is visible", func() error {
		resp, err := c.ListWorkflow(ctx, &workflowservice.ListWorkflowExecutionsRequest{Query: query})
		if err != nil {
			return err
		}
		if len(resp.Executions) != 1 {
			return fmt.Errorf("%d executions match %s, want 1", len(resp.Executions), query)
		}
		run = resp
		return nil
	})
	exec := run.Executions[0]
	workflowID := exec.GetExecution().GetWorkflowId()
	t.Cleanup(func() { _ = c.TerminateWorkflow(context.Background(), workflowID, "", "schedule drill test done") })
	if exec.GetType().GetName() != "DrillWorkflow" || exec.GetTaskQueue() != drillQueue {
		t.Errorf("triggered execution = %s (%s on %s), want DrillWorkflow on %s", workflowID, exec.GetType().GetName(), exec.GetTaskQueue(), drillQueue)
	}
	desc, err := c.ScheduleClient().GetHandle(ctx, scheduleID).Describe(ctx)
	if err != nil {
		t.Fatal(err)
	}
	action := desc.Schedule.Action.(*client.ScheduleWorkflowAction)
	var in workflows.DrillInput
	if err := converter.GetDefaultDataConverter().FromPayload(action.Args[0].(*commonpb.Payload), &in); err != nil {
		t.Fatalf("decode scheduled drill input: %v", err)
	}
	if in.Drill != "kill-taskmanager" || in.PipelineTaskQueue != "flowproof-it-pipeline" || in.Pipeline.Messages != 50000 {
		t.Errorf("scheduled drill input = %+v", in)
	}
}
