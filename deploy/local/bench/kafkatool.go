package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
)

// runKafkaClass runs one of Kafka's tools through `stackctl kafka-class`
// (the stack's own Kafka jars) and returns its standard output, which is
// also shown indented. The tools log warnings to standard error, which
// passes through.
func runKafkaClass(ctx context.Context, stackctl string, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, stackctl, append([]string{"kafka-class"}, args...)...)
	var out bytes.Buffer
	cmd.Stdout = &out
	cmd.Stderr = os.Stderr
	err := cmd.Run()
	for line := range strings.Lines(out.String()) {
		fmt.Print("    | ", line)
	}
	if err != nil {
		return out.String(), fmt.Errorf("%s kafka-class %s: %w", stackctl, args[0], err)
	}
	return out.String(), nil
}

// producerTotal is ProducerPerformance's final line.
type producerTotal struct {
	records   int64
	perSecond float64
	mbPerSec  float64
	avgMillis float64
	p50Millis float64
	p99Millis float64
}

// producerTotalLine matches the line ProducerPerformance prints at the end,
// e.g. "200000 records sent, 52424.1 records/sec (12.50 MB/sec), 1500.32 ms
// avg latency, 2000.00 ms max latency, 1400 ms 50th, 1900 ms 95th, 1990 ms
// 99th, 2000 ms 99.9th." Its progress lines lack the percentiles.
var producerTotalLine = regexp.MustCompile(`^(\d+) records sent, ([0-9.]+) records/sec \(([0-9.]+) MB/sec\), ([0-9.]+) ms avg latency, [0-9.]+ ms max latency, (\d+) ms 50th, \d+ ms 95th, (\d+) ms 99th`)

func parseProducerTotal(out string) (producerTotal, error) {
	var total producerTotal
	found := false
	for line := range strings.Lines(out) {
		m := producerTotalLine.FindStringSubmatch(strings.TrimSpace(line))
		if m == nil {
			continue
		}
		var errs [6]error
		total.records, errs[0] = strconv.ParseInt(m[1], 10, 64)
		total.perSecond, errs[1] = strconv.ParseFloat(m[2], 64)
		total.mbPerSec, errs[2] = strconv.ParseFloat(m[3], 64)
		total.avgMillis, errs[3] = strconv.ParseFloat(m[4], 64)
		total.p50Millis, errs[4] = strconv.ParseFloat(m[5], 64)
		total.p99Millis, errs[5] = strconv.ParseFloat(m[6], 64)
		for _, err := range errs {
			if err != nil {
				return producerTotal{}, fmt.Errorf("final line %q: %w", strings.TrimSpace(line), err)
			}
		}
		found = true
	}
	if !found {
		return producerTotal{}, fmt.Errorf("no final line (\"N records sent, ... 99.9th.\") in its output")
	}
	if total.perSecond <= 0 {
		return producerTotal{}, fmt.Errorf("final line reports %g records/sec", total.perSecond)
	}
	return total, nil
}

// consumerStats is ConsumerPerformance's result line.
type consumerStats struct {
	messages int64
	// perSecond counts from before the consumer joins its group to the
	// last record; fetchPerSecond leaves the group join out.
	perSecond      float64
	fetchPerSecond float64
	mbPerSec       float64
	rebalanceMs    float64
}

// parseConsumerStats reads ConsumerPerformance's output: a header line of
// comma-separated column names (start.time, end.time, data.consumed.in.MB,
// MB.sec, data.consumed.in.nMsg, nMsg.sec, rebalance.time.ms, ...) and one
// line of values. Columns are looked up by name.
func parseConsumerStats(out string) (consumerStats, error) {
	var header []string
	var values []string
	for line := range strings.Lines(out) {
		fields := splitCSV(line)
		switch {
		case len(fields) > 0 && fields[0] == "start.time":
			header = fields
		case header != nil && len(fields) == len(header):
			values = fields
		}
	}
	if header == nil || values == nil {
		return consumerStats{}, fmt.Errorf("no header and result line in its output")
	}
	column := func(name string) (float64, error) {
		for i, h := range header {
			if h == name {
				v, err := strconv.ParseFloat(values[i], 64)
				if err != nil {
					return 0, fmt.Errorf("column %s: %w", name, err)
				}
				return v, nil
			}
		}
		return 0, fmt.Errorf("column %s missing from the header %v", name, header)
	}
	var stats consumerStats
	var errs [5]error
	var messages float64
	messages, errs[0] = column("data.consumed.in.nMsg")
	stats.perSecond, errs[1] = column("nMsg.sec")
	stats.fetchPerSecond, errs[2] = column("fetch.nMsg.sec")
	stats.mbPerSec, errs[3] = column("MB.sec")
	stats.rebalanceMs, errs[4] = column("rebalance.time.ms")
	for _, err := range errs {
		if err != nil {
			return consumerStats{}, err
		}
	}
	stats.messages = int64(messages)
	return stats, nil
}

func splitCSV(line string) []string {
	fields := strings.Split(strings.TrimSpace(line), ",")
	for i := range fields {
		fields[i] = strings.TrimSpace(fields[i])
	}
	return fields
}

func joinComma(items []string) string { return strings.Join(items, ",") }
