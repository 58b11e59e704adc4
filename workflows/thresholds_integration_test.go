//go:build integration

package workflows_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/temporal"

	"github.com/flowproof/flowproof/internal/errtype"
	"github.com/flowproof/flowproof/workflows"
)

// TestTooTightThresholdsFailTheRun runs a small pipeline on the real stack
// whose every message arrives exactly once, with thresholds no pipeline
// can keep (a p99 latency of 1 ms, a billion messages a second) and one it
// keeps: the run ends Failed naming both broken ones, after verification,
// with its full figures.
func TestTooTightThresholdsFailTheRun(t *testing.T) {
	e := startWorker(t)
	defer e.shutdown()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()

	id := "e2e-thresholds-" + time.Now().UTC().Format("150405")
	run := e.start(t, ctx, id, workflows.PipelineInput{
		Messages: 20_000, Partitions: 12, LogicalQueues: 100,
		Thresholds: workflows.Thresholds{
			MaxP99LatencySeconds: 0.001, MinThroughputMsgsPerSec: 1e9, MaxDurationSeconds: 3600,
		},
	})
	err := run.Get(ctx, nil)
	var appErr *temporal.ApplicationError
	require.True(t, errors.As(err, &appErr), "want a failure, got %v", err)
	require.Equal(t, errtype.ThresholdsBroken, appErr.Type(), appErr.Message())
	result, ok := workflows.ResultOfEnding(err)
	require.True(t, ok, "the failure carries the result")
	m := result.Metrics
	t.Logf("failure: %s", m.FailureMessage)
	for _, c := range m.Thresholds {
		t.Logf("threshold %s", c)
	}
	t.Logf("latency %+v; flow %d ms, %.0f msg/s; total %d ms", m.Latency, m.Verification.FlowMillis, m.EndToEndPerSecond, m.TotalMillis)

	require.Equal(t, workflows.StatusFailed, result.Status)
	require.Equal(t, workflows.FailedThresholds, m.FailedStage)
	require.True(t, strings.HasPrefix(m.FailureMessage, "thresholds broken: end-to-end throughput "), m.FailureMessage)
	require.Contains(t, m.FailureMessage, " msg/s < 1000000000 msg/s; p99 latency ")
	require.True(t, strings.HasSuffix(m.FailureMessage, " s > 0.001 s"), m.FailureMessage)
	require.NotContains(t, m.FailureMessage, "duration", "a kept threshold is not named as broken")
	require.Len(t, m.Thresholds, 3)
	require.True(t, m.Thresholds[0].Passed, "the run took less than an hour: %s", m.Thresholds[0])

	// After verification, with the full figures, measured for real.
	require.True(t, m.Verification.Passed(), "every message arrived exactly once")
	require.Equal(t, int64(20_000), m.Verified)
	require.Greater(t, m.Latency.P99, 1.0, "p99 latency in ms")
	require.GreaterOrEqual(t, m.Latency.P999, m.Latency.P99)
	require.GreaterOrEqual(t, m.Latency.Max, m.Latency.P999)
	require.Positive(t, m.Verification.FlowMillis)
	require.InDelta(t, float64(m.Verified)/(float64(m.Verification.FlowMillis)/1000), m.EndToEndPerSecond, 0.01)
	require.NotEmpty(t, m.Hops)
	require.Equal(t, "cleanup", m.Stages[len(m.Stages)-1].Stage)

	desc, err := e.client.DescribeWorkflow(ctx, run.GetID(), run.GetRunID())
	require.NoError(t, err)
	require.Equal(t, enumspb.WORKFLOW_EXECUTION_STATUS_FAILED, desc.Status)
}
