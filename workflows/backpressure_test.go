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
