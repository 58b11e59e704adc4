package workflows

import (
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/flowproof/flowproof/internal/drillapi"
	"github.com/flowproof/flowproof/internal/errtype"
)

// DrillStatus is a drill's verdict.
type DrillStatus string

// The values of DrillStatus.
const (
	DrillPassed DrillStatus = "Passed"
	DrillFailed DrillStatus = "Failed"
)

// DrillResult is what DrillWorkflow returns: `{Status, Metrics}`.
type DrillResult struct {
	Status  DrillStatus  `json:"Status"`
	Metrics DrillMetrics `json:"Metrics"`
}

// DrillMetrics are a drill's findings: each fault with its timing and
// recovery, and the run it hit with its hop table.
type DrillMetrics struct {
	Drill  string         `json:"drill"`
	Faults []FaultOutcome `json:"faults"`
	// RunWorkflowID is the PipelineWorkflow the faults hit.
	RunWorkflowID string         `json:"run_workflow_id"`
	Run           PipelineResult `json:"run"`
	// RunErrorType is the error type the run failed with, if it failed.
	RunErrorType string `json:"run_error_type,omitempty"`
	// Verdict says why the drill passed or failed.
	Verdict string `json:"verdict"`
}

// FaultOutcome is one fault of a drill as it happened.
type FaultOutcome struct {
	FaultStep
	// Reached is false when the run ended before the progress point.
	Reached    bool      `json:"reached"`
	Target     string    `json:"target,omitempty"`
	InjectedAt time.Time `json:"injected_at"`
	LiftedAt   time.Time `json:"lifted_at"`
	// InjectedAfterSeconds counts from the start of the run.
	InjectedAfterSeconds float64 `json:"injected_after_s"`
	// BaselinePerSecond is the counter's rate before the fault.
	BaselinePerSecond float64 `json:"baseline_per_s"`
	Recovered         bool    `json:"recovered"`
	// RecoverySeconds is the time from the fault until the counter's rate
	// was back to 80% of the baseline (or the counter was complete).
	RecoverySeconds float64  `json:"recovery_s"`
	Detail          string   `json:"detail,omitempty"`
	Problems        []string `json:"problems,omitempty"`
	// Error is why the fault could not be applied.
	Error string `json:"error,omitempty"`
}

// drill is one DrillWorkflow execution.
type drill struct {
	plan     drillPlan
	started  time.Time
	outcomes []FaultOutcome
	runState string
}

// DrillWorkflow runs a PipelineWorkflow as a child on the flowproof
// worker's task queue and hits it with the drill's faults at their progress
// points, through activities that only the drill worker of a local stack
// serves. It passes when the run succeeds with every hop exact, or fails
// by design with one of the drill's FailsWith types; a drill that does not
// pass fails with its DrillResult as the failure's details.
func DrillWorkflow(ctx workflow.Context, input DrillInput) (DrillResult, error) {
	plan, err := input.plan(workflow.GetInfo(ctx).WorkflowExecution.ID)
	if err != nil {
		return DrillResult{}, err
	}
	d := &drill{plan: plan, started: workflow.Now(ctx), runState: "starting"}
	if err := workflow.SetQueryHandlerWithOptions(ctx, DrillQuery, func() ([]FaultOutcome, error) {
		return d.outcomes, nil
	}, workflow.QueryHandlerOptions{Description: "The drill's faults so far"}); err != nil {
		return DrillResult{}, err
	}
	d.updateDetails(ctx)

	run := d.startRun(ctx)
	// The progress activities query the run, so it must exist first; a run
	// that could not start leaves the faults unapplied.
	started := run.GetChildWorkflowExecution().Get(ctx, nil) == nil
	faultsDone := workflow.NewWaitGroup(ctx)
	faultsDone.Add(1)
	workflow.Go(ctx, func(ctx workflow.Context) {
		defer faultsDone.Done()
		for _, step := range plan.spec.Faults {
			if !started {
				d.outcomes = append(d.outcomes, FaultOutcome{FaultStep: step})
				continue
			}
			d.outcomes = append(d.outcomes, d.applyStep(ctx, step))
			d.updateDetails(ctx)
		}
	})
	var result PipelineResult
	runErr := run.Get(ctx, &result)
	if ended, ok := ResultOfEnding(runErr); ok {
		result = ended
	}
	d.runState = "ended"
	// The faults are lifted before the drill ends, whatever the run did:
	// the stack must be whole for the next drill.
	faultsDone.Wait(ctx)

	res := DrillResult{Metrics: DrillMetrics{
		Drill: plan.spec.Name, Faults: d.outcomes, RunWorkflowID: plan.childID, Run: result,
		RunErrorType: errorType(runErr),
	}}
	res.Status, res.Metrics.Verdict = judgeDrill(plan.spec, plan.pipeline.Messages, result, runErr, d.outcomes)
	workflow.SetCurrentDetails(ctx, drillDetails(res.Metrics.Drill, d.outcomes, "ended: "+string(res.Status)+": "+res.Metrics.Verdict))
	if res.Status == DrillPassed {
		return res, nil
	}
	return res, temporal.NewApplicationErrorWithOptions("drill "+plan.spec.Name+" failed: "+res.Metrics.Verdict, errtype.DrillFailed,
		temporal.ApplicationErrorOptions{NonRetryable: true, Details: []any{res}})
}

// DrillQuery is the name of the query that returns a drill's faults so far.
const DrillQuery = "drill"

func (d *drill) startRun(ctx workflow.Context) workflow.ChildWorkflowFuture {
	ctx = workflow.WithChildOptions(ctx, workflow.ChildWorkflowOptions{
		WorkflowID:               d.plan.childID,
		TaskQueue:                d.plan.taskQueue,
		WorkflowExecutionTimeout: d.plan.pipeline.ExecutionTimeout(),
		// A drill that is cancelled or terminated cancels its run, which
		// then cleans up after itself.
		ParentClosePolicy: enumspb.PARENT_CLOSE_POLICY_REQUEST_CANCEL,
		StaticSummary:     fmt.Sprintf("drill %s: run of %d messages", d.plan.spec.Name, d.plan.pipeline.Messages),
	})
	d.runState = "running"
	return workflow.ExecuteChildWorkflow(ctx, PipelineWorkflow, d.plan.pipeline)
}

// applyStep waits for the step's progress point, applies the fault while
// sampling the run's progress, and reads the recovery from the samples.
func (d *drill) applyStep(ctx workflow.Context, step FaultStep) FaultOutcome {
	outcome := FaultOutcome{FaultStep: step}
	counter, share, _ := step.trigger() // validated by plan
	total := d.plan.pipeline.Messages
	watch := drillapi.ProgressRequest{WorkflowID: d.plan.childID, RunID: d.plan.pipeline.RunID,
		RawTopic: d.plan.names.RawTopic, Counter: counter, Total: total,
		Mark: int64(math.Ceil(share * float64(total)))}

	var before drillapi.ProgressSamples
	if err := workflow.ExecuteActivity(watchOptions(ctx, "wait for "+step.At), drillapi.AwaitProgress, watch).Get(ctx, &before); err != nil {
		outcome.Error = "waiting for " + step.At + ": " + err.Error()
		return outcome
	}
	if before.Ended {
		return outcome
	}
	outcome.Reached = true
	outcome.BaselinePerSecond = rateBefore(before.Samples)

	sampling := workflow.ExecuteActivity(watchOptions(ctx, "sample "+counter+" during "+step.Fault), drillapi.SampleProgress, watch)
	var report drillapi.FaultReport
	faultErr := workflow.ExecuteActivity(faultOptions(ctx, step), drillapi.ApplyFault, drillapi.FaultRequest{
		Fault: step.Fault, RunID: d.plan.pipeline.RunID, Names: d.plan.names, HoldSeconds: step.HoldSeconds,
	}).Get(ctx, &report)
	var during drillapi.ProgressSamples
	sampleErr := sampling.Get(ctx, &during)

	outcome.Target, outcome.Detail, outcome.Problems = report.Target, report.Detail, report.Problems
	outcome.InjectedAt, outcome.LiftedAt = report.InjectedAt, report.LiftedAt
	if faultErr != nil {
		outcome.Error = "applying the fault: " + faultErr.Error()
		return outcome
	}
	outcome.InjectedAfterSeconds = report.InjectedAt.Sub(d.started).Seconds()
	if sampleErr != nil {
		outcome.Error = "sampling the run's progress: " + sampleErr.Error()
		return outcome
	}
	rec := recoveryOf(during.Samples, report.InjectedAt, outcome.BaselinePerSecond, total, during.Ended)
	outcome.Recovered, outcome.RecoverySeconds = rec.Recovered, rec.After.Seconds()
	return outcome
}

// The drill's activities run on the drill's own task queue (the default),
// which only the drill worker serves.

// watchOptions run the progress activities: they heartbeat every few
// seconds and may be retried at will, since they only read.
func watchOptions(ctx workflow.Context, summary string) workflow.Context {
	return workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
		StartToCloseTimeout: 6 * time.Hour,
		// Long enough to ride out a stopped Temporal server.
		HeartbeatTimeout: 2 * time.Minute,
		RetryPolicy:      &temporal.RetryPolicy{NonRetryableErrorTypes: []string{errtype.InvalidInput}},
		Summary:          summary,
	})
}

// faultOptions run ApplyFault. A retry finds the injection in the last
// attempt's heartbeat and only holds and lifts, so a drill worker that died
// mid-hold does not leave the stack broken. Heartbeats cannot reach a
// stopped Temporal server, so the heartbeat timeout outlasts the hold.
func faultOptions(ctx workflow.Context, step FaultStep) workflow.Context {
	hold := time.Duration(step.HoldSeconds) * time.Second
	return workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
		StartToCloseTimeout: hold + 10*time.Minute,
		HeartbeatTimeout:    hold + 2*time.Minute,
		RetryPolicy: &temporal.RetryPolicy{
			MaximumAttempts:        3,
			NonRetryableErrorTypes: []string{errtype.InvalidInput, errtype.NoFaultTarget},
		},
		Summary: fmt.Sprintf("%s for %d s", step.Fault, step.HoldSeconds),
	})
}

// judgeDrill is the drill's verdict: the run succeeded with every hop
// exact, or failed by design; every fault was applied, without problems.
func judgeDrill(spec DrillSpec, messages int64, run PipelineResult, runErr error, outcomes []FaultOutcome) (DrillStatus, string) {
	var problems []string
	for _, o := range outcomes {
		switch {
		case o.Error != "":
			problems = append(problems, o.Fault+": "+o.Error)
		case !o.Reached:
			problems = append(problems, o.Fault+": the run ended before "+o.At+"; the fault was never injected")
		}
		for _, p := range o.Problems {
			problems = append(problems, o.Fault+": "+p)
		}
	}
	runVerdict, runOK := judgeRun(spec, messages, run, runErr)
	if !runOK {
		problems = append([]string{runVerdict}, problems...)
	}
	if len(problems) > 0 {
		return DrillFailed, strings.Join(problems, "; ")
	}
	return DrillPassed, runVerdict
}

// judgeRun reads the run's ending. A Succeeded run must show every hop
// exact here too, so that no drill passes on a false Succeeded.
func judgeRun(spec DrillSpec, messages int64, run PipelineResult, runErr error) (string, bool) {
	if runErr == nil {
		if len(run.Metrics.Hops) == 0 {
			return "run Succeeded without a hop table", false
		}
		for _, h := range run.Metrics.Hops {
			if !h.Exact(messages) {
				return fmt.Sprintf("run Succeeded but hop %s is %s", h.Hop, h.Verdict(messages)), false
			}
		}
		return "run Succeeded, every hop exact", true
	}
	errType := errorType(runErr)
	message := run.Metrics.FailureMessage
	if message == "" {
		message = runErr.Error()
	}
	if slices.Contains(spec.FailsWith, errType) {
		return fmt.Sprintf("run failed by design (%s): %s", errType, message), true
	}
	return fmt.Sprintf("run %s (%s): %s", run.Status, errType, message), false
}

// errorType is the application error type of a run's ending, if any.
func errorType(err error) string {
	var appErr *temporal.ApplicationError
	if errors.As(err, &appErr) {
		return appErr.Type()
	}
	if err != nil {
		return "unknown"
	}
	return ""
}

func (d *drill) updateDetails(ctx workflow.Context) {
	workflow.SetCurrentDetails(ctx, drillDetails(d.plan.spec.Name, d.outcomes, "run "+d.plan.childID+": "+d.runState))
}

// drillDetails renders the drill as the Markdown of its current details.
func drillDetails(name string, outcomes []FaultOutcome, state string) string {
	var b strings.Builder
	//nolint:staticcheck // workflowcheck counts fmt.Fprintf as I/O; Sprintf it is
	b.WriteString(fmt.Sprintf("### flowproof drill %s\n%s\n\n| fault | at | target | injected after | recovery | detail |\n|---|---|---|---|---|---|\n", name, state))
	for _, o := range outcomes {
		recovered := "not recovered"
		if o.Recovered {
			recovered = fmt.Sprintf("%.1f s", o.RecoverySeconds)
		}
		//nolint:staticcheck // as above
		b.WriteString(fmt.Sprintf("| %s | %s | %s | %.1f s | %s | %s |\n", o.Fault, o.At, o.Target, o.InjectedAfterSeconds, recovered,
			strings.ReplaceAll(strings.Join(append([]string{o.Detail, o.Error}, o.Problems...), " "), "|", "/")))
	}
	return b.String()
}

// DrillResultOfEnding returns the DrillResult a failed drill carries in
// its failure; false when it carries none (invalid input, terminated).
func DrillResultOfEnding(err error) (DrillResult, bool) {
	var result DrillResult
	var appErr *temporal.ApplicationError
	if errors.As(err, &appErr) && appErr.HasDetails() && appErr.Details(&result) == nil {
		return result, true
	}
	return DrillResult{}, false
}
