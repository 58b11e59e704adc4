package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestReadPaceSumsUpOnlyTheSamplesBetweenTheSnapshots(t *testing.T) {
	from := time.Date(2026, 12, 5, 9, 0, 0, 0, time.UTC)
	to := from.Add(time.Minute)
	var lines bytes.Buffer
	enc := json.NewEncoder(&lines)
	for _, s := range []paceSample{
		{At: from.Add(-time.Second), SHA256Millis: 99, ChaseMillis: 99}, // before the run
		{At: from, SHA256Millis: 9.5, ChaseMillis: 21},
		{At: from.Add(10 * time.Second), SHA256Millis: 12.5, ChaseMillis: 30},
		{At: from.Add(20 * time.Second), SHA256Millis: 9.3, ChaseMillis: 20},
		{At: to, SHA256Millis: 9.4, ChaseMillis: 22},
		{At: to.Add(time.Second), SHA256Millis: 88, ChaseMillis: 88}, // after it
	} {
		if err := enc.Encode(s); err != nil {
			t.Fatal(err)
		}
	}
	path := filepath.Join(t.TempDir(), "pace.jsonl")
	if err := os.WriteFile(path, lines.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	got, err := readPace(path, from, to)
	if err != nil {
		t.Fatal(err)
	}
	want := paceSummary{Samples: 4, SHA256MedianMillis: 9.5, SHA256MaxMillis: 12.5, ChaseMedianMillis: 22, ChaseMaxMillis: 30}
	if got != want {
		t.Fatalf("readPace = %+v, want %+v", got, want)
	}
}

func TestReadPaceNamesABrokenLine(t *testing.T) {
	path := filepath.Join(t.TempDir(), "pace.jsonl")
	if err := os.WriteFile(path, []byte("{\"at\":\"2026-12-05T09:00:00Z\",\"sha256_ms\":9.4}\n{\"at\":\"2026-12"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := readPace(path, time.Time{}, time.Now()); err == nil || !strings.Contains(err.Error(), "line 2") {
		t.Fatalf("readPace of a cut line: %v, want an error naming line 2", err)
	}
}

func TestSamplePaceWritesASampleAtOnceAndEndsWhenStopped(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel() // stopped before the first tick: one sample, then the end
	var out bytes.Buffer
	if err := samplePace(ctx, &out, time.Hour); err != nil {
		t.Fatalf("samplePace: %v", err)
	}
	scanner := bufio.NewScanner(&out)
	var samples []paceSample
	for scanner.Scan() {
		var s paceSample
		if err := json.Unmarshal(scanner.Bytes(), &s); err != nil {
			t.Fatalf("line %q: %v", scanner.Text(), err)
		}
		samples = append(samples, s)
	}
	// A sanity bound, not a speed target: each task takes about 10-20 ms.
	if len(samples) != 1 || samples[0].At.IsZero() ||
		samples[0].SHA256Millis <= 0.1 || samples[0].SHA256Millis > 5000 ||
		samples[0].ChaseMillis <= 0.1 || samples[0].ChaseMillis > 5000 {
		t.Fatalf("samples = %+v, want one with both tasks timed", samples)
	}
}

func TestUsageReportPrintsThePaceOrWhyItIsMissing(t *testing.T) {
	for _, tc := range []struct {
		machine machineDelta
		want    string
	}{
		{machineDelta{Pace: &paceSummary{Samples: 14, SHA256MedianMillis: 9.4, SHA256MaxMillis: 12.1, ChaseMedianMillis: 21, ChaseMaxMillis: 27.5}},
			"core pace through the run, 14 samples: SHA-256 of 16 MiB median 9.4 ms, slowest 12.1; a 64 MiB memory chase median 21.0 ms, slowest 27.5"},
		{machineDelta{Pace: &paceSummary{}}, "core pace through the run: no samples between the snapshots"},
		{machineDelta{PaceError: "open pace.jsonl: no such file or directory"}, "core pace through the run: not read: open pace.jsonl"},
	} {
		var out bytes.Buffer
		printUsageReport(&out, usageReport{Machine: tc.machine})
		if !strings.Contains(out.String(), tc.want) {
			t.Errorf("report lacks %q:\n%s", tc.want, out.String())
		}
	}
}
