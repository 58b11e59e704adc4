package workflows

import (
	"fmt"
	"slices"

	"github.com/flowproof/flowproof/activities/kafkaadmin"
)

// Backpressure in seconds.
//
// The seed asks for a lag threshold of 5 s: production should run just ahead
// of what downstream can take, so a message waits seconds, not minutes. A
// lag in messages says little about that (200,000 messages are 4 s for a fast
// consumer and minutes for a slow one), so each group's lag is also read as
// the seconds its consumer needs to drain it at the rate it drains: its
// position moved between two lag polls, over the time between them. The
// group with the most seconds is the one production waits for.
//
// Three things make that rate less simple than it looks:
//
//   - The Flink jobs commit their offsets only when a checkpoint completes,
//     so the enrich and split positions move in steps, one per checkpoint
//     interval. The rate is therefore measured over a window of at least two
//     checkpoint intervals (and two polls): a window of whole intervals holds
//     whole steps. Their committed lag also holds up to one interval of
//     records already processed but not yet committed; a job that keeps up
//     shows up to a checkpoint interval of lag on every poll. That interval
//     is not a backlog (nothing sent now reaches the next topic before the
//     next checkpoint anyway), so it is subtracted from those two groups'
//     seconds; otherwise a 5 s threshold with 5 s checkpoints would hold a
//     pipeline that keeps up. The deliver group commits each segment as it
//     ends, but it reads the enrich job's output, which becomes visible a
//     checkpoint's worth at a time, at each commit of the job's
//     transaction; right after a commit its lag jumps by up to an interval
//     of what enrich drained, which is not a backlog either, so it gets
//     the same allowance. (Without it, five of the eight holds of a default
//     1,000,000-message run, 115 s held of 195, began with the deliver
//     group 5.1 to 8.3 s behind, by a replay of its lag samples.)
//   - A window in which a consumer ran out of work (after a hold, while
//     the pipeline refills, or while its JVM warmed up) shows a rate below
//     what it can drain: the rate it drains at is the lower of its capacity
//     and what arrives. So a group's drain rate is the highest it has been
//     measured at in the run, its capacity as far as anyone can tell.
//     Two kinds of window tell nothing of it: one that begins before the
//     group was consuming (at the start of a run or after a hold, its
//     first step holds the wait for its first records or its first
//     checkpoint), and any window of a group that has never been behind
//     (moved less than its lag at a window's start), since all of those
//     were starved. Fresh runs rated the deliver group at 0.3/s and enrich
//     at 7/s from such windows and held production 26 and 33 s on them.
//     So a window measures a rate only if the group's position moved in
//     the poll before it began, and a rate counts only once the group has
//     been seen behind. Taking rates only from windows in which the group
//     was behind was tried and held production longer (4m9s and 4m20s
//     against 3m11s on fresh stacks): a consumer warming up measured slow,
//     and once the holds let it catch up, no window showed it faster. A
//     rate that follows each window instead was tried (falling by 30 % a
//     poll at most) and held production for minutes of a 1,000,000-message
//     run: every hold starved the consumers, which then measured slow,
//     which held again. A consumer whose capacity really falls (a broker
//     lost) is bounded by the threshold in messages, which always applies.
//   - A consumer that drains nothing has no rate. Before a group has ever
//     drained (the start of a run, a group that has not committed yet) its
//     seconds are unknown and only the threshold in messages applies: there
//     is nothing to measure yet, and holding would wait for a consumer that
//     only starts once it gets records. A group that stops draining keeps its
//     last rate, so its lag in seconds still grows with every record produced
//     and production is held once threshold seconds of its work are queued.
//     While production is held, though, a group that drained nothing over
//     the window does not keep it held: what is left is then lag no consumer
//     will commit past (commit markers, records of aborted transactions, see
//     kafkaadmin.PollLag) or a consumer that is down, and waiting cannot
//     shrink either; holding on it would never end. The threshold in
//     messages still bounds the lag then, and the Flink watch and delivery's
//     stall check fail a run whose consumer is gone.
//   - Where a group has no rate that counts yet, its seconds are the age of
//     its oldest unconsumed record (kafkaadmin.PollLag reads its timestamp),
//     less the same checkpoint allowance: how long it has kept a message
//     waiting. That needs no rate, so it acts from a run's first poll, when
//     a cold Flink job drains a fraction of what is produced and its rate
//     cannot be measured yet; fresh runs queued 150,000 to 200,000 messages
//     there, which made their p99 latency. The age only grows while the
//     group is behind, so once held by it production resumes when the
//     group has caught up or its rate takes over. It is a lower bound of
//     what the lag will cost (the newest record waits longer when the
//     group is slower than production), so a rate, once it counts, tells
//     the seconds instead: the seconds the issue asks for are lag at the
//     drain rate. Telling every group by its age ahead of its rate, which
//     no stale rate can mislead, was tried on fresh stacks and not taken
//     (docs/performance.md, "The oldest unconsumed record's age"). Samples
//     recorded before ages were read have none, and replay as they ran.
//   - While production is held, the age of a group that drains only grows
//     until it has drained everything: no new records arrive, and the one
//     it reads next is older at every poll than the poll before, as long
//     as production outran the group. A hold held by age then ended with
//     the group empty, and the records produced after it took a
//     checkpoint interval or more to reach it: in a fresh default run,
//     delivery stood idle for 4 to 6 s after two such holds
//     (docs/performance.md, "Holds that end before the group is empty").
//     So, held, a draining group whose rate does not count yet is told by
//     what it has left at that rate where that is less than its age. The
//     rate may be low (measured over windows the group was starved in),
//     which only makes its seconds more, and never more than its age.
//     Runs recorded before (GetVersion held-at-drain-rate) replay by age.
//   - Records also arrive, and are committed, in steps larger than a
//     checkpoint's: a chunk becomes visible to enrich all at once when it
//     commits, its first record as old as the chunk's pacing made it; the
//     deliver group commits its offsets once per segment; and a segment's
//     responses reach split all at once when it commits. A group that keeps
//     up therefore shows up to the steps in flight ahead of it as lag, and
//     as its oldest record's age. How much of that is no backlog depends on
//     who set the steps' pace. Where the rate cap did, nothing could have
//     drained them sooner: a run capped at 2,500 msg/s on an idle stack was
//     held five times and produced at 1,230 msg/s, because a chunk of
//     10,000 in each of two lanes took 8 s to pace, and two segments'
//     responses were as long at the rate split drained what arrived. Where
//     the brokers and the consumers did (the default run, whose 50,000
//     msg/s are never reached on two cores), the same steps queue: leaving
//     their records out raised fresh default runs' p99 latency from 25 to
//     32-33 s (docs/performance.md, "Capped runs held by their own
//     chunks"). So each group's seconds leave out the time the cap takes to
//     produce its steps in flight: 8 s a group in that capped run, 0.4 s in
//     the default run. Runs recorded before (GetVersion steps-at-cap), and
//     inputs without delivery's segment size, are measured as they ran.

// maxLagSamples bounds the lag history kept for the report; older samples
// are thinned out, not dropped, so the curve keeps its shape.
const maxLagSamples = 120

// Backpressure says how often and how long production was held for consumer
// lag, and how the lag went.
type Backpressure struct {
	Holds      int   `json:"holds"`
	HeldMillis int64 `json:"held_ms"`
	MaxLag     int64 `json:"max_lag"`
	// LagSamples are at most maxLagSamples, spread over the whole run.
	LagSamples []kafkaadmin.LagSample `json:"lag_samples"`

	// The lag in seconds, when a threshold in seconds is set: of the last
	// poll (LagSeconds of the group LagSecondsGroup, 0 and "" while no group
	// has a drain rate yet) and the largest of the run.
	LagSeconds      float64 `json:"lag_seconds,omitempty"`
	LagSecondsGroup string  `json:"lag_seconds_group,omitempty"`
	MaxLagSeconds   float64 `json:"max_lag_seconds,omitempty"`
	// DrainRates are each group's drain rate after the last poll; a run
	// that continues as new goes on from them.
	DrainRates DrainRates `json:"drain_rates,omitzero"`
	// HoldSpans are when production was held, for the report's lag chart:
	// at most maxHoldSpans, the closest neighbours merged beyond that. A
	// hold still on has ToUnixMillis 0. Runs recorded before they were kept
	// (GetVersion record-hold-spans) have none.
	HoldSpans []HoldSpan `json:"hold_spans,omitempty"`
}

// HoldSpan is one hold of production, or neighbouring holds merged.
type HoldSpan struct {
	FromUnixMillis int64 `json:"from_unix_ms"`
	ToUnixMillis   int64 `json:"to_unix_ms"`
}

// maxHoldSpans bounds the hold spans kept; a run holds once per lag poll
// at most, so a long run can hold thousands of times.
const maxHoldSpans = 120

// startHold opens a hold span at atUnixMillis, merging the two closest
// spans first when the spans are full.
func (b *Backpressure) startHold(atUnixMillis int64) {
	if len(b.HoldSpans) >= maxHoldSpans {
		closest := 1
		for i := 2; i < len(b.HoldSpans); i++ {
			gap := b.HoldSpans[i].FromUnixMillis - b.HoldSpans[i-1].ToUnixMillis
			if gap < b.HoldSpans[closest].FromUnixMillis-b.HoldSpans[closest-1].ToUnixMillis {
				closest = i
			}
		}
		b.HoldSpans[closest-1].ToUnixMillis = b.HoldSpans[closest].ToUnixMillis
		b.HoldSpans = slices.Delete(b.HoldSpans, closest, closest+1)
	}
	b.HoldSpans = append(b.HoldSpans, HoldSpan{FromUnixMillis: atUnixMillis})
}

// endHold closes the open hold span, if there is one.
func (b *Backpressure) endHold(atUnixMillis int64) {
	if n := len(b.HoldSpans); n > 0 && b.HoldSpans[n-1].ToUnixMillis == 0 {
		b.HoldSpans[n-1].ToUnixMillis = atUnixMillis
	}
}

// DrainRates are the messages per second each group drains, as estimated
// (see lagSeconds); 0 until the group has drained anything. A rate counts
// once its group has been seen behind (the *Behind fields).
type DrainRates struct {
	Enrich  float64 `json:"enrich"`
	Deliver float64 `json:"deliver"`
	Split   float64 `json:"split"`

	EnrichBehind  bool `json:"enrich_behind,omitempty"`
	DeliverBehind bool `json:"deliver_behind,omitempty"`
	SplitBehind   bool `json:"split_behind,omitempty"`
}

// secondsMeter reads a lag in seconds (see lagSeconds); the thresholds it
// is held against are ProduceInput's.
type secondsMeter struct {
	// windowMillis is the least time over which a drain rate is measured.
	windowMillis int64
	// checkpointSeconds is subtracted from the Flink groups' seconds, and
	// from the deliver group's when deliverInputInSteps.
	checkpointSeconds   float64
	deliverInputInSteps bool
	// trustedRates measures a rate only over windows that begin with the
	// group consuming, and counts it only once the group has been seen
	// behind; runs recorded before took every window's.
	trustedRates bool
	// heldAtDrainRate tells, while production is held, a draining group
	// by its age or by its lag at its drain rate, whichever is less, where
	// the rate does not count yet; runs recorded before took the age.
	heldAtDrainRate bool
	// stepSeconds are, per group in kafkaadmin.LagSample.ByGroup's order,
	// left out of the group's seconds: the time the rate cap takes to
	// produce a step of what reaches it or what it commits at once (see
	// above and ProduceInput.stepSecondsAtCap).
	stepSeconds [3]float64
}

// groupLagSeconds is one group's lag in seconds, if it can be told: by its
// drain rate (rate), or, where it has none that counts yet, by the age of
// its oldest unconsumed record (byAge).
type groupLagSeconds struct {
	group   string
	seconds float64
	rate    float64
	byAge   bool
	known   bool
}

// basis names the group and how its seconds were told, for the UI.
func (l groupLagSeconds) basis() string {
	if l.byAge {
		return l.group + "'s oldest unconsumed record"
	}
	return fmt.Sprintf("%s draining %d msg/s", l.group, int64(l.rate))
}

// lagSeconds estimates each group's drain rate from the sample s and the
// samples before it (history, oldest first; the report's samples, so the
// estimate survives continue-as-new) and returns the new rates and the
// largest lag in seconds of the groups whose seconds are known; known is
// false when no group's are. held says whether production is held now.
func (r secondsMeter) lagSeconds(history []kafkaadmin.LagSample, s kafkaadmin.LagSample, prev DrainRates, held bool) (DrainRates, groupLagSeconds) {
	type group struct {
		name   string
		rate   *float64
		behind *bool // seen behind over a window
		steps  bool  // the group commits, or its input appears, once per Flink checkpoint
	}
	rates := prev
	groups := [3]group{ // in kafkaadmin.LagSample.ByGroup's order
		{"enrich", &rates.Enrich, &rates.EnrichBehind, true},
		{"deliver", &rates.Deliver, &rates.DeliverBehind, r.deliverInputInSteps},
		{"split", &rates.Split, &rates.SplitBehind, true},
	}
	from, before, windowFound := windowStart(history, s, r.windowMillis)
	now, atStart := s.ByGroup(), from.ByGroup()
	var beforeStart [3]kafkaadmin.GroupLag
	if before != nil {
		beforeStart = before.ByGroup()
	}
	var largest groupLagSeconds
	for i, g := range groups {
		draining := false
		if windowFound {
			moved := now[i].Position - atStart[i].Position
			consuming := before != nil && atStart[i].Position > beforeStart[i].Position
			if seconds := float64(s.AtUnixMillis-from.AtUnixMillis) / 1000; moved > 0 && seconds > 0 {
				draining = true
				if consuming || !r.trustedRates {
					*g.rate = max(float64(moved)/seconds, *g.rate)
				}
				*g.behind = *g.behind || moved < atStart[i].Lag
			}
		}
		// While held, a group that drained nothing does not keep
		// production held (see above). By age, a group not yet watched
		// over a whole window is not known to drain nothing: it may still
		// be starting.
		stalled := held && windowFound && !draining
		atRate := func() groupLagSeconds {
			return groupLagSeconds{group: g.name, seconds: float64(now[i].Lag) / *g.rate, rate: *g.rate, known: true}
		}
		var lag groupLagSeconds
		switch {
		case *g.rate > 0 && !(held && !draining) && (!r.trustedRates || *g.behind):
			lag = atRate()
		case now[i].OldestMillis > 0 && !stalled:
			lag = groupLagSeconds{group: g.name, seconds: float64(s.AtUnixMillis-now[i].OldestMillis) / 1000, byAge: true, known: true}
			// Held, a group's age grows until it has drained everything
			// (see above); what it has left at the rate it drains at
			// ends the hold sooner.
			if r.heldAtDrainRate && held && draining && *g.rate > 0 && atRate().seconds < lag.seconds {
				lag = atRate()
			}
		default:
			continue
		}
		lag.seconds = max(0, lag.seconds-r.stepSeconds[i])
		if g.steps {
			lag.seconds = max(0, lag.seconds-r.checkpointSeconds)
		}
		if !largest.known || lag.seconds > largest.seconds {
			largest = lag
		}
	}
	return rates, largest
}

// windowStart is the newest sample of history at least windowMillis before
// s, and the sample before it (nil if there is none); false when there is
// no such sample yet.
func windowStart(history []kafkaadmin.LagSample, s kafkaadmin.LagSample, windowMillis int64) (from kafkaadmin.LagSample, before *kafkaadmin.LagSample, found bool) {
	for i := len(history) - 1; i >= 0; i-- {
		if s.AtUnixMillis-history[i].AtUnixMillis >= windowMillis {
			if i > 0 {
				before = &history[i-1]
			}
			return history[i], before, true
		}
	}
	return kafkaadmin.LagSample{}, nil, false
}

// observe adds a lag sample to the report.
func (b *Backpressure) observe(s kafkaadmin.LagSample) {
	b.MaxLag = max(b.MaxLag, s.Max())
	b.LagSamples = appendSample(b.LagSamples, s)
}

// holdProduction is the backpressure rule, for a lag in messages or in
// seconds. Production stops when the lag rises above threshold and restarts
// only once it has fallen to resume, so a lag that hovers near the threshold
// does not toggle it on every poll.
func holdProduction[T int64 | float64](held bool, lag, threshold, resume T) bool {
	if held {
		return lag > resume
	}
	return lag > threshold
}

// appendSample keeps at most maxLagSamples, dropping every other old sample
// when full so the series still spans the whole run.
func appendSample(samples []kafkaadmin.LagSample, s kafkaadmin.LagSample) []kafkaadmin.LagSample {
	if len(samples) >= maxLagSamples {
		thinned := samples[:0]
		for i, old := range samples {
			if i%2 == 0 {
				thinned = append(thinned, old)
			}
		}
		samples = thinned
	}
	return append(samples, s)
}
