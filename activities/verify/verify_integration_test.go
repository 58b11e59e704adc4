//go:build integration

package verify

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/flowproof/flowproof/activities"
	"github.com/flowproof/flowproof/activities/internal/activitytest"
	"github.com/flowproof/flowproof/activities/kafkaadmin"
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
}

// writeFinal writes records for seqs to the run's final topic as the split
// job does: in a transaction, headers and value per the contract.
func writeFinal(t *testing.T, names activities.RunNames, seqs []int64, commit bool) {
	t.Helper()
	client, err := kgo.NewClient(
		kgo.SeedBrokers(localstack.FromEnv().KafkaBrokers...),
		kgo.TransactionalID(names.FinalTopic+".test-writer"),
		kgo.MaxBufferedRecords(len(seqs)+1),
	)
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	ctx := context.Background()
	if err := client.BeginTransaction(); err != nil {
		t.Fatal(err)
	}
	var firstErr error
	var once sync.Once
	for _, seq := range seqs {
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
		client.Produce(ctx, &kgo.Record{
			Topic: names.FinalTopic, Key: []byte(queue), Value: encoded,
			Headers: []kgo.RecordHeader{
				{Key: activities.HeaderCorrelationID, Value: []byte(value.CorrelationID)},
				{Key: activities.HeaderSendingID, Value: []byte(value.SendingID)},
				{Key: activities.HeaderLogicalQueue, Value: []byte(queue)},
				{Key: activities.HeaderBatchNumber, Value: []byte(strconv.FormatInt(value.BatchNumber, 10))},
			},
		}, func(_ *kgo.Record, err error) {
			if err != nil {
				once.Do(func() { firstErr = err })
			}
		})
	}
	if err := client.Flush(ctx); err != nil || firstErr != nil {
		t.Fatalf("flush: %v %v", err, firstErr)
	}
	if err := client.EndTransaction(ctx, kgo.TransactionEndTry(commit)); err != nil {
		t.Fatalf("end transaction (commit %v): %v", commit, err)
	}
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
	names := activitytest.UniqueNames(t, "")
	prepareRun(t, conn, names, itPartitions)
	const n = 2000
	writeFinal(t, names, seqRange(0, n/2), true)
	// An aborted transaction in between repeats seqs; read_committed must
	// not see it.
	writeFinal(t, names, seqRange(0, 100), false)
	writeFinal(t, names, seqRange(n/2, n), true)

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
	// Verify stops once everything is there, not at the idle timeout.
	if res.DurationMillis >= 10_000 {
		t.Errorf("verification took %d ms; it should end when all messages are seen", res.DurationMillis)
	}
	t.Logf("verify of %d records: %d ms, latency %+v", n, res.DurationMillis, res.Latency)
}

func TestVerifyReportsDuplicateAndMissing(t *testing.T) {
	conn := activitytest.Conn(t)
	acts := New(conn)
	names := activitytest.UniqueNames(t, "")
	prepareRun(t, conn, names, itPartitions)
	const n = 2000
	seqs := append(seqRange(0, 5), seqRange(6, n)...) // 5 is missing
	writeFinal(t, names, seqs, true)
	writeFinal(t, names, []int64{7}, true) // 7 arrives twice

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
	if res.DurationMillis < idle {
		t.Errorf("verification ended after %d ms, before the idle timeout of %d ms", res.DurationMillis, idle)
	}
	t.Logf("problems: %q", res.Problems)
}

func TestVerifyThroughput(t *testing.T) {
	conn := activitytest.Conn(t)
	acts := New(conn)
	names := activitytest.UniqueNames(t, "")
	prepareRun(t, conn, names, 100)
	const n = 200_000
	for from := int64(0); from < n; from += 50_000 {
		writeFinal(t, names, seqRange(from, from+50_000), true)
	}
	started := time.Now()
	res, err := activitytest.Execute[Result](t, activitytest.Env(acts), acts.Verify, Input{Names: names, Messages: n, IdleTimeoutMillis: 10_000})
	wall := time.Since(started)
	if err != nil {
		t.Fatalf("Verify: %v", err)
	}
	if !res.Passed() {
		t.Fatalf("not passed: %+v", res.Problems)
	}
	t.Logf("verify of %d records over 100 partitions: %s, %.0f records/s", n, wall.Round(time.Millisecond), n/wall.Seconds())
}
