//go:build integration

package produce

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/converter"

	"github.com/flowproof/flowproof/activities"
	"github.com/flowproof/flowproof/activities/internal/activitytest"
	"github.com/flowproof/flowproof/activities/kafkaadmin"
	"github.com/flowproof/flowproof/internal/kafkaeos"
)

// These tests run against the Kafka of the local stack (bin/stackctl up
// --only kafka). Every test uses topics of its own run id and deletes them.

const itPartitions = 12

// prepareRun creates the run's topics and deletes them when the test ends.
func prepareRun(t testing.TB, conn *kafkaeos.Conn, names activities.RunNames, partitions int) {
	t.Helper()
	in := kafkaadmin.PrepareTopicsInput{Names: names, Partitions: partitions, ReplicationFactor: 3}
	if _, err := kafkaadmin.CreateRunTopics(context.Background(), conn, in, activitytest.Discard); err != nil {
		t.Fatalf("prepare topics: %v", err)
	}
	activitytest.DeleteRunAtCleanup(t, conn, names)
}

func headerValue(r *kgo.Record, key string) []byte {
	for _, h := range r.Headers {
		if h.Key == key {
			return h.Value
		}
	}
	return nil
}

func sumOffsets(listed kadm.ListedOffsets, topic string) int64 {
	var sum int64
	for _, o := range listed[topic] {
		sum += o.Offset
	}
	return sum
}

func produceInput(names activities.RunNames, chunk int, count int, rate float64) ChunkInput {
	return ChunkInput{
		Names: names, Chunk: chunk, FirstSeq: int64(chunk) * int64(count), Count: count,
		LogicalQueues: 1000, PayloadBytes: 128, RatePerSecond: rate,
	}
}

// checkRawRecords checks that records are exactly seqs first..first+count-1,
// each once, following the contract, and that a logical queue stays in one
// partition.
func checkRawRecords(t *testing.T, names activities.RunNames, records []*kgo.Record, first int64, count int) {
	t.Helper()
	if len(records) != count {
		t.Errorf("%d committed records, want exactly %d", len(records), count)
	}
	seen := make(map[int64]int, count)
	queuePartition := map[string]int32{}
	for _, r := range records {
		var v rawValue
		if err := json.Unmarshal(r.Value, &v); err != nil {
			t.Fatalf("offset %d: value %q: %v", r.Offset, r.Value, err)
		}
		seen[v.Seq]++
		queue := logicalQueueName(v.Seq, 1000)
		header := headerValue(r, activities.HeaderLogicalQueue)
		if v.RunID != names.RunID || v.LogicalQueue != queue || string(r.Key) != queue || string(header) != queue || len(v.Payload) != 128 {
			t.Fatalf("record %d/%d does not follow the contract: key %q header %q value %s", r.Partition, r.Offset, r.Key, header, r.Value)
		}
		if _, err := time.Parse(time.RFC3339Nano, v.ProducedAt); err != nil || !strings.HasSuffix(v.ProducedAt, "Z") || len(v.ProducedAt) != len("2026-11-27T02:00:01.123456Z") {
			t.Fatalf("produced_at %q is not RFC 3339 UTC with microseconds", v.ProducedAt)
		}
		if p, ok := queuePartition[queue]; ok && p != r.Partition {
			t.Fatalf("queue %s in partitions %d and %d", queue, p, r.Partition)
		}
		queuePartition[queue] = r.Partition
	}
	for seq := first; seq < first+int64(count); seq++ {
		if seen[seq] != 1 {
			t.Fatalf("seq %d committed %d times, want once", seq, seen[seq])
		}
	}
}

func TestProduceChunkCommitsOnceAndSkipsWhenRetried(t *testing.T) {
	conn := activitytest.Conn(t)
	acts := newActivities(t, conn)
	names := activitytest.UniqueNames(t, "")
	prepareRun(t, conn, names, itPartitions)

	in := produceInput(names, 0, 10_000, 0)
	started := time.Now()
	res, err := activitytest.Execute[ChunkResult](t, activitytest.Env(acts), acts.ProduceChunk, in)
	wall := time.Since(started)
	if err != nil {
		t.Fatalf("ProduceChunk: %v", err)
	}
	if res.Produced != 10_000 || res.AlreadyCommitted {
		t.Fatalf("first attempt: %+v", res)
	}
	t.Logf("10,000-record chunk (unlimited rate): %d ms in the activity, %s wall, %.0f records/s",
		res.DurationMillis, wall.Round(time.Millisecond), 10_000/wall.Seconds())

	// The same chunk again, as after a lost activity result.
	again, err := activitytest.Execute[ChunkResult](t, activitytest.Env(acts), acts.ProduceChunk, in)
	if err != nil {
		t.Fatalf("retried ProduceChunk: %v", err)
	}
	if !again.AlreadyCommitted || again.Produced != 0 {
		t.Fatalf("retried attempt: %+v, want AlreadyCommitted and nothing produced", again)
	}

	checkRawRecords(t, names, activitytest.ConsumeCommitted(t, names.RawTopic, 10_000, 3*time.Second), 0, 10_000)
	// Besides the chunk, the ledger holds the run's owner and topic records.
	ledger := slices.DeleteFunc(activitytest.ConsumeCommitted(t, names.LedgerTopic, 1, 2*time.Second), func(r *kgo.Record) bool {
		return !strings.HasPrefix(string(r.Key), "chunk-")
	})
	if len(ledger) != 1 || string(ledger[0].Key) != "chunk-0" {
		t.Fatalf("ledger holds %d records, want one chunk-0", len(ledger))
	}
	var entry chunkLedgerEntry
	if err := json.Unmarshal(ledger[0].Value, &entry); err != nil || entry != (chunkLedgerEntry{Chunk: 0, FirstSeq: 0, Count: 10_000}) {
		t.Errorf("ledger entry %s (%v)", ledger[0].Value, err)
	}
}

func TestProduceChunkCancelledMidwayLeavesNothingAndRetryCommitsOnce(t *testing.T) {
	conn := activitytest.Conn(t)
	acts := newActivities(t, conn)
	names := activitytest.UniqueNames(t, "")
	prepareRun(t, conn, names, itPartitions)
	ctx := context.Background()

	// 10,000 at 4,000/s takes 2.5 s; cancel after 1.2 s.
	in := produceInput(names, 3, 10_000, 4_000)
	background, cancel := context.WithCancel(ctx)
	env := activitytest.EnvWithin(background, acts)
	var heartbeats []chunkProgress
	var mu sync.Mutex
	env.SetOnActivityHeartbeatListener(func(_ *activity.Info, details converter.EncodedValues) {
		var p chunkProgress
		if err := details.Get(&p); err == nil {
			mu.Lock()
			heartbeats = append(heartbeats, p)
			mu.Unlock()
		}
	})
	time.AfterFunc(1200*time.Millisecond, cancel)
	_, err := activitytest.Execute[ChunkResult](t, env, acts.ProduceChunk, in)
	if err == nil {
		t.Fatal("cancelled ProduceChunk returned no error")
	}
	t.Logf("cancelled attempt: %v", err)
	mu.Lock()
	if len(heartbeats) == 0 || heartbeats[len(heartbeats)-1].Sent == 0 || heartbeats[len(heartbeats)-1].Sent >= 10_000 {
		t.Errorf("heartbeats %+v; want progress part-way through the chunk", heartbeats)
	}
	mu.Unlock()

	// Records reached the log, but their transaction was aborted: the
	// high watermark moved, and the last stable offset catches up with it
	// as soon as the coordinator has written the abort markers (they are
	// written after EndTransaction returns) — not only when the
	// transaction timeout of a minute runs out.
	var written int64
	deadline := time.Now().Add(10 * time.Second)
	for {
		hwm, err := conn.Admin.ListEndOffsets(ctx, names.RawTopic)
		if err != nil {
			t.Fatal(err)
		}
		lso, err := conn.Admin.ListCommittedOffsets(ctx, names.RawTopic)
		if err != nil {
			t.Fatal(err)
		}
		written = sumOffsets(hwm, names.RawTopic)
		if written > 0 && sumOffsets(lso, names.RawTopic) == written {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("10 s after the cancelled attempt: %d offsets written, last stable offsets sum to %d; transaction not closed?", written, sumOffsets(lso, names.RawTopic))
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Logf("aborted attempt left %d offsets (records and abort markers) in the log", written)
	if visible := activitytest.ConsumeCommitted(t, names.RawTopic, 0, 3*time.Second); len(visible) != 0 {
		t.Fatalf("%d records of the aborted attempt are visible to read_committed", len(visible))
	}

	in.RatePerSecond = 0
	res, err := activitytest.Execute[ChunkResult](t, activitytest.Env(acts), acts.ProduceChunk, in)
	if err != nil {
		t.Fatalf("retry: %v", err)
	}
	if res.Produced != 10_000 || res.AlreadyCommitted {
		t.Fatalf("retry: %+v", res)
	}
	checkRawRecords(t, names, activitytest.ConsumeCommitted(t, names.RawTopic, 10_000, 3*time.Second), in.FirstSeq, 10_000)
}

func TestProduceChunkRetryFencesEarlierAttempt(t *testing.T) {
	conn := activitytest.Conn(t)
	acts := newActivities(t, conn)
	names := activitytest.UniqueNames(t, "")
	prepareRun(t, conn, names, itPartitions)

	// A slow first attempt that is still producing when the retry starts,
	// as when a worker stalls past its heartbeat timeout.
	slow := produceInput(names, 1, 10_000, 4_000)
	var slowErr error
	var slowRes ChunkResult
	done := make(chan struct{})
	go func() {
		defer close(done)
		slowRes, slowErr = activitytest.Execute[ChunkResult](t, activitytest.Env(acts), acts.ProduceChunk, slow)
	}()
	time.Sleep(800 * time.Millisecond)
	fast := slow
	fast.RatePerSecond = 0
	res, err := activitytest.Execute[ChunkResult](t, activitytest.Env(acts), acts.ProduceChunk, fast)
	if err != nil {
		t.Fatalf("retry: %v", err)
	}
	<-done
	if slowErr == nil {
		t.Fatalf("fenced first attempt succeeded: %+v", slowRes)
	}
	t.Logf("fenced attempt: %v", slowErr)
	if res.Produced != 10_000 {
		t.Fatalf("retry: %+v", res)
	}
	checkRawRecords(t, names, activitytest.ConsumeCommitted(t, names.RawTopic, 10_000, 3*time.Second), slow.FirstSeq, 10_000)
}

func TestProduceThroughputTenChunksTwoConcurrent(t *testing.T) {
	conn := activitytest.Conn(t)
	acts := newActivities(t, conn)
	names := activitytest.UniqueNames(t, "")
	prepareRun(t, conn, names, 100)

	const chunks, perChunk, concurrency = 10, 10_000, 2
	work := make(chan int, chunks)
	for c := range chunks {
		work <- c
	}
	close(work)
	started := time.Now()
	var wg sync.WaitGroup
	errs := make(chan error, chunks)
	for range concurrency {
		wg.Go(func() {
			for c := range work {
				res, err := activitytest.Execute[ChunkResult](t, activitytest.Env(acts), acts.ProduceChunk, produceInput(names, c, perChunk, 0))
				if err == nil && res.Produced != perChunk {
					err = fmt.Errorf("chunk %d: %+v", c, res)
				}
				if err != nil {
					errs <- err
				}
			}
		})
	}
	wg.Wait()
	wall := time.Since(started)
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	t.Logf("100,000 records in 10 chunks, 2 concurrent, 100 partitions: %s, %.0f records/s", wall.Round(time.Millisecond), chunks*perChunk/wall.Seconds())
	checkRawRecords(t, names, activitytest.ConsumeCommitted(t, names.RawTopic, chunks*perChunk, 3*time.Second), 0, chunks*perChunk)
}

// TestProduceChunkRetrySeesCommitBehindAnOpenTransaction forces the bad
// moment of a retried chunk: its earlier attempt committed, but another
// producer's transaction, begun on the ledger before that commit, is still
// open, so read_committed cannot see the chunk's ledger record yet. The
// retry must wait for that transaction to end instead of writing the chunk
// a second time; the transaction then commits or aborts.
func TestProduceChunkRetrySeesCommitBehindAnOpenTransaction(t *testing.T) {
	for _, end := range []kgo.TransactionEndTry{kgo.TryCommit, kgo.TryAbort} {
		name := map[kgo.TransactionEndTry]string{kgo.TryCommit: "commit", kgo.TryAbort: "abort"}[end]
		t.Run(name, func(t *testing.T) { retryBehindOpenTransaction(t, end) })
	}
}

func retryBehindOpenTransaction(t *testing.T, end kgo.TransactionEndTry) {
	conn := activitytest.Conn(t)
	acts := newActivities(t, conn)
	names := activitytest.UniqueNames(t, "")
	prepareRun(t, conn, names, itPartitions)
	ctx := context.Background()

	// Another chunk's transaction, open on the ledger.
	other := openLedgerTransaction(t, conn, names)

	in := produceInput(names, 4, 2_000, 0)
	first, err := activitytest.Execute[ChunkResult](t, activitytest.Env(acts), acts.ProduceChunk, in)
	if err != nil || first.Produced != 2_000 {
		t.Fatalf("first attempt: %+v, %v", first, err)
	}
	if lso, err := conn.Admin.ListCommittedOffsets(ctx, names.LedgerTopic); err != nil || lso[names.LedgerTopic][0].Offset >= ledgerEnd(t, conn, names) {
		t.Fatalf("the open transaction does not hold the ledger's last stable offset back (%v): the test would prove nothing", err)
	}

	// The retry, as after a lost result; the other transaction ends while
	// the retry runs.
	const endAfter = 3 * time.Second
	ended := make(chan error, 1)
	time.AfterFunc(endAfter, func() { ended <- other.EndTransaction(ctx, end) })
	started := time.Now()
	retry, err := activitytest.Execute[ChunkResult](t, activitytest.Env(acts), acts.ProduceChunk, in)
	if err != nil {
		t.Fatalf("retry: %v", err)
	}
	took := time.Since(started)
	if err := <-ended; err != nil {
		t.Fatalf("end the other transaction: %v", err)
	}
	if !retry.AlreadyCommitted || retry.Produced != 0 {
		t.Errorf("retry: %+v after %s; want AlreadyCommitted and nothing produced", retry, took.Round(time.Millisecond))
	}
	t.Logf("retry answered AlreadyCommitted=%v after %s (the other transaction ended after %s)", retry.AlreadyCommitted, took.Round(time.Millisecond), endAfter)
	checkRawRecords(t, names, activitytest.ConsumeCommitted(t, names.RawTopic, 2_000, 3*time.Second), in.FirstSeq, 2_000)
}

// openLedgerTransaction begins a transaction of another transactional
// producer that has written to the run's ledger, and leaves it open.
func openLedgerTransaction(t *testing.T, conn *kafkaeos.Conn, names activities.RunNames) *kgo.Client {
	t.Helper()
	producer, err := conn.NewClient(kgo.TransactionalID(names.RawTopic+".it-other"), kgo.TransactionTimeout(2*time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(producer.Close)
	ctx := context.Background()
	if err := producer.BeginTransaction(); err != nil {
		t.Fatal(err)
	}
	rec := &kgo.Record{Topic: names.LedgerTopic, Key: []byte("chunk-999999"), Value: []byte(`{"chunk":999999}`)}
	if err := producer.ProduceSync(ctx, rec).FirstErr(); err != nil {
		t.Fatalf("write to the ledger in the other transaction: %v", err)
	}
	return producer
}

func ledgerEnd(t *testing.T, conn *kafkaeos.Conn, names activities.RunNames) int64 {
	t.Helper()
	hwm, err := conn.Admin.ListEndOffsets(context.Background(), names.LedgerTopic)
	if err != nil {
		t.Fatal(err)
	}
	return hwm[names.LedgerTopic][0].Offset
}

// newActivities is the produce activity on conn, its writer closed when
// the test ends.
func newActivities(t *testing.T, conn *kafkaeos.Conn) *Activities {
	writer := NewWriter(conn)
	t.Cleanup(writer.Close)
	return New(writer)
}
