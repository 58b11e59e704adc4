package workflows

import (
	"errors"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/temporal"

	"github.com/flowproof/flowproof/activities/verify"
	"github.com/flowproof/flowproof/internal/errtype"
)

func TestASucceededRunSendsNoFailureNotice(t *testing.T) {
	f := &fakeStack{}
	env := newEnv(t, f)
	env.ExecuteWorkflow(PipelineWorkflow, smallRun())
	require.NoError(t, env.GetWorkflowError())
	require.Empty(t, f.notices)
	require.NotContains(t, f.calls, "notify")
}

// TestAThresholdBreakingRunSendsAFailureNotice: the notice comes last,
// after the run's metrics, and names the run, its stage, its reason and
// each broken threshold; a kept one is not named.
func TestAThresholdBreakingRunSendsAFailureNotice(t *testing.T) {
	f := &fakeStack{latency: verify.Percentiles{P99: 45_900}, flowMillis: 20_000}
	env := newEnv(t, f)
	in := smallRun()
	in.Thresholds = Thresholds{MaxP99LatencySeconds: 15, MaxDurationSeconds: 3600}
	env.ExecuteWorkflow(PipelineWorkflow, in)
	var appErr *temporal.ApplicationError
	require.True(t, errors.As(env.GetWorkflowError(), &appErr))
	require.Equal(t, errtype.ThresholdsBroken, appErr.Type())

	require.True(t, strings.HasSuffix(strings.Join(f.calls, ","), ",cleanup,run-metrics,store-result,notify"), "%v", f.calls)
	require.Len(t, f.notices, 1)
	n := f.notices[0]
	require.Equal(t, "unit", n.RunID)
	require.Equal(t, "Failed", n.Status)
	require.Equal(t, FailedThresholds, n.FailedStage)
	require.Equal(t, "thresholds broken: p99 latency 45.9 s > 15 s", n.FailureMessage)
	require.Equal(t, []string{"p99 latency 45.9 s > 15 s"}, n.BrokenThresholds)
	require.Equal(t, "default-test-workflow-id", n.WorkflowID)
	require.NotEmpty(t, n.TemporalRunID)
	require.Equal(t, int64(50_000), n.Verified)
}

// TestAFailingNoticeLeavesTheRunsEnding: the webhook's failure is the
// activity's error, tried once (go-retryablehttp retries inside it), and
// the run ends as it would have.
func TestAFailingNoticeLeavesTheRunsEnding(t *testing.T) {
	f := &fakeStack{missing: 10, noticeErr: errors.New("webhook: POST answered 500 after 5 attempts")}
	env := newEnv(t, f)
	env.ExecuteWorkflow(PipelineWorkflow, smallRun())
	var appErr *temporal.ApplicationError
	require.True(t, errors.As(env.GetWorkflowError(), &appErr))
	require.Equal(t, errtype.VerificationFailed, appErr.Type())
	require.Len(t, f.notices, 1)
	require.Contains(t, f.notices[0].FailureMessage, "missing")
}
