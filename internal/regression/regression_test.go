package regression

import (
	"bytes"
	"encoding/xml"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/flowproof/flowproof/activities/verify"
	"github.com/flowproof/flowproof/workflows"
)

func TestMedian(t *testing.T) {
	require.Equal(t, 0.0, Median(nil))
	require.Equal(t, 7.0, Median([]float64{7}))
	require.Equal(t, 3.0, Median([]float64{9, 1, 3}), "odd: the middle one, whatever the order")
	require.Equal(t, 2.5, Median([]float64{4, 1, 2, 3}), "even: the mean of the two middle ones")
	values := []float64{3, 1, 2}
	Median(values)
	require.Equal(t, []float64{3, 1, 2}, values, "the caller's slice is left as it was")
}

func metrics(seconds, throughput, p99 float64) workflows.Metrics {
	return workflows.Metrics{
		TotalMillis: int64(seconds * 1000), EndToEndPerSecond: throughput, Produced: 10_000,
		Latency: verify.Percentiles{P50: p99 / 2, P99: p99},
	}
}

func byFigure(cs []Comparison) map[string]Comparison {
	out := map[string]Comparison{}
	for _, c := range cs {
		out[c.Figure] = c
	}
	return out
}

func TestASlowRunRegressesNamingTheFigures(t *testing.T) {
	baseline := []workflows.Metrics{metrics(60, 3000, 900), metrics(66, 2600, 1100), metrics(58, 3100, 950)}
	got := byFigure(CompareFigures(metrics(95, 480, 800), baseline, nil))

	d := got["duration"]
	require.Equal(t, 60.0, d.Baseline, "the median of 60, 66 and 58")
	require.InDelta(t, 72.0, d.Limit, 1e-9, "20% of 60 s above it")
	require.Equal(t, Regressed, d.Verdict)
	th := got["throughput"]
	require.Equal(t, 3000.0, th.Baseline)
	require.InDelta(t, 2400.0, th.Limit, 1e-9, "higher is better: 20% below it")
	require.Equal(t, Regressed, th.Verdict)
	require.InDelta(t, -0.84, th.Change, 1e-9)
	require.Equal(t, Pass, got["p99"].Verdict, "a lower latency is no regression")
	require.Contains(t, th.String(), "end-to-end throughput 480 msg/s vs baseline 3000 msg/s (-84.0%), limit >= 2400 msg/s (tolerance 20%")
}

func TestNoiseWithinToleranceAndSlackPasses(t *testing.T) {
	baseline := []workflows.Metrics{metrics(60, 3000, 40)}
	got := byFigure(CompareFigures(metrics(71, 2450, 130), baseline, nil))
	require.Equal(t, Pass, got["duration"].Verdict, "71 s against a limit of 72 s")
	require.Equal(t, Pass, got["throughput"].Verdict, "2450/s against a limit of 2400/s")
	require.Equal(t, Pass, got["p99"].Verdict, "40 ms to 130 ms is within the 100 ms slack, though 225% more")
	require.Equal(t, 140.0, got["p99"].Limit)
	require.Equal(t, Pass, got["max_lag"].Verdict, "no lag either time")

	got = byFigure(CompareFigures(metrics(71, 2450, 141), baseline, nil))
	require.Equal(t, Regressed, got["p99"].Verdict, "past the slack")
}

func TestTolerancesOverrideTheDefaults(t *testing.T) {
	tol, err := ParseTolerances(map[string]string{"throughput": "90%", "all": "0.5"})
	require.NoError(t, err)
	require.Equal(t, Tolerances{"throughput": 0.9, "all": 0.5}, tol)
	baseline := []workflows.Metrics{metrics(60, 3000, 900)}
	got := byFigure(CompareFigures(metrics(89, 250, 900), baseline, tol))
	require.Equal(t, Pass, got["duration"].Verdict, "all=50%: 89 s against 90 s")
	require.Equal(t, Regressed, got["throughput"].Verdict, "250/s is more than 90% below 3000/s")
	require.Equal(t, 0.9, got["throughput"].Tolerance)

	for _, bad := range []map[string]string{{"speed": "20%"}, {"p99": "fast"}, {"p99": "-5%"}} {
		_, err := ParseTolerances(bad)
		require.Error(t, err, "%v", bad)
	}
	_, err = ParseTolerances(map[string]string{"speed": "20%"})
	require.ErrorContains(t, err, "want one of all, duration, held, max_lag, p50, p99, throughput")
}

func TestFiguresWithoutDataAreNoRegression(t *testing.T) {
	got := byFigure(CompareFigures(workflows.Metrics{TotalMillis: 500_000}, nil, nil))
	for _, c := range got {
		require.Equal(t, NoData, c.Verdict, c.Figure)
	}
	got = byFigure(CompareFigures(workflows.Metrics{TotalMillis: 500_000}, []workflows.Metrics{metrics(60, 3000, 900)}, nil))
	require.Equal(t, Regressed, got["duration"].Verdict)
	require.Equal(t, NoData, got["throughput"].Verdict, "the run verified nothing")
}

func TestJudgeFailsOnStatusRegressionOrThreshold(t *testing.T) {
	baseline := []workflows.PipelineResult{{Status: workflows.StatusSucceeded, Metrics: metrics(60, 3000, 900)}}
	ok := workflows.PipelineResult{Status: workflows.StatusSucceeded, Metrics: metrics(61, 2900, 950)}
	r := Judge("ok", ok, "h", []string{"b1"}, baseline, nil)
	require.True(t, r.Passed)
	require.Empty(t, r.Regressed)

	slow := workflows.PipelineResult{Status: workflows.StatusSucceeded, Metrics: metrics(95, 480, 900)}
	r = Judge("slow", slow, "h", []string{"b1"}, baseline, nil)
	require.False(t, r.Passed)
	require.Equal(t, []string{"duration", "throughput"}, r.Regressed)

	failed := ok
	failed.Status = workflows.StatusFailed
	require.False(t, Judge("f", failed, "h", nil, baseline, nil).Passed, "a failed run never passes")

	broken := ok
	broken.Metrics.Thresholds = []workflows.ThresholdCheck{
		{Field: "max_p99_ms", What: "p99 latency", Measured: 950, Limit: 500, Unit: "ms"},
		{Field: "max_duration_seconds", What: "duration", Measured: 61, Limit: 600, Unit: "s", Passed: true},
	}
	r = Judge("b", broken, "h", nil, baseline, nil)
	require.False(t, r.Passed)
	require.Equal(t, []string{"max_p99_ms"}, r.Broken)
}

func TestJUnitHasACasePerFigureAndThreshold(t *testing.T) {
	baseline := []workflows.PipelineResult{{Status: workflows.StatusSucceeded, Metrics: metrics(60, 3000, 900)}}
	slow := workflows.PipelineResult{Status: workflows.StatusSucceeded, Metrics: metrics(95, 480, 900)}
	slow.Metrics.Thresholds = []workflows.ThresholdCheck{{Field: "max_p99_ms", What: "p99 latency", Measured: 900, Limit: 500, Unit: "ms"}}
	ok := workflows.PipelineResult{Status: workflows.StatusSucceeded, Metrics: metrics(60, 3000, 900)}
	var buf bytes.Buffer
	require.NoError(t, WriteJUnit(&buf, []Report{
		Judge("slow<&>", slow, "h", []string{"b1"}, baseline, nil),
		Judge("ok", ok, "h", []string{"b1"}, baseline, nil),
	}))
	require.True(t, strings.HasPrefix(buf.String(), `<?xml version="1.0" encoding="UTF-8"?>`))

	var doc struct {
		Tests    int `xml:"tests,attr"`
		Failures int `xml:"failures,attr"`
		Suites   []struct {
			Name     string `xml:"name,attr"`
			Tests    int    `xml:"tests,attr"`
			Failures int    `xml:"failures,attr"`
			Cases    []struct {
				Name    string `xml:"name,attr"`
				Failure *struct {
					Message string `xml:"message,attr"`
					Type    string `xml:"type,attr"`
				} `xml:"failure"`
			} `xml:"testcase"`
		} `xml:"testsuite"`
	}
	require.NoError(t, xml.Unmarshal(buf.Bytes(), &doc), buf.String())
	require.Len(t, doc.Suites, 2)
	slowSuite := doc.Suites[0]
	require.Equal(t, "flowproof run slow<&>", slowSuite.Name, "names survive escaping")
	require.Equal(t, 1+len(Figures())+1, slowSuite.Tests, "status, every figure, the threshold")
	failed := map[string]string{}
	for _, c := range slowSuite.Cases {
		if c.Failure != nil {
			failed[c.Name] = c.Failure.Type + ": " + c.Failure.Message
		}
	}
	require.Equal(t, map[string]string{
		"figure duration":      "regression: run duration regressed",
		"figure throughput":    "regression: end-to-end throughput regressed",
		"threshold max_p99_ms": "threshold: threshold broken: p99 latency 900 ms > 500 ms",
	}, failed)
	require.Equal(t, 3, slowSuite.Failures)
	require.Equal(t, 0, doc.Suites[1].Failures)
	require.Equal(t, 3, doc.Failures)
	require.Equal(t, slowSuite.Tests+doc.Suites[1].Tests, doc.Tests)
}
