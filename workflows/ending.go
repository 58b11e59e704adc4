package workflows

import (
	"errors"
	"fmt"
	"strings"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/flowproof/flowproof/activities/verify"
	"github.com/flowproof/flowproof/internal/errtype"
)

// FailedThresholds is the FailedStage of a run whose messages all arrived
// exactly once but whose figures broke a threshold of its input.
const FailedThresholds = "thresholds"

// conclude judges the run and records why it failed, if it did, with the
// stage it failed in and the counts so far. Once verification ran, the
// input's thresholds are held against the run's figures (duration
// included, so after cleanup) and every broken one is named. Judging is
// pure computation on the result, and runs recorded before thresholds
// existed have none set, so they replay unchanged without a version gate.
func (p *pipeline) conclude(ctx workflow.Context, verified verify.Result, runErr, cleanupErr error) Status {
	status := StatusFailed
	verificationRan := runErr == nil && !p.timedOut
	if verificationRan {
		p.metrics.Thresholds = p.in.Thresholds.evaluate(p.metrics)
	}
	broken := brokenThresholds(p.metrics.Thresholds)
	switch {
	case p.timedOut:
		p.metrics.FailedStage = p.failedStage
		p.metrics.FailureMessage = fmt.Sprintf("the run passed its deadline of %s (timeout_seconds) in stage %s",
			p.in.timeout(), p.failedStage)
	case runErr != nil && temporal.IsCanceledError(runErr) && ctx.Err() != nil:
		status = StatusCanceled
		p.metrics.FailedStage = p.failedStage
		p.metrics.FailureMessage = "canceled in stage " + p.failedStage
	case runErr != nil:
		p.metrics.FailedStage = p.failedStage
		p.metrics.FailureMessage = failureText(runErr)
	case !verified.Passed():
		p.metrics.FailedStage = StageVerify
		p.metrics.FailureMessage = strings.TrimSuffix(verificationFailure(verified)+"; "+broken, "; ")
	case broken != "":
		p.metrics.FailedStage = FailedThresholds
		p.metrics.FailureMessage = broken
	default:
		status = StatusSucceeded
	}
	if status != StatusSucceeded {
		p.metrics.keepCountsSoFar(p.progress)
	}
	if cleanupErr != nil {
		p.metrics.FailureMessage = strings.TrimPrefix(p.metrics.FailureMessage+"; cleanup: "+failureText(cleanupErr), "; ")
	}
	return status
}

// endingError is how a run that did not succeed ends: failed, or canceled,
// with the result as the details either way. A stage's own error type (for
// example Unhealthy or DeliveryStalled) stays the failure's type, so that
// callers can tell endings apart without parsing messages.
func (p *pipeline) endingError(result PipelineResult, runErr error) error {
	switch result.Status {
	case StatusSucceeded:
		return nil
	case StatusCanceled:
		return temporal.NewCanceledError(result)
	}
	errType := errtype.RunFailed
	var appErr *temporal.ApplicationError
	switch {
	case p.timedOut:
		errType = errtype.RunTimedOut
	case runErr == nil && result.Metrics.FailedStage == FailedThresholds:
		errType = errtype.ThresholdsBroken
	case runErr == nil:
		errType = errtype.VerificationFailed
	case errors.As(runErr, &appErr) && appErr.Type() != "":
		errType = appErr.Type()
	}
	// The SDK ends a workflow as canceled, without these details, when a
	// CanceledError is anywhere in the error's chain; a stage that the
	// deadline cancelled must not make the cause one.
	cause := runErr
	if temporal.IsCanceledError(runErr) {
		cause = nil
	}
	return temporal.NewApplicationErrorWithOptions(result.Metrics.FailureMessage, errType, temporal.ApplicationErrorOptions{
		NonRetryable: true, Cause: cause, Details: []any{result},
	})
}

// enforceDeadline ends the run (runCtx) when it passes the deadline its
// input allows, so that a wedged run ends Failed with its figures instead
// of blocking a nightly schedule whose overlap policy skips.
func (p *pipeline) enforceDeadline(runCtx workflow.Context, endRun workflow.CancelFunc) {
	timeout := p.in.timeout()
	// The timer lives in runCtx, so ending the run also stops it.
	workflow.Go(runCtx, func(ctx workflow.Context) {
		timer := workflow.NewTimerWithOptions(ctx, timeout, workflow.TimerOptions{
			Summary: fmt.Sprintf("run deadline (%s)", timeout),
		})
		if timer.Get(ctx, nil) == nil {
			p.timedOut, p.failedStage = true, p.progress.Stage
			endRun()
		}
	})
}

// noteFailedStage remembers the stage a run ended in, unless the deadline
// already did.
func (p *pipeline) noteFailedStage() {
	if p.failedStage == "" {
		p.failedStage = p.progress.Stage
	}
}

// verificationFailure names the hops that were not exact, with the final
// topic's figures and the first problem.
func verificationFailure(v verify.Result) string {
	msg := "verification failed"
	if failed := v.FailedHops(); len(failed) > 0 {
		msg += " at hop " + strings.Join(failed, ", hop ")
	}
	msg += fmt.Sprintf(": final topic %d of %d unique, %d missing, %d duplicates, %d bad records",
		v.Unique, v.Expected, v.Missing, v.Duplicates, v.BadRecords)
	if len(v.Problems) > 0 {
		msg += ": " + v.Problems[0]
	}
	return msg
}

// ResultOfEnding reads the PipelineResult that a run which did not succeed
// carries in its failure or cancellation (see PipelineWorkflow); false when
// the ending carries none (a terminated run, invalid input, a run recorded
// before endings kept their result).
func ResultOfEnding(err error) (PipelineResult, bool) {
	var result PipelineResult
	var appErr *temporal.ApplicationError
	if errors.As(err, &appErr) && appErr.HasDetails() && appErr.Details(&result) == nil {
		return result, true
	}
	var canceled *temporal.CanceledError
	if errors.As(err, &canceled) && canceled.HasDetails() && canceled.Details(&result) == nil {
		return result, true
	}
	return PipelineResult{}, false
}
