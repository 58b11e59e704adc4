//go:build integration

package verify

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"go.uber.org/zap"

	"github.com/flowproof/flowproof/activities"
	"github.com/flowproof/flowproof/activities/internal/activitytest"
	"github.com/flowproof/flowproof/activities/kafkaadmin"
	"github.com/flowproof/flowproof/deploy/refsvc/endpoint"
	"github.com/flowproof/flowproof/deploy/refsvc/tokens"
	"github.com/flowproof/flowproof/internal/endpointapi"
	"github.com/flowproof/flowproof/internal/kafkaeos"
	"github.com/flowproof/flowproof/internal/localstack"
)

// These tests run against the Kafka of the local stack (bin/stackctl up
// --only kafka). Every test uses topics of its own run id and deletes them.

const itPartitions = 12

// prepareRun creates the run's topics and deletes them when the test ends.
func prepareRun(t *testing.T, conn *kafkaeos.Conn, names activities.RunNames, partitions int) {
	t.Helper()
	in := kafkaadmin.PrepareTopicsInput{Names: names, Partitions: partitions, ReplicationFactor: 3}
	if _, err := kafkaadmin.CreateRunTopics(context.Background(), conn, in, activitytest.Discard); err != nil {
		t.Fatalf("prepare topics: %v", err)
	}
	activitytest.DeleteRunAtCleanup(t, conn, names)
	// Until Prepare creates the accepted topic, the test does.
	created, err := conn.Admin.CreateTopic(context.Background(), int32(partitions), 3, nil, names.AcceptedTopic)
	if err != nil && !errors.Is(err, kerr.TopicAlreadyExists) {
		t.Fatalf("create %s: %v", names.AcceptedTopic, err)
	}
	if created.Err != nil && !errors.Is(created.Err, kerr.TopicAlreadyExists) {
		t.Fatalf("create %s: %v", names.AcceptedTopic, created.Err)
	}
}

// writeFinal writes records for seqs to the run's final topic as the split
// job does: in a transaction, headers and value per the contract.
func writeFinal(t *testing.T, names activities.RunNames, seqs []int64, commit bool) {
	t.Helper()
	records := make([]*kgo.Record, len(seqs))
	for i, seq := range seqs {
		queue := fmt.Sprintf("q-%04d", seq%1000)
		value := finalValue{
			RunID: names.RunID, Seq: seq, LogicalQueue: queue,
			ProducedAt:    time.Now().Add(-50 * time.Millisecond).UTC().Format(activities.ProducedAtLayout),
			CorrelationID: correlationID(names.RunID, seq),
			SendingID:     fmt.Sprintf("send-%d", seq), BatchNumber: seq / 100,
		}
		encoded, err := json.Marshal(value)
		if err != nil {
			t.Fatal(err)
		}
		records[i] = &kgo.Record{
			Topic: names.FinalTopic, Key: []byte(queue), Value: encoded,
			Headers: []kgo.RecordHeader{
				{Key: activities.HeaderCorrelationID, Value: []byte(value.CorrelationID)},
				{Key: activities.HeaderSendingID, Value: []byte(value.SendingID)},
				{Key: activities.HeaderLogicalQueue, Value: []byte(queue)},
				{Key: activities.HeaderBatchNumber, Value: []byte(strconv.FormatInt(value.BatchNumber, 10))},
			},
		}
	}
	writeRecords(t, names.FinalTopic+".test-writer", records, commit)
}

// writeRecords writes records in one transaction of transactionalID, or,
// without one, as plain idempotent writes.
func writeRecords(t *testing.T, transactionalID string, records []*kgo.Record, commit bool) {
	t.Helper()
	opts := []kgo.Opt{kgo.SeedBrokers(localstack.FromEnv().KafkaBrokers...), kgo.MaxBufferedRecords(len(records) + 1)}
	if transactionalID != "" {
		opts = append(opts, kgo.TransactionalID(transactionalID))
	}
	client, err := kgo.NewClient(opts...)
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	ctx := context.Background()
	if transactionalID != "" {
		if err := client.BeginTransaction(); err != nil {
			t.Fatal(err)
		}
	}
	var firstErr error
	var once sync.Once
	for _, rec := range records {
		client.Produce(ctx, rec, func(_ *kgo.Record, err error) {
			if err != nil {
				once.Do(func() { firstErr = err })
			}
		})
	}
	if err := client.Flush(ctx); err != nil || firstErr != nil {
		t.Fatalf("flush: %v %v", err, firstErr)
	}
	if transactionalID == "" {
		return
	}
	if err := client.EndTransaction(ctx, kgo.TransactionEndTry(commit)); err != nil {
		t.Fatalf("end transaction (commit %v): %v", commit, err)
	}
}

// writeMessages writes seqs to the raw topic as the producer does or, with
// enriched, to the enriched topic as the enrich job does.
func writeMessages(t *testing.T, names activities.RunNames, seqs []int64, enriched, commit bool) {
	t.Helper()
	topic := names.RawTopic
	if enriched {
		topic = names.EnrichedTopic
	}
	records := make([]*kgo.Record, len(seqs))
	for i, seq := range seqs {
		queue := fmt.Sprintf("q-%04d", seq%1000)
		value := fmt.Sprintf(`{"run_id":%q,"seq":%d,"logical_queue":%q,"produced_at":%q,"payload":"0123456789"`,
			names.RunID, seq, queue, time.Now().UTC().Format(activities.ProducedAtLayout))
		headers := []kgo.RecordHeader{{Key: activities.HeaderLogicalQueue, Value: []byte(queue)}}
		if enriched {
			id := correlationID(names.RunID, seq)
			value += fmt.Sprintf(`,"correlation_id":%q`, id)
			headers = append(headers, kgo.RecordHeader{Key: activities.HeaderCorrelationID, Value: []byte(id)})
		}
		records[i] = &kgo.Record{Topic: topic, Key: []byte(queue), Value: []byte(value + "}"), Headers: headers}
	}
	writeRecords(t, topic+".test-writer", records, commit)
}

// acceptedBatches cuts seqs into batches of size with the delivery's batch
// ids, as if they came from partition 0 at offsets equal to the seqs.
func acceptedBatches(runID string, seqs []int64, size int) []activities.AcceptedBatch {
	var batches []activities.AcceptedBatch
	for from := 0; from < len(seqs); from += size {
		part := seqs[from:min(from+size, len(seqs))]
		batches = append(batches, activities.AcceptedBatch{
			BatchID: fmt.Sprintf("%s-p0-o%d-%d", runID, part[0], part[len(part)-1]),
			Seqs:    part, AcceptedAtUnixMillis: time.Now().UnixMilli(),
		})
	}
	return batches
}

// writeAccepted writes batches to the accepted topic as delivery does:
// one record each, keyed by the batch id, outside any transaction.
func writeAccepted(t *testing.T, names activities.RunNames, batches []activities.AcceptedBatch) {
	t.Helper()
	records := make([]*kgo.Record, len(batches))
	for i, b := range batches {
		value, err := json.Marshal(b)
		if err != nil {
			t.Fatal(err)
		}
		records[i] = &kgo.Record{Topic: names.AcceptedTopic, Key: []byte(b.BatchID), Value: value}
	}
	writeRecords(t, "", records, true)
}

// writeRun writes a complete run of n messages to every hop: raw, enriched,
// accepted (batches of 100) and final, in writes of at most 50,000.
func writeRun(t *testing.T, names activities.RunNames, n int64) {
	t.Helper()
	for from := int64(0); from < n; from += 50_000 {
		seqs := seqRange(from, min(from+50_000, n))
		writeMessages(t, names, seqs, false, true)
		writeMessages(t, names, seqs, true, true)
		writeAccepted(t, names, acceptedBatches(names.RunID, seqs, 100))
		writeFinal(t, names, seqs, true)
	}
}

// runNames are the test's names with an accepted topic.
func runNames(t *testing.T) activities.RunNames {
	names := activitytest.UniqueNames(t, "")
	if names.AcceptedTopic == "" {
		names.AcceptedTopic = strings.TrimSuffix(names.RawTopic, "raw") + "accepted"
	}
	return names
}

func seqRange(from, to int64) []int64 {
	seqs := make([]int64, 0, to-from)
	for s := from; s < to; s++ {
		seqs = append(seqs, s)
	}
	return seqs
}

func TestVerifyPassesACompleteRun(t *testing.T) {
	conn := activitytest.Conn(t)
	acts := New(conn)
	names := runNames(t)
	prepareRun(t, conn, names, itPartitions)
	const n = 2000
	writeFinal(t, names, seqRange(0, n/2), true)
	// An aborted transaction in between repeats seqs; read_committed must
	// not see it, on the final topic nor on the others.
	writeFinal(t, names, seqRange(0, 100), false)
	writeFinal(t, names, seqRange(n/2, n), true)
	writeMessages(t, names, seqRange(0, n), false, true)
	writeMessages(t, names, seqRange(0, 100), false, false)
	writeMessages(t, names, seqRange(0, n), true, true)
	writeAccepted(t, names, acceptedBatches(names.RunID, seqRange(0, n), 100))

	res, err := activitytest.Execute[Result](t, activitytest.Env(acts), acts.Verify, Input{Names: names, Messages: n, IdleTimeoutMillis: 10_000})
	if err != nil {
		t.Fatalf("Verify: %v", err)
	}
	if !res.Passed() || res.Records != n || res.Unique != n || len(res.Problems) != 0 {
		t.Fatalf("complete run: passed %v records %d unique %d problems %q", res.Passed(), res.Records, res.Unique, res.Problems)
	}
	// produced_at was 50 ms before the write, and the broker stamped the
	// arrival: the latency is at least that, and not minutes.
	if res.Latency.P50 < 50 || res.Latency.Max > 30_000 || res.Latency.P99 < res.Latency.P50 {
		t.Errorf("latency %+v", res.Latency)
	}
	if len(res.First) != 10 || res.First[0].Seq != 0 || len(res.Last) != 10 || res.Last[9].Seq != n-1 {
		t.Fatalf("views: first %v last %v", viewSeqs(res.First), viewSeqs(res.Last))
	}
	v := res.First[0]
	if v.Headers[activities.HeaderCorrelationID] != correlationID(names.RunID, 0) || v.Headers[activities.HeaderBatchNumber] != "0" || v.Key != "q-0000" || v.ArrivedAt == "" {
		t.Errorf("first view %+v", v)
	}
	if got := hopNames(res.Hops); !slices.Equal(got, []string{HopRaw, HopEnriched, HopEndpoint, HopFinal}) {
		t.Errorf("hops %v", got)
	}
	for _, h := range res.Hops {
		if !h.Exact(n) || h.Skipped || h.Records != n {
			t.Errorf("hop %+v is not exact", h)
		}
	}
	// Verify stops once everything is there, not at the idle timeout.
	if res.DurationMillis >= 10_000 {
		t.Errorf("verification took %d ms; it should end when all messages are seen", res.DurationMillis)
	}
	t.Logf("verify of %d records: %d ms, latency %+v", n, res.DurationMillis, res.Latency)
}

func TestVerifyReportsDuplicateAndMissing(t *testing.T) {
	conn := activitytest.Conn(t)
	acts := New(conn)
	names := runNames(t)
	prepareRun(t, conn, names, itPartitions)
	const n = 2000
	seqs := append(seqRange(0, 5), seqRange(6, n)...) // 5 is missing
	writeFinal(t, names, seqs, true)
	writeFinal(t, names, []int64{7}, true) // 7 arrives twice
	writeMessages(t, names, seqRange(0, n), false, true)
	writeMessages(t, names, seqRange(0, n), true, true)
	writeAccepted(t, names, acceptedBatches(names.RunID, seqRange(0, n), 100))

	idle := int64(2000)
	res, err := activitytest.Execute[Result](t, activitytest.Env(acts), acts.Verify, Input{Names: names, Messages: n, IdleTimeoutMillis: idle})
	if err != nil {
		t.Fatalf("Verify: %v", err)
	}
	if res.Passed() {
		t.Fatal("run with a duplicate and a missing message passed")
	}
	if res.Records != n || res.Unique != n-1 || res.Missing != 1 || res.Duplicates != 1 || res.DuplicateCorrelationIDs != 1 || res.BadRecords != 0 {
		t.Errorf("records %d unique %d missing %d duplicates %d dup ids %d bad %d",
			res.Records, res.Unique, res.Missing, res.Duplicates, res.DuplicateCorrelationIDs, res.BadRecords)
	}
	if len(res.FirstMissing) != 1 || res.FirstMissing[0] != 5 {
		t.Errorf("first missing %v, want [5]", res.FirstMissing)
	}
	if !slices.Equal(res.FailedHops(), []string{HopFinal}) {
		t.Errorf("failed hops %v, want [final]", res.FailedHops())
	}
	if res.DurationMillis < idle {
		t.Errorf("verification ended after %d ms, before the idle timeout of %d ms", res.DurationMillis, idle)
	}
	t.Logf("problems: %q", res.Problems)
}

// TestVerifyThroughput measures a run of 200,000 messages (or
// $FLOWPROOF_IT_VERIFY_MESSAGES): the final topic alone (what Verify read
// before it counted every hop) and every hop.
func TestVerifyThroughput(t *testing.T) {
	conn := activitytest.Conn(t)
	acts := New(conn)
	names := runNames(t)
	prepareRun(t, conn, names, 100)
	n := int64(200_000)
	if env := os.Getenv("FLOWPROOF_IT_VERIFY_MESSAGES"); env != "" {
		var err error
		if n, err = strconv.ParseInt(env, 10, 64); err != nil || n < 1 {
			t.Fatalf("FLOWPROOF_IT_VERIFY_MESSAGES=%q is not a message count", env)
		}
	}
	writeRun(t, names, n)
	in := Input{Names: names, Messages: n, IdleTimeoutMillis: 10_000}

	started := time.Now()
	finalOnly, err := FinalTopic(context.Background(), conn, in, activities.Reporter{Log: activitytest.Discard})
	finalWall := time.Since(started)
	if err != nil || !finalOnly.Passed() {
		t.Fatalf("final topic: %v, %q", err, finalOnly.Problems)
	}
	started = time.Now()
	res, err := activitytest.Execute[Result](t, activitytest.Env(acts), acts.Verify, in)
	wall := time.Since(started)
	if err != nil {
		t.Fatalf("Verify: %v", err)
	}
	if !res.Passed() || len(res.Hops) != 4 {
		t.Fatalf("not passed: %d hops, %q", len(res.Hops), res.Problems)
	}
	t.Logf("verify of %d messages over 100 partitions: final topic only %s (%.0f records/s); every hop (%d records) %s, %.0f records/s",
		n, finalWall.Round(time.Millisecond), float64(n)/finalWall.Seconds(), 4*n, wall.Round(time.Millisecond), float64(4*n)/wall.Seconds())
}

// inProcessEndpoint is the reference endpoint, in this process, so that a
// test controls what it accepted for a run.
type inProcessEndpoint struct {
	url   string
	token string
}

func startReferenceEndpoint(t *testing.T) inProcessEndpoint {
	t.Helper()
	key := []byte("0123456789abcdef0123456789abcdef")
	// The endpoint keeps its store in the stack's Redis, under a prefix of
	// this test's own whose keys expire soon after it.
	password, err := localstack.RedisPassword(localstack.StackDir())
	if err != nil {
		t.Fatalf("redis password (bin/stackctl up --only redis): %v", err)
	}
	client := redis.NewClient(&redis.Options{Addr: localstack.RedisAddress(), Password: password})
	t.Cleanup(func() { _ = client.Close() })
	handler, ep, err := endpoint.NewHandler(endpoint.Config{
		SigningKey: key, Redis: client, IdempotencyTTL: 10 * time.Minute,
		KeyPrefix: "it-verify-" + strconv.FormatInt(time.Now().UnixNano(), 36) + ":",
	}, prometheus.NewRegistry(), zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ep.Close() })
	server := httptest.NewServer(handler)
	t.Cleanup(server.Close)
	token, _, err := tokens.Sign(key, "flowproof", time.Now(), time.Hour, 1_000_000)
	if err != nil {
		t.Fatal(err)
	}
	return inProcessEndpoint{url: server.URL, token: token}
}

// send has the endpoint accept batches, as delivery would send them.
func (e inProcessEndpoint) send(t *testing.T, runID string, batches []activities.AcceptedBatch) {
	t.Helper()
	for _, b := range batches {
		req := endpointapi.BatchRequest{BatchID: b.BatchID}
		for _, seq := range b.Seqs {
			req.Messages = append(req.Messages, endpointapi.Message{CorrelationID: correlationID(runID, seq), Seq: seq, LogicalQueue: "q"})
		}
		body, err := json.Marshal(req)
		if err != nil {
			t.Fatal(err)
		}
		httpReq, err := http.NewRequest(http.MethodPost, e.url+endpointapi.BatchesPath, bytes.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		httpReq.Header.Set("Authorization", "Bearer "+e.token)
		httpReq.Header.Set(endpointapi.IdempotencyKeyHeader, b.BatchID)
		resp, err := http.DefaultClient.Do(httpReq)
		if err != nil {
			t.Fatal(err)
		}
		_ = resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("batch %s: HTTP %d", b.BatchID, resp.StatusCode)
		}
	}
}

// TestVerifyNamesTheHopWithADuplicate writes small runs by hand, clean or
// with a duplicate at exactly one hop, and checks that the verdict passes
// or fails naming that hop; the reference endpoint's own count agrees.
func TestVerifyNamesTheHopWithADuplicate(t *testing.T) {
	const n = 1000
	cases := []struct {
		name      string
		duplicate func(t *testing.T, names activities.RunNames) []activities.AcceptedBatch
		failedHop string // empty: the run passes
	}{
		{"clean", func(*testing.T, activities.RunNames) []activities.AcceptedBatch { return nil }, ""},
		{"endpoint", func(_ *testing.T, names activities.RunNames) []activities.AcceptedBatch {
			// A retried segment cut seqs 150..249 at other bounds: the
			// endpoint accepted them again under another batch id.
			again := acceptedBatches(names.RunID, seqRange(150, 250), 100)
			again[0].Attempt = 2
			return again
		}, HopEndpoint},
		{"endpoint replayed", func(_ *testing.T, names activities.RunNames) []activities.AcceptedBatch {
			// A retry answered from the idempotency store is no duplicate.
			replayed := acceptedBatches(names.RunID, seqRange(100, 200), 100)
			replayed[0].Replayed, replayed[0].Attempt = true, 2
			return replayed
		}, ""},
		{"raw", func(t *testing.T, names activities.RunNames) []activities.AcceptedBatch {
			writeMessages(t, names, seqRange(500, 510), false, true) // a chunk written twice
			return nil
		}, HopRaw},
	}
	conn := activitytest.Conn(t)
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			names := runNames(t)
			prepareRun(t, conn, names, itPartitions)
			reference := startReferenceEndpoint(t)
			acts, err := New(conn).CrossCheckWith(reference.url)
			if err != nil {
				t.Fatal(err)
			}
			batches := acceptedBatches(names.RunID, seqRange(0, n), 100)
			writeMessages(t, names, seqRange(0, n), false, true)
			writeMessages(t, names, seqRange(0, n), true, true)
			writeFinal(t, names, seqRange(0, n), true)
			batches = append(batches, c.duplicate(t, names)...)
			writeAccepted(t, names, batches)
			reference.send(t, names.RunID, batches)

			res, err := activitytest.Execute[Result](t, activitytest.Env(acts), acts.Verify, Input{Names: names, Messages: n, IdleTimeoutMillis: 5_000})
			if err != nil {
				t.Fatalf("Verify: %v", err)
			}
			if len(res.Hops) != 5 {
				t.Fatalf("%d hops, want raw, enriched, endpoint, its own count and final: %+v", len(res.Hops), res.Hops)
			}
			for _, h := range res.Hops {
				t.Logf("%-20s records %5d unique %5d missing %d duplicated %3d bad %d %s %s", h.Hop, h.Records, h.Unique, h.Missing, h.Duplicated, h.BadRecords, h.Verdict(n), h.Note)
			}
			want := []string(nil)
			if c.failedHop != "" {
				want = []string{c.failedHop}
				if c.failedHop == HopEndpoint {
					want = append(want, HopEndpointOwnCount) // the endpoint counted the same duplicates
				}
			}
			if got := res.FailedHops(); !slices.Equal(got, want) || res.Passed() != (c.failedHop == "") {
				t.Fatalf("failed hops %v (passed %v), want %v; problems %q", got, res.Passed(), want, res.Problems)
			}
			if c.failedHop != "" && !strings.HasPrefix(res.Problems[0], "hop "+c.failedHop+" ") {
				t.Errorf("first problem %q does not name hop %s", res.Problems[0], c.failedHop)
			}
			own := res.Hops[3]
			if own.Hop != HopEndpointOwnCount || own.Skipped || !strings.Contains(own.Note, "agrees with the accepted topic") {
				t.Errorf("endpoint's own count %+v", own)
			}
		})
	}
}
