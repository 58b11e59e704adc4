package workflows

import (
	"fmt"
	"math"
	"strconv"
	"strings"

	"github.com/flowproof/flowproof/internal/errtype"
)

// Thresholds are the limits a run's figures must keep besides delivering
// every message exactly once; a run that breaks one ends Failed. Each is
// optional: zero (or absent) is not checked.
type Thresholds struct {
	// MaxDurationSeconds bounds the whole run, health check to cleanup
	// (Metrics.total_ms).
	MaxDurationSeconds float64 `json:"max_duration_seconds,omitempty"`
	// MinThroughputMsgsPerSec is the least end-to-end throughput: verified
	// messages per second from the first message produced to the last one
	// arriving in the final topic (Metrics.end_to_end_per_second).
	MinThroughputMsgsPerSec float64 `json:"min_throughput_msgs_per_sec,omitempty"`
	// MaxP99LatencySeconds and MaxP999LatencySeconds bound the end-to-end
	// latency's p99 and p99.9 (Metrics.latency).
	MaxP99LatencySeconds  float64 `json:"max_p99_latency_seconds,omitempty"`
	MaxP999LatencySeconds float64 `json:"max_p999_latency_seconds,omitempty"`
	// MaxLagMessages bounds the largest consumer lag of the run's groups
	// (Metrics.backpressure.max_lag).
	MaxLagMessages int64 `json:"max_lag_messages,omitempty"`
	// MaxBackpressureHoldSeconds bounds the time production was held for
	// lag, all holds together (Metrics.backpressure.held_ms).
	MaxBackpressureHoldSeconds float64 `json:"max_backpressure_hold_seconds,omitempty"`
	// MaxHTTPRetries bounds the endpoint requests sent again
	// (Metrics.http_retries).
	MaxHTTPRetries int64 `json:"max_http_retries,omitempty"`
}

// ThresholdCheck is one threshold held against what the run measured.
type ThresholdCheck struct {
	// Field is the threshold's JSON field in PipelineInput.thresholds.
	Field    string  `json:"field"`
	What     string  `json:"what"`
	Measured float64 `json:"measured"`
	Limit    float64 `json:"limit"`
	Unit     string  `json:"unit"`
	Passed   bool    `json:"passed"`
}

// String reads "p99 latency 45.9 s > 15 s" for a broken threshold, and
// with the comparison the threshold wants ("<=", ">=") for a kept one.
func (c ThresholdCheck) String() string {
	op := c.comparison()
	switch {
	case !c.Passed && isMinimum(c.Field):
		op = "<"
	case !c.Passed:
		op = ">"
	}
	return fmt.Sprintf("%s %s %s %s %s", c.What, formatFigure(c.Measured), c.Unit, op, c.limitFigure())
}

// MeasuredText is the measured figure with its unit: "45.9 s".
func (c ThresholdCheck) MeasuredText() string { return formatFigure(c.Measured) + " " + c.Unit }

// LimitText is the limit as the figure must keep it: "<= 15 s",
// ">= 2000 msg/s".
func (c ThresholdCheck) LimitText() string { return c.comparison() + " " + c.limitFigure() }

func (c ThresholdCheck) limitFigure() string { return formatFigure(c.Limit) + " " + c.Unit }

// comparison is how a kept threshold's figure stands to its limit.
func (c ThresholdCheck) comparison() string {
	if isMinimum(c.Field) {
		return ">="
	}
	return "<="
}

// isMinimum tells the thresholds that are lower bounds by their field.
func isMinimum(field string) bool { return strings.HasPrefix(field, "min_") }

// formatFigure writes v to the millisecond at most (latencies and times
// are measured in milliseconds), without trailing zeros: 45.9, 0.001, 2000.
func formatFigure(v float64) string {
	return strconv.FormatFloat(math.Round(v*1000)/1000, 'f', -1, 64)
}

// threshold is one field of Thresholds: its limit and how the run's
// metrics measure it.
type threshold struct {
	field, what, unit string
	limit             float64
	measure           func(Metrics) float64
}

// list is every threshold, in the order the result reports them.
func (t Thresholds) list() []threshold {
	return []threshold{
		{"max_duration_seconds", "duration", "s", t.MaxDurationSeconds,
			func(m Metrics) float64 { return float64(m.TotalMillis) / 1000 }},
		{"min_throughput_msgs_per_sec", "end-to-end throughput", "msg/s", t.MinThroughputMsgsPerSec,
			func(m Metrics) float64 { return m.EndToEndPerSecond }},
		{"max_p99_latency_seconds", "p99 latency", "s", t.MaxP99LatencySeconds,
			func(m Metrics) float64 { return m.Latency.P99 / 1000 }},
		{"max_p999_latency_seconds", "p99.9 latency", "s", t.MaxP999LatencySeconds,
			func(m Metrics) float64 { return m.Latency.P999 / 1000 }},
		{"max_lag_messages", "max lag", "messages", float64(t.MaxLagMessages),
			func(m Metrics) float64 { return float64(m.Backpressure.MaxLag) }},
		{"max_backpressure_hold_seconds", "backpressure held", "s", t.MaxBackpressureHoldSeconds,
			func(m Metrics) float64 { return float64(m.Backpressure.HeldMillis) / 1000 }},
		{"max_http_retries", "HTTP retries", "retries", float64(t.MaxHTTPRetries),
			func(m Metrics) float64 { return float64(m.HTTPRetries) }},
	}
}

// validate refuses a negative threshold; zero means not checked.
func (t Thresholds) validate() error {
	for _, th := range t.list() {
		if th.limit < 0 {
			return errtype.InvalidInputf("thresholds.%s %v: must not be negative (0 or absent: not checked)", th.field, th.limit)
		}
	}
	return nil
}

// evaluate holds every threshold set against m; nil when none is set.
func (t Thresholds) evaluate(m Metrics) []ThresholdCheck {
	var checks []ThresholdCheck
	for _, th := range t.list() {
		if th.limit == 0 {
			continue
		}
		measured := th.measure(m)
		passed := measured <= th.limit
		if isMinimum(th.field) {
			passed = measured >= th.limit
		}
		checks = append(checks, ThresholdCheck{
			Field: th.field, What: th.what, Measured: measured, Limit: th.limit, Unit: th.unit, Passed: passed,
		})
	}
	return checks
}

// brokenThresholds is the failure reason naming every broken threshold,
// "thresholds broken: p99 latency 45.9 s > 15 s; backpressure held 146.2 s
// > 60 s"; "" when all held.
func brokenThresholds(checks []ThresholdCheck) string {
	var broken []string
	for _, c := range checks {
		if !c.Passed {
			broken = append(broken, c.String())
		}
	}
	if len(broken) == 0 {
		return ""
	}
	return "thresholds broken: " + strings.Join(broken, "; ")
}
