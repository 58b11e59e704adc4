package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/flowproof/flowproof/activities/verify"
	"github.com/flowproof/flowproof/workflows"
)

func TestSummaryPrintsTheHopTable(t *testing.T) {
	result := workflows.PipelineResult{Status: workflows.StatusFailed, Metrics: workflows.Metrics{
		RunID: "r", Messages: 300_000,
		Verification: verify.Result{Expected: 300_000, Records: 300_000, Unique: 300_000},
		Hops: []verify.HopCount{
			{Hop: verify.HopRaw, Source: "flowproof.r.raw", Records: 300_000, Unique: 300_000},
			{Hop: verify.HopEnriched, Source: "flowproof.r.enriched", Records: 300_000, Unique: 300_000},
			{Hop: verify.HopEndpoint, Source: "flowproof.r.accepted", Records: 301_500, Unique: 300_000, Duplicated: 1_500,
				Note: "3,015 batches, 12 replayed answers"},
			{Hop: verify.HopEndpointOwnCount, Source: "http://127.0.0.1:18091/runs/r/stats", Records: 301_500, Unique: 300_000, Duplicated: 1_500,
				Note: "3,015 batches, 1500 seqs accepted more than once; agrees with the accepted topic"},
			{Hop: verify.HopFinal, Source: "flowproof.r.final", Records: 300_000, Unique: 300_000},
		},
	}}
	var out bytes.Buffer
	printResult(&out, result)
	t.Logf("\n%s", out.String())
	for _, want := range []string{
		"hop                   records  unique   missing  duplicated  bad  verdict    source",
		"raw                   300,000  300,000  0        0           0    exact      flowproof.r.raw",
		"endpoint              301,500  300,000  0        1,500       0    NOT EXACT  flowproof.r.accepted",
		"  endpoint: 3,015 batches, 12 replayed answers",
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("summary lacks %q", want)
		}
	}
}

func TestSummaryShowsBackpressureInSeconds(t *testing.T) {
	bp := workflows.Backpressure{Holds: 2, HeldMillis: 12_500, MaxLag: 180_000}
	if got, want := describeBackpressure(bp), "2 holds, 12.5s held, max lag 180,000"; got != want {
		t.Errorf("without a threshold in seconds: %q, want %q", got, want)
	}
	bp.MaxLagSeconds, bp.DrainRates = 7.25, workflows.DrainRates{Enrich: 21_000.4, Deliver: 9_800, Split: 30_000}
	want := "2 holds, 12.5s held, max lag 180,000, max 7.2 s of lag; last drain rates enrich 21,000/s, deliver 9,800/s, split 30,000/s"
	if got := describeBackpressure(bp); got != want {
		t.Errorf("with one: %q, want %q", got, want)
	}
}

func TestWriteResultFileWritesWhatJSONPrints(t *testing.T) {
	result := workflows.PipelineResult{Status: workflows.StatusSucceeded, Metrics: workflows.Metrics{RunID: "r1", Messages: 1000, Verified: 1000}}
	path := filepath.Join(t.TempDir(), "result.json")
	if err := writeResultFile(path, result); err != nil {
		t.Fatal(err)
	}
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var printed bytes.Buffer
	if err := writeJSON(&printed, result); err != nil {
		t.Fatal(err)
	}
	if string(raw) != printed.String() {
		t.Errorf("file holds\n%s\nwant what --json prints:\n%s", raw, printed.String())
	}
	if err := writeResultFile(filepath.Join(t.TempDir(), "missing", "result.json"), result); err == nil || !strings.Contains(err.Error(), "--result-file") {
		t.Errorf("unwritable path gave %v, want an error naming --result-file", err)
	}
}

func TestProgressLineShowsLagInSeconds(t *testing.T) {
	p := workflows.Progress{Stage: "produce", Messages: 1_000_000, Produced: 400_000, Lag: 52_000, Held: true}
	if got := describeProgress(p); !strings.HasSuffix(got, "| lag 52,000 | held (backpressure)") {
		t.Errorf("without seconds: %q", got)
	}
	p.LagSeconds, p.LagGroup, p.DrainRate = 5.3, "deliver", 9_811.7
	if got := describeProgress(p); !strings.HasSuffix(got, "| lag 52,000 (5.3 s, deliver at 9,811/s) | held (backpressure)") {
		t.Errorf("with seconds: %q", got)
	}
	// No drain rate yet: the seconds are the age of the oldest record.
	p.LagSeconds, p.LagGroup, p.DrainRate = 9, "enrich", 0
	if got := describeProgress(p); !strings.HasSuffix(got, "| lag 52,000 (9.0 s, enrich's oldest record) | held (backpressure)") {
		t.Errorf("with seconds by age: %q", got)
	}
}

func TestSummaryPrintsTheThresholdTable(t *testing.T) {
	result := workflows.PipelineResult{Status: workflows.StatusFailed, Metrics: workflows.Metrics{
		RunID: "r", Messages: 20_000, Verified: 20_000, FailedStage: workflows.FailedThresholds,
		FailureMessage:    "thresholds broken: p99 latency 45.9 s > 15 s",
		Latency:           verify.Percentiles{P50: 3_000, P95: 30_000, P99: 45_900, P999: 50_100, Max: 51_000},
		EndToEndPerSecond: 2_500.4, Verification: verify.Result{Expected: 20_000, Unique: 20_000, FlowMillis: 8_000},
		Thresholds: []workflows.ThresholdCheck{
			{Field: "max_p99_latency_seconds", What: "p99 latency", Measured: 45.9, Limit: 15, Unit: "s"},
			{Field: "min_throughput_msgs_per_sec", What: "end-to-end throughput", Measured: 2_500.4, Limit: 2_000, Unit: "msg/s", Passed: true},
		},
	}}
	var out bytes.Buffer
	printResult(&out, result)
	t.Logf("\n%s", out.String())
	for _, want := range []string{
		"failed in stage        thresholds",
		"p50 3000 ms, p95 30000 ms, p99 45900 ms, p99.9 50100 ms, max 51000 ms",
		"end-to-end throughput  2,500 msg/s (first produced to last arrived: 8s)",
		"threshold                                            measured      limit          verdict",
		"p99 latency (max_p99_latency_seconds)                45.9 s        <= 15 s        BROKEN",
		"end-to-end throughput (min_throughput_msgs_per_sec)  2500.4 msg/s  >= 2000 msg/s  kept",
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("summary lacks %q", want)
		}
	}
}

// A run that failed in delivery has no children's results: its summary
// must not print the zeros of figures nobody measured.
func TestSummaryOfARunThatFailedInDeliverySaysWhatWasNotReported(t *testing.T) {
	var out strings.Builder
	printResult(&out, workflows.PipelineResult{Status: "Failed", Metrics: workflows.Metrics{
		FailedStage: workflows.StageProduce, Messages: 200_000, Produced: 170_000, Delivered: 70_000, TokenRenewals: 8,
		Stages: []workflows.StageMetrics{{Stage: workflows.StageHealth}, {Stage: workflows.StagePrepare}, {Stage: workflows.StageFlink}, {Stage: workflows.StageCleanup}},
	}})
	summary := strings.Join(strings.Fields(out.String()), " ") // the columns' width aside
	for _, want := range []string{
		"verification not run: the run ended before its verify stage",
		"http not reported: delivery did not finish",
		"tokens 8 renewals by the last progress report",
		"production chunks and backpressure not reported: production did not finish",
	} {
		if !strings.Contains(summary, want) {
			t.Errorf("summary lacks %q:\n%s", want, summary)
		}
	}
	for _, never := range []string{"0 batches", "0 holds", "end-to-end latency", "0 unique of 0 expected"} {
		if strings.Contains(summary, never) {
			t.Errorf("summary prints %q, which nobody measured:\n%s", never, summary)
		}
	}
}
