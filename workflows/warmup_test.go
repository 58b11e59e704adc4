package workflows

import (
	"context"
	"sync"
	"testing"

	"github.com/stretchr/testify/mock"
	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/converter"
	"go.temporal.io/sdk/workflow"

	"github.com/flowproof/flowproof/activities/kafkaadmin"
	"github.com/flowproof/flowproof/activities/produce"
)

// chunkRates runs ProduceWorkflow on in with no lag and returns each
// chunk's rate cap, by chunk.
func chunkRates(t *testing.T, in ProduceInput) map[int]float64 {
	t.Helper()
	var mu sync.Mutex
	rates := map[int]float64{}
	env := newBareEnv()
	env.OnActivity(kafkaAdminActs.PollLag, mock.Anything, mock.Anything).Return(kafkaadmin.LagSample{}, nil)
	env.OnActivity(produceActs.ProduceChunk, mock.Anything, mock.Anything).Return(
		func(_ context.Context, c produce.ChunkInput) (produce.ChunkResult, error) {
			mu.Lock()
			defer mu.Unlock()
			rates[c.Chunk] = c.RatePerSecond
			return produce.ChunkResult{Produced: c.Count, DurationMillis: 100}, nil
		})
	env.ExecuteWorkflow(ProduceWorkflow, in)
	require.NoError(t, env.GetWorkflowError())
	return rates
}

func TestWarmupMessagesGoAtTheWarmupRate(t *testing.T) {
	in := secondsInput()
	in.Messages, in.ChunkConcurrency, in.RatePerSecond = 50_000, 2, 50_000
	in.WarmupMessages, in.WarmupRatePerSecond = 25_000, 12_000
	// Chunks 0 to 2 begin below 25,000: each of the two in flight gets
	// half the warmup rate; the rest half the cap.
	require.Equal(t, map[int]float64{0: 6_000, 1: 6_000, 2: 6_000, 3: 25_000, 4: 25_000}, chunkRates(t, in))

	// A warmup rate above the cap leaves the cap; an input without a
	// warmup, as written before it, produces at the cap throughout.
	in.WarmupRatePerSecond = 80_000
	require.Equal(t, map[int]float64{0: 25_000, 1: 25_000, 2: 25_000, 3: 25_000, 4: 25_000}, chunkRates(t, in))
	in.WarmupMessages, in.WarmupRatePerSecond = 0, 0
	require.Equal(t, map[int]float64{0: 25_000, 1: 25_000, 2: 25_000, 3: 25_000, 4: 25_000}, chunkRates(t, in))
}

func TestPipelineHandsProductionTheWarmup(t *testing.T) {
	env := newEnv(t, &fakeStack{})
	var produceInput ProduceInput
	env.SetOnChildWorkflowStartedListener(func(info *workflow.Info, _ workflow.Context, args converter.EncodedValues) {
		if info.WorkflowType.Name == "ProduceWorkflow" {
			require.NoError(t, args.Get(&produceInput))
		}
	})
	env.ExecuteWorkflow(PipelineWorkflow, smallRun())
	require.NoError(t, env.GetWorkflowError())
	require.Equal(t, int64(DefaultWarmupMessages), produceInput.WarmupMessages)
	require.Equal(t, float64(DefaultWarmupRatePerSecond), produceInput.WarmupRatePerSecond)
}
