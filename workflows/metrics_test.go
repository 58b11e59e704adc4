package workflows

import (
	"testing"

	"github.com/stretchr/testify/require"
	sdk "go.temporal.io/api/sdk/v1"
	"go.temporal.io/sdk/testsuite"
	"go.temporal.io/sdk/workflow"

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

	hops := []verify.HopCount{
		{Hop: verify.HopRaw, Source: "raw", Records: 50_000, Unique: 50_000},
		{Hop: verify.HopEndpoint, Source: "accepted", Records: 50_100, Unique: 50_000, Duplicated: 100},
		{Hop: verify.HopFinal, Source: "final", Records: 50_001, Unique: 50_000, Duplicated: 1},
	}
	v := verify.Result{Expected: 50_000, Records: 50_001, Unique: 50_000, Duplicates: 1, Latency: verify.Percentiles{P50: 12}, Hops: hops}
	m.addVerify(v)
	require.Equal(t, int64(50_000), m.Verified)
	require.Equal(t, v, m.Verification)
	require.Equal(t, v.Latency, m.Latency)
	require.Equal(t, hops, m.Hops)
}

func TestHopTableAndFailureNameTheHopThatIsNotExact(t *testing.T) {
	v := verify.Result{Expected: 10, Records: 10, Unique: 10, Hops: []verify.HopCount{
		{Hop: verify.HopRaw, Source: "flowproof.r.raw", Records: 10, Unique: 10},
		{Hop: verify.HopEndpoint, Source: "flowproof.r.accepted", Records: 12, Unique: 10, Duplicated: 2, Note: "6 batches | 0 replayed"},
		{Hop: verify.HopEndpointOwnCount, Skipped: true, Note: "not available"},
		{Hop: verify.HopFinal, Source: "flowproof.r.final", Records: 10, Unique: 10},
	}, Problems: []string{"hop endpoint (flowproof.r.accepted): 10 of 10 unique, 0 missing, 2 duplicated, 0 bad records"}}
	require.False(t, v.Passed())
	require.Equal(t, "verification failed at hop endpoint: final topic 10 of 10 unique, 0 missing, 0 duplicates, 0 bad records: "+v.Problems[0],
		verificationFailure(v))

	table := hopTableMarkdown(v.Hops, v.Expected)
	require.Contains(t, table, "| raw | 10 | 10 | 0 | 0 | 0 | exact | flowproof.r.raw |")
	require.Contains(t, table, "| endpoint | 12 | 10 | 0 | 2 | 0 | **NOT EXACT** | flowproof.r.accepted | 6 batches / 0 replayed |")
	require.Contains(t, table, "| endpoint (own count) | 0 | 0 | 0 | 0 | 0 | not counted |  | not available |")
	require.Empty(t, hopTableMarkdown(nil, 10), "no table before verification")
}

func TestCurrentDetailsShowTheHopTableAtTheEnd(t *testing.T) {
	hops := []verify.HopCount{
		{Hop: verify.HopRaw, Source: "flowproof.unit.raw", Records: 10, Unique: 10},
		{Hop: verify.HopFinal, Source: "flowproof.unit.final", Records: 10, Unique: 9, Missing: 1},
	}
	detailsOf := func(hops []verify.HopCount) string {
		var suite testsuite.WorkflowTestSuite
		env := suite.NewTestWorkflowEnvironment()
		env.RegisterWorkflowWithOptions(func(ctx workflow.Context) error {
			p := newPipeline(ctx, PipelineInput{RunID: "unit", Messages: 10})
			p.progress.Stage = StageDone
			p.metrics.addVerify(verify.Result{Expected: 10, Records: 10, Unique: 9, Missing: 1, Hops: hops})
			p.updateDetails(ctx)
			return nil
		}, workflow.RegisterOptions{Name: "details"})
		env.ExecuteWorkflow("details")
		require.NoError(t, env.GetWorkflowError())
		encoded, err := env.QueryWorkflow("__temporal_workflow_metadata")
		require.NoError(t, err)
		var metadata sdk.WorkflowMetadata
		require.NoError(t, encoded.Get(&metadata))
		return metadata.GetCurrentDetails()
	}
	details := detailsOf(hops)
	require.Contains(t, details, "| done | 10 |")
	require.Contains(t, details, "| raw | 10 | 10 | 0 | 0 | 0 | exact | flowproof.unit.raw |")
	require.Contains(t, details, "| final | 10 | 9 | 1 | 0 | 0 | **NOT EXACT** | flowproof.unit.final |")
	require.NotContains(t, detailsOf(nil), "every hop")
}
