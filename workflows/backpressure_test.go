package workflows

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/flowproof/flowproof/activities/kafkaadmin"
)

func TestHoldProductionHasHysteresis(t *testing.T) {
	const threshold, resume = 100, 50
	cases := []struct {
		name string
		held bool
		lag  int64
		want bool
	}{
		{"free below resume", false, 10, false},
		{"free between resume and threshold", false, 80, false},
		{"free at threshold", false, 100, false},
		{"free above threshold holds", false, 101, true},
		{"held above threshold", true, 500, true},
		{"held between resume and threshold", true, 80, true},
		{"held at resume releases", true, 50, false},
		{"held below resume releases", true, 0, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			require.Equal(t, tc.want, holdProduction(tc.held, tc.lag, threshold, resume))
		})
	}
}

func TestBackpressureObserveKeepsMaxAndThinsSamples(t *testing.T) {
	var b Backpressure
	for i := range 3 * maxLagSamples {
		b.observe(kafkaadmin.LagSample{AtUnixMillis: int64(i), Enrich: int64(i % 7), Split: 3})
	}
	require.Equal(t, int64(6), b.MaxLag)
	require.LessOrEqual(t, len(b.LagSamples), maxLagSamples)
	require.Equal(t, int64(0), b.LagSamples[0].AtUnixMillis, "the first sample stays")
	require.Equal(t, int64(3*maxLagSamples-1), b.LagSamples[len(b.LagSamples)-1].AtUnixMillis, "the last sample is kept")
	for i := 1; i < len(b.LagSamples); i++ {
		require.Greater(t, b.LagSamples[i].AtUnixMillis, b.LagSamples[i-1].AtUnixMillis, "samples stay in order")
	}
}

// deliverAt is a sample at second sec in which only the deliver group has
// lag, at position.
func deliverAt(sec, lag, position int64) kafkaadmin.LagSample {
	return kafkaadmin.LagSample{AtUnixMillis: sec * 1000, Deliver: lag, DeliverPosition: position}
}

// defaultSecondsMeter is the meter of the defaults: polls and checkpoints
// 5 s apart, so a window of 10 s.
var defaultSecondsMeter = secondsMeter{windowMillis: 10_000, checkpointSeconds: 5, trustedRates: true}

func TestLagSecondsUnknownBeforeAGroupDrains(t *testing.T) {
	// The first poll of a run: nothing to measure a rate against.
	rates, lag := defaultSecondsMeter.lagSeconds(nil, kafkaadmin.LagSample{AtUnixMillis: 0, Enrich: 150_000}, DrainRates{}, false)
	require.False(t, lag.known)
	require.Zero(t, rates)
	// Polls 10 s apart, but no group has committed anything yet.
	history := []kafkaadmin.LagSample{{AtUnixMillis: 0}, {AtUnixMillis: 5_000, Enrich: 60_000}}
	rates, lag = defaultSecondsMeter.lagSeconds(history, kafkaadmin.LagSample{AtUnixMillis: 10_000, Enrich: 150_000}, DrainRates{}, false)
	require.False(t, lag.known, "no drain rate, no seconds: only the threshold in messages applies")
	require.Zero(t, rates)
}

func TestLagSecondsByAgeBeforeADrainRate(t *testing.T) {
	// The first poll of a run: no rate, but enrich's oldest unconsumed
	// record was produced 14 s ago. Less the checkpoint interval the
	// job always trails by, it has kept a message 9 s.
	s := kafkaadmin.LagSample{AtUnixMillis: 20_000, Enrich: 150_000, EnrichOldestMillis: 6_000, Deliver: 3, DeliverOldestMillis: 19_000}
	rates, lag := defaultSecondsMeter.lagSeconds(nil, s, DrainRates{}, false)
	require.Zero(t, rates)
	require.Equal(t, groupLagSeconds{group: "enrich", seconds: 9, byAge: true, known: true}, lag)
	require.True(t, holdProduction(false, lag.seconds, 5, 2.5))

	// Runs recorded before the ages were read (none in their samples)
	// replay as they ran: unknown.
	s.EnrichOldestMillis, s.DeliverOldestMillis = 0, 0
	_, lag = defaultSecondsMeter.lagSeconds(nil, s, DrainRates{}, false)
	require.False(t, lag.known)
}

func TestLagSecondsByAgeWhileHeld(t *testing.T) {
	// Held by age before a window could be measured: the group may still
	// be starting, so its age keeps production held.
	s := kafkaadmin.LagSample{AtUnixMillis: 25_000, Enrich: 120_000, EnrichPosition: 0, EnrichOldestMillis: 6_000}
	history := []kafkaadmin.LagSample{{AtUnixMillis: 20_000, Enrich: 150_000, EnrichOldestMillis: 6_000}}
	_, lag := defaultSecondsMeter.lagSeconds(history, s, DrainRates{}, true)
	require.Equal(t, groupLagSeconds{group: "enrich", seconds: 14, byAge: true, known: true}, lag)

	// A whole window later it has drained nothing: its lag is nothing
	// waiting can shrink (see TestLagSecondsOfAStalledConsumer), and its
	// age does not hold production either.
	history = append(history, s)
	s.AtUnixMillis = 30_000
	_, lag = defaultSecondsMeter.lagSeconds(history, s, DrainRates{}, true)
	require.False(t, lag.known)

	// Draining, the group's age holds until its rate counts: here it has
	// been seen behind over the window from a poll where it consumed, so
	// the rate, not the age, tells its seconds.
	history = []kafkaadmin.LagSample{
		{AtUnixMillis: 15_000, EnrichOldestMillis: 6_000},
		{AtUnixMillis: 20_000, Enrich: 150_000, EnrichPosition: 10_000, EnrichOldestMillis: 6_000},
		{AtUnixMillis: 25_000, Enrich: 120_000, EnrichPosition: 40_000, EnrichOldestMillis: 9_000},
	}
	s = kafkaadmin.LagSample{AtUnixMillis: 30_000, Enrich: 90_000, EnrichPosition: 70_000, EnrichOldestMillis: 12_000}
	rates, lag := defaultSecondsMeter.lagSeconds(history, s, DrainRates{}, true)
	require.Equal(t, DrainRates{Enrich: 6_000, EnrichBehind: true}, rates)
	require.Equal(t, groupLagSeconds{group: "enrich", seconds: 10, rate: 6_000, known: true}, lag)
}

func TestLagSecondsAtTheRateOverTheWindow(t *testing.T) {
	history := []kafkaadmin.LagSample{
		{AtUnixMillis: -5_000},
		// Both groups were consuming at the window's start (their
		// positions moved in the poll before), and had more to take than
		// they took in the window.
		{AtUnixMillis: 0, Enrich: 150_000, Deliver: 60_000, EnrichPosition: 10_000, DeliverPosition: 5_000},
		// Within the window: a rate measured from here would count one
		// checkpoint's step over half the time.
		{AtUnixMillis: 5_000, EnrichPosition: 109_000, DeliverPosition: 5_001},
	}
	s := kafkaadmin.LagSample{
		AtUnixMillis: 10_000,
		Enrich:       120_000, EnrichPosition: 110_000, // 10,000/s: 12 s, less the 5 s checkpoint interval
		Deliver: 30_000, DeliverPosition: 55_000, // 5,000/s: 6 s, no allowance
		Split: 5, SplitPosition: 0, // never drained: unknown, left out
	}
	rates, lag := defaultSecondsMeter.lagSeconds(history, s, DrainRates{}, false)
	require.Equal(t, DrainRates{Enrich: 10_000, Deliver: 5_000, EnrichBehind: true, DeliverBehind: true}, rates)
	require.Equal(t, groupLagSeconds{group: "enrich", seconds: 7, rate: 10_000, known: true}, lag)

	// A Flink job that keeps up trails by up to a checkpoint interval:
	// 4.5 s at its rate is no backlog.
	s.Enrich, s.Deliver = 45_000, 0
	_, lag = defaultSecondsMeter.lagSeconds(history, s, DrainRates{}, false)
	require.Equal(t, groupLagSeconds{group: "enrich", seconds: 0, rate: 10_000, known: true}, lag)
}

func TestLagSecondsOfAStalledConsumer(t *testing.T) {
	history := []kafkaadmin.LagSample{deliverAt(0, 20_000, 500_000), deliverAt(5, 50_000, 500_000)}
	stalled := deliverAt(10, 80_000, 500_000)
	// It drained 10,000/s until it stopped: its lag grows with every record
	// produced and counts at that rate.
	drained := DrainRates{Deliver: 10_000, DeliverBehind: true}
	rates, lag := defaultSecondsMeter.lagSeconds(history, stalled, drained, false)
	require.Equal(t, drained, rates, "a consumer that drains nothing keeps its rate")
	require.Equal(t, groupLagSeconds{group: "deliver", seconds: 8, rate: 10_000, known: true}, lag)
	require.True(t, holdProduction(false, lag.seconds, 5, 2.5))
	// While production is held, a lag nobody drains is not waited for:
	// commit markers and aborted records are never committed past.
	_, lag = defaultSecondsMeter.lagSeconds(history, stalled, drained, true)
	require.False(t, lag.known)
}

func TestDrainRateIsTheHighestMeasured(t *testing.T) {
	// The consumer drained 10,000/s; now the windows show 2,000/s (it
	// starves, or it slowed): its rate stays 10,000/s. A faster window
	// raises it. Polls 5 s apart, a window of two.
	rates := DrainRates{Deliver: 10_000, DeliverBehind: true}
	var got []float64
	history := []kafkaadmin.LagSample{deliverAt(0, 50_000, 0), deliverAt(5, 50_000, 10_000)}
	for poll := int64(2); poll <= 5; poll++ {
		s := deliverAt(5*poll, 50_000, 10_000*poll)
		var lag groupLagSeconds
		rates, lag = defaultSecondsMeter.lagSeconds(history, s, rates, false)
		require.True(t, lag.known)
		require.InDelta(t, 50_000/rates.Deliver, lag.seconds, 1e-9)
		got = append(got, rates.Deliver)
		history = append(history, s)
	}
	require.InDeltaSlice(t, []float64{10_000, 10_000, 10_000, 10_000}, got, 1e-6)
	faster := deliverAt(30, 50_000, 40_000+300_000)
	rates, _ = defaultSecondsMeter.lagSeconds(history, faster, rates, false)
	require.InDelta(t, 30_000, rates.Deliver, 1e-9, "300,000 drained in the 10 s window")
}

func TestNoRateFromWindowsThatTellNothing(t *testing.T) {
	// The start of a fresh run: the deliver group had 3 records to take at
	// the window's start and took them. Whether it was consuming before
	// the window is not known: no rate.
	history := []kafkaadmin.LagSample{deliverAt(0, 3, 0)}
	s := deliverAt(10, 30_000, 3)
	rates, lag := defaultSecondsMeter.lagSeconds(history, s, DrainRates{}, false)
	require.Zero(t, rates)
	require.False(t, lag.known)
	recorded := defaultSecondsMeter
	recorded.trustedRates = false
	_, lag = recorded.lagSeconds(history, s, DrainRates{}, false)
	require.InDelta(t, 100_000, lag.seconds, 1e-6, "runs recorded before replay as they ran: 0.3/s")

	// Consuming at the window's start, but it took all it had (3): the
	// 0.3/s is kept, and counts for nothing until the group is behind.
	history = []kafkaadmin.LagSample{deliverAt(0, 0, 0), deliverAt(5, 3, 100)}
	s = deliverAt(15, 30_000, 103)
	rates, lag = defaultSecondsMeter.lagSeconds(history, s, DrainRates{}, false)
	require.Equal(t, DrainRates{Deliver: 0.3}, rates)
	require.False(t, lag.known)

	// The next window starts with 30,000 to take, of which it takes
	// 20,000: behind, at 2,000/s.
	history = append(history, s)
	s = deliverAt(25, 15_000, 20_103)
	rates, lag = defaultSecondsMeter.lagSeconds(history, s, rates, false)
	require.Equal(t, DrainRates{Deliver: 2_000, DeliverBehind: true}, rates)
	require.Equal(t, groupLagSeconds{group: "deliver", seconds: 7.5, rate: 2_000, known: true}, lag)

	// Once seen behind, a faster window raises the rate even if the group
	// ran out of records in it.
	history = append(history, s)
	rates, lag = defaultSecondsMeter.lagSeconds(history, deliverAt(35, 6_000, 80_103), rates, false)
	require.Equal(t, DrainRates{Deliver: 6_000, DeliverBehind: true}, rates)
	require.InDelta(t, 1, lag.seconds, 1e-9)
}

func TestNoRateFromAWindowThatBeginsBeforeTheGroupConsumes(t *testing.T) {
	// A consumer starting with 100,000 records waiting: its first commit
	// comes late and small, so a window begun before it holds the start.
	history := []kafkaadmin.LagSample{deliverAt(0, 100_000, 0), deliverAt(5, 100_000, 0)}
	s := deliverAt(15, 100_000, 2_000)
	rates, _ := defaultSecondsMeter.lagSeconds(history, s, DrainRates{}, false)
	require.Zero(t, rates.Deliver, "200/s would be the start-up, not the consumer")

	// From a window begun while it consumed: 7,800/s, behind.
	history = append(history, s)
	rates, lag := defaultSecondsMeter.lagSeconds(history, deliverAt(25, 40_000, 80_000), rates, false)
	require.Equal(t, DrainRates{Deliver: 7_800, DeliverBehind: true}, rates)
	require.True(t, lag.known)
}

func TestAnIdleWindowDoesNotMakeLagLookLong(t *testing.T) {
	// After a hold the consumer had drained everything and idled; the
	// window shows 500/s, production has just queued 21,000 again.
	history := []kafkaadmin.LagSample{deliverAt(0, 0, 500_000)}
	rates, lag := defaultSecondsMeter.lagSeconds(history, deliverAt(10, 21_000, 505_000), DrainRates{Deliver: 10_000, DeliverBehind: true}, false)
	require.InDelta(t, 10_000, rates.Deliver, 1e-9)
	require.InDelta(t, 2.1, lag.seconds, 1e-9)
}

func TestHoldSpansStayBoundedAndMergeTheClosest(t *testing.T) {
	var b Backpressure
	b.endHold(5) // no hold open: nothing to close
	require.Empty(t, b.HoldSpans)
	// Holds of 10 ms every 100 ms, but one gap of only 1 ms after the third.
	at := int64(0)
	for i := range maxHoldSpans + 1 {
		b.startHold(at)
		b.endHold(at + 10)
		at += 100
		if i == 2 {
			at -= 89
		}
	}
	require.Len(t, b.HoldSpans, maxHoldSpans)
	require.Equal(t, HoldSpan{FromUnixMillis: 200, ToUnixMillis: 221}, b.HoldSpans[2], "the two closest holds merged")
	require.Equal(t, int64(0), b.HoldSpans[0].FromUnixMillis, "the first hold stays")
	require.Equal(t, at-100+10, b.HoldSpans[maxHoldSpans-1].ToUnixMillis, "the last hold is kept")
}

// cappedInput is a production capped at 2,500 msg/s in chunks of 10,000,
// two at a time (so each chunk takes 8 s to pace), delivered in segments
// of 10,000.
func cappedInput() ProduceInput {
	in := secondsInput()
	in.ChunkConcurrency, in.RatePerSecond = 2, 2_500
	in.SegmentMessages = 10_000
	return in
}

func TestLagSecondsLeaveOutTheStepsInFlightAtTheCap(t *testing.T) {
	meter := secondsMeter{windowMillis: 10_000, checkpointSeconds: 5, deliverInputInSteps: true, trustedRates: true}
	meter.stepSeconds = cappedInput().stepSecondsAtCap()
	// Two chunks of 10,000, or two segments of 10,000, at 2,500 msg/s.
	require.Equal(t, [3]float64{8, 8, 8}, meter.stepSeconds)
	withoutSteps := meter
	withoutSteps.stepSeconds = [3]float64{}

	// Enrich keeps up: its oldest unconsumed record is 15 s old, 8 s of
	// which it waited for its chunk to be paced and committed, 5 s for the
	// job's checkpoint.
	s := kafkaadmin.LagSample{AtUnixMillis: 30_000, Enrich: 20_200, EnrichOldestMillis: 15_000}
	_, lag := meter.lagSeconds(nil, s, DrainRates{}, false)
	require.Equal(t, groupLagSeconds{group: "enrich", seconds: 2, byAge: true, known: true}, lag)
	require.False(t, holdProduction(false, lag.seconds, 5, 2.5))
	_, lag = withoutSteps.lagSeconds(nil, s, DrainRates{}, false)
	require.True(t, holdProduction(false, lag.seconds, 5, 2.5), "the chunk's own pacing, counted as lag, held production")

	// Split keeps up at the 22 responses/s that arrive: two segments'
	// responses (200) landed at once on top of a checkpoint's 35.
	s = kafkaadmin.LagSample{AtUnixMillis: 30_000, Split: 235, SplitPosition: 1_000}
	rates := DrainRates{Split: 22, SplitBehind: true}
	_, lag = meter.lagSeconds(nil, s, rates, false)
	require.Equal(t, groupLagSeconds{group: "split", seconds: 0, rate: 22, known: true}, lag)
	_, lag = withoutSteps.lagSeconds(nil, s, rates, false)
	require.True(t, holdProduction(false, lag.seconds, 5, 2.5), "two segments' responses, counted as lag, held production")

	// Deliver commits once per segment: 15 s of lag at 2,000/s are two
	// segments at the cap and a checkpoint; 5 s more are backlog.
	s = kafkaadmin.LagSample{AtUnixMillis: 30_000, Deliver: 30_000, DeliverPosition: 50_000}
	rates = DrainRates{Deliver: 2_000, DeliverBehind: true}
	_, lag = meter.lagSeconds(nil, s, rates, false)
	require.Equal(t, groupLagSeconds{group: "deliver", seconds: 2, rate: 2_000, known: true}, lag)
	s.Deliver = 40_000
	_, lag = meter.lagSeconds(nil, s, rates, false)
	require.Equal(t, groupLagSeconds{group: "deliver", seconds: 7, rate: 2_000, known: true}, lag)
	_, lag = withoutSteps.lagSeconds(nil, s, rates, false)
	require.InDelta(t, 15, lag.seconds, 1e-9)
}

// TestStepsAtTheDefaultCapAreSmall: in the default run the cap is far
// above what two cores take, so the steps in flight leave out little: 0.4 s
// a group. The brokers and consumers set those steps' pace, and there they
// are backlog.
func TestStepsAtTheDefaultCapAreSmall(t *testing.T) {
	in := PipelineInput{}.WithDefaults("steps")
	produceIn := ProduceInput{ChunkSize: in.ChunkSize, ChunkConcurrency: in.ChunkConcurrency,
		RatePerSecond: in.productionRate(), SegmentMessages: in.TokenRenewEvery}
	require.Equal(t, [3]float64{0.4, 0.4, 0.4}, produceIn.stepSecondsAtCap())
	produceIn.SegmentMessages = 0
	require.Equal(t, [3]float64{0.4, 0, 0}, produceIn.stepSecondsAtCap(), "an input written before segments leaves out the chunks only")
}

func TestLagSecondsWhileHeldAtTheRateAGroupDrainsAt(t *testing.T) {
	// Delivery drained all it had over the window (so it was never seen
	// behind) at 19,000/s; held now, 60,000 are left, the oldest 10 s old.
	history := []kafkaadmin.LagSample{deliverAt(80, 10, 0), deliverAt(85, 10, 100_000), deliverAt(90, 10, 200_000)}
	s := deliverAt(98, 60_000, 350_000)
	s.DeliverOldestMillis = 88_000
	meter := defaultSecondsMeter
	meter.deliverInputInSteps, meter.heldAtDrainRate = true, true
	rates, lag := meter.lagSeconds(history, s, DrainRates{Deliver: 10_000}, true)
	require.False(t, rates.DeliverBehind)
	require.InDelta(t, 250_000.0/13, rates.Deliver, 1e-6, "the highest rate measured: 250,000 over the 13 s from 85 s")
	require.Equal(t, groupLagSeconds{group: "deliver", seconds: 0, rate: rates.Deliver, known: true}, lag,
		"60,000 at that rate is 3.1 s, within the checkpoint allowance")

	// Not held, its age tells: 10 s, 5 s beyond the allowance.
	_, lag = meter.lagSeconds(history, s, DrainRates{Deliver: 10_000}, false)
	require.Equal(t, groupLagSeconds{group: "deliver", seconds: 5, byAge: true, known: true}, lag)

	// Where its age is less than its lag at the rate, the age tells.
	young := s
	young.DeliverOldestMillis = 96_000
	_, lag = meter.lagSeconds(history, young, DrainRates{Deliver: 10_000}, true)
	require.Equal(t, groupLagSeconds{group: "deliver", seconds: 0, byAge: true, known: true}, lag)

	// Runs recorded before took the age, held or not.
	meter.heldAtDrainRate = false
	_, lag = meter.lagSeconds(history, s, DrainRates{Deliver: 10_000}, true)
	require.Equal(t, groupLagSeconds{group: "deliver", seconds: 5, byAge: true, known: true}, lag)
}
