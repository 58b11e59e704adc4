package workflows

import (
	"slices"
	"time"

	"github.com/flowproof/flowproof/internal/drillapi"
)

const (
	// rateWindow is the span over which a throughput is measured: long
	// enough to smooth the run's coarse progress steps (about 1% of the
	// messages each), short enough to see a dip.
	rateWindow = 5 * time.Second
	// baselineSpan is how far before a fault its baseline rate is taken.
	baselineSpan = 10 * time.Second
	// recoveredShare of the baseline rate counts as recovered (the 80%).
	recoveredShare = 0.8
)

// rateBefore is the counter's rate over the last baselineSpan of samples
// (or all of them when they span less, but at least rateWindow); 0 when the
// samples cannot tell.
func rateBefore(samples []drillapi.Sample) float64 {
	if len(samples) < 2 {
		return 0
	}
	last := samples[len(samples)-1]
	first := samples[0]
	for _, s := range samples {
		if last.At.Sub(s.At) <= baselineSpan {
			first = s
			break
		}
	}
	span := last.At.Sub(first.At)
	if span < rateWindow {
		return 0
	}
	return float64(last.Count-first.Count) / span.Seconds()
}

// recovery is how a fault's run came back.
type recovery struct {
	Recovered bool
	// After is the time from the fault until the first rateWindow that ran
	// at recoveredShare of baseline or more, or until the counter reached
	// total, whichever came first.
	After time.Duration
}

// recoveryOf reads samples taken from the fault on. The fault's impact is
// the first window of rateWindow whose rate falls below recoveredShare of
// baseline, which may come well after the fault (a token that still had
// quota left, a backlog downstream of a killed TaskManager); the run has
// recovered at the start of the first later window back at that share, or
// when the counter reached total. A run whose rate never fell recovered at
// once, unless it ended (ended) before the counter was complete: a run that
// failed has not recovered, whatever its rate did before. A baseline of 0 (nothing moved before the fault) counts any
// movement as back.
func recoveryOf(samples []drillapi.Sample, injectedAt time.Time, baseline float64, total int64, ended bool) recovery {
	var after []drillapi.Sample
	for _, s := range samples {
		if !s.At.Before(injectedAt) {
			after = append(after, s)
		}
	}
	completed := slices.IndexFunc(after, func(s drillapi.Sample) bool { return s.Count >= total })
	// Windows that end past completion would read the stage's end as a dip.
	considered := after
	if completed >= 0 {
		considered = after[:completed+1]
	}
	dipped := false
	end := 0
	for _, from := range considered {
		for end < len(considered) && considered[end].At.Sub(from.At) < rateWindow {
			end++
		}
		if end == len(considered) {
			break
		}
		to := considered[end]
		rate := float64(to.Count-from.Count) / to.At.Sub(from.At).Seconds()
		back := (baseline > 0 && rate >= recoveredShare*baseline) || (baseline == 0 && to.Count > from.Count)
		switch {
		case !dipped && !back:
			dipped = true
		case dipped && back:
			return recovery{Recovered: true, After: from.At.Sub(injectedAt)}
		}
	}
	switch {
	case completed < 0 && ended:
		return recovery{}
	case !dipped:
		return recovery{Recovered: true}
	case completed >= 0:
		return recovery{Recovered: true, After: after[completed].At.Sub(injectedAt)}
	}
	return recovery{}
}
