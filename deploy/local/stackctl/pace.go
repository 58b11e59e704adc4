package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"slices"
	"time"
)

// `stackctl pace` times two fixed tasks on one core every few seconds until
// it is stopped, one JSON line a sample, and `usage --since --pace` sums up
// the samples taken between the two snapshots. The core speed line of the
// usage report times the SHA-256 task at the ends of a run only; a host
// that slows the cores for a minute in between shows here.

// paceSample is one reading: what each fixed task took of one core's CPU.
type paceSample struct {
	At           time.Time `json:"at"`
	SHA256Millis float64   `json:"sha256_ms"`
	ChaseMillis  float64   `json:"memory_chase_ms"`
}

// paceSummary is the samples of an interval.
type paceSummary struct {
	Samples            int     `json:"samples"`
	SHA256MedianMillis float64 `json:"sha256_median_ms"`
	SHA256MaxMillis    float64 `json:"sha256_max_ms"`
	ChaseMedianMillis  float64 `json:"memory_chase_median_ms"`
	ChaseMaxMillis     float64 `json:"memory_chase_max_ms"`
}

func setupPace(fs *flag.FlagSet, _ *stack, _ io.Writer) func(context.Context, []string) error {
	out := fs.String("out", "", "append one JSON line a sample to this file (required)")
	every := fs.Duration("every", 5*time.Second, "time between samples, at least 1s")
	return func(ctx context.Context, args []string) error {
		if err := noArgs(args); err != nil {
			return err
		}
		if *out == "" {
			return usageError{errors.New("--out is required")}
		}
		if *every < time.Second {
			return usageError{fmt.Errorf("--every %s: at least 1s", *every)}
		}
		f, err := os.OpenFile(*out, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
		if err != nil {
			return fmt.Errorf("open %s: %w", *out, err)
		}
		err = samplePace(ctx, f, *every)
		if cerr := f.Close(); err == nil && cerr != nil {
			err = fmt.Errorf("close %s: %w", *out, cerr)
		}
		return err
	}
}

// samplePace writes a sample to w at once and then every interval, until
// ctx ends (nil then: being stopped is how it ends).
func samplePace(ctx context.Context, w io.Writer, every time.Duration) error {
	chase := newMemoryChase()
	data := make([]byte, fixedTaskBytes)
	ticker := time.NewTicker(every)
	defer ticker.Stop()
	enc := json.NewEncoder(w)
	for {
		sha, err := sha256CPU(data, 1)
		if err != nil {
			return err
		}
		walk, err := chase.cpu()
		if err != nil {
			return err
		}
		sample := paceSample{At: time.Now().UTC(), SHA256Millis: millis(sha), ChaseMillis: millis(walk)}
		if err := enc.Encode(sample); err != nil {
			return fmt.Errorf("write a sample: %w", err)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-ticker.C:
		}
	}
}

func millis(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// readPace sums up the samples in path taken from `from` to `to`.
func readPace(path string, from, to time.Time) (paceSummary, error) {
	f, err := os.Open(path)
	if err != nil {
		return paceSummary{}, err
	}
	defer func() { _ = f.Close() }() // read only
	var samples []paceSample
	scanner := bufio.NewScanner(f)
	for line := 1; scanner.Scan(); line++ {
		var s paceSample
		if err := json.Unmarshal(scanner.Bytes(), &s); err != nil {
			// The sampler stopped in the middle of a line.
			return paceSummary{}, fmt.Errorf("%s line %d: %w", path, line, err)
		}
		if !s.At.Before(from) && !s.At.After(to) {
			samples = append(samples, s)
		}
	}
	if err := scanner.Err(); err != nil {
		return paceSummary{}, fmt.Errorf("read %s: %w", path, err)
	}
	return summarizePace(samples), nil
}

func summarizePace(samples []paceSample) paceSummary {
	if len(samples) == 0 {
		return paceSummary{}
	}
	sha := make([]float64, len(samples))
	walk := make([]float64, len(samples))
	for i, s := range samples {
		sha[i], walk[i] = s.SHA256Millis, s.ChaseMillis
	}
	slices.Sort(sha)
	slices.Sort(walk)
	return paceSummary{
		Samples:            len(samples),
		SHA256MedianMillis: sha[len(sha)/2], SHA256MaxMillis: sha[len(sha)-1],
		ChaseMedianMillis: walk[len(walk)/2], ChaseMaxMillis: walk[len(walk)-1],
	}
}

func (p paceSummary) String() string {
	return fmt.Sprintf("core pace through the run, %d samples: SHA-256 of %d MiB median %.1f ms, slowest %.1f; a %d MiB memory chase median %.1f ms, slowest %.1f",
		p.Samples, fixedTaskBytes>>20, p.SHA256MedianMillis, p.SHA256MaxMillis, chaseBytes>>20, p.ChaseMedianMillis, p.ChaseMaxMillis)
}
