package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/temporal"

	"github.com/flowproof/flowproof/workflows"
)

const (
	// queryTimeout bounds one progress query: without a worker polling the
	// task queue, a query waits rather than fails.
	queryTimeout = 3 * time.Second
	pollEvery    = time.Second
)

// defaultWorkflowID names a run after its start time, which keeps ids
// unique and sortable and makes the Kafka topic names telling.
func defaultWorkflowID(now time.Time) string {
	return "flowproof-" + now.UTC().Format("20060102T150405Z")
}

// startFlags are the flags of start and run.
type startFlags struct {
	input      inputFlags
	workflowID string
	json       bool
}

func (a *app) startCommand() *cobra.Command {
	var f startFlags
	cmd := &cobra.Command{
		Use:   "start [flags]",
		Short: "Start a PipelineWorkflow and print its workflow id, Temporal run id and UI link",
		Example: `  starter start --messages 10000
  starter start --input '{"messages":10000,"keep_topics":true}' --id my-run`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			run, ns, err := a.start(cmd, &f, "starter start")
			if err != nil {
				return err
			}
			link := workflowLink(a.uiURL, ns, run.GetID(), run.GetRunID())
			if f.json {
				return writeJSON(a.stdout, map[string]string{"workflow_id": run.GetID(), "temporal_run_id": run.GetRunID(), "ui_url": link})
			}
			fmt.Fprintf(a.stdout, "workflow id:     %s\ntemporal run id: %s\nui:              %s\n", run.GetID(), run.GetRunID(), link)
			return nil
		},
	}
	f.register(cmd)
	cmd.Flags().BoolVar(&f.json, "json", false, "print {workflow_id, temporal_run_id, ui_url} as JSON")
	return cmd
}

func (a *app) runCommand() *cobra.Command {
	var f startFlags
	var lineEvery time.Duration
	var resultFile string
	cmd := &cobra.Command{
		Use:   "run [flags]",
		Short: "Start a PipelineWorkflow, follow its progress and print its result",
		Long: `run starts a PipelineWorkflow and follows it: a progress bar on stderr (plain
lines when stderr is not a terminal) driven by the workflow's "progress" query,
then the result. It exits 0 only when the run's Status is Succeeded.

With --json, stdout holds exactly one JSON document: the PipelineResult.
Interrupting run (Ctrl-C) stops following; the workflow keeps running.`,
		Example: `  starter run --messages 10000 --queues 100 --partitions 12
  starter run --input '{}' --json > result.json`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if lineEvery <= 0 {
				return usagef("--progress-every: must be positive, got %s", lineEvery)
			}
			run, ns, c, in, err := a.startKeepClient(cmd, &f, "starter run")
			if err != nil {
				return err
			}
			defer c.Close()
			fmt.Fprintf(a.stderr, "started %s (temporal run %s)\n%s\n", run.GetID(), run.GetRunID(), workflowLink(a.uiURL, ns, run.GetID(), run.GetRunID()))
			view := newProgressView(a.stderr, effectiveMessages(in), lineEvery)
			result, err := follow(cmd.Context(), c, run, a.taskQueue, view)
			if cmd.Context().Err() != nil {
				return exitError{code: 130, err: fmt.Errorf("stopped following %s; the workflow keeps running (starter status %s)", run.GetID(), run.GetID())}
			}
			if ended, ok := workflows.ResultOfEnding(err); ok {
				result, err = ended, nil
			}
			if err != nil {
				// A workflow that ended without a result (terminated,
				// timed out, invalid input) is still reported as one
				// Failed result, so --json callers always get a
				// PipelineResult to read.
				ran := in.WithDefaults(run.GetID())
				result = workflows.PipelineResult{
					Status:  workflows.StatusFailed,
					Metrics: workflows.Metrics{RunID: ran.RunID, Messages: ran.Messages, FailureMessage: workflowFailure(err)},
				}
			}
			if resultFile != "" {
				if err := writeResultFile(resultFile, result); err != nil {
					return err
				}
			}
			if f.json {
				if err := writeJSON(a.stdout, result); err != nil {
					return err
				}
			} else {
				printResult(a.stdout, result)
			}
			if result.Status != workflows.StatusSucceeded {
				return exitError{code: 1, err: fmt.Errorf("run %s ended with status %s", run.GetID(), orDash(string(result.Status)))}
			}
			return nil
		},
	}
	f.register(cmd)
	cmd.Flags().BoolVar(&f.json, "json", false, "print the PipelineResult as one JSON document on stdout")
	cmd.Flags().StringVar(&resultFile, "result-file", "", "also write the PipelineResult as JSON to this file (as --json prints it), whatever stdout shows")
	cmd.Flags().DurationVar(&lineEvery, "progress-every", 10*time.Second, "how often a progress line is printed when stderr is not a terminal")
	return cmd
}

func (f *startFlags) register(cmd *cobra.Command) {
	f.input.register(cmd.Flags(), true)
	cmd.Flags().StringVar(&f.workflowID, "id", "", "workflow id (default flowproof-<UTC time>, e.g. "+defaultWorkflowID(time.Date(2026, 11, 27, 2, 0, 0, 0, time.UTC))+")")
}

// start starts the workflow and closes the client.
func (a *app) start(cmd *cobra.Command, f *startFlags, startedBy string) (client.WorkflowRun, string, error) {
	run, ns, c, _, err := a.startKeepClient(cmd, f, startedBy)
	if err != nil {
		return nil, "", err
	}
	c.Close()
	return run, ns, nil
}

// startKeepClient starts the workflow and returns the client for following
// it; the caller closes it.
func (a *app) startKeepClient(cmd *cobra.Command, f *startFlags, startedBy string) (client.WorkflowRun, string, client.Client, workflows.PipelineInput, error) {
	in, err := f.input.build(cmd.Flags(), os.Stdin)
	if err != nil {
		return nil, "", nil, in, err
	}
	now := time.Now()
	id := f.workflowID
	if id == "" {
		id = defaultWorkflowID(now)
	}
	if err := validateInput(cmd.Flags(), in, id); err != nil {
		return nil, "", nil, in, err
	}
	ctx := cmd.Context()
	c, ns, err := a.dial(ctx)
	if err != nil {
		return nil, "", nil, in, err
	}
	run, err := c.ExecuteWorkflow(ctx, client.StartWorkflowOptions{
		ID:                       id,
		TaskQueue:                a.taskQueue,
		WorkflowIDConflictPolicy: enumspb.WORKFLOW_ID_CONFLICT_POLICY_FAIL,
		WorkflowExecutionTimeout: in.WithDefaults(id).ExecutionTimeout(),
		// Without this the SDK quietly hands back the run already using the
		// id, and the caller would follow a run it did not start.
		WorkflowExecutionErrorWhenAlreadyStarted: true,
		StaticSummary:                            staticSummary(in),
		StaticDetails:                            staticDetails(in, fmt.Sprintf("Started by `%s` at %s.", startedBy, now.UTC().Format(time.RFC3339))),
	}, workflows.PipelineWorkflow, in)
	if err != nil {
		c.Close()
		if temporal.IsWorkflowExecutionAlreadyStartedError(err) {
			return nil, "", nil, in, fmt.Errorf("workflow id %q is already running: pick another --id, or follow it with 'starter status %s'", id, id)
		}
		return nil, "", nil, in, fmt.Errorf("start PipelineWorkflow %q on task queue %s: %w", id, a.taskQueue, err)
	}
	return run, ns, c, in, nil
}

// follow shows the run's progress until it ends and returns its result.
func follow(ctx context.Context, c client.Client, run client.WorkflowRun, taskQueue string, view progressView) (workflows.PipelineResult, error) {
	type outcome struct {
		result workflows.PipelineResult
		err    error
	}
	done := make(chan outcome, 1)
	go func() {
		var r workflows.PipelineResult
		err := run.Get(ctx, &r)
		done <- outcome{r, err}
	}()
	ticker := time.NewTicker(pollEvery)
	defer ticker.Stop()
	defer view.finish()
	for {
		select {
		case o := <-done:
			return o.result, o.err
		case <-ctx.Done():
			return workflows.PipelineResult{}, ctx.Err()
		case <-ticker.C:
			p, err := queryProgress(ctx, c, run.GetID(), run.GetRunID())
			if err != nil {
				view.waiting(progressUnavailable(err, taskQueue))
				continue
			}
			view.update(p)
		}
	}
}

func queryProgress(ctx context.Context, c client.Client, workflowID, temporalRunID string) (workflows.Progress, error) {
	ctx, cancel := context.WithTimeout(ctx, queryTimeout)
	defer cancel()
	value, err := c.QueryWorkflow(ctx, workflowID, temporalRunID, workflows.ProgressQuery)
	if err != nil {
		return workflows.Progress{}, err
	}
	var p workflows.Progress
	if err := value.Get(&p); err != nil {
		return workflows.Progress{}, fmt.Errorf("decode progress: %w", err)
	}
	return p, nil
}

// progressUnavailable explains a failed progress query in a few words. A
// query nobody answers in time means no worker polls the run's task queue,
// or the worker is too busy to answer.
func progressUnavailable(err error, taskQueue string) string {
	var deadline *serviceerror.DeadlineExceeded
	if errors.Is(err, context.DeadlineExceeded) || errors.As(err, &deadline) || strings.Contains(err.Error(), "query timed out") {
		return fmt.Sprintf("no answer to the progress query within %s: no worker polls task queue %s, or it is busy", queryTimeout, taskQueue)
	}
	return "progress not available yet: " + err.Error()
}

// workflowFailure is why a workflow ended without a result: the cause under
// the SDK's generic "workflow execution error" wrapper.
func workflowFailure(err error) string {
	var execErr *temporal.WorkflowExecutionError
	if errors.As(err, &execErr) {
		if cause := errors.Unwrap(execErr); cause != nil {
			return cause.Error()
		}
	}
	return err.Error()
}

func (a *app) statusCommand() *cobra.Command {
	var temporalRunID string
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "status WORKFLOW_ID",
		Short: "Show a run's status, its progress while running, its result when done",
		Args:  exactArgs(1, "one workflow id"),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			c, ns, err := a.dial(ctx)
			if err != nil {
				return err
			}
			defer c.Close()
			report, err := describeRun(ctx, c, args[0], temporalRunID)
			if err != nil {
				return err
			}
			report.UIURL = workflowLink(a.uiURL, ns, report.WorkflowID, report.TemporalRunID)
			if asJSON {
				return writeJSON(a.stdout, report)
			}
			report.print(a.stdout)
			return nil
		},
	}
	cmd.Flags().StringVar(&temporalRunID, "temporal-run-id", "", "a specific Temporal run of the workflow id (default: the latest)")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the status as JSON")
	return cmd
}

// statusReport is what status shows.
type statusReport struct {
	WorkflowID    string                    `json:"workflow_id"`
	TemporalRunID string                    `json:"temporal_run_id"`
	Type          string                    `json:"type"`
	TaskQueue     string                    `json:"task_queue"`
	Summary       string                    `json:"summary,omitempty"`
	Status        string                    `json:"status"`
	StartTime     time.Time                 `json:"start_time"`
	CloseTime     *time.Time                `json:"close_time,omitempty"`
	HistoryLength int                       `json:"history_length"`
	UIURL         string                    `json:"ui_url"`
	Progress      *workflows.Progress       `json:"progress,omitempty"`
	ProgressError string                    `json:"progress_error,omitempty"`
	Result        *workflows.PipelineResult `json:"result,omitempty"`
	Failure       string                    `json:"failure,omitempty"`
}

func describeRun(ctx context.Context, c client.Client, workflowID, temporalRunID string) (statusReport, error) {
	desc, err := c.DescribeWorkflow(ctx, workflowID, temporalRunID)
	if err != nil {
		return statusReport{}, fmt.Errorf("describe workflow %q: %w", workflowID, err)
	}
	report := statusReport{
		WorkflowID:    desc.WorkflowExecution.ID,
		TemporalRunID: desc.WorkflowExecution.RunID,
		Type:          desc.WorkflowType.Name,
		TaskQueue:     desc.TaskQueueName,
		Status:        desc.Status.String(), // "Running", "Completed", ... as the UI shows it
		StartTime:     desc.WorkflowStartTime,
		CloseTime:     desc.WorkflowCloseTime,
		HistoryLength: desc.HistoryLength,
	}
	// The summary only decorates the report; one that cannot be decoded
	// is left out rather than failing the status.
	if summary, err := desc.GetStaticSummary(); err == nil {
		report.Summary = summary
	}
	switch desc.Status {
	case enumspb.WORKFLOW_EXECUTION_STATUS_RUNNING:
		p, err := queryProgress(ctx, c, report.WorkflowID, report.TemporalRunID)
		if err != nil {
			report.ProgressError = progressUnavailable(err, report.TaskQueue)
		} else {
			report.Progress = &p
		}
	case enumspb.WORKFLOW_EXECUTION_STATUS_COMPLETED:
		var result workflows.PipelineResult
		if err := c.GetWorkflow(ctx, report.WorkflowID, report.TemporalRunID).Get(ctx, &result); err != nil {
			return report, fmt.Errorf("read result of %s: %w", report.WorkflowID, err)
		}
		report.Result = &result
	default:
		// Failed, terminated, canceled, timed out: Get returns why, and
		// the run's result so far when the run ended itself.
		if err := c.GetWorkflow(ctx, report.WorkflowID, report.TemporalRunID).Get(ctx, nil); err != nil {
			report.Failure = workflowFailure(err)
			if result, ok := workflows.ResultOfEnding(err); ok {
				report.Result = &result
			}
		}
	}
	return report, nil
}

func (r statusReport) print(w io.Writer) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "workflow\t%s (temporal run %s)\n", r.WorkflowID, r.TemporalRunID)
	fmt.Fprintf(tw, "type\t%s on task queue %s\n", r.Type, r.TaskQueue)
	if r.Summary != "" {
		fmt.Fprintf(tw, "summary\t%s\n", r.Summary)
	}
	fmt.Fprintf(tw, "status\t%s\n", r.Status)
	fmt.Fprintf(tw, "started\t%s\n", r.StartTime.UTC().Format(time.RFC3339))
	if r.CloseTime != nil {
		fmt.Fprintf(tw, "closed\t%s (took %s)\n", r.CloseTime.UTC().Format(time.RFC3339), r.CloseTime.Sub(r.StartTime).Round(time.Second))
	} else {
		fmt.Fprintf(tw, "running for\t%s\n", time.Since(r.StartTime).Round(time.Second))
	}
	fmt.Fprintf(tw, "history events\t%d\n", r.HistoryLength)
	fmt.Fprintf(tw, "ui\t%s\n", r.UIURL)
	if r.Progress != nil {
		fmt.Fprintf(tw, "progress\t%s\n", describeProgress(*r.Progress))
	}
	if r.ProgressError != "" {
		fmt.Fprintf(tw, "progress\t%s\n", r.ProgressError)
	}
	if r.Failure != "" {
		fmt.Fprintf(tw, "failure\t%s\n", r.Failure)
	}
	_ = tw.Flush()
	if r.Result != nil {
		fmt.Fprintln(w)
		printResult(w, *r.Result)
	}
}

func writeResultFile(path string, result workflows.PipelineResult) error {
	var buf bytes.Buffer
	if err := writeJSON(&buf, result); err != nil {
		return err
	}
	if err := os.WriteFile(path, buf.Bytes(), 0o644); err != nil {
		return fmt.Errorf("--result-file: %w", err)
	}
	return nil
}

func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	if err := enc.Encode(v); err != nil {
		return fmt.Errorf("write JSON: %w", err)
	}
	return nil
}
