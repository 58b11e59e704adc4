package main

import (
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"go.uber.org/zap"

	"github.com/flowproof/flowproof/activities/runmetrics"
	"github.com/flowproof/flowproof/activities/verify"
)

func gather(t *testing.T, m *sdkMetrics) map[string]*dto.MetricFamily {
	t.Helper()
	registry := prometheus.NewRegistry()
	registry.MustRegister(m)
	families, err := registry.Gather()
	if err != nil {
		t.Fatalf("gather: %v", err)
	}
	out := map[string]*dto.MetricFamily{}
	for _, f := range families {
		out[f.GetName()] = f
	}
	return out
}

func labels(m *dto.Metric) string {
	var parts []string
	for _, l := range m.GetLabel() {
		parts = append(parts, l.GetName()+"="+l.GetValue())
	}
	return strings.Join(parts, ",")
}

func TestSDKMetricsCountersGaugesTimers(t *testing.T) {
	m := newSDKMetrics()
	h := m.Handler().WithTags(map[string]string{"namespace": "default"})
	polls := h.WithTags(map[string]string{"task_queue": "flowproof", "poller_type": "activity"})
	polls.Counter("temporal_request").Inc(2)
	polls.Counter("temporal_request").Inc(3)
	// The same name with another tag set is another series, not an error.
	h.Counter("temporal_request").Inc(1)
	h.Gauge("temporal_worker_task_slots_available").Update(7)
	h.Gauge("temporal_worker_task_slots_available").Update(5)
	latency := h.Timer("temporal_activity_execution_latency")
	latency.Record(3 * time.Millisecond)
	latency.Record(2 * time.Second)
	latency.Record(time.Hour) // beyond the last bucket: only in +Inf

	families := gather(t, m)

	requests := families["temporal_request_total"]
	if requests == nil || requests.GetType() != dto.MetricType_COUNTER {
		t.Fatalf("temporal_request_total missing or not a counter: %v", requests)
	}
	byLabels := map[string]float64{}
	for _, metric := range requests.GetMetric() {
		byLabels[labels(metric)] = metric.GetCounter().GetValue()
	}
	if got := byLabels["namespace=default,poller_type=activity,task_queue=flowproof"]; got != 5 {
		t.Errorf("tagged counter = %v, want 5 (series: %v)", got, byLabels)
	}
	if got := byLabels["namespace=default"]; got != 1 {
		t.Errorf("untagged counter = %v, want 1 (series: %v)", got, byLabels)
	}

	slots := families["temporal_worker_task_slots_available"]
	if slots == nil || slots.GetMetric()[0].GetGauge().GetValue() != 5 {
		t.Errorf("gauge = %v, want last value 5", slots)
	}

	hist := families["temporal_activity_execution_latency_seconds"]
	if hist == nil || hist.GetType() != dto.MetricType_HISTOGRAM {
		t.Fatalf("timer missing or not a histogram: %v", hist)
	}
	h0 := hist.GetMetric()[0].GetHistogram()
	if h0.GetSampleCount() != 3 {
		t.Errorf("sample count = %d, want 3", h0.GetSampleCount())
	}
	if want := 0.003 + 2 + 3600; h0.GetSampleSum() < want-1e-9 || h0.GetSampleSum() > want+1e-9 {
		t.Errorf("sample sum = %v, want %v", h0.GetSampleSum(), want)
	}
	cumulative := map[float64]uint64{}
	for _, b := range h0.GetBucket() {
		cumulative[b.GetUpperBound()] = b.GetCumulativeCount()
	}
	for upper, want := range map[float64]uint64{0.001: 0, 0.005: 1, 2.5: 2, 1800: 2} {
		if cumulative[upper] != want {
			t.Errorf("bucket le=%v holds %d, want %d", upper, cumulative[upper], want)
		}
	}
}

func TestSDKMetricsKindConflictIsCountedNotFatal(t *testing.T) {
	m := newSDKMetrics()
	h := m.Handler()
	h.Gauge("temporal_thing").Update(1)
	h.Timer("temporal_thing").Record(time.Second) // a different exported name: _seconds
	h.Gauge("temporal_thing_total").Update(1)
	h.Counter("temporal_thing").Inc(1) // exported as temporal_thing_total, taken by a gauge
	families := gather(t, m)
	if got := families["flowproof_worker_sdk_metric_conflicts_total"].GetMetric()[0].GetCounter().GetValue(); got != 1 {
		t.Errorf("conflicts = %v, want 1", got)
	}
	if families["temporal_thing_total"].GetType() != dto.MetricType_GAUGE {
		t.Errorf("temporal_thing_total should have stayed a gauge")
	}
}

func TestLabelSetDropsEmptyValuesAndSanitizesNames(t *testing.T) {
	set := newLabelSet(map[string]string{"b": "2", "a-b": "1", "empty": "", "__reserved": "x", "9lives": "y"})
	if got := strings.Join(set.names, ","); got != "_lives,a_b,b,tag__reserved" {
		t.Errorf("names = %s", got)
	}
	if got := strings.Join(set.values, ","); got != "y,1,2,x" {
		t.Errorf("values = %s", got)
	}
	if newLabelSet(map[string]string{"a": "1", "empty": ""}).key != newLabelSet(map[string]string{"a": "1"}).key {
		t.Error("an empty tag made a distinct series")
	}
}

func TestMetricsServerServesSDKRunAndRuntimeMetrics(t *testing.T) {
	m := newSDKMetrics()
	m.Handler().Counter("temporal_workflow_completed").Inc(1)
	runs := runmetrics.NewRecorder()
	runs.Record(runmetrics.Run{Status: "Failed", EndedAtUnixMillis: 1_764_633_600_000, Verified: 10, Latency: verify.Percentiles{P99: 250}})
	server, err := startMetricsServer("127.0.0.1:0", []prometheus.Collector{m, runs}, newReadiness("flowproof"), false, zap.NewNop())
	if err != nil {
		t.Fatalf("start: %v", err)
	}
	defer func() { _ = server.Shutdown(t.Context()) }()
	resp, err := http.Get(server.URL())
	if err != nil {
		t.Fatalf("scrape: %v", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"temporal_workflow_completed_total 1",
		`flowproof_runs_total{status="Failed"} 1`, `flowproof_runs_total{status="Succeeded"} 0`,
		"flowproof_last_run_timestamp_seconds 1.7646336e+09", `flowproof_last_run_latency_seconds{quantile="0.99"} 0.25`,
		"go_goroutines", "process_resident_memory_bytes",
	} {
		if !strings.Contains(string(body), want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
	if _, err := startMetricsServer(strings.TrimPrefix(strings.TrimSuffix(server.URL(), "/metrics"), "http://"), []prometheus.Collector{newSDKMetrics()}, newReadiness("flowproof"), false, zap.NewNop()); err == nil || !strings.Contains(err.Error(), "-metrics-addr") {
		t.Errorf("a second server on the same address gave %v", err)
	}
	if code := getStatus(t, strings.TrimSuffix(server.URL(), "/metrics")+"/debug/pprof/"); code != http.StatusNotFound {
		t.Errorf("/debug/pprof/ without -pprof: status %d, want 404", code)
	}
}

func TestMetricsServerServesProfilesWithPprof(t *testing.T) {
	server, err := startMetricsServer("127.0.0.1:0", []prometheus.Collector{newSDKMetrics()}, newReadiness("flowproof"), true, zap.NewNop())
	if err != nil {
		t.Fatalf("start: %v", err)
	}
	defer func() { _ = server.Shutdown(t.Context()) }()
	base := strings.TrimSuffix(server.URL(), "/metrics")
	for _, path := range []string{"/debug/pprof/", "/debug/pprof/goroutine?debug=1", "/debug/pprof/profile?seconds=1"} {
		if code := getStatus(t, base+path); code != http.StatusOK {
			t.Errorf("%s: status %d, want 200", path, code)
		}
	}
}

func getStatus(t *testing.T, url string) int {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, resp.Body)
	return resp.StatusCode
}
