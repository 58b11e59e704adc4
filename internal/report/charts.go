package report

import (
	"fmt"
	"html/template"
	"strconv"
	"time"

	"github.com/go-analyze/charts"

	"github.com/flowproof/flowproof/activities/kafkaadmin"
	"github.com/flowproof/flowproof/activities/verify"
	"github.com/flowproof/flowproof/workflows"
)

// chart is one chart of the report: server-side SVG, or why there is none.
type chart struct {
	ID      string
	Title   string
	SVG     template.HTML
	Missing string
}

const chartWidth, chartHeight = 960, 360

// svgChart renders values with render as SVG, or says why not.
func svgChart(id, title string, render func(...charts.OptionFunc) (*charts.Painter, error), opts ...charts.OptionFunc) chart {
	c := chart{ID: id, Title: title}
	opts = append([]charts.OptionFunc{charts.SVGOutputOptionFunc(), charts.DimensionsOptionFunc(chartWidth, chartHeight)}, opts...)
	painter, err := render(opts...)
	if err == nil {
		var svg []byte
		if svg, err = painter.Bytes(); err == nil {
			// The library writes the SVG from numbers and the labels given
			// here, escaping text: it is markup, not input.
			c.SVG = template.HTML(svg) //nolint:gosec // see above
			return c
		}
	}
	c.Missing = fmt.Sprintf("chart could not be drawn: %v", err)
	return c
}

func line(values [][]float64) func(...charts.OptionFunc) (*charts.Painter, error) {
	return func(opts ...charts.OptionFunc) (*charts.Painter, error) { return charts.LineRender(values, opts...) }
}

func bars(values [][]float64) func(...charts.OptionFunc) (*charts.Painter, error) {
	return func(opts ...charts.OptionFunc) (*charts.Painter, error) { return charts.BarRender(values, opts...) }
}

func horizontalBars(values [][]float64) func(...charts.OptionFunc) (*charts.Painter, error) {
	return func(opts ...charts.OptionFunc) (*charts.Painter, error) {
		return charts.HorizontalBarRender(values, opts...)
	}
}

// offsetLabel is a point's time from the start of a series, as "+1m05s".
func offsetLabel(millis int64) string {
	return "+" + (time.Duration(millis) * time.Millisecond).Round(time.Second).String()
}

// throughputChart draws messages per second at every hop, per interval.
func throughputChart(s *verify.Series) chart {
	const id, title = "throughput", "Throughput of every hop (messages per second, per interval)"
	if s == nil || len(s.Produced) == 0 {
		return chart{ID: id, Title: title, Missing: "not recorded: this run's verification kept no per-interval series"}
	}
	perSecond := func(counts []int64) []float64 {
		out := make([]float64, len(s.Produced))
		for i, n := range counts {
			out[i] = float64(n) / (float64(s.IntervalMillis) / 1000)
		}
		return out
	}
	labels := make([]string, len(s.Produced))
	for i := range labels {
		labels[i] = offsetLabel(int64(i) * s.IntervalMillis)
	}
	return svgChart(id, title, line([][]float64{perSecond(s.Produced), perSecond(s.Enriched), perSecond(s.Delivered), perSecond(s.Verified)}),
		charts.LegendLabelsOptionFunc([]string{"produced (raw)", "enriched", "delivered (endpoint)", "verified (final)"}),
		charts.XAxisLabelsOptionFunc(labels))
}

// lagChart draws each consumer group's lag at every poll, with a series
// that stands at the largest lag while production was held.
func lagChart(b workflows.Backpressure) chart {
	const id, title = "lag", "Consumer lag per group (messages), backpressure holds marked"
	samples := b.LagSamples
	if len(samples) == 0 {
		return chart{ID: id, Title: title, Missing: "not recorded: production reported no lag samples"}
	}
	enrich, deliver, split, held := make([]float64, len(samples)), make([]float64, len(samples)), make([]float64, len(samples)), make([]float64, len(samples))
	labels := make([]string, len(samples))
	top := float64(max(b.MaxLag, 1))
	for i, s := range samples {
		enrich[i], deliver[i], split[i] = float64(s.Enrich), float64(s.Deliver), float64(s.Split)
		if heldAt(b.HoldSpans, s) {
			held[i] = top
		}
		labels[i] = offsetLabel(s.AtUnixMillis - samples[0].AtUnixMillis)
	}
	return svgChart(id, title, line([][]float64{enrich, deliver, split, held}),
		charts.LegendLabelsOptionFunc([]string{"enrich group", "deliver group", "split group", "production held"}),
		charts.XAxisLabelsOptionFunc(labels))
}

// heldAt says whether production was held at the sample's time; a span
// still open (to 0) lasts to the end.
func heldAt(spans []workflows.HoldSpan, s kafkaadmin.LagSample) bool {
	for _, h := range spans {
		if s.AtUnixMillis >= h.FromUnixMillis && (h.ToUnixMillis == 0 || s.AtUnixMillis < h.ToUnixMillis) {
			return true
		}
	}
	return false
}

// latencyChart draws the end-to-end latency distribution.
func latencyChart(h *verify.LatencyHistogram) chart {
	const id, title = "latency", "End-to-end latency distribution (messages per bucket, upper bound in ms)"
	if h == nil || len(h.Buckets) == 0 {
		return chart{ID: id, Title: title, Missing: "not recorded: this run's verification kept no latency histogram"}
	}
	counts := make([]float64, len(h.Buckets))
	labels := make([]string, len(h.Buckets))
	for i, b := range h.Buckets {
		counts[i] = float64(b.Count)
		labels[i] = "≤" + strconv.FormatFloat(b.UpToMillis, 'f', -1, 64)
	}
	return svgChart(id, title, bars([][]float64{counts}),
		charts.LegendLabelsOptionFunc([]string{"messages"}), charts.XAxisLabelsOptionFunc(labels))
}

// timelineChart draws each stage from the run's start as stacked bars: a
// transparent one up to the stage's start, then its duration.
func timelineChart(stages []workflows.StageMetrics) chart {
	const id, title = "timeline", "Stage timeline (seconds from the run's first stage)"
	var first int64
	for _, s := range stages {
		if s.StartedUnixMillis > 0 && (first == 0 || s.StartedUnixMillis < first) {
			first = s.StartedUnixMillis
		}
	}
	if first == 0 {
		return chart{ID: id, Title: title, Missing: "not recorded: this run's stages have no start times"}
	}
	before, during := make([]float64, len(stages)), make([]float64, len(stages))
	names := make([]string, len(stages))
	for i, s := range stages {
		names[i] = s.Stage
		before[i] = float64(s.StartedUnixMillis-first) / 1000
		during[i] = float64(s.DurationMillis) / 1000
	}
	theme := charts.GetDefaultTheme().WithSeriesColors([]charts.Color{charts.ColorTransparent, charts.ColorRGB(84, 112, 198)})
	stacked := true
	return svgChart(id, title, horizontalBars([][]float64{before, during}),
		charts.ThemeOptionFunc(theme),
		charts.LegendLabelsOptionFunc([]string{"", "stage"}),
		charts.YAxisLabelsOptionFunc(names),
		func(o *charts.ChartOption) { o.StackSeries = &stacked })
}
