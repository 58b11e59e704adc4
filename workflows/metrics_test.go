package workflows

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/flowproof/flowproof/activities/kafkaadmin"
	"github.com/flowproof/flowproof/activities/verify"
)

func TestMetricsTakeChildResults(t *testing.T) {
	var m Metrics
	m.addProduce(ProduceResult{
		NextChunk: 5, Chunks: 5, Produced: 50_000, Resumed: 1, DurationMillis: 10_000, Runs: 2,
		Backpressure: Backpressure{Holds: 2, HeldMillis: 3_000, MaxLag: 40_400, LagSamples: []kafkaadmin.LagSample{{Enrich: 40_400}}},
	})
	m.addDeliver(DeliverResult{
		Delivered: 50_000, Segments: 6, Batches: 554, Retries: 3, TokenRenewals: 6, TokenRejected: 1, DurationMillis: 25_000,
	})
	require.Equal(t, Metrics{
		Produced: 50_000, Delivered: 50_000, ChunksResumed: 1,
		Backpressure:  Backpressure{Holds: 2, HeldMillis: 3_000, MaxLag: 40_400, LagSamples: []kafkaadmin.LagSample{{Enrich: 40_400}}},
		TokenRenewals: 6, TokenRejected: 1, HTTPBatches: 554, HTTPRetries: 3,
		Stages: []StageMetrics{
			{Stage: "produce", Messages: 50_000, DurationMillis: 10_000, PerSecond: 5_000},
			{Stage: "deliver", Messages: 50_000, DurationMillis: 25_000, PerSecond: 2_000},
		},
	}, m)

	v := verify.Result{Expected: 50_000, Records: 50_001, Unique: 50_000, Duplicates: 1, Latency: verify.Percentiles{P50: 12}}
	m.addVerify(v)
	require.Equal(t, int64(50_000), m.Verified)
	require.Equal(t, v, m.Verification)
	require.Equal(t, v.Latency, m.Latency)
}
