package verify

import (
	"math"
	"slices"

	"github.com/HdrHistogram/hdrhistogram-go"
)

// Range and precision of the latency histogram: 1 µs to an hour at three
// significant digits, about 180 KiB whatever the message count. A latency
// outside the range is recorded at its edge.
const (
	latencyLowestMicros  = 1
	latencyHighestMicros = 3600 * 1_000_000
	latencySigFigs       = 3
	// maxEncodedHistogram bounds the HdrHistogram snapshot kept in a
	// result; a wider distribution keeps only its buckets.
	maxEncodedHistogram = 16 << 10
)

// LatencyHistogram is the distribution of end-to-end latency: counts in
// buckets of fixed bounds, the same for every run, so two runs' histograms
// merge by adding counts (Merge), and the HdrHistogram itself when its
// encoding is small.
type LatencyHistogram struct {
	Count int64 `json:"count"`
	// Buckets are the non-empty buckets, ascending.
	Buckets []LatencyBucket `json:"buckets"`
	// HDR is the HdrHistogram (microseconds, three significant digits) in
	// its compressed V2 encoding, base64; empty when over 16 KiB. Decode it
	// with hdrhistogram.Decode to merge runs at full precision.
	HDR string `json:"hdr,omitempty"`
}

// LatencyBucket counts the latencies above the previous bucket's bound up
// to UpToMillis.
type LatencyBucket struct {
	UpToMillis float64 `json:"le_ms"`
	Count      int64   `json:"count"`
}

// latencyBucketBounds are ten bounds a decade (the R10 series) from 0.1 ms
// to 10,000 s: 81 buckets at most, fine enough to draw.
var latencyBucketBounds = func() []float64 {
	steps := []float64{1, 1.25, 1.6, 2, 2.5, 3.15, 4, 5, 6.3, 8}
	var bounds []float64
	for exp := -1; exp <= 6; exp++ {
		for _, s := range steps {
			bounds = append(bounds, s*math.Pow10(exp))
		}
	}
	return append(bounds, 1e7)
}()

// bucketOf is the index of the bucket that holds millis.
func bucketOf(millis float64) int {
	i, _ := slices.BinarySearch(latencyBucketBounds, millis)
	return min(i, len(latencyBucketBounds)-1)
}

// Merge adds o's counts to h's; the HdrHistogram snapshot is dropped, since
// merging those is hdrhistogram.Merge's job on the decoded histograms.
func (h LatencyHistogram) Merge(o LatencyHistogram) LatencyHistogram {
	counts := make([]int64, len(latencyBucketBounds))
	for _, side := range []LatencyHistogram{h, o} {
		for _, b := range side.Buckets {
			counts[bucketOf(b.UpToMillis)] += b.Count
		}
	}
	return LatencyHistogram{Count: h.Count + o.Count, Buckets: nonEmptyBuckets(counts)}
}

func nonEmptyBuckets(counts []int64) []LatencyBucket {
	var buckets []LatencyBucket
	for i, n := range counts {
		if n > 0 {
			buckets = append(buckets, LatencyBucket{UpToMillis: latencyBucketBounds[i], Count: n})
		}
	}
	return buckets
}

// latencyRecorder keeps the run's latencies in an HdrHistogram, and the
// largest exactly.
type latencyRecorder struct {
	hist      *hdrhistogram.Histogram
	maxMicros int64
}

func newLatencyRecorder() *latencyRecorder {
	return &latencyRecorder{hist: hdrhistogram.New(latencyLowestMicros, latencyHighestMicros, latencySigFigs)}
}

func (r *latencyRecorder) record(micros int64) {
	if r.hist.TotalCount() == 0 || micros > r.maxMicros {
		r.maxMicros = micros
	}
	// Cannot fail: the value is clamped into the histogram's range.
	_ = r.hist.RecordValue(min(max(micros, 0), latencyHighestMicros))
}

// percentiles are the recorded latencies' percentiles in milliseconds,
// within 0.1 % (three significant digits), and never above the exact max.
func (r *latencyRecorder) percentiles() Percentiles {
	if r.hist.TotalCount() == 0 {
		return Percentiles{}
	}
	maxMillis := float64(r.maxMicros) / 1000
	at := func(percentile float64) float64 {
		return min(float64(r.hist.ValueAtPercentile(percentile))/1000, maxMillis)
	}
	return Percentiles{P50: at(50), P95: at(95), P99: at(99), P999: at(99.9), Max: maxMillis}
}

// histogram is the distribution in fixed buckets, with the HdrHistogram
// encoded when that is small.
func (r *latencyRecorder) histogram() LatencyHistogram {
	out := LatencyHistogram{Count: r.hist.TotalCount()}
	if out.Count == 0 {
		return out
	}
	counts := make([]int64, len(latencyBucketBounds))
	for _, bar := range r.hist.Distribution() {
		if bar.Count > 0 {
			counts[bucketOf(float64(bar.To)/1000)] += bar.Count
		}
	}
	out.Buckets = nonEmptyBuckets(counts)
	if encoded, err := r.hist.Encode(hdrhistogram.V2CompressedEncodingCookieBase); err == nil && len(encoded) <= maxEncodedHistogram {
		out.HDR = string(encoded)
	}
	return out
}
