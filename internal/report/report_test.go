package report

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/flowproof/flowproof/activities/verify"
	"github.com/flowproof/flowproof/workflows"
)

// recordedResult is the result of a real default run (1,000,000 messages,
// make demo on a fresh clone), taken from its Temporal history, with every
// measurement the report draws.
const recordedResult = "testdata/result-1m.json"

func loadRun(t *testing.T, file string) Run {
	t.Helper()
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	var result workflows.PipelineResult
	if err := json.Unmarshal(data, &result); err != nil {
		t.Fatalf("%s: %v", file, err)
	}
	return Run{WorkflowID: result.Metrics.RunID, Status: "Completed", UIURL: "http://127.0.0.1:8233/x", Result: result}
}

// renderFile writes the report of run into a temporary directory.
func renderFile(t *testing.T, run Run) string {
	t.Helper()
	var buf bytes.Buffer
	if err := Write(&buf, run, time.Date(2026, 12, 2, 3, 0, 0, 0, time.UTC)); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "report.html")
	if err := os.WriteFile(path, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

var chartIDs = []string{"throughput", "lag", "latency", "timeline"}

func TestReportOfARecordedRunHasEveryChartAndTable(t *testing.T) {
	html := readFile(t, renderFile(t, loadRun(t, recordedResult)))
	for _, id := range chartIDs {
		figure := regexp.MustCompile(`(?s)<figure class="chart" id="chart-` + id + `".*?</figure>`).FindString(html)
		if !strings.Contains(figure, "<svg") || strings.Contains(figure, `class="missing"`) {
			t.Errorf("chart %s not drawn: %.300s", id, figure)
		}
	}
	for _, want := range []string{"Every hop, counted per seq", "<td>final</td>", "Thresholds", "Health", "Flink jobs",
		"correlation.id", "first 10", "last 10", "production held"} {
		if !strings.Contains(html, want) {
			t.Errorf("report lacks %q", want)
		}
	}
	// Self-contained: nothing is loaded from anywhere.
	if loads := regexp.MustCompile(`(?i)(<script|<link|<img|src=|@import|url\()`).FindAllString(html, -1); len(loads) > 0 {
		t.Errorf("report loads %v", loads)
	}
}

func TestReportOfAnOlderResultSaysWhatWasNotRecorded(t *testing.T) {
	run := loadRun(t, recordedResult)
	m := &run.Result.Metrics
	m.Verification.Series, m.Verification.LatencyHistogram, m.Backpressure.LagSamples = nil, nil, nil
	for i := range m.Stages {
		m.Stages[i].StartedUnixMillis = 0
	}
	html := readFile(t, renderFile(t, run))
	if n := strings.Count(html, "not recorded:"); n != len(chartIDs) {
		t.Errorf("%d charts say not recorded, want %d", n, len(chartIDs))
	}
}

// A run that ended in its health stage measured no latency, delivery or
// backpressure: the report says so instead of showing zeros.
func TestReportOfAnEarlyFailureShowsNoUnmeasuredZeros(t *testing.T) {
	run := loadRun(t, recordedResult)
	m := &run.Result.Metrics
	m.Stages = []workflows.StageMetrics{{Stage: workflows.StageHealth}, {Stage: workflows.StageCleanup}}
	m.Latency, m.HTTPBatches, m.Backpressure = verify.Percentiles{}, 0, workflows.Backpressure{}
	html := readFile(t, renderFile(t, run))
	for _, want := range []string{
		"not measured: the run ended before its verify stage",
		"not reported: delivery did not finish",
		"not reported: production did not finish",
	} {
		if !strings.Contains(html, want) {
			t.Errorf("the report does not say %q", want)
		}
	}
	for _, zero := range []string{"p50 0 ms", "0 batches", "0 holds"} {
		if strings.Contains(html, zero) {
			t.Errorf("the report shows the unmeasured %q", zero)
		}
	}
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(data)
}
