// Package report writes a run's result as one self-contained HTML file:
// charts drawn as SVG on the server (github.com/go-analyze/charts), tables
// and no script, stylesheet or font fetched from anywhere, so it opens
// offline and can be mailed or kept as a CI artifact.
package report

import (
	_ "embed"
	"fmt"
	"html/template"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/flowproof/flowproof/activities"
	"github.com/flowproof/flowproof/internal/humanfmt"
	"github.com/flowproof/flowproof/workflows"
)

// Run is what the report shows: a run's identity and its result.
type Run struct {
	WorkflowID string
	// Status is Temporal's ("Completed", "Failed", ...); the result's own
	// status is in Result.
	Status string
	UIURL  string
	Result workflows.PipelineResult
}

//go:embed report.html.tmpl
var pageTemplate string

var page = template.Must(template.New("report").Funcs(template.FuncMap{
	"commas":  humanfmt.Commas[int64],
	"millis":  humanfmt.Millis,
	"headers": sortedHeaders,
	"unixms":  func(ms int64) string { return time.UnixMilli(ms).UTC().Format(time.RFC3339) },
}).Parse(pageTemplate))

// view is the template's data.
type view struct {
	Run
	Metrics workflows.Metrics
	// Reported says which stages' figures reached the result: a run that
	// ended before a stage has zeros there that were never measured.
	Reported  workflows.ShownFigures
	Charts    []chart
	Generated string
}

// Write renders the report of run to w.
func Write(w io.Writer, run Run, now time.Time) error {
	m := run.Result.Metrics
	v := view{
		Run: run, Metrics: m, Reported: m.ShownFigures(), Generated: now.UTC().Format(time.RFC3339),
		Charts: []chart{
			throughputChart(m.Verification.Series),
			lagChart(m.Backpressure),
			latencyChart(m.Verification.LatencyHistogram),
			timelineChart(m.Stages),
		},
	}
	if err := page.Execute(w, v); err != nil {
		return fmt.Errorf("render the report of %s: %w", run.WorkflowID, err)
	}
	return nil
}

// header is one header of a message, in a stable order.
type header struct{ Key, Value string }

func sortedHeaders(msg activities.MessageView) []header {
	out := make([]header, 0, len(msg.Headers))
	for k, v := range msg.Headers {
		out = append(out, header{k, v})
	}
	slices.SortFunc(out, func(a, b header) int { return strings.Compare(a.Key, b.Key) })
	return out
}
