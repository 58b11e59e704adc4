package workflows

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/testsuite"
	"go.temporal.io/sdk/workflow"
)

// TestFailureTextSaysEachMessageOnce runs an activity that fails with a
// wrapped Go error, as Cleanup did when Kafka refused the worker's login,
// and renders what the workflow got back.
func TestFailureTextSaysEachMessageOnce(t *testing.T) {
	refused := errors.New("SASL_AUTHENTICATION_FAILED: invalid credentials with SASL mechanism SCRAM-SHA-512")
	for _, tc := range []struct {
		name        string
		activityErr error
		want        string
	}{
		{
			name:        "a Go error wrapped three times",
			activityErr: fmt.Errorf("read the run's ledger: %w", fmt.Errorf("metadata of ledger: %w", fmt.Errorf("metadata of [ledger]: %w", refused))),
			want:        "cleanup: activity Cleanup: read the run's ledger: metadata of ledger: metadata of [ledger]: " + refused.Error(),
		},
		{
			name:        "an application error of ours with a cause it does not repeat",
			activityErr: temporal.NewNonRetryableApplicationError("1 of 7 components unhealthy", "Unhealthy", fmt.Errorf("kafka: %w", refused)),
			want:        "cleanup: activity Cleanup: 1 of 7 components unhealthy: kafka: " + refused.Error(),
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var s testsuite.WorkflowTestSuite
			env := s.NewTestWorkflowEnvironment()
			env.RegisterActivityWithOptions(func(context.Context) error { return tc.activityErr }, activity.RegisterOptions{Name: "Cleanup"})
			env.ExecuteWorkflow(func(ctx workflow.Context) (string, error) {
				ctx = workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
					StartToCloseTimeout: 10 * time.Second, RetryPolicy: &temporal.RetryPolicy{MaximumAttempts: 1},
				})
				err := fmt.Errorf("cleanup: %w", workflow.ExecuteActivity(ctx, "Cleanup").Get(ctx, nil))
				return err.Error() + "\n" + failureText(err), nil
			})
			require.NoError(t, env.GetWorkflowError())
			var got string
			require.NoError(t, env.GetWorkflowResult(&got))
			raw, text, _ := strings.Cut(got, "\n")
			require.Equal(t, tc.want, text)
			require.Greater(t, strings.Count(raw, "SASL_AUTHENTICATION_FAILED"), strings.Count(text, "SASL_AUTHENTICATION_FAILED"),
				"Temporal's own text should repeat the cause; otherwise this test shows nothing: %s", raw)
		})
	}
}
