//go:build integration

package main

import (
	"bytes"
	"context"
	"encoding/json"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/converter"

	"github.com/flowproof/flowproof/workflows"
)

// TestStartStatusAndRunAgainstTemporal starts runs on a task queue no
// worker polls: it checks what starter sends and reports, not the pipeline.
func TestStartStatusAndRunAgainstTemporal(t *testing.T) {
	c := dialForTest(t)
	ctx := context.Background()
	taskQueue := uniqueName("flowproof-it-noworker")
	workflowID := uniqueName("flowproof-it-start")
	t.Cleanup(func() { _ = c.TerminateWorkflow(context.Background(), workflowID, "", "test cleanup") })

	code, out, errOut := starter(t, "start", "--id", workflowID, "--task-queue", taskQueue, "--messages", "200", "--keep-topics", "--json")
	if code != 0 {
		t.Fatalf("start: exit %d\nstdout: %s\nstderr: %s", code, out, errOut)
	}
	var started struct {
		WorkflowID    string `json:"workflow_id"`
		TemporalRunID string `json:"temporal_run_id"`
		UIURL         string `json:"ui_url"`
	}
	if err := json.Unmarshal([]byte(out), &started); err != nil {
		t.Fatalf("start --json output %q: %v", out, err)
	}
	if started.WorkflowID != workflowID || started.TemporalRunID == "" {
		t.Fatalf("start reported %+v", started)
	}
	if want := "http://127.0.0.1:18233/namespaces/default/workflows/" + workflowID + "/" + started.TemporalRunID + "/history"; started.UIURL != want {
		t.Errorf("ui url = %s, want %s", started.UIURL, want)
	}

	// What the server holds: the input, summary and details as sent.
	desc, err := c.DescribeWorkflow(ctx, workflowID, started.TemporalRunID)
	if err != nil {
		t.Fatal(err)
	}
	if desc.WorkflowType.Name != "PipelineWorkflow" || desc.TaskQueueName != taskQueue {
		t.Errorf("described %s on %s", desc.WorkflowType.Name, desc.TaskQueueName)
	}
	if summary, err := desc.GetStaticSummary(); err != nil || summary != "flowproof run: 200 messages" {
		t.Errorf("static summary = %q (%v)", summary, err)
	}
	if details, err := desc.GetStaticDetails(); err != nil || !strings.Contains(details, "- messages: 200\n") || !strings.Contains(details, "Started by `starter start`") {
		t.Errorf("static details = %q (%v)", details, err)
	}
	history := c.GetWorkflowHistory(ctx, workflowID, started.TemporalRunID, false, enumspb.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
	first, err := history.Next()
	if err != nil {
		t.Fatal(err)
	}
	var sent workflows.PipelineInput
	payloads := first.GetWorkflowExecutionStartedEventAttributes().GetInput().GetPayloads()
	if len(payloads) != 1 {
		t.Fatalf("workflow started with %d input payloads, want 1", len(payloads))
	}
	if err := converter.GetDefaultDataConverter().FromPayload(payloads[0], &sent); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(sent, workflows.PipelineInput{Messages: 200, KeepTopics: true}) {
		t.Errorf("input sent = %+v", sent)
	}

	if code, _, errOut := starter(t, "start", "--id", workflowID, "--task-queue", taskQueue); code != 1 || !strings.Contains(errOut, "already running") {
		t.Errorf("second start with the same id: exit %d, stderr %q", code, errOut)
	}

	code, out, errOut = starter(t, "status", workflowID, "--json")
	if code != 0 {
		t.Fatalf("status: exit %d, stderr %s", code, errOut)
	}
	var report statusReport
	if err := json.Unmarshal([]byte(out), &report); err != nil {
		t.Fatalf("status --json output %q: %v", out, err)
	}
	if report.Status != "Running" || report.Summary != "flowproof run: 200 messages" || report.Progress != nil || !strings.Contains(report.ProgressError, "no worker polls task queue "+taskQueue) {
		t.Errorf("status of a run without worker = %+v", report)
	}

	if code, _, errOut := starter(t, "report", workflowID, "--html", filepath.Join(t.TempDir(), "r.html")); code != 1 || !strings.Contains(errOut, "has no result to report (status Running") {
		t.Errorf("report of a running run: exit %d, stderr %q", code, errOut)
	}

	if err := c.TerminateWorkflow(ctx, workflowID, "", "integration test"); err != nil {
		t.Fatal(err)
	}
	code, out, _ = starter(t, "status", workflowID)
	if code != 0 || !strings.Contains(out, "Terminated") || !strings.Contains(out, "failure") {
		t.Errorf("status after terminate: exit %d\n%s", code, out)
	}
}

// TestRunFollowsUntilTheWorkflowEnds follows a run that another client
// terminates: run must print exactly one Failed PipelineResult and exit 1.
func TestRunFollowsUntilTheWorkflowEnds(t *testing.T) {
	c := dialForTest(t)
	taskQueue := uniqueName("flowproof-it-noworker")
	workflowID := uniqueName("flowproof-it-run")
	t.Cleanup(func() { _ = c.TerminateWorkflow(context.Background(), workflowID, "", "test cleanup") })

	type outcome struct {
		code        int
		out, errOut string
	}
	done := make(chan outcome, 1)
	go func() {
		var stdout, stderr bytes.Buffer
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		code := execute(ctx, []string{"run", "--id", workflowID, "--task-queue", taskQueue, "--messages", "50", "--json", "--progress-every", "1s"}, &stdout, &stderr)
		done <- outcome{code, stdout.String(), stderr.String()}
	}()

	// Let run start the workflow and try a few progress queries first.
	eventually(t, 15*time.Second, "run started the workflow", func() error {
		_, err := c.DescribeWorkflow(context.Background(), workflowID, "")
		return err
	})
	time.Sleep(4 * time.Second)
	if err := c.TerminateWorkflow(context.Background(), workflowID, "", "ended by the integration test"); err != nil {
		t.Fatal(err)
	}

	var o outcome
	select {
	case o = <-done:
	case <-time.After(30 * time.Second):
		t.Fatal("run did not return after the workflow was terminated")
	}
	if o.code != 1 {
		t.Errorf("exit %d, want 1\nstderr: %s", o.code, o.errOut)
	}
	dec := json.NewDecoder(strings.NewReader(o.out))
	var result workflows.PipelineResult
	if err := dec.Decode(&result); err != nil {
		t.Fatalf("stdout %q is not a PipelineResult: %v", o.out, err)
	}
	if dec.More() {
		t.Errorf("stdout holds more than one JSON document: %q", o.out)
	}
	if result.Status != workflows.StatusFailed || !strings.Contains(result.Metrics.FailureMessage, "terminated") || result.Metrics.Messages != 50 {
		t.Errorf("result = %+v", result)
	}
	// A terminated run has no result: starter report says so.
	if code, _, errOut := starter(t, "report", workflowID, "--html", filepath.Join(t.TempDir(), "r.html")); code != 1 || !strings.Contains(errOut, "has no result to report (status Terminated") {
		t.Errorf("report of a terminated run: exit %d, stderr %q", code, errOut)
	}
	for _, want := range []string{"started " + workflowID, "/workflows/" + workflowID + "/", "no answer to the progress query", "ended with status Failed"} {
		if !strings.Contains(o.errOut, want) {
			t.Errorf("stderr lacks %q:\n%s", want, o.errOut)
		}
	}
	t.Logf("run stderr:\n%s", o.errOut)
}
