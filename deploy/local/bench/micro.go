package main

import (
	"slices"
	"strconv"
	"strings"
)

// microResult is one Go benchmark over all its -count runs: the median of
// every metric it reported.
type microResult struct {
	pkg     string
	name    string // without the -GOMAXPROCS suffix
	runs    int
	metrics map[string]float64 // unit -> median, e.g. "ns/op", "B/op", "msgs/s"
}

// parseGoBench reads `go test -bench` output: "pkg:" lines name the package
// of the benchmark lines that follow, and each benchmark line is the name,
// the iteration count, then value-unit pairs.
func parseGoBench(out string) []microResult {
	type key struct{ pkg, name string }
	samples := map[key]map[string][]float64{}
	var order []key
	pkg := ""
	for line := range strings.Lines(out) {
		fields := strings.Fields(line)
		if len(fields) == 2 && fields[0] == "pkg:" {
			pkg = fields[1]
			continue
		}
		if len(fields) < 4 || !strings.HasPrefix(fields[0], "Benchmark") || len(fields)%2 != 0 {
			continue
		}
		if _, err := strconv.ParseInt(fields[1], 10, 64); err != nil {
			continue
		}
		k := key{pkg, trimProcs(fields[0])}
		if samples[k] == nil {
			samples[k] = map[string][]float64{}
			order = append(order, k)
		}
		for i := 2; i+1 < len(fields); i += 2 {
			v, err := strconv.ParseFloat(fields[i], 64)
			if err != nil {
				continue
			}
			samples[k][fields[i+1]] = append(samples[k][fields[i+1]], v)
		}
	}
	results := make([]microResult, 0, len(order))
	for _, k := range order {
		r := microResult{pkg: k.pkg, name: k.name, metrics: map[string]float64{}}
		for unit, values := range samples[k] {
			r.metrics[unit] = median(values)
			r.runs = max(r.runs, len(values))
		}
		results = append(results, r)
	}
	return results
}

// trimProcs drops the "-N" GOMAXPROCS suffix go test adds to a name.
func trimProcs(name string) string {
	i := strings.LastIndexByte(name, '-')
	if i < 0 {
		return name
	}
	if _, err := strconv.Atoi(name[i+1:]); err != nil {
		return name
	}
	return name[:i]
}

func median(values []float64) float64 {
	if len(values) == 0 {
		return 0
	}
	sorted := slices.Sorted(slices.Values(values))
	mid := len(sorted) / 2
	if len(sorted)%2 == 1 {
		return sorted[mid]
	}
	return (sorted[mid-1] + sorted[mid]) / 2
}

// findMicro returns the named benchmark, if the output had it.
func findMicro(results []microResult, name string) (microResult, bool) {
	for _, r := range results {
		if r.name == name {
			return r, true
		}
	}
	return microResult{}, false
}
