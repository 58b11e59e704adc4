package main

import (
	"bytes"
	"strings"
	"testing"

	"github.com/flowproof/flowproof/activities/verify"
	"github.com/flowproof/flowproof/workflows"
)

func TestPrintDrillsShowsEveryFaultAndHop(t *testing.T) {
	res := workflows.DrillResult{Status: workflows.DrillFailed, Metrics: workflows.DrillMetrics{
		Drill:   "kill-broker",
		Verdict: "run Succeeded but hop final is 1 duplicated",
		Faults: []workflows.FaultOutcome{{
			FaultStep: workflows.FaultStep{Fault: "kill-broker", At: "produced:30%", HoldSeconds: 20},
			Reached:   true, Target: "kafka-2 (leader of 34 of 100 partitions)", InjectedAfterSeconds: 11.6,
			Recovered: true, RecoverySeconds: 7.4, Detail: "SIGKILL pid 1",
		}},
		Run: workflows.PipelineResult{Status: workflows.StatusSucceeded, Metrics: workflows.Metrics{Hops: []verify.HopCount{
			{Hop: "raw"}, {Hop: "final", Duplicated: 1},
		}}},
	}}
	var out bytes.Buffer
	printDrills(&out, []workflows.DrillResult{res})
	for _, want := range []string{"produced:30% (+12 s)", "kafka-2 ", "7.4 s", "Failed", "raw 0/0 final 0/1",
		"kill-broker: run Succeeded but hop final is 1 duplicated", "kafka-2 (leader of 34 of 100 partitions); SIGKILL pid 1"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("table lacks %q:\n%s", want, out.String())
		}
	}
}
