// Package regression judges a run against a baseline: the median of the
// same figures over earlier successful runs of the same input. Each figure
// has a direction (lower or higher is better), a relative tolerance and an
// absolute slack that keeps noise on small figures (a few milliseconds, a
// lag of a few messages) from reading as a regression.
package regression

import (
	"fmt"
	"maps"
	"math"
	"slices"
	"sort"
	"strconv"
	"strings"

	"github.com/flowproof/flowproof/workflows"
)

// Figure is one measured figure that compare judges.
type Figure struct {
	Name string
	What string
	Unit string
	// HigherIsBetter: throughput; every other figure is better lower.
	HigherIsBetter bool
	// Tolerance is the default fraction of the baseline a run may be worse
	// by; Slack an absolute amount it may always be worse by.
	Tolerance float64
	Slack     float64
	// Value reads the figure; false when the run did not measure it.
	Value func(workflows.Metrics) (float64, bool)
}

// Figures lists the compared figures in the order they are reported.
func Figures() []Figure {
	positive := func(v float64) (float64, bool) { return v, v > 0 }
	return []Figure{
		{Name: "duration", What: "run duration", Unit: "s", Tolerance: 0.2, Slack: 5,
			Value: func(m workflows.Metrics) (float64, bool) { return positive(float64(m.TotalMillis) / 1000) }},
		{Name: "throughput", What: "end-to-end throughput", Unit: "msg/s", HigherIsBetter: true, Tolerance: 0.2,
			Value: func(m workflows.Metrics) (float64, bool) { return positive(m.EndToEndPerSecond) }},
		{Name: "p50", What: "p50 latency", Unit: "ms", Tolerance: 0.25, Slack: 100,
			Value: func(m workflows.Metrics) (float64, bool) { return positive(m.Latency.P50) }},
		{Name: "p99", What: "p99 latency", Unit: "ms", Tolerance: 0.25, Slack: 100,
			Value: func(m workflows.Metrics) (float64, bool) { return positive(m.Latency.P99) }},
		{Name: "max_lag", What: "largest consumer lag", Unit: "messages", Tolerance: 0.5, Slack: 1000,
			Value: func(m workflows.Metrics) (float64, bool) {
				return float64(m.Backpressure.MaxLag), m.Produced > 0
			}},
		{Name: "held", What: "backpressure hold time", Unit: "s", Tolerance: 0.5, Slack: 1,
			Value: func(m workflows.Metrics) (float64, bool) {
				return float64(m.Backpressure.HeldMillis) / 1000, m.Produced > 0
			}},
	}
}

// Tolerances override the figures' default tolerances, by figure name.
type Tolerances map[string]float64

// ParseTolerances reads "figure=20%" (or "figure=0.2") settings; "all=30%"
// sets every figure not named otherwise.
func ParseTolerances(settings map[string]string) (Tolerances, error) {
	names := map[string]bool{"all": true}
	for _, f := range Figures() {
		names[f.Name] = true
	}
	tol := Tolerances{}
	for name, raw := range settings {
		if !names[name] {
			return nil, fmt.Errorf("tolerance %q: no such figure (want one of %s)", name, strings.Join(slices.Sorted(maps.Keys(names)), ", "))
		}
		value, err := parseFraction(raw)
		if err != nil {
			return nil, fmt.Errorf("tolerance %s=%s: %w", name, raw, err)
		}
		tol[name] = value
	}
	return tol, nil
}

func parseFraction(raw string) (float64, error) {
	s := strings.TrimSpace(raw)
	percent := strings.HasSuffix(s, "%")
	v, err := strconv.ParseFloat(strings.TrimSuffix(s, "%"), 64)
	if err != nil || v < 0 || math.IsInf(v, 0) {
		return 0, fmt.Errorf("want a percentage like 20%% or a fraction like 0.2")
	}
	if percent {
		v /= 100
	}
	return v, nil
}

func (t Tolerances) of(f Figure) float64 {
	if v, ok := t[f.Name]; ok {
		return v
	}
	if v, ok := t["all"]; ok {
		return v
	}
	return f.Tolerance
}

// Verdicts of one figure.
const (
	Pass      = "pass"
	Regressed = "regressed"
	NoData    = "no data"
)

// Comparison is one figure of the run against the baseline.
type Comparison struct {
	Figure   string  `json:"figure"`
	What     string  `json:"what"`
	Unit     string  `json:"unit"`
	Run      float64 `json:"run"`
	Baseline float64 `json:"baseline"`
	// Tolerance is the fraction of the baseline allowed, Slack the
	// absolute amount; Limit is the worst value that passes.
	Tolerance      float64 `json:"tolerance"`
	Slack          float64 `json:"slack"`
	Limit          float64 `json:"limit"`
	HigherIsBetter bool    `json:"higher_is_better"`
	// Change is the run's change from the baseline as a fraction (+0.3:
	// 30 % more).
	Change  float64 `json:"change"`
	Verdict string  `json:"verdict"`
}

// Median of values; 0 for none.
func Median(values []float64) float64 {
	if len(values) == 0 {
		return 0
	}
	sorted := slices.Clone(values)
	sort.Float64s(sorted)
	mid := len(sorted) / 2
	if len(sorted)%2 == 1 {
		return sorted[mid]
	}
	return (sorted[mid-1] + sorted[mid]) / 2
}

// CompareFigures judges run against the median of baseline, figure by
// figure. A figure the run or every baseline run lacks reads NoData, which
// is not a regression.
func CompareFigures(run workflows.Metrics, baseline []workflows.Metrics, tol Tolerances) []Comparison {
	var out []Comparison
	for _, f := range Figures() {
		c := Comparison{Figure: f.Name, What: f.What, Unit: f.Unit, Tolerance: tol.of(f), Slack: f.Slack, HigherIsBetter: f.HigherIsBetter, Verdict: NoData}
		var values []float64
		for _, b := range baseline {
			if v, ok := f.Value(b); ok {
				values = append(values, v)
			}
		}
		value, ok := f.Value(run)
		if !ok || len(values) == 0 {
			out = append(out, c)
			continue
		}
		c.Run, c.Baseline = value, Median(values)
		allowed := math.Max(c.Tolerance*c.Baseline, c.Slack)
		if f.HigherIsBetter {
			c.Limit = math.Max(c.Baseline-allowed, 0)
		} else {
			c.Limit = c.Baseline + allowed
		}
		if c.Baseline != 0 {
			c.Change = (c.Run - c.Baseline) / c.Baseline
		}
		c.Verdict = Pass
		if (f.HigherIsBetter && c.Run < c.Limit) || (!f.HigherIsBetter && c.Run > c.Limit) {
			c.Verdict = Regressed
		}
		out = append(out, c)
	}
	return out
}

// Report is compare's whole verdict on one run.
type Report struct {
	RunID     string `json:"run_id"`
	Status    string `json:"status"`
	InputHash string `json:"input_hash"`
	// BaselineRuns are the runs whose median is the baseline, newest first.
	BaselineRuns []string                   `json:"baseline_runs"`
	Figures      []Comparison               `json:"figures"`
	Thresholds   []workflows.ThresholdCheck `json:"thresholds,omitempty"`
	// Regressed names the regressed figures, Broken the broken thresholds.
	Regressed []string `json:"regressed,omitempty"`
	Broken    []string `json:"broken_thresholds,omitempty"`
	// Passed: the run succeeded, kept its thresholds and no figure
	// regressed.
	Passed bool `json:"passed"`
}

// Judge makes the report of run against baseline (the baseline runs'
// results, newest first, named by baselineIDs).
func Judge(runID string, run workflows.PipelineResult, inputHash string, baselineIDs []string, baseline []workflows.PipelineResult, tol Tolerances) Report {
	metrics := make([]workflows.Metrics, 0, len(baseline))
	for _, b := range baseline {
		metrics = append(metrics, b.Metrics)
	}
	r := Report{
		RunID: runID, Status: string(run.Status), InputHash: inputHash, BaselineRuns: baselineIDs,
		Figures: CompareFigures(run.Metrics, metrics, tol), Thresholds: run.Metrics.Thresholds,
	}
	for _, c := range r.Figures {
		if c.Verdict == Regressed {
			r.Regressed = append(r.Regressed, c.Figure)
		}
	}
	for _, t := range r.Thresholds {
		if !t.Passed {
			r.Broken = append(r.Broken, t.Field)
		}
	}
	r.Passed = run.Status == workflows.StatusSucceeded && len(r.Regressed) == 0 && len(r.Broken) == 0
	return r
}
