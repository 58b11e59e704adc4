package workflows

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/flowproof/flowproof/activities/kafkaadmin"
	"github.com/flowproof/flowproof/activities/verify"
)

func TestPipelineExportsItsMetricsLast(t *testing.T) {
	f := &fakeStack{}
	env := newEnv(t, f)
	env.ExecuteWorkflow(PipelineWorkflow, smallRun())
	require.NoError(t, env.GetWorkflowError())
	var res PipelineResult
	require.NoError(t, env.GetWorkflowResult(&res))

	require.True(t, strings.HasSuffix(strings.Join(f.calls, ","), ",cleanup,run-metrics,store-result"), "after cleanup, which closes the run's time: %v", f.calls)
	require.Len(t, f.runMetrics, 1)
	run := f.runMetrics[0]
	require.Equal(t, "Succeeded", run.Status)
	require.Equal(t, "unit", run.RunID)
	require.Equal(t, int64(50_000), run.Messages)
	require.Equal(t, int64(50_000), run.Verified)
	require.Equal(t, 5, run.TokenRenewals)
	require.True(t, run.ProductionReported && run.DeliveryReported)
	require.Equal(t, res.Metrics.TotalMillis, run.DurationMillis)
	require.Positive(t, run.EndedAtUnixMillis)
	require.Equal(t, res.Metrics.runMetrics(StatusSucceeded, time.UnixMilli(run.EndedAtUnixMillis)), run,
		"the activity gets the run's result as runMetrics maps it")
}

func TestAFailedExportLeavesTheRunsEnding(t *testing.T) {
	f := &fakeStack{runMetricsErr: errors.New("no recorder")}
	env := newEnv(t, f)
	runToSuccess(t, env, smallRun())
	require.Len(t, f.runMetrics, 3, "tried as often as the retry policy allows")
}

func TestRunMetricsMapTheResult(t *testing.T) {
	m := Metrics{
		RunID: "r", Messages: 10, Produced: 10, Delivered: 9, Verified: 8, TotalMillis: 61_000,
		TokenRenewals: 2, TokenRejected: 1, HTTPRetries: 3,
		Backpressure: Backpressure{Holds: 1, HeldMillis: 5_000, MaxLag: 900, MaxLagSeconds: 4.5, LagSamples: []kafkaadmin.LagSample{
			{Enrich: 100, Split: 5, Deliver: 700}, {Enrich: 300, Split: 1, Deliver: 20},
		}},
		Latency: verify.Percentiles{P99: 42},
		Stages:  []StageMetrics{{Stage: "produce"}},
		Hops:    []verify.HopCount{{Hop: verify.HopFinal, Unique: 8, Missing: 2}},
	}
	run := m.runMetrics(StatusFailed, time.UnixMilli(1_764_633_600_123))
	require.Equal(t, "Failed", run.Status)
	require.Equal(t, int64(1_764_633_600_123), run.EndedAtUnixMillis)
	require.Equal(t, int64(61_000), run.DurationMillis)
	require.Equal(t, map[string]int64{"enrich": 300, "split": 5, "deliver": 700}, run.SampledMaxLag, "each group's largest sample")
	require.True(t, run.ProductionReported)
	require.False(t, run.DeliveryReported, "no deliver stage: delivery never reported")
	require.Equal(t, int64(900), run.MaxLag)
	require.Equal(t, 4.5, run.MaxLagSeconds)
	require.Equal(t, 1, run.Holds)
	require.Equal(t, int64(5_000), run.HeldMillis)
	require.Equal(t, 42.0, run.Latency.P99)
	require.Equal(t, m.Hops, run.Hops)
	require.Equal(t, []int{2, 1, 3}, []int{run.TokenRenewals, run.TokenRejected, run.HTTPRetries})
	require.Equal(t, []int64{10, 10, 9, 8}, []int64{run.Messages, run.Produced, run.Delivered, run.Verified})

	var none Metrics
	require.Nil(t, none.runMetrics(StatusFailed, time.Time{}).SampledMaxLag, "no samples, no per-group lag")
}
