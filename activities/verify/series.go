package verify

import (
	"time"
)

// Bounds of the per-interval series: 5 s intervals, widened in steps of
// 5 s so that no series has more than maxSeriesPoints points.
const (
	seriesIntervalMillis = 5000
	maxSeriesPoints      = 360
	// maxSeriesSeconds bounds the seconds a hop's counter holds: a day of
	// records. A record stamped outside that (a writer's wrong clock) is
	// counted in no interval.
	maxSeriesSeconds = 24 * 3600
)

// Series counts the run's messages per interval at each hop, by the
// timestamps of their records: produced into the raw topic, enriched into
// the enriched topic, delivered (accepted by the endpoint, per seq) and
// verified (arrived in the final topic, stamped by the broker); a hop that
// was not counted has none. Point i
// covers [StartUnixMillis + i*IntervalMillis, + IntervalMillis).
type Series struct {
	StartUnixMillis int64   `json:"start_unix_ms"`
	IntervalMillis  int64   `json:"interval_ms"`
	Produced        []int64 `json:"produced"`
	Enriched        []int64 `json:"enriched"`
	Delivered       []int64 `json:"delivered"`
	Verified        []int64 `json:"verified"`
}

// secondCounter counts messages per second of their records' timestamps;
// it holds a key per second of the run, not per message.
type secondCounter map[int64]int64

func (c secondCounter) add(at time.Time, n int64) {
	second := at.Unix()
	if _, ok := c[second]; !ok && len(c) >= maxSeriesSeconds {
		return
	}
	c[second] += n
}

// newSeries sums the hops' counters into intervals wide enough for at most
// maxSeriesPoints points over the span of all of them; nil when none
// counted anything.
func newSeries(produced, enriched, delivered, verified secondCounter) *Series {
	counters := []secondCounter{produced, enriched, delivered, verified}
	first, last, seen := int64(0), int64(0), false
	for _, c := range counters {
		for second := range c {
			if !seen || second < first {
				first = second
			}
			if !seen || second > last {
				last = second
			}
			seen = true
		}
	}
	if !seen {
		return nil
	}
	spanMillis := (last - first + 1) * 1000
	steps := (spanMillis + seriesIntervalMillis*maxSeriesPoints - 1) / (seriesIntervalMillis * maxSeriesPoints)
	interval := max(steps, 1) * seriesIntervalMillis
	points := (spanMillis + interval - 1) / interval
	start := first * 1000
	bin := func(c secondCounter) []int64 {
		if c == nil {
			return nil
		}
		out := make([]int64, points)
		for second, n := range c {
			out[(second*1000-start)/interval] += n
		}
		return out
	}
	return &Series{
		StartUnixMillis: start, IntervalMillis: interval,
		Produced: bin(produced), Enriched: bin(enriched), Delivered: bin(delivered), Verified: bin(verified),
	}
}
