package workflows

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/temporal"

	"github.com/flowproof/flowproof/internal/errtype"
)

// TestEveryEndingKeepsTheResult: whatever ends a run, its PipelineResult so
// far travels with the ending, and the run does not end as a success.
func TestEveryEndingKeepsTheResult(t *testing.T) {
	cases := map[string]struct {
		stack     *fakeStack
		timeout   int
		cancel    bool
		wantType  string
		wantStage string
		wantCount bool // production had happened, and its count is kept
		// wantHeld: production was held when the run ended, and its
		// figures so far are kept.
		wantHeld bool
	}{
		"unhealthy component": {
			stack:    &fakeStack{healthErr: temporal.NewNonRetryableApplicationError("kafka: 2 of 3 brokers", errtype.Unhealthy, nil)},
			wantType: errtype.Unhealthy, wantStage: StageHealth,
		},
		"failed verification": {
			stack:    &fakeStack{missing: 7},
			wantType: errtype.VerificationFailed, wantStage: StageVerify, wantCount: true,
		},
		"past the deadline": {
			stack:   &fakeStack{lagSamples: []int64{1_000_000}}, // held forever
			timeout: 600, wantType: errtype.RunTimedOut, wantStage: StageProduce, wantHeld: true,
		},
		"canceled": {
			stack:  &fakeStack{lagSamples: []int64{1_000_000}},
			cancel: true, wantStage: StageProduce, wantHeld: true,
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			env := newEnv(t, tc.stack)
			if tc.cancel {
				env.RegisterDelayedCallback(env.CancelWorkflow, 10*time.Minute)
			}
			in := smallRun()
			in.TimeoutSeconds = tc.timeout
			env.ExecuteWorkflow(PipelineWorkflow, in)
			require.True(t, env.IsWorkflowCompleted())
			err := env.GetWorkflowError()
			require.Error(t, err, "a run that did not succeed must not complete")

			var result PipelineResult
			var canceled *temporal.CanceledError
			var appErr *temporal.ApplicationError
			if tc.cancel {
				require.True(t, errors.As(err, &canceled), "want cancellation, got %v", err)
				require.NoError(t, canceled.Details(&result))
				require.Equal(t, StatusCanceled, result.Status)
			} else {
				require.True(t, errors.As(err, &appErr), "want an application error, got %v", err)
				require.Equal(t, tc.wantType, appErr.Type())
				require.True(t, appErr.NonRetryable())
				require.NoError(t, appErr.Details(&result))
				require.Equal(t, StatusFailed, result.Status)
				require.Equal(t, result.Metrics.FailureMessage, appErr.Message())
			}
			require.Equal(t, tc.wantStage, result.Metrics.FailedStage)
			require.NotEmpty(t, result.Metrics.FailureMessage)
			require.Equal(t, "unit", result.Metrics.RunID)
			require.NotEmpty(t, result.Metrics.Stages, "stage timings so far")
			if tc.wantCount {
				require.Positive(t, result.Metrics.Produced, "counts so far")
			}
			require.Len(t, tc.stack.cleanups, 1, "cleanup runs on every ending")
			require.Len(t, tc.stack.runMetrics, 1, "every ending exports the run's metrics")
			require.Equal(t, string(result.Status), tc.stack.runMetrics[0].Status)
			require.Equal(t, result.Metrics.Produced, tc.stack.runMetrics[0].Produced)
			require.Equal(t, tc.wantCount || tc.wantHeld, tc.stack.runMetrics[0].ProductionReported, "lag and holds only from a production that reported")
			if tc.wantHeld {
				bp := result.Metrics.Backpressure
				require.Equal(t, 1, bp.Holds, "the hold production ended in")
				require.Positive(t, bp.HeldMillis, "held until the run ended")
				require.Equal(t, int64(1_000_000), bp.MaxLag)
				require.Len(t, bp.HoldSpans, 1)
				require.Positive(t, bp.HoldSpans[0].ToUnixMillis, "the hold ends with the run")
			}
		})
	}
}

// A run whose delivery failed half way still reports what delivery and
// production did until then, from the figures the children carried in
// their ending: the batches and retries of the segments delivered, the
// production's lag. The failure's text stays as it was, and its type is
// the activity's (it was the Go type of a wrapped error, "wrapError").
func TestAFailedDeliveryKeepsTheFiguresOfBothChildren(t *testing.T) {
	f := &fakeStack{retries: 2, deliverFailAt: 3,
		deliverErr: temporal.NewNonRetryableApplicationError("endpoint answered 400: malformed batch", "EndpointRefused", nil)}
	env := newEnv(t, f)
	env.ExecuteWorkflow(PipelineWorkflow, smallRun())
	require.True(t, env.IsWorkflowCompleted())
	err := env.GetWorkflowError()
	var appErr *temporal.ApplicationError
	require.True(t, errors.As(err, &appErr), "want an application error, got %v", err)
	require.Equal(t, "EndpointRefused", appErr.Type())
	result, ok := ResultOfEnding(err)
	require.True(t, ok)
	m := result.Metrics
	require.Equal(t, StatusFailed, result.Status)
	require.Equal(t, "deliver: child workflow DeliverWorkflow: deliver segment 2: activity error (type: DeliverSegment, scheduledEventID: 0, "+
		"startedEventID: 0, identity: ): endpoint answered 400: malformed batch (type: EndpointRefused, retryable: false)",
		m.FailureMessage, "as it read before the figures were carried")

	require.True(t, m.DeliveryReported(), "delivery's figures so far count as reported")
	require.Equal(t, int64(20_000), m.Delivered)
	require.Equal(t, 200, m.HTTPBatches)
	require.Equal(t, 4, m.HTTPRetries)
	require.Equal(t, f.tokens, m.TokenRenewals, "every token obtained, the next segment's included")
	// Delivery does not wait for production here, so how far production
	// got when it was canceled varies from run to run; its figures are
	// kept whatever they are.
	require.True(t, m.ProductionReported(), "production completed or was canceled with its figures")
	require.True(t, f.runMetrics[0].ProductionReported)
	require.Len(t, f.runMetrics, 1)
	require.Equal(t, 4, f.runMetrics[0].HTTPRetries)
	require.True(t, f.runMetrics[0].DeliveryReported)
}

func TestDefaultDeadlineGrowsWithTheRun(t *testing.T) {
	small := PipelineInput{Messages: 50_000}.WithDefaults("wf")
	large := PipelineInput{Messages: 10_000_000}.WithDefaults("wf")
	require.Equal(t, 15*60+50+DefaultVerifyIdleSeconds, small.TimeoutSeconds)
	require.Greater(t, large.timeout(), small.timeout())
	require.Greater(t, large.ExecutionTimeout(), large.timeout(), "the execution timeout is a backstop beyond the deadline")
	require.NoError(t, large.Validate())
}

func TestAnEarlyEndingKeepsTheCountsOfProgress(t *testing.T) {
	m := Metrics{Produced: 10}
	m.keepCountsSoFar(Progress{Produced: 40_000, Delivered: 20_000, TokenRenewals: 2})
	require.Equal(t, int64(40_000), m.Produced)
	require.Equal(t, int64(20_000), m.Delivered)
	require.Equal(t, 2, m.TokenRenewals)
}

// The deadline ends the run by cancelling its stages, so the stage's error
// is a cancellation. A CanceledError anywhere in the failure's chain makes
// the SDK end the workflow as canceled and drop the result (seen on the
// real stack: a run past its deadline ended Canceled without details).
func TestAFailedEndingCarriesNoCancellation(t *testing.T) {
	p := &pipeline{timedOut: true}
	result := PipelineResult{Status: StatusFailed, Metrics: Metrics{FailureMessage: "the run passed its deadline"}}
	err := p.endingError(result, fmt.Errorf("produce: %w", temporal.NewCanceledError()))
	var canceled *temporal.CanceledError
	require.False(t, errors.As(err, &canceled), "a failed ending must not carry a CanceledError: %v", err)
	got, ok := ResultOfEnding(err)
	require.True(t, ok)
	require.Equal(t, StatusFailed, got.Status)
}
