package main

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/interceptor"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/testsuite"
	"go.temporal.io/sdk/worker"

	"github.com/flowproof/flowproof/internal/errtype"
)

func TestHandBackAfterKeepsTimeToHandBack(t *testing.T) {
	for _, tc := range []struct{ stopTimeout, want time.Duration }{
		{30 * time.Second, 25 * time.Second}, // the default: 5 s to hand back
		{6 * time.Second, 3 * time.Second},   // at most half of a short timeout
		{3 * time.Second, 1500 * time.Millisecond},
		{0, 0}, // no stop timeout: cancelled at once
	} {
		require.Equal(t, tc.want, handBackAfter(tc.stopTimeout), "stop timeout %s", tc.stopTimeout)
	}
}

// An activity that goes on until its context ends, and then fails for
// good, as an activity may when cancellation cuts it short.
func waitThenFailForGood(ctx context.Context) error {
	<-ctx.Done()
	return temporal.NewNonRetryableApplicationError("cut short: "+ctx.Err().Error(), errtype.ContractViolation, ctx.Err())
}

func quickActivity(context.Context) (string, error) { return "done", nil }

func activityEnv(h *handBack) *testsuite.TestActivityEnvironment {
	env := (&testsuite.WorkflowTestSuite{}).NewTestActivityEnvironment()
	env.SetWorkerOptions(worker.Options{Interceptors: []interceptor.WorkerInterceptor{h}})
	env.RegisterActivity(waitThenFailForGood)
	env.RegisterActivity(quickActivity)
	return env
}

func TestHandBackCancelsRunningActivitiesAsRetryable(t *testing.T) {
	h := newHandBack(200 * time.Millisecond)
	env := activityEnv(h)
	interrupt := make(chan any, 1)
	relayed := h.relay(interrupt)
	interrupt <- "SIGTERM"
	<-relayed
	began := time.Now()

	_, err := env.ExecuteActivity(waitThenFailForGood)
	require.Error(t, err)
	require.InDelta(t, handBackAfter(200*time.Millisecond), time.Since(began), float64(150*time.Millisecond), "cancelled when the hand-back is due")
	var appErr *temporal.ApplicationError
	require.True(t, errors.As(err, &appErr), "%v", err)
	require.Equal(t, errtype.WorkerStopping, appErr.Type())
	require.False(t, appErr.NonRetryable(), "a handed-back activity must be retried by another worker: %v", err)
	require.Contains(t, err.Error(), "waitThenFailForGood")
}

func TestHandBackLeavesActivitiesAloneUntilStopping(t *testing.T) {
	h := newHandBack(0) // due at once, but only once the worker is stopping
	env := activityEnv(h)
	val, err := env.ExecuteActivity(quickActivity)
	require.NoError(t, err)
	var got string
	require.NoError(t, val.Get(&got))
	require.Equal(t, "done", got)
	require.NoError(t, h.due.Err(), "hand-back due without a stop")
}
