package workflows

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/mock"
	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/converter"
	"go.temporal.io/sdk/workflow"

	"github.com/flowproof/flowproof/activities/kafkaadmin"
	"github.com/flowproof/flowproof/activities/produce"
)

// scriptedLag runs ProduceWorkflow on in with PollLag answering samples in
// order (the last one repeats). It returns the result and how many polls
// had answered when the first chunk was produced.
func scriptedLag(t *testing.T, in ProduceInput, samples ...kafkaadmin.LagSample) (ProduceResult, int) {
	t.Helper()
	return scriptedLagWithChunksTaking(t, in, 0, samples...)
}

// scriptedLagWithChunksTaking is scriptedLag with each chunk taking took
// of the workflow's time.
func scriptedLagWithChunksTaking(t *testing.T, in ProduceInput, took time.Duration, samples ...kafkaadmin.LagSample) (ProduceResult, int) {
	t.Helper()
	var mu sync.Mutex
	polls, pollsAtFirstChunk := 0, -1
	env := newBareEnv()
	// A hold that never ends fails here, not at the suite's timeout.
	env.SetTestTimeout(10 * time.Second)
	env.OnActivity(kafkaAdminActs.PollLag, mock.Anything, mock.Anything).Return(
		func(context.Context, kafkaadmin.PollLagInput) (kafkaadmin.LagSample, error) {
			mu.Lock()
			defer mu.Unlock()
			s := samples[min(polls, len(samples)-1)]
			polls++
			return s, nil
		})
	chunk := env.OnActivity(produceActs.ProduceChunk, mock.Anything, mock.Anything).Return(
		func(_ context.Context, c produce.ChunkInput) (produce.ChunkResult, error) {
			mu.Lock()
			defer mu.Unlock()
			if pollsAtFirstChunk < 0 {
				pollsAtFirstChunk = polls
			}
			return produce.ChunkResult{Produced: c.Count, DurationMillis: 100}, nil
		})
	if took > 0 {
		chunk.After(took)
	}
	env.ExecuteWorkflow(ProduceWorkflow, in)
	require.NoError(t, env.GetWorkflowError())
	var res ProduceResult
	require.NoError(t, env.GetWorkflowResult(&res))
	require.Equal(t, in.Messages, res.Produced)
	return res, pollsAtFirstChunk
}

// secondsInput is a production of three chunks with the default thresholds:
// 200,000 messages (resume 100,000) and 5 s (resume 2.5 s).
func secondsInput() ProduceInput {
	return ProduceInput{
		Names: PipelineInput{RunID: "bps"}.runNames(), Messages: 30_000, ChunkSize: 10_000, ChunkConcurrency: 1,
		LogicalQueues: 10, PayloadBytes: 10, RatePerSecond: 1000, LagPollEvery: 5,
		LagThreshold: 200_000, LagResume: 100_000,
		LagThresholdSeconds: 5, LagResumeSeconds: 2.5, CheckpointIntervalSeconds: 5,
	}
}

// continuedFromAStall is the state of a run continued as new while its
// deliver group, which had drained 10,000/s, stopped 10 s ago.
func continuedFromAStall() ProduceResult {
	return ProduceResult{Chunks: 3, Runs: 1, StartedUnixMillis: 1, Backpressure: Backpressure{
		LagSamples: []kafkaadmin.LagSample{deliverAt(-10, 10_000, 450_000), deliverAt(-5, 40_000, 450_000)},
		DrainRates: DrainRates{Deliver: 10_000, DeliverBehind: true},
	}}
}

func TestHoldInSecondsUntilTheConsumerDrains(t *testing.T) {
	in := secondsInput()
	in.State = continuedFromAStall()
	res, polls := scriptedLag(t, in,
		// 130,000 is below the threshold in messages, but 13 s at the
		// rate the stalled consumer drained, 8 s beyond the checkpoint
		// interval's allowance.
		deliverAt(0, 130_000, 450_000),
		// Draining again, 4,000/s over the window, but its rate is the
		// highest measured: 90,000 at 10,000/s is 9 s, 4 s beyond the
		// allowance, above 2.5 s.
		deliverAt(5, 90_000, 490_000),
		// 10,000 is 1 s at 10,000/s: production resumes.
		deliverAt(10, 10_000, 520_000),
	)
	require.Equal(t, 3, polls, "production waits from the first poll to the third")
	require.Equal(t, 1, res.Holds)
	require.Equal(t, int64(10_000), res.HeldMillis)
	require.Len(t, res.HoldSpans, 1)
	require.Equal(t, int64(10_000), res.HoldSpans[0].ToUnixMillis-res.HoldSpans[0].FromUnixMillis, "the hold's span")
	require.InDelta(t, 8, res.MaxLagSeconds, 1e-9)
	require.Equal(t, "deliver", res.LagSecondsGroup)
	require.InDelta(t, 10_000, res.DrainRates.Deliver, 1e-9)
	require.Equal(t, int64(130_000), res.MaxLag)
}

// TestDeliverLagOfOneCheckpointDoesNotHold: the enrich job's output
// becomes visible a checkpoint's worth at a time, so right after a commit
// the deliver group is up to an interval behind without any backlog.
func TestDeliverLagOfOneCheckpointDoesNotHold(t *testing.T) {
	in := secondsInput()
	in.State = continuedFromAStall()
	// 80,000 at 10,000/s is 8 s: 3 s beyond the 5 s checkpoint interval,
	// under the 5 s threshold.
	res, polls := scriptedLag(t, in, deliverAt(0, 80_000, 450_000))
	require.Equal(t, 1, polls)
	require.Zero(t, res.Holds)
	require.InDelta(t, 3, res.MaxLagSeconds, 1e-9)
}

func TestHoldDoesNotWaitForLagNobodyDrains(t *testing.T) {
	in := secondsInput()
	in.State = continuedFromAStall()
	// 80,000 at the 5,000/s it drained is 16 s, 11 s beyond the allowance.
	in.State.DrainRates.Deliver = 5_000
	res, polls := scriptedLag(t, in,
		deliverAt(0, 80_000, 450_000),
		// Held, and the consumer drained nothing over the window: what is
		// left (markers, aborted records, or a consumer that is down) does
		// not shrink by waiting; the threshold in messages is not reached.
		deliverAt(5, 80_000, 450_000),
	)
	require.Equal(t, 2, polls, "production resumes on the second poll")
	require.Equal(t, 1, res.Holds)
	require.Equal(t, int64(5_000), res.HeldMillis)
}

func TestNoHoldInSecondsBeforeARateIsKnown(t *testing.T) {
	// The start of a run: no group has committed, so the lag is all the
	// raw topic holds, 150,000 of no known rate, below 200,000.
	res, polls := scriptedLag(t, secondsInput(), kafkaadmin.LagSample{AtUnixMillis: 0, Enrich: 150_000})
	require.Equal(t, 1, polls)
	require.Zero(t, res.Holds)
	require.Empty(t, res.LagSecondsGroup)
	require.Zero(t, res.MaxLagSeconds)
}

// TestCappedRunIsNotHeldByItsOwnSteps: a run capped below what the stack
// can take is not held for the steps it paces itself (see
// TestLagSecondsLeaveOutTheStepsInFlightAtTheCap), also with an input
// without delivery's sizes, as written before them. The same lag holds a
// run at the default cap, whose steps the brokers pace.
func TestCappedRunIsNotHeldByItsOwnSteps(t *testing.T) {
	keepsUp := kafkaadmin.LagSample{AtUnixMillis: 30_000, Enrich: 20_200, EnrichOldestMillis: 15_000}
	caughtUp := kafkaadmin.LagSample{AtUnixMillis: 35_000}
	withoutSegments := cappedInput()
	withoutSegments.SegmentMessages = 0
	for _, in := range []ProduceInput{cappedInput(), withoutSegments} {
		res, polls := scriptedLag(t, in, keepsUp, caughtUp)
		require.Equal(t, 1, polls)
		require.Zero(t, res.Holds)
		require.InDelta(t, 2, res.MaxLagSeconds, 1e-9)
	}
	atDefaultCap := cappedInput()
	atDefaultCap.RatePerSecond = DefaultRatePerSecond
	res, polls := scriptedLag(t, atDefaultCap, keepsUp, caughtUp)
	require.Equal(t, 2, polls, "production resumes on the second poll")
	require.Equal(t, 1, res.Holds)
	require.InDelta(t, 9.6, res.MaxLagSeconds, 1e-9)
}

func TestInputWithoutSecondsHoldsByMessagesOnly(t *testing.T) {
	// An input written before the threshold in seconds (so every replayed
	// history) has none: the stall that held above is not acted on, and
	// nothing of seconds is reported.
	in := secondsInput()
	in.LagThresholdSeconds, in.LagResumeSeconds, in.CheckpointIntervalSeconds = 0, 0, 0
	in.State = continuedFromAStall()
	res, polls := scriptedLag(t, in, deliverAt(0, 80_000, 450_000))
	require.Equal(t, 1, polls)
	require.Zero(t, res.Holds)
	require.Zero(t, res.MaxLagSeconds)
	require.Empty(t, res.LagSecondsGroup)
	require.Equal(t, DrainRates{Deliver: 10_000, DeliverBehind: true}, res.DrainRates, "carried as it came, not estimated")
}

func TestHoldSummarySaysWhy(t *testing.T) {
	p := &producer{in: secondsInput(), held: true, lag: 72_000,
		lagSeconds: groupLagSeconds{group: "deliver", seconds: 7.2, rate: 10_000, known: true}}
	require.Equal(t, "backpressure hold: lag 7.2 s > 2.5 s (deliver draining 10000 msg/s); resumes at 100000 msgs and 2.5 s (hold above 200000 or 5 s)",
		p.secondsSummary())
	p.lag = 250_000
	require.Contains(t, p.secondsSummary(), "backpressure hold: lag 250000 > 100000, lag 7.2 s > 2.5 s")
	p.lagSeconds = groupLagSeconds{group: "enrich", seconds: 9, byAge: true, known: true}
	require.Contains(t, p.secondsSummary(), "lag 9.0 s > 2.5 s (enrich's oldest unconsumed record)")
	p.held, p.lagSeconds = false, groupLagSeconds{}
	require.Equal(t, "next lag poll (lag 250000, seconds unknown (no drain rate yet))", p.secondsSummary())
}

func TestPipelineHandsProductionTheThresholdInSeconds(t *testing.T) {
	f := &fakeStack{}
	env := newEnv(t, f)
	var produceInput ProduceInput
	env.SetOnChildWorkflowStartedListener(func(info *workflow.Info, _ workflow.Context, args converter.EncodedValues) {
		if info.WorkflowType.Name == "ProduceWorkflow" {
			require.NoError(t, args.Get(&produceInput))
		}
	})
	in := smallRun()
	in.LagThresholdSeconds, in.CheckpointIntervalSeconds = 8, 3
	env.ExecuteWorkflow(PipelineWorkflow, in)
	require.NoError(t, env.GetWorkflowError())
	require.Equal(t, 8.0, produceInput.LagThresholdSeconds)
	require.Equal(t, 4.0, produceInput.LagResumeSeconds, "half the threshold by default")
	require.Equal(t, 3, produceInput.CheckpointIntervalSeconds)
}

// heldWithOneChunkProduced is a run continued as new with one chunk of
// secondsInput's three produced.
func heldWithOneChunkProduced() ProduceResult {
	return ProduceResult{Chunks: 3, NextChunk: 1, Produced: 10_000, Runs: 1, StartedUnixMillis: 1}
}

// heldInMessages is that run with the threshold in messages only: held
// above 8,000, resumed below 4,000.
func heldInMessages() ProduceInput {
	in := secondsInput()
	in.LagThreshold, in.LagResume = 8_000, 4_000
	in.LagThresholdSeconds, in.LagResumeSeconds = 0, 0
	in.State = heldWithOneChunkProduced()
	return in
}

// enrichStaleAt is a sample in which the enrich group's committed offsets
// stopped at 1,000 of the raw topic's 10,000 (its age growing with the
// sample's time), while the enriched topic ends at outputEnd, all of it
// consumed by the deliver group.
func enrichStaleAt(sec, outputEnd int64) kafkaadmin.LagSample {
	return kafkaadmin.LagSample{AtUnixMillis: 100_000 + sec*1000,
		Enrich: 9_000, EnrichPosition: 1_000, EnrichOldestMillis: 70_000,
		DeliverPosition: outputEnd}
}

// The enrich job's source commits its offsets late once it has read
// everything (it commits only when its poll for more returns): while
// production is held, its group's lag stays where it was though the job's
// output of every produced message is committed. Production resumes by
// that output, not at the late commit.
func TestHeldProductionResumesWhenTheEnrichJobsOutputIsComplete(t *testing.T) {
	in := heldInMessages()
	res, polls := scriptedLag(t, in,
		// 9,000 unconsumed and 1,000 enriched: held.
		enrichStaleAt(0, 1_000),
		// The job's output holds all 10,000 produced (and a marker); its
		// committed offsets have not moved. Without the bound this holds
		// until the test's timeout.
		enrichStaleAt(5, 10_001),
	)
	require.Equal(t, 2, polls, "production resumes at the second poll")
	require.Equal(t, 1, res.Holds)
	require.Equal(t, int64(9_000), res.MaxLag, "the report keeps the lag Kafka gave")
}

func TestHeldProductionIsNotReleasedByAnEnrichJobStillBehind(t *testing.T) {
	in := heldInMessages()
	res, polls := scriptedLag(t, in,
		enrichStaleAt(0, 1_000),
		// 5,000 of 10,000 enriched: 5,000 left, above the resume mark.
		enrichStaleAt(5, 5_000),
		// 7,000 enriched: 3,000 left, below it.
		enrichStaleAt(10, 7_000),
	)
	require.Equal(t, 3, polls, "held until the job's output leaves less than the resume mark")
	require.Equal(t, 1, res.Holds)
}

// By age too: the oldest unconsumed record the stale offsets point at is
// one the job has read once its output is complete.
func TestHeldProductionIsNotKeptByTheAgeOfARecordTheEnrichJobHasRead(t *testing.T) {
	in := secondsInput()
	in.State = heldWithOneChunkProduced()
	res, polls := scriptedLag(t, in,
		// 30 s old, 15 s beyond the allowances for a checkpoint (5 s) and
		// for a chunk at the rate cap (10 s): held.
		enrichStaleAt(0, 1_000),
		enrichStaleAt(5, 10_001),
	)
	require.Equal(t, 2, polls)
	require.Equal(t, 1, res.Holds)
	require.InDelta(t, 15, res.MaxLagSeconds, 1e-9)
}

// A chunk still in flight may be committed, and so in the raw topic,
// before the workflow counts it in Produced: the job's output may then
// cover every counted message and not the chunk. The bound waits until
// no chunk is in flight.
func TestEnrichIsNotBoundedByOutputWhileAChunkIsInFlight(t *testing.T) {
	in := heldInMessages()
	res, _ := scriptedLagWithChunksTaking(t, in, 12*time.Second,
		kafkaadmin.LagSample{AtUnixMillis: 100_000, DeliverPosition: 10_001},
		// Chunk 1 (of 10,000) is committed but its activity has not
		// returned: 9,000 of the raw topic's 20,000 unconsumed, the output
		// holding the 10,000 the workflow counts.
		enrichStaleAt(5, 10_001),
		enrichStaleAt(10, 10_001),
		// Chunk 1 counted, read and output.
		kafkaadmin.LagSample{AtUnixMillis: 115_000, EnrichPosition: 20_000, DeliverPosition: 20_001},
	)
	require.Equal(t, 1, res.Holds, "held at the second poll")
	require.Equal(t, int64(10_000), res.HeldMillis, "held with the chunk in flight, until the poll after it was counted")
}

// deliverAgedAt is deliverAt with the deliver group's oldest unconsumed
// record produced at oldestSec.
func deliverAgedAt(sec, lag, position, oldestSec int64) kafkaadmin.LagSample {
	s := deliverAt(sec, lag, position)
	s.DeliverOldestMillis = oldestSec * 1000
	return s
}

// TestHeldProductionResumesWhenWhatIsLeftDrainsInTime: a group that drains
// all it is given within every window never counts as behind, so its
// seconds are its age; held, that age grows until the group is empty
// (production outran it, so what it reads next is ever older). What it has
// left at the rate it drains at ends the hold before that.
func TestHeldProductionResumesWhenWhatIsLeftDrainsInTime(t *testing.T) {
	in := secondsInput()
	// Delivery drained all there was in each poll before, so it was never
	// seen behind: its rate so far, 10,000/s, does not count yet.
	in.State = ProduceResult{Chunks: 3, Runs: 1, StartedUnixMillis: 1, Backpressure: Backpressure{
		LagSamples: []kafkaadmin.LagSample{deliverAt(80, 10, 0), deliverAt(85, 10, 100_000), deliverAt(90, 10, 200_000)},
		DrainRates: DrainRates{Deliver: 10_000},
	}}
	res, polls := scriptedLag(t, in,
		// A checkpoint's output arrives at once: 210,000 is above the
		// threshold in messages.
		deliverAgedAt(92, 210_000, 200_000, 87),
		// Drained at 19,000/s over the window from 85 s, still above
		// the 100,000 to resume at.
		deliverAgedAt(95, 120_000, 290_000, 88),
		// 60,000 left: about 3 s at the rate, none beyond the checkpoint
		// allowance. Its oldest record, though, is 10 s old, 5 s beyond
		// the allowance and above 2.5 s: by age the hold would go on.
		deliverAgedAt(98, 60_000, 350_000, 88),
		// Empty: no age, and every mark below.
		deliverAt(101, 10, 410_000),
	)
	require.Equal(t, 3, polls, "production resumes on the third poll, not the fourth")
	require.Equal(t, 1, res.Holds)
	require.False(t, res.DrainRates.DeliverBehind, "the rate still does not count")
}
