package main

import (
	"bytes"
	"errors"
	"strings"
	"testing"

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
