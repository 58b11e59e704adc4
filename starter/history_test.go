package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/flowproof/flowproof/activities/verify"
	"github.com/flowproof/flowproof/internal/regression"
	"github.com/flowproof/flowproof/workflows"
)

func TestRunFilterQuery(t *testing.T) {
	q, err := runFilter{TaskQueue: "flowproof", ScheduleID: "flowproof-nightly", Status: "Succeeded", InputHash: "abc"}.query()
	if err != nil {
		t.Fatal(err)
	}
	want := "WorkflowType = 'PipelineWorkflow' AND TaskQueue = 'flowproof' AND TemporalScheduledById = 'flowproof-nightly' AND FlowproofStatus = 'Succeeded' AND FlowproofInputHash = 'abc'"
	if q != want {
		t.Errorf("query\n%s\nwant\n%s", q, want)
	}
	_, err = runFilter{ScheduleID: "x' OR 'a' = 'a"}.query()
	var usage usageError
	if !errors.As(err, &usage) {
		t.Errorf("a quote in a value: %v, want a usage error", err)
	}
}

func TestRunFilterMatchesStoredRuns(t *testing.T) {
	run := pastRun{TaskQueue: "q", ScheduleID: "s", Status: "Succeeded", InputHash: "h", WorkflowID: "w"}
	for _, f := range []runFilter{{}, {TaskQueue: "q"}, {ScheduleID: "s", Status: "Succeeded", InputHash: "h", WorkflowID: "w"}} {
		if !f.matches(run) {
			t.Errorf("%+v does not match %+v", f, run)
		}
	}
	for _, f := range []runFilter{{TaskQueue: "other"}, {Status: "Failed"}, {InputHash: "g"}, {ScheduleID: "t"}} {
		if f.matches(run) {
			t.Errorf("%+v matches %+v", f, run)
		}
	}
}

func TestCompareOutputNamesEachFigure(t *testing.T) {
	baseline := []workflows.PipelineResult{{Status: workflows.StatusSucceeded, Metrics: workflows.Metrics{TotalMillis: 60_000, EndToEndPerSecond: 3000, Produced: 1}}}
	slow := workflows.PipelineResult{Status: workflows.StatusSucceeded, Metrics: workflows.Metrics{TotalMillis: 95_000, EndToEndPerSecond: 480, Produced: 1}}
	var out bytes.Buffer
	printReport(&out, regression.Judge("slow", slow, "h", []string{"b"}, baseline, nil))
	text := out.String()
	for _, want := range []string{
		"baseline: median of 1 run(s): [b]",
		"run duration            95 s        60 s        +58.3%  <= 72 s",
		"end-to-end throughput   480 msg/s   3000 msg/s  -84.0%  >= 2400 msg/s",
		">= 2400 msg/s",
		"REGRESSED",
		"verdict: FAIL: regressed: duration, throughput",
	} {
		if !strings.Contains(text, want) {
			t.Errorf("output lacks %q:\n%s", want, text)
		}
	}
}

// A run that failed in delivery has no verification and no production
// figures: its row shows dashes there, not zeros, its --json row nulls,
// and a run that succeeded keeps its figures.
func TestHistoryShowsDashesForFiguresAFailedRunNeverReported(t *testing.T) {
	stages := func(names ...string) []workflows.StageMetrics {
		var s []workflows.StageMetrics
		for _, n := range names {
			s = append(s, workflows.StageMetrics{Stage: n})
		}
		return s
	}
	failed := pastRun{WorkflowID: "failed", Status: "Failed", Result: &workflows.PipelineResult{Metrics: workflows.Metrics{
		TotalMillis: 781_000, Stages: stages(workflows.StageHealth, workflows.StagePrepare, workflows.StageFlink, workflows.StageCleanup),
	}}}
	succeeded := pastRun{WorkflowID: "succeeded", Status: "Succeeded", Result: &workflows.PipelineResult{Metrics: workflows.Metrics{
		Verified: 1_000_000, TotalMillis: 70_000, EndToEndPerSecond: 15_000, Latency: verify.Percentiles{P99: 9_800},
		Backpressure: workflows.Backpressure{MaxLag: 171_800, HeldMillis: 14_580},
		Stages:       stages(workflows.StagePrepare, "produce", "deliver", workflows.StageVerify),
	}}}
	var out bytes.Buffer
	printHistory(&out, []historyRow{newHistoryRow(failed), newHistoryRow(succeeded)})
	lines := strings.Split(out.String(), "\n")
	if got := strings.Fields(lines[1]); strings.Join(got[3:9], " ") != "Failed - 13m1s - - -" || got[9] != "-" {
		t.Errorf("failed run's row: %q", lines[1])
	}
	if got := strings.Fields(lines[2]); strings.Join(got[3:10], " ") != "Succeeded 1,000,000 1m10s 15000 9800 171,800 14.6s" {
		t.Errorf("succeeded run's row: %q", lines[2])
	}

	encoded, err := json.Marshal([]historyRow{newHistoryRow(failed), newHistoryRow(succeeded)})
	if err != nil {
		t.Fatal(err)
	}
	var decoded []map[string]any
	if err := json.Unmarshal(encoded, &decoded); err != nil {
		t.Fatal(err)
	}
	for _, key := range []string{"verified", "end_to_end_per_second", "p99_ms", "max_lag", "held_s"} {
		if v, ok := decoded[0][key]; !ok || v != nil {
			t.Errorf("failed run's --json %s = %v (present %v), want null", key, v, ok)
		}
		if v, ok := decoded[1][key].(float64); !ok || v == 0 {
			t.Errorf("succeeded run's --json %s = %v, want its figure", key, decoded[1][key])
		}
	}
	if decoded[0]["duration_s"] != 781.0 {
		t.Errorf("failed run's --json duration_s = %v, want 781", decoded[0]["duration_s"])
	}
}
