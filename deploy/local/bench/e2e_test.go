package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/flowproof/flowproof/activities/verify"
	"github.com/flowproof/flowproof/workflows"
)

// runMetrics are the stages of a 300,000-message run on the local stack
// (its result file, trimmed to what the end-to-end row reads).
func runMetrics() workflows.Metrics {
	return workflows.Metrics{
		RunID: "bench-x-e2e", Messages: 300_000, Produced: 300_000, Delivered: 300_000, Verified: 300_000,
		TotalMillis: 64_719,
		Stages: []workflows.StageMetrics{
			{Stage: "health", DurationMillis: 77},
			{Stage: "prepare", DurationMillis: 3_286},
			{Stage: "flink", DurationMillis: 5_709},
			{Stage: "produce", Messages: 300_000, DurationMillis: 24_878, PerSecond: 12_058.8},
			{Stage: "deliver", Messages: 300_000, DurationMillis: 48_982, PerSecond: 6_124.7},
			{Stage: "verify", Messages: 300_000, DurationMillis: 3_067, PerSecond: 97_815.5},
			{Stage: "cleanup", DurationMillis: 3_324},
		},
		Latency: verify.Percentiles{P50: 22_656.6, P95: 40_182.4, P99: 45_126.4, Max: 48_830.3},
	}
}

func TestProductionToVerifiedLeavesOutSetUpAndCleanup(t *testing.T) {
	got, err := productionToVerified(runMetrics())
	if err != nil {
		t.Fatal(err)
	}
	// 64,719 − 77 − 3,286 − 5,709 − 3,324: production and delivery side by
	// side (48,982 ms the longer), then verification (3,067 ms).
	if want := 52_323 * time.Millisecond; got != want {
		t.Errorf("got %s, want %s", got, want)
	}
}

func TestProductionToVerifiedRefusesResultsWithoutTheStages(t *testing.T) {
	m := runMetrics()
	m.Stages = m.Stages[:3]
	if _, err := productionToVerified(m); err == nil || !strings.Contains(err.Error(), "lack produce or verify") {
		t.Errorf("a run that never produced gave %v", err)
	}
	m = runMetrics()
	m.TotalMillis = 1_000
	if _, err := productionToVerified(m); err == nil {
		t.Error("a total shorter than its set-up stages gave a window")
	}
}

func TestCheckCountedWantsEveryMessageVerified(t *testing.T) {
	ok := workflows.PipelineResult{Status: workflows.StatusSucceeded, Metrics: runMetrics()}
	if err := checkCounted(ok, 300_000); err != nil {
		t.Errorf("a verified run: %v", err)
	}
	if err := checkCounted(ok, 200_000); err == nil {
		t.Error("a run of another size was counted")
	}
	failed := ok
	failed.Status, failed.Metrics.FailureMessage = workflows.StatusFailed, "verify: 3 missing"
	if err := checkCounted(failed, 300_000); err == nil || !strings.Contains(err.Error(), "verify: 3 missing") {
		t.Errorf("a failed run gave %v, want its failure", err)
	}
	short := ok
	short.Metrics.Verified = 299_999
	if err := checkCounted(short, 300_000); err == nil {
		t.Error("a run with a message unverified was counted")
	}
}

func TestDownOfNamesWhatIsMissingOrUnhealthy(t *testing.T) {
	status := `{"kafka": {"component": "kafka", "healthy": true, "state": "up"},
		"flink": {"component": "flink", "healthy": false, "state": "down"}}`
	got, err := downOf([]byte(status), []string{"kafka", "flink", "worker"})
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(got, ",") != "flink,worker" {
		t.Errorf("down %v, want flink and worker", got)
	}
	if _, err := downOf([]byte("stackctl: no such flag"), []string{"kafka"}); err == nil {
		t.Error("output that is not JSON gave an answer")
	}
}

func benchSummaryInput() summaryInput {
	s, _ := parseSettings(nil)
	in := summaryInput{settings: s, loadStart: "1", loadEnd: "2", loadAfterE2E: "3"}
	for _, rate := range []float64{150_000, 100_000, 120_000} {
		in.produce = append(in.produce, produceRound{
			flowproof:         producerFigures{records: 200_000, perSecond: rate},
			flowproofOneChunk: producerFigures{records: 200_000, perSecond: 2 * rate},
			toolIdempotent:    producerFigures{records: 200_000, perSecond: 160_000},
			toolTransactional: producerFigures{records: 200_000, perSecond: 125_000},
		})
		in.consume = append(in.consume, consumeRound{verify: consumerFigures{records: 200_000, perSecond: 200_000}})
	}
	in.endpoint = endpointFigures{messages: 100_000, elapsed: 400 * time.Millisecond}
	return in
}

func TestStagesAloneAreTheMediansAndTheSlowestIsTheLowest(t *testing.T) {
	stages := stagesAlone(benchSummaryInput())
	rates := map[string]float64{}
	for _, st := range stages {
		rates[st.stage] = st.perSecond
	}
	if rates["produce"] != 120_000 || rates["endpoint"] != 250_000 || rates["verify"] != 200_000 || len(rates) != 3 {
		t.Errorf("stages alone %v", rates)
	}
	slow, ok := slowest(stages)
	if !ok || slow.stage != "produce" {
		t.Errorf("slowest %+v", slow)
	}
	if _, ok := slowest(nil); ok {
		t.Error("a slowest of no stages")
	}
	noEndpoint := benchSummaryInput()
	noEndpoint.endpoint = endpointFigures{}
	for _, st := range stagesAlone(noEndpoint) {
		if st.stage == "endpoint" {
			t.Error("an endpoint that was not loaded counted as a stage")
		}
	}
}

func TestEndToEndRowsSetTheRunAgainstTheSlowestStage(t *testing.T) {
	in := benchSummaryInput()
	in.e2e = e2eFigures{workflowID: "bench-x-e2e", result: workflows.PipelineResult{Status: workflows.StatusSucceeded, Metrics: runMetrics()},
		window: 52_323 * time.Millisecond}
	var out strings.Builder
	endToEndRows(&out, in)
	text := out.String()
	// 300,000 / 52.323 s = 5,734/s against the producer's median 120,000/s.
	for _, want := range []string{"pipeline bench-x-e2e, verified end to end", "5,734", "ratio end to end / slowest stage alone (produce)", "0.048",
		"100 partitions", "production capped at 50,000/s (its first 150,000 at 12,000/s)", "in the run: deliver", "6,125", "backpressure held it 0 times", "p99 45.1 s"} {
		if !strings.Contains(text, want) {
			t.Errorf("summary lacks %q:\n%s", want, text)
		}
	}
	if strings.Contains(text, "CPU") {
		t.Errorf("a CPU row without a usage report:\n%s", text)
	}
}

func TestEndToEndRowsSaySoWhenNoRunCounts(t *testing.T) {
	for _, e := range []e2eFigures{
		{skipped: "flink, worker not up"},
		{failed: "run bench-x-e2e ended Failed: verify: 3 missing"},
	} {
		in := benchSummaryInput()
		in.e2e = e
		var out strings.Builder
		endToEndRows(&out, in)
		if !strings.Contains(out.String(), "no end-to-end row") || !strings.Contains(out.String(), e.skipped+e.failed) || strings.Contains(out.String(), "ratio") {
			t.Errorf("%+v gave:\n%s", e, out.String())
		}
	}
}

func TestProducerTargetsAreMediansOfRounds(t *testing.T) {
	var out strings.Builder
	producerTargets(&out, benchSummaryInput())
	// Rounds 150k/100k/120k against a tool at 160k (0.94, 0.63, 0.75), a
	// transactional tool at 125k (1.20, 0.80, 0.96), one chunk at twice
	// the rate (0.5 each).
	for _, want := range []string{"medians of 3 rounds", "idempotent 0.75, below the target of 0.9", "transactional 0.96, target >= 0.9 reached", "one chunk 0.50, below the target of 0.8"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("targets lack %q: %s", want, out.String())
		}
	}
}

func TestReadUsageWantsTheRun(t *testing.T) {
	dir := t.TempDir()
	withRun := filepath.Join(dir, "with.json")
	report := `{"wall_seconds": 61.5, "components": [{"component": "kafka", "cpu_seconds": 40.5}], "stack_cpu_seconds": 70.2,
		"incomplete": false, "machine": {"cpus": 2, "capacity_cpu_seconds": 123, "busy_cpu_seconds": 110, "other_cpu_seconds": 4.1},
		"run": {"status": "Succeeded", "messages": 200000, "verified": 200000, "cpu_micros_per_message": 351}}`
	if err := os.WriteFile(withRun, []byte(report), 0o644); err != nil {
		t.Fatal(err)
	}
	u, err := readUsage(withRun)
	if err != nil {
		t.Fatal(err)
	}
	if u.StackCPU != 70.2 || u.Run.CPUMicrosPerMessage != 351 || u.Machine.OtherCPUSeconds != 4.1 || u.Components[0].CPUSeconds != 40.5 {
		t.Errorf("read %+v", u)
	}
	withoutRun := filepath.Join(dir, "without.json")
	if err := os.WriteFile(withoutRun, []byte(`{"stack_cpu_seconds": 1}`), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := readUsage(withoutRun); err == nil {
		t.Error("a report without the run was read")
	}
}
