package workflows

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/mock"
	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/converter"
	"go.temporal.io/sdk/workflow"

	"github.com/flowproof/flowproof/activities/kafkaadmin"
	"github.com/flowproof/flowproof/activities/produce"
)

// chunkRates runs ProduceWorkflow on in with no lag and returns each
// chunk's rate cap and its time to run, from its start to its deadline,
// by chunk.
func chunkRates(t *testing.T, in ProduceInput) (map[int]float64, map[int]time.Duration) {
	t.Helper()
	var mu sync.Mutex
	rates, timeouts := map[int]float64{}, map[int]time.Duration{}
	env := newBareEnv()
	env.OnActivity(kafkaAdminActs.PollLag, mock.Anything, mock.Anything).Return(kafkaadmin.LagSample{}, nil)
	env.OnActivity(produceActs.ProduceChunk, mock.Anything, mock.Anything).Return(
		func(ctx context.Context, c produce.ChunkInput) (produce.ChunkResult, error) {
			mu.Lock()
			defer mu.Unlock()
			rates[c.Chunk] = c.RatePerSecond
			info := activity.GetInfo(ctx)
			timeouts[c.Chunk] = info.Deadline.Sub(info.StartedTime)
			return produce.ChunkResult{Produced: c.Count, DurationMillis: 100}, nil
		})
	env.ExecuteWorkflow(ProduceWorkflow, in)
	require.NoError(t, env.GetWorkflowError())
	return rates, timeouts
}

func TestWarmupMessagesGoAtTheWarmupRate(t *testing.T) {
	in := secondsInput()
	in.Messages, in.ChunkConcurrency, in.RatePerSecond = 50_000, 2, 50_000
	in.WarmupMessages, in.WarmupRatePerSecond = 25_000, 12_000
	// Chunks 0 to 2 begin below 25,000: each of the two in flight gets
	// half the warmup rate; the rest half the cap.
	rates, _ := chunkRates(t, in)
	require.Equal(t, map[int]float64{0: 6_000, 1: 6_000, 2: 6_000, 3: 25_000, 4: 25_000}, rates)

	// A warmup rate above the cap leaves the cap; an input without a
	// warmup, as written before it, produces at the cap throughout.
	in.WarmupRatePerSecond = 80_000
	rates, _ = chunkRates(t, in)
	require.Equal(t, map[int]float64{0: 25_000, 1: 25_000, 2: 25_000, 3: 25_000, 4: 25_000}, rates)
	in.WarmupMessages, in.WarmupRatePerSecond = 0, 0
	rates, _ = chunkRates(t, in)
	require.Equal(t, map[int]float64{0: 25_000, 1: 25_000, 2: 25_000, 3: 25_000, 4: 25_000}, rates)
}

// TestWarmupChunksHaveTimeForTheirRate: a slow warmup chunk must not time
// out on the time a chunk at the cap would need.
func TestWarmupChunksHaveTimeForTheirRate(t *testing.T) {
	in := secondsInput()
	in.Messages, in.ChunkConcurrency, in.RatePerSecond = 20_000, 2, 50_000
	in.WarmupMessages, in.WarmupRatePerSecond = 10_000, 100
	_, timeouts := chunkRates(t, in)
	// Chunk 0 goes at 50 a second, 200 s; chunk 1 at 25,000, 0.4 s.
	require.GreaterOrEqual(t, timeouts[0], 3*200*time.Second)
	require.Less(t, timeouts[1], 3*time.Minute)
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
