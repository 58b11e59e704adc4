//go:build integration

package activities

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/converter"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/testsuite"
	"go.temporal.io/sdk/worker"
	"go.uber.org/zap"

	"github.com/flowproof/flowproof/internal/localstack"
)

// These tests run against the Kafka of the local stack (bin/stackctl up
// --only kafka). Every test uses topics of its own run id and deletes them.

const itPartitions = 12

func kafkaActivities(t *testing.T) *Activities {
	t.Helper()
	acts, err := New(Config{KafkaBrokers: localstack.Default().KafkaBrokers}, zap.NewNop())
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(acts.Close)
	return acts
}

// itRunNames returns names no other test run uses.
func itRunNames(t *testing.T) RunNames {
	run := fmt.Sprintf("it-%s-%s", strings.ToLower(strings.TrimPrefix(t.Name(), "Test")), strconv.FormatInt(time.Now().UnixNano(), 36))
	run = strings.NewReplacer("/", "-", "_", "-").Replace(run)
	return testRunNames(run)
}

// activityEnv runs activities like a worker does, so heartbeats work. A
// non-nil background context is the parent of every activity context, which
// lets a test cancel an activity midway.
func activityEnv(acts *Activities, background context.Context) *testsuite.TestActivityEnvironment {
	var suite testsuite.WorkflowTestSuite
	env := suite.NewTestActivityEnvironment()
	// Close is not an activity; a worker registering *Activities needs the
	// same option.
	env.RegisterActivityWithOptions(acts, activity.RegisterOptions{SkipInvalidStructFunctions: true})
	if background != nil {
		env.SetWorkerOptions(worker.Options{BackgroundActivityContext: background})
	}
	return env
}

func execute[T any](t *testing.T, env *testsuite.TestActivityEnvironment, fn any, in any) (T, error) {
	t.Helper()
	var out T
	val, err := env.ExecuteActivity(fn, in)
	if err != nil {
		return out, err
	}
	if err := val.Get(&out); err != nil {
		t.Fatalf("decode activity result: %v", err)
	}
	return out, nil
}

// prepareRun creates the run's topics and deletes them when the test ends.
func prepareRun(t *testing.T, acts *Activities, names RunNames, partitions int) PrepareTopicsResult {
	t.Helper()
	res, err := execute[PrepareTopicsResult](t, activityEnv(acts, nil), acts.PrepareTopics,
		PrepareTopicsInput{Names: names, Partitions: partitions, ReplicationFactor: 3})
	if err != nil {
		t.Fatalf("PrepareTopics: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if err := acts.DeleteTopics(ctx, names); err != nil {
			t.Errorf("DeleteTopics: %v", err)
		}
	})
	return res
}

// consumeCommitted reads topic from the start with an ordinary read_committed
// kgo consumer (deliberately not committedReader, so the two check each
// other) until at least want records arrived and then nothing more for
// quiet.
func consumeCommitted(t *testing.T, topic string, want int, quiet time.Duration) []*kgo.Record {
	t.Helper()
	client, err := kgo.NewClient(
		kgo.SeedBrokers(localstack.Default().KafkaBrokers...),
		kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()),
	)
	if err != nil {
		t.Fatalf("consumer: %v", err)
	}
	defer client.Close()
	var records []*kgo.Record
	deadline := time.Now().Add(2 * time.Minute)
	for time.Now().Before(deadline) {
		ctx, cancel := context.WithTimeout(context.Background(), quiet)
		fetches := client.PollFetches(ctx)
		cancel()
		fetches.EachError(func(topic string, p int32, err error) {
			if !errors.Is(err, context.DeadlineExceeded) {
				t.Fatalf("consume %s/%d: %v", topic, p, err)
			}
		})
		n := 0
		fetches.EachRecord(func(r *kgo.Record) { records = append(records, r); n++ })
		if n == 0 && len(records) >= want {
			return records
		}
	}
	t.Fatalf("consume %s: %d records after 2 minutes, want %d", topic, len(records), want)
	return nil
}

func sumOffsets(listed kadm.ListedOffsets, topic string) int64 {
	var sum int64
	for _, o := range listed[topic] {
		sum += o.Offset
	}
	return sum
}

func TestPrepareTopicsIsIdempotent(t *testing.T) {
	acts := kafkaActivities(t)
	names := itRunNames(t)
	first := prepareRun(t, acts, names, itPartitions)
	if len(first.Created) != 5 || len(first.Existed) != 0 || first.Brokers != 3 {
		t.Fatalf("first PrepareTopics: %+v; want 5 created, 3 brokers", first)
	}
	env := activityEnv(acts, nil)
	second, err := execute[PrepareTopicsResult](t, env, acts.PrepareTopics, PrepareTopicsInput{Names: names, Partitions: itPartitions, ReplicationFactor: 3})
	if err != nil {
		t.Fatalf("second PrepareTopics: %v", err)
	}
	if len(second.Created) != 0 || len(second.Existed) != 5 {
		t.Fatalf("second PrepareTopics: %+v; want all 5 existed", second)
	}

	ctx := context.Background()
	details, err := acts.admin.ListTopics(ctx, names.Topics()...)
	if err != nil {
		t.Fatal(err)
	}
	for _, topic := range names.Topics() {
		want := itPartitions
		if topic == names.LedgerTopic {
			want = 1
		}
		d := details[topic]
		if d.Err != nil || len(d.Partitions) != want || len(d.Partitions[0].Replicas) != 3 {
			t.Errorf("%s: err %v, %d partitions (want %d), replicas %v", topic, d.Err, len(d.Partitions), want, d.Partitions[0].Replicas)
		}
	}
	configs, err := acts.admin.DescribeTopicConfigs(ctx, names.FinalTopic, names.LedgerTopic, names.RawTopic)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct{ topic, key, want string }{
		{names.FinalTopic, "message.timestamp.type", "LogAppendTime"},
		{names.LedgerTopic, "cleanup.policy", "compact"},
		{names.RawTopic, "message.timestamp.type", "CreateTime"},
		{names.RawTopic, "min.insync.replicas", "2"},
	} {
		rc, err := configs.On(c.topic, nil)
		if err != nil {
			t.Fatalf("configs of %s: %v", c.topic, err)
		}
		got := ""
		for _, kv := range rc.Configs {
			if kv.Key == c.key && kv.Value != nil {
				got = *kv.Value
			}
		}
		if got != c.want {
			t.Errorf("%s %s = %q, want %q", c.topic, c.key, got, c.want)
		}
	}

	// The same names with another partition count must not pass.
	_, err = execute[PrepareTopicsResult](t, env, acts.PrepareTopics, PrepareTopicsInput{Names: names, Partitions: itPartitions + 1, ReplicationFactor: 3})
	var appErr *temporal.ApplicationError
	if !errors.As(err, &appErr) || appErr.Type() != ErrTopicMismatch || !strings.Contains(err.Error(), names.RawTopic) {
		t.Errorf("mismatching partitions: got %v, want a %s error naming %s", err, ErrTopicMismatch, names.RawTopic)
	}

	// Deleting twice is fine; afterwards the topics are gone.
	for range 2 {
		if err := acts.DeleteTopics(ctx, names); err != nil {
			t.Fatalf("DeleteTopics: %v", err)
		}
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		details, err := freshTopicDetails(ctx, acts.kafka, names.Topics()...)
		if err == nil && !details.Has(names.RawTopic) && !details.Has(names.LedgerTopic) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("topics still listed 30 s after DeleteTopics: %v", details.Names())
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func produceInput(names RunNames, chunk int, count int, rate float64) ProduceChunkInput {
	return ProduceChunkInput{
		Names: names, Chunk: chunk, FirstSeq: int64(chunk) * int64(count), Count: count,
		LogicalQueues: 1000, PayloadBytes: 128, RatePerSecond: rate,
	}
}

// checkRawRecords checks that records are exactly seqs first..first+count-1,
// each once, following the contract, and that a logical queue stays in one
// partition.
func checkRawRecords(t *testing.T, names RunNames, records []*kgo.Record, first int64, count int) {
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
		header, _ := recordHeader(r, headerLogicalQueue)
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
	acts := kafkaActivities(t)
	names := itRunNames(t)
	prepareRun(t, acts, names, itPartitions)

	in := produceInput(names, 0, 10_000, 0)
	started := time.Now()
	res, err := execute[ProduceChunkResult](t, activityEnv(acts, nil), acts.ProduceChunk, in)
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
	again, err := execute[ProduceChunkResult](t, activityEnv(acts, nil), acts.ProduceChunk, in)
	if err != nil {
		t.Fatalf("retried ProduceChunk: %v", err)
	}
	if !again.AlreadyCommitted || again.Produced != 0 {
		t.Fatalf("retried attempt: %+v, want AlreadyCommitted and nothing produced", again)
	}

	checkRawRecords(t, names, consumeCommitted(t, names.RawTopic, 10_000, 3*time.Second), 0, 10_000)
	ledger := consumeCommitted(t, names.LedgerTopic, 1, 2*time.Second)
	if len(ledger) != 1 || string(ledger[0].Key) != "chunk-0" {
		t.Fatalf("ledger holds %d records, want one chunk-0", len(ledger))
	}
	var entry chunkLedgerEntry
	if err := json.Unmarshal(ledger[0].Value, &entry); err != nil || entry != (chunkLedgerEntry{Chunk: 0, FirstSeq: 0, Count: 10_000}) {
		t.Errorf("ledger entry %s (%v)", ledger[0].Value, err)
	}
}

func TestProduceChunkCancelledMidwayLeavesNothingAndRetryCommitsOnce(t *testing.T) {
	acts := kafkaActivities(t)
	names := itRunNames(t)
	prepareRun(t, acts, names, itPartitions)
	ctx := context.Background()

	// 10,000 at 4,000/s takes 2.5 s; cancel after 1.2 s.
	in := produceInput(names, 3, 10_000, 4_000)
	background, cancel := context.WithCancel(ctx)
	env := activityEnv(acts, background)
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
	_, err := execute[ProduceChunkResult](t, env, acts.ProduceChunk, in)
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
		hwm, err := acts.admin.ListEndOffsets(ctx, names.RawTopic)
		if err != nil {
			t.Fatal(err)
		}
		lso, err := acts.admin.ListCommittedOffsets(ctx, names.RawTopic)
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
	if visible := consumeCommitted(t, names.RawTopic, 0, 3*time.Second); len(visible) != 0 {
		t.Fatalf("%d records of the aborted attempt are visible to read_committed", len(visible))
	}

	in.RatePerSecond = 0
	res, err := execute[ProduceChunkResult](t, activityEnv(acts, nil), acts.ProduceChunk, in)
	if err != nil {
		t.Fatalf("retry: %v", err)
	}
	if res.Produced != 10_000 || res.AlreadyCommitted {
		t.Fatalf("retry: %+v", res)
	}
	checkRawRecords(t, names, consumeCommitted(t, names.RawTopic, 10_000, 3*time.Second), in.FirstSeq, 10_000)
}

func TestProduceChunkRetryFencesEarlierAttempt(t *testing.T) {
	acts := kafkaActivities(t)
	names := itRunNames(t)
	prepareRun(t, acts, names, itPartitions)

	// A slow first attempt that is still producing when the retry starts,
	// as when a worker stalls past its heartbeat timeout.
	slow := produceInput(names, 1, 10_000, 4_000)
	var slowErr error
	var slowRes ProduceChunkResult
	done := make(chan struct{})
	go func() {
		defer close(done)
		slowRes, slowErr = execute[ProduceChunkResult](t, activityEnv(acts, nil), acts.ProduceChunk, slow)
	}()
	time.Sleep(800 * time.Millisecond)
	fast := slow
	fast.RatePerSecond = 0
	res, err := execute[ProduceChunkResult](t, activityEnv(acts, nil), acts.ProduceChunk, fast)
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
	checkRawRecords(t, names, consumeCommitted(t, names.RawTopic, 10_000, 3*time.Second), slow.FirstSeq, 10_000)
}

func TestProduceThroughputTenChunksTwoConcurrent(t *testing.T) {
	acts := kafkaActivities(t)
	names := itRunNames(t)
	prepareRun(t, acts, names, 100)

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
				res, err := execute[ProduceChunkResult](t, activityEnv(acts, nil), acts.ProduceChunk, produceInput(names, c, perChunk, 0))
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
	checkRawRecords(t, names, consumeCommitted(t, names.RawTopic, chunks*perChunk, 3*time.Second), 0, chunks*perChunk)
}

func TestPollLag(t *testing.T) {
	acts := kafkaActivities(t)
	names := itRunNames(t)
	prepareRun(t, acts, names, itPartitions)
	if _, err := execute[ProduceChunkResult](t, activityEnv(acts, nil), acts.ProduceChunk, produceInput(names, 0, 10_000, 0)); err != nil {
		t.Fatalf("ProduceChunk: %v", err)
	}
	ctx := context.Background()

	// Records per partition, from a consumer; the chunk was one
	// transaction, so each partition holds its records at offsets 0..n-1
	// and one commit marker at n.
	perPartition := map[int32]int64{}
	for _, r := range consumeCommitted(t, names.RawTopic, 10_000, 2*time.Second) {
		perPartition[r.Partition]++
	}
	markers := int64(len(perPartition))

	// Three groups, all on the raw topic: enrich has consumed half of every
	// partition, split all of partition 0 (marker included) and nothing
	// else, and deliver does not exist.
	enrich, split := kadm.Offsets{}, kadm.Offsets{}
	var enrichConsumed int64
	for p, n := range perPartition {
		enrich.AddOffset(names.RawTopic, p, n/2, -1)
		enrichConsumed += n / 2
	}
	split.AddOffset(names.RawTopic, 0, perPartition[0]+1, -1)
	for group, offsets := range map[string]kadm.Offsets{names.EnrichGroup: enrich, names.SplitGroup: split} {
		resp, err := acts.admin.CommitOffsets(ctx, group, offsets)
		if err == nil {
			err = resp.Error()
		}
		if err != nil {
			t.Fatalf("commit offsets of %s: %v", group, err)
		}
		t.Cleanup(func() { _, _ = acts.admin.DeleteGroup(context.Background(), group) })
	}

	lagNames := names
	lagNames.EnrichedTopic, lagNames.ResponsesTopic = names.RawTopic, names.RawTopic
	sample, err := execute[LagSample](t, activityEnv(acts, nil), acts.PollLag, PollLagInput{Names: lagNames})
	if err != nil {
		t.Fatalf("PollLag: %v", err)
	}
	wantEnrich := 10_000 - enrichConsumed + markers
	wantDeliver := 10_000 + markers
	wantSplit := 10_000 - perPartition[0] + markers - 1
	if sample.Enrich != wantEnrich || sample.Deliver != wantDeliver || sample.Split != wantSplit {
		t.Errorf("lag enrich %d deliver %d split %d; want %d %d %d", sample.Enrich, sample.Deliver, sample.Split, wantEnrich, wantDeliver, wantSplit)
	}
	if age := time.Since(time.UnixMilli(sample.AtUnixMillis)); age < 0 || age > time.Minute {
		t.Errorf("sample time %d is %s old", sample.AtUnixMillis, age)
	}

	// The real topics of the run: enriched and responses are empty.
	sample, err = execute[LagSample](t, activityEnv(acts, nil), acts.PollLag, PollLagInput{Names: names})
	if err != nil {
		t.Fatalf("PollLag: %v", err)
	}
	if sample.Enrich != wantEnrich || sample.Deliver != 0 || sample.Split != 0 {
		t.Errorf("lag on the run's topics: %+v", sample)
	}
}

// writeFinal writes records for seqs to the run's final topic as the split
// job does: in a transaction, headers and value per the contract.
func writeFinal(t *testing.T, names RunNames, seqs []int64, commit bool) {
	t.Helper()
	client, err := kgo.NewClient(
		kgo.SeedBrokers(localstack.Default().KafkaBrokers...),
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
		queue := logicalQueueName(seq, 1000)
		value := finalValue{
			RunID: names.RunID, Seq: seq, LogicalQueue: queue,
			ProducedAt:    time.Now().Add(-50 * time.Millisecond).UTC().Format(producedAtLayout),
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
				{Key: headerCorrelationID, Value: []byte(value.CorrelationID)},
				{Key: headerSendingID, Value: []byte(value.SendingID)},
				{Key: headerLogicalQueue, Value: []byte(queue)},
				{Key: headerBatchNumber, Value: []byte(strconv.FormatInt(value.BatchNumber, 10))},
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
	acts := kafkaActivities(t)
	names := itRunNames(t)
	prepareRun(t, acts, names, itPartitions)
	const n = 2000
	writeFinal(t, names, seqRange(0, n/2), true)
	// An aborted transaction in between repeats seqs; read_committed must
	// not see it.
	writeFinal(t, names, seqRange(0, 100), false)
	writeFinal(t, names, seqRange(n/2, n), true)

	res, err := execute[VerifyResult](t, activityEnv(acts, nil), acts.Verify, VerifyInput{Names: names, Messages: n, IdleTimeoutMillis: 10_000})
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
	if v.Headers[headerCorrelationID] != correlationID(names.RunID, 0) || v.Headers[headerBatchNumber] != "0" || v.Key != "q-0000" || v.ArrivedAt == "" {
		t.Errorf("first view %+v", v)
	}
	// Verify stops once everything is there, not at the idle timeout.
	if res.DurationMillis >= 10_000 {
		t.Errorf("verification took %d ms; it should end when all messages are seen", res.DurationMillis)
	}
	t.Logf("verify of %d records: %d ms, latency %+v", n, res.DurationMillis, res.Latency)
}

func TestVerifyReportsDuplicateAndMissing(t *testing.T) {
	acts := kafkaActivities(t)
	names := itRunNames(t)
	prepareRun(t, acts, names, itPartitions)
	const n = 2000
	seqs := append(seqRange(0, 5), seqRange(6, n)...) // 5 is missing
	writeFinal(t, names, seqs, true)
	writeFinal(t, names, []int64{7}, true) // 7 arrives twice

	idle := int64(2000)
	res, err := execute[VerifyResult](t, activityEnv(acts, nil), acts.Verify, VerifyInput{Names: names, Messages: n, IdleTimeoutMillis: idle})
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
	acts := kafkaActivities(t)
	names := itRunNames(t)
	prepareRun(t, acts, names, 100)
	const n = 200_000
	for from := int64(0); from < n; from += 50_000 {
		writeFinal(t, names, seqRange(from, from+50_000), true)
	}
	started := time.Now()
	res, err := execute[VerifyResult](t, activityEnv(acts, nil), acts.Verify, VerifyInput{Names: names, Messages: n, IdleTimeoutMillis: 10_000})
	wall := time.Since(started)
	if err != nil {
		t.Fatalf("Verify: %v", err)
	}
	if !res.Passed() {
		t.Fatalf("not passed: %+v", res.Problems)
	}
	t.Logf("verify of %d records over 100 partitions: %s, %.0f records/s", n, wall.Round(time.Millisecond), n/wall.Seconds())
}
