package verify

import (
	"slices"
	"testing"
	"time"
)

func TestSeriesBinsEveryHopOnOneAxis(t *testing.T) {
	at := func(second int64) time.Time { return time.Unix(1_800_000_000+second, 0) }
	produced, enriched, delivered, verified := secondCounter{}, secondCounter{}, secondCounter{}, secondCounter{}
	for s := range int64(10) {
		produced.add(at(s), 100)
		enriched.add(at(s+2), 100)
		delivered.add(at(s+4), 100)
		verified.add(at(s+6), 100)
	}
	got := newSeries(produced, enriched, delivered, verified)
	if got.StartUnixMillis != 1_800_000_000_000 || got.IntervalMillis != seriesIntervalMillis {
		t.Fatalf("start %d, interval %d", got.StartUnixMillis, got.IntervalMillis)
	}
	// 16 seconds, 5 s a point: [0,5) [5,10) [10,15) [15,16).
	for name, pair := range map[string][2][]int64{
		"produced":  {got.Produced, {500, 500, 0, 0}},
		"enriched":  {got.Enriched, {300, 500, 200, 0}},
		"delivered": {got.Delivered, {100, 500, 400, 0}},
		"verified":  {got.Verified, {0, 400, 500, 100}},
	} {
		if !slices.Equal(pair[0], pair[1]) {
			t.Errorf("%s %v, want %v", name, pair[0], pair[1])
		}
	}
	if newSeries(secondCounter{}, nil, nil, nil) != nil {
		t.Error("a series of nothing")
	}
	if s := newSeries(produced, enriched, nil, verified); s.Delivered != nil {
		t.Errorf("an uncounted hop has points: %v", s.Delivered)
	}
}

func TestSeriesWidensItsIntervalForLongRuns(t *testing.T) {
	// Ten hours of one message a second.
	long := secondCounter{}
	for s := range int64(36_000) {
		long.add(time.Unix(s, 0), 1)
	}
	got := newSeries(long, long, long, long)
	if len(got.Produced) > maxSeriesPoints || got.IntervalMillis%seriesIntervalMillis != 0 {
		t.Fatalf("%d points of %d ms", len(got.Produced), got.IntervalMillis)
	}
	var sum int64
	for _, n := range got.Verified {
		sum += n
	}
	if sum != 36_000 {
		t.Errorf("points sum to %d", sum)
	}
	// Records stamped over more than a day apart: the counter stops growing.
	for s := range int64(maxSeriesSeconds + 10) {
		long.add(time.Unix(s*3, 0), 1)
	}
	if len(long) > maxSeriesSeconds {
		t.Errorf("counter holds %d seconds", len(long))
	}
}
