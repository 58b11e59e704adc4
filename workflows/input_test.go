package workflows

import (
	"errors"
	"strings"
	"testing"

	"go.temporal.io/sdk/temporal"

	"github.com/flowproof/flowproof/internal/errtype"
)

func TestWithDefaultsKeepsWhatIsSet(t *testing.T) {
	in := PipelineInput{Messages: 500, LagThreshold: 1_000, RunID: "ci-1"}.WithDefaults("ignored")
	if in.Messages != 500 || in.RunID != "ci-1" || in.LagResume != 500 || in.Partitions != DefaultPartitions {
		t.Errorf("WithDefaults = %+v: want the set fields kept, lag_resume half the threshold, the rest defaulted", in)
	}
	if got := (PipelineInput{}).WithDefaults("").RunID; got != "" {
		t.Errorf("RunID without a workflow id = %q, want empty", got)
	}
	if got := (PipelineInput{}).WithDefaults("nightly run/1").RunID; got != "nightly-run-1" {
		t.Errorf("RunID from a workflow id = %q, want nightly-run-1", got)
	}
}

func TestValidateReturnsANonRetryableInvalidInput(t *testing.T) {
	if err := (PipelineInput{}).WithDefaults("wf").Validate(); err != nil {
		t.Fatalf("defaults do not validate: %v", err)
	}
	err := PipelineInput{BatchSize: 5_000}.WithDefaults("wf").Validate()
	var appErr *temporal.ApplicationError
	if !errors.As(err, &appErr) || appErr.Type() != errtype.InvalidInput || !appErr.NonRetryable() {
		t.Fatalf("error %v: want a non-retryable %s", err, errtype.InvalidInput)
	}
	if !strings.HasPrefix(appErr.Message(), "invalid input: batch_size 5000: ") {
		t.Errorf("message %q: want it to start with the prefix and the field", appErr.Message())
	}
	if err := (PipelineInput{}).WithDefaults("").Validate(); err == nil || !strings.Contains(err.Error(), "run_id") {
		t.Errorf("input without a run id: %v, want an error about run_id", err)
	}
}
