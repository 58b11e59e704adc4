package workflows

import (
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/temporal"

	"github.com/flowproof/flowproof/activities/flink"
	"github.com/flowproof/flowproof/flinksql"
	"github.com/flowproof/flowproof/internal/errtype"
)

const fakeRootCause = "JsonParseException: Unrecognized token 'not'"

// fakeFlinkCheck is what CheckFlinkJobs reports for jobs: both running,
// or the enrich job FAILED with a root cause.
func fakeFlinkCheck(in flink.CheckInput, failed bool) flink.CheckResult {
	enrich := flink.JobMetrics{ID: in.Jobs.EnrichJobID, State: flinksql.JobRunning, CheckpointsCompleted: 4, RecordsIn: 100, RecordsOut: 100}
	split := flink.JobMetrics{ID: in.Jobs.SplitJobID, State: flinksql.JobRunning, CheckpointsCompleted: 4, RecordsIn: 1, RecordsOut: 100}
	res := flink.CheckResult{Jobs: []flink.JobMetrics{enrich, split}}
	if failed {
		res.Jobs[0].State, res.Jobs[0].Restarts, res.Jobs[0].RootCause = flinksql.JobFailed, 5, fakeRootCause
		res.Failure = "Flink job enrich (" + in.Jobs.EnrichJobID + ") is FAILED: " + fakeRootCause
	}
	return res
}

func TestAFailedFlinkJobFailsTheRunAtOnceWithItsRootCause(t *testing.T) {
	// Production is held for good, so only the watch can end the run
	// before its deadline; the second check finds the enrich job FAILED.
	f := &fakeStack{lagSamples: []int64{1_000_000}, flinkFailAt: 2}
	env := newEnv(t, f)
	in := smallRun()
	in.FlinkWatchSeconds = 7
	env.ExecuteWorkflow(PipelineWorkflow, in)

	require.True(t, env.IsWorkflowCompleted())
	err := env.GetWorkflowError()
	var appErr *temporal.ApplicationError
	require.True(t, errors.As(err, &appErr), "want an application error, got %v", err)
	require.Equal(t, errtype.FlinkJobFailed, appErr.Type())
	require.True(t, appErr.NonRetryable())
	require.Contains(t, appErr.Error(), fakeRootCause)

	require.Equal(t, 2, f.flinkChecks, "the run ends at the check that finds the failure")
	result, ok := ResultOfEnding(err)
	require.True(t, ok, "the failure carries the result")
	require.Equal(t, StatusFailed, result.Status)
	require.Equal(t, StageProduce, result.Metrics.FailedStage)
	require.Contains(t, result.Metrics.FailureMessage, fakeRootCause)
	require.Len(t, result.Metrics.Flink, 2)
	require.Equal(t, flinksql.JobFailed, result.Metrics.Flink[0].State)
	require.Equal(t, int64(5), result.Metrics.Flink[0].Restarts)
	require.Equal(t, fakeRootCause, result.Metrics.Flink[0].RootCause)
	require.Len(t, f.cleanups, 1, "the run cleans up after a failed job")
	require.Equal(t, "enrich-1", f.cleanups[0].Jobs.EnrichJobID)
	// Two checks 7 s apart: the deadline is far away.
	require.Less(t, result.Metrics.TotalMillis, (time.Minute).Milliseconds())
}

func TestHealthyRunKeepsTheFlinkJobsFigures(t *testing.T) {
	f := &fakeStack{}
	env := newEnv(t, f)
	res := runToSuccess(t, env, smallRun())
	require.GreaterOrEqual(t, f.flinkChecks, 1, "at least the check after delivery")
	require.Len(t, res.Metrics.Flink, 2)
	require.Equal(t, int64(100), res.Metrics.Flink[0].RecordsOut)
	require.Equal(t, int64(4), res.Metrics.Flink[1].CheckpointsCompleted)
}
