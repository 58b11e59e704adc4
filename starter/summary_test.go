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
