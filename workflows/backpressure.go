package workflows

import (
	"github.com/flowproof/flowproof/activities/kafkaadmin"
)

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
}

// observe adds a lag sample to the report.
func (b *Backpressure) observe(s kafkaadmin.LagSample) {
	b.MaxLag = max(b.MaxLag, s.Max())
	b.LagSamples = appendSample(b.LagSamples, s)
}

// holdProduction is the backpressure rule. Production stops when the lag
// rises above threshold and restarts only once it has fallen to resume, so
// a lag that hovers near the threshold does not toggle it on every poll.
func holdProduction(held bool, lag, threshold, resume int64) bool {
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
