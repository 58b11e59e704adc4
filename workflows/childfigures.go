package workflows

import (
	"errors"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"
)

// childFiguresChange gates the figures a failed or canceled child carries
// to its parent: runs recorded before replay without them.
const childFiguresChange = "child-figures-on-failure"

// childFigures is what a child workflow that did not complete carries in
// its failure or cancellation: its result so far. Of names the child, so
// that details of some other error are never read as figures.
type childFigures[T any] struct {
	Of      string `json:"figures_of"`
	Figures T      `json:"figures"`
}

// Names of the children's figures.
const (
	produceFigures = "produce"
	deliverFigures = "deliver"
)

// endedWithFigures is err, how a child workflow ends without completing,
// carrying figures (its result so far) so that the parent's result still
// says how far the child got: how long production was held, how many
// batches were retried. A cancellation stays one; an error keeps its
// message, type and retryability. Continuing as new passes unchanged.
func endedWithFigures[T any](ctx workflow.Context, err error, of string, figures T) error {
	if err == nil || workflow.IsContinueAsNewError(err) ||
		workflow.GetVersion(ctx, childFiguresChange, workflow.DefaultVersion, 1) == workflow.DefaultVersion {
		return err
	}
	details := childFigures[T]{Of: of, Figures: figures}
	// The SDK ends a workflow as canceled, with the details of the first
	// CanceledError in the chain, when there is one anywhere in it.
	if temporal.IsCanceledError(err) {
		return temporal.NewCanceledError(details)
	}
	opts := temporal.ApplicationErrorOptions{Cause: err, Details: []any{details}}
	var appErr *temporal.ApplicationError
	if outer, ok := err.(*temporal.ApplicationError); ok { //nolint:errorlint // only the outermost error is rebuilt
		if outer.HasDetails() {
			return err
		}
		opts.Cause, opts.NonRetryable = outer.Unwrap(), outer.NonRetryable()
		return temporal.NewApplicationErrorWithOptions(outer.Message(), outer.Type(), opts)
	}
	// A new outer level without a message of its own (failureText skips
	// it), with the type of the first application error inside, which the
	// parent's ending takes as the run's failure type.
	errType := ""
	if errors.As(err, &appErr) {
		errType = appErr.Type()
	}
	return temporal.NewApplicationErrorWithOptions("", errType, opts)
}

// figuresOfChild reads the figures a child carried in err, the error its
// future returned; false when it carried none (a child recorded before
// they existed, one that was terminated or timed out).
func figuresOfChild[T any](err error, of string) (T, bool) {
	var childErr *temporal.ChildWorkflowExecutionError
	var details childFigures[T]
	if !errors.As(err, &childErr) {
		return details.Figures, false
	}
	var carried interface {
		HasDetails() bool
		Details(...any) error
	}
	switch cause := errors.Unwrap(childErr).(type) { //nolint:errorlint // the child's own ending, not what caused it
	case *temporal.ApplicationError:
		carried = cause
	case *temporal.CanceledError:
		carried = cause
	default:
		return details.Figures, false
	}
	if !carried.HasDetails() || !decodeDetails(carried.Details, &details) || details.Of != of {
		return details.Figures, false
	}
	return details.Figures, true
}

// decodeDetails is details(into) == nil, and false where it panics:
// details that are Go values of another type, not payloads, make the SDK's
// decoding panic (reflect.Set), as a canceled child's do in the test
// environment.
func decodeDetails(details func(...any) error, into any) (ok bool) {
	defer func() {
		if recover() != nil {
			ok = false
		}
	}()
	return details(into) == nil
}
