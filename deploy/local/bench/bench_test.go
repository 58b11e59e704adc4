package main

import (
	"encoding/json"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/procfs"

	"github.com/flowproof/flowproof/internal/endpointapi"
)

const goBenchOutput = `goos: linux
goarch: amd64
pkg: github.com/flowproof/flowproof/activities/produce
cpu: AMD EPYC
BenchmarkEncodeRawMessage-2   	 3308918	       392.4 ns/op	 649.79 MB/s	     254 B/op	       0 allocs/op
BenchmarkEncodeRawMessage-2   	 3100000	       410.0 ns/op	 620.00 MB/s	     254 B/op	       0 allocs/op
BenchmarkEncodeRawMessage-2   	 3200000	       400.0 ns/op	 630.00 MB/s	     254 B/op	       0 allocs/op
ok  	github.com/flowproof/flowproof/activities/produce	5.026s
pkg: github.com/flowproof/flowproof/activities/verify
BenchmarkVerifierObserve-2    	  329388	      3572 ns/op	     356 B/op	       9 allocs/op
PASS
ok  	github.com/flowproof/flowproof/activities/verify	5.026s
pkg: github.com/flowproof/flowproof/deploy/refsvc/endpoint
BenchmarkBatchesOf100-2   	    1042	   1150000 ns/op	     86956 msgs/s	  200000 B/op	    1500 allocs/op
BenchmarkBatchesOf100-2   	    1000	   1250000 ns/op	     80000 msgs/s	  200000 B/op	    1500 allocs/op
ok  	github.com/flowproof/flowproof/deploy/refsvc/endpoint	3.1s
`

func TestParseGoBenchTakesMediansPerBenchmark(t *testing.T) {
	results := parseGoBench(goBenchOutput)
	if len(results) != 3 {
		t.Fatalf("got %d results, want 3: %+v", len(results), results)
	}
	enc, ok := findMicro(results, "BenchmarkEncodeRawMessage")
	if !ok {
		t.Fatal("BenchmarkEncodeRawMessage missing")
	}
	if enc.pkg != "github.com/flowproof/flowproof/activities/produce" || enc.runs != 3 {
		t.Errorf("pkg %q runs %d", enc.pkg, enc.runs)
	}
	if enc.metrics["ns/op"] != 400 || enc.metrics["MB/s"] != 630 || enc.metrics["allocs/op"] != 0 {
		t.Errorf("medians %v", enc.metrics)
	}
	endpoint, _ := findMicro(results, "BenchmarkBatchesOf100")
	if endpoint.pkg != "github.com/flowproof/flowproof/deploy/refsvc/endpoint" || endpoint.metrics["msgs/s"] != (86956+80000)/2.0 {
		t.Errorf("endpoint %+v", endpoint)
	}
	if _, ok := findMicro(results, "BenchmarkMissing"); ok {
		t.Error("found a benchmark that is not in the output")
	}
}

func TestTrimProcs(t *testing.T) {
	for in, want := range map[string]string{
		"BenchmarkX-2":      "BenchmarkX",
		"BenchmarkX":        "BenchmarkX",
		"BenchmarkX/sub-16": "BenchmarkX/sub",
		"BenchmarkX-y":      "BenchmarkX-y",
	} {
		if got := trimProcs(in); got != want {
			t.Errorf("trimProcs(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestRateOverRoundsWeighsByTime(t *testing.T) {
	// 100 records at 100/s and 100 at 50/s: 200 records in 3 s.
	got := rateOverRounds([]int64{100, 100}, []float64{100, 50})
	if want := 200.0 / 3; got < want-1e-9 || got > want+1e-9 {
		t.Errorf("got %g, want %g", got, want)
	}
	if got := rateOverRounds([]int64{100}, []float64{0}); got != 0 {
		t.Errorf("a round without a rate gave %g, want 0", got)
	}
}

func TestThousands(t *testing.T) {
	for in, want := range map[float64]string{0: "-", 7.4: "7", 999.5: "1,000", 1234567: "1,234,567", 100000: "100,000"} {
		if got := thousands(in); got != want {
			t.Errorf("thousands(%g) = %q, want %q", in, got, want)
		}
	}
}

func TestSettingsNameTheBadFlag(t *testing.T) {
	for _, args := range [][]string{
		{"-records", "0"},
		{"-logical-queues", "0"},
		{"-payload-bytes", "0"},
		{"-endpoint-batch", "1001"},
		{"-rounds", "0"},
		{"-endpoint-max-duration", "0s"},
		{"-e2e-messages", "-1"},
	} {
		_, err := parseSettings(args)
		if err == nil || !strings.Contains(err.Error(), args[0]) {
			t.Errorf("%v: got %v, want an error naming %s", args, err, args[0])
		}
	}
	if _, err := parseSettings(nil); err != nil {
		t.Errorf("defaults: %v", err)
	}
}

func TestRequireLoopback(t *testing.T) {
	for _, u := range []string{"http://127.0.0.1:18091", "http://localhost:18091", "http://[::1]:18091"} {
		if err := requireLoopback(u); err != nil {
			t.Errorf("%s: %v", u, err)
		}
	}
	for _, u := range []string{"http://10.0.0.1:18091", "https://example.org", "http://0.0.0.0:1"} {
		if err := requireLoopback(u); err == nil {
			t.Errorf("%s was accepted", u)
		}
	}
}

func TestBatchBodyIsAValidBatch(t *testing.T) {
	body := batchBody("bench-x-b3", "x", 300, 100)
	var req endpointapi.BatchRequest
	if err := json.Unmarshal(body, &req); err != nil {
		t.Fatalf("body is not a batch: %v", err)
	}
	if req.BatchID != "bench-x-b3" || len(req.Messages) != 100 {
		t.Fatalf("batch %q with %d messages", req.BatchID, len(req.Messages))
	}
	if m := req.Messages[99]; m.Seq != 399 || m.LogicalQueue != "q-0399" || m.CorrelationID != "x-399" {
		t.Errorf("last message %+v", m)
	}
}

func TestFinalRecordFollowsTheContract(t *testing.T) {
	rec, err := finalRecord("run-7", 1234, 1000)
	if err != nil {
		t.Fatal(err)
	}
	var v finalValue
	if err := json.Unmarshal(rec.Value, &v); err != nil {
		t.Fatal(err)
	}
	// MD5("run-7:1234"), computed independently with md5sum.
	if v.CorrelationID != "40e71dae8aed315afbaec8963edd9cfe" {
		t.Errorf("correlation id %s", v.CorrelationID)
	}
	if string(rec.Key) != "q-0234" || v.LogicalQueue != "q-0234" || v.BatchNumber != 12 {
		t.Errorf("key %q value %+v", rec.Key, v)
	}
	headers := map[string]string{}
	for _, h := range rec.Headers {
		headers[h.Key] = string(h.Value)
	}
	want := map[string]string{"correlation.id": v.CorrelationID, "sending.id": v.SendingID, "logical.queue": "q-0234", "batch.number": "12"}
	for k, w := range want {
		if headers[k] != w {
			t.Errorf("header %s = %q, want %q", k, headers[k], w)
		}
	}
}

// producerOutput is ProducerPerformance's output as Kafka 4.1.1 printed it
// in a run of this benchmark.
const producerOutput = `Reading payloads from: /tmp/flowproof-bench.8sJQ0y/raw-payloads.txt
Number of messages read: 1000
50000 records sent, 46425.3 records/sec (11.63 MB/sec), 111.69 ms avg latency, 649.00 ms max latency, 110 ms 50th, 288 ms 95th, 295 ms 99th, 297 ms 99.9th.
`

func TestParseProducerTotal(t *testing.T) {
	got, err := parseProducerTotal(producerOutput)
	if err != nil {
		t.Fatal(err)
	}
	want := producerTotal{records: 50000, perSecond: 46425.3, mbPerSec: 11.63, avgMillis: 111.69, p50Millis: 110, p99Millis: 295}
	if got != want {
		t.Errorf("got %+v, want %+v", got, want)
	}
}

func TestParseProducerTotalSkipsProgressLines(t *testing.T) {
	// A progress line has no percentiles; only the final line counts.
	progress := "61234 records sent, 12246.8 records/sec (3.07 MB/sec), 20.5 ms avg latency, 300.0 ms max latency.\n"
	if _, err := parseProducerTotal(progress); err == nil {
		t.Error("a progress line alone was taken for the final line")
	}
	got, err := parseProducerTotal(progress + producerOutput)
	if err != nil || got.records != 50000 {
		t.Errorf("got %+v, %v", got, err)
	}
}

// consumerOutput is ConsumerPerformance's output as Kafka 4.1.1 printed it.
const consumerOutput = `start.time, end.time, data.consumed.in.MB, MB.sec, data.consumed.in.nMsg, nMsg.sec, rebalance.time.ms, fetch.time.ms, fetch.MB.sec, fetch.nMsg.sec
2026-11-27 17:37:16:985, 2026-11-27 17:37:17:811, 10.6448, 12.8872, 50000, 60532.6877, 434, 392, 27.1551, 127551.0204
`

func TestParseConsumerStats(t *testing.T) {
	got, err := parseConsumerStats(consumerOutput)
	if err != nil {
		t.Fatal(err)
	}
	want := consumerStats{messages: 50000, perSecond: 60532.6877, fetchPerSecond: 127551.0204, mbPerSec: 12.8872, rebalanceMs: 434}
	if got != want {
		t.Errorf("got %+v, want %+v", got, want)
	}
	if _, err := parseConsumerStats("WARN something went wrong\n"); err == nil {
		t.Error("output without results was accepted")
	}
}

func TestChunkMillisAt(t *testing.T) {
	cases := []struct {
		chunkSize int
		perSecond float64
		want      int64
	}{
		{10_000, 500_000, 20},
		{10_000, 450_000, 22},
		{10_000, 20_000_000, 1}, // under a millisecond: the tool's smallest interval
		{10_000, 0, 1},          // no idempotent round yet
	}
	for _, c := range cases {
		if got := chunkMillisAt(c.chunkSize, c.perSecond); got != c.want {
			t.Errorf("chunkMillisAt(%d, %.0f) = %d, want %d", c.chunkSize, c.perSecond, got, c.want)
		}
	}
}

func TestToolCommitsAfterAboutAChunk(t *testing.T) {
	idempotentOnly := produceRound{toolIdempotent: producerFigures{perSecond: 500_000}}
	if got := toolCommitMillis(10_000, nil, idempotentOnly); got != 20 {
		t.Errorf("round 1: every %d ms; want 20 (10,000 at the idempotent tool's 500,000/s)", got)
	}
	earlier := []produceRound{
		{toolTransactional: producerFigures{perSecond: 100_000}},
		{toolTransactional: producerFigures{perSecond: 250_000}},
	}
	if got := toolCommitMillis(10_000, earlier, idempotentOnly); got != 40 {
		t.Errorf("round 3: every %d ms; want 40 (10,000 at the last round's transactional 250,000/s)", got)
	}
}

func TestCPUMeterReadsProcessesAndTakesOffIdle(t *testing.T) {
	self, err := procfs.Self()
	if err != nil {
		t.Fatal(err)
	}
	// This process stands in for the brokers: its CPU shows on both sides.
	m := &cpuMeter{brokers: []procfs.Proc{self}}
	start, err := m.read()
	if err != nil {
		t.Fatal(err)
	}
	for {
		now, err := m.read()
		if err != nil {
			t.Fatal(err)
		}
		if now.self-start.self >= 100*time.Millisecond {
			break
		}
	}
	spent, err := m.since(start, true)
	if err != nil {
		t.Fatal(err)
	}
	if spent.client < 100*time.Millisecond || spent.brokers < 50*time.Millisecond {
		t.Errorf("after 100 ms of this process's CPU: %+v; want the client at 100 ms or more and the brokers (/proc's ticks) at 50 ms or more", spent)
	}
	if spent.brokers > spent.client+50*time.Millisecond {
		t.Errorf("brokers %s, more than the same process's own CPU %s", spent.brokers, spent.client)
	}

	m.brokersIdle = 100 // CPU seconds a second: more than anything spent
	if spent, err = m.since(start, false); err != nil {
		t.Fatal(err)
	}
	if spent.brokers != 0 {
		t.Errorf("brokers %s with an idle use above what was spent; want 0", spent.brokers)
	}
	if spent.client != 0 {
		t.Errorf("client %s with no child process run; want 0", spent.client)
	}
}

func TestIdleIsTheQuietestWindow(t *testing.T) {
	t0 := time.Date(2026, 12, 5, 5, 0, 0, 0, time.UTC)
	at := func(seconds float64, brokers time.Duration) cpuReading {
		return cpuReading{at: t0.Add(time.Duration(seconds * float64(time.Second))), brokers: brokers}
	}
	// Brokers still removing an earlier run's topics: 400 ms a second,
	// then 300, then quiet at 50 and 60.
	readings := []cpuReading{
		at(0, 0), at(1, 400*time.Millisecond), at(2, 700*time.Millisecond),
		at(3, 750*time.Millisecond), at(4, 810*time.Millisecond),
	}
	if got := lowestBrokerUse(readings); math.Abs(got-0.05) > 1e-9 {
		t.Errorf("idle use %v CPU s a second; want the quietest window's 0.05, not the mean (%v)", got, 0.81/4)
	}
	if got := lowestBrokerUse(readings[:1]); got != 0 {
		t.Errorf("idle use of a single reading = %v; want 0 (no window)", got)
	}
}
