package activities

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/temporal"
	"go.uber.org/zap"
	"golang.org/x/time/rate"
)

// Header and field names of the message contract (docs/message-contract.md).
const (
	headerLogicalQueue  = "logical.queue"
	headerCorrelationID = "correlation.id"
	headerSendingID     = "sending.id"
	headerBatchNumber   = "batch.number"

	// producedAtLayout is RFC 3339 with exactly six fractional digits, so
	// every produced_at has the same width and sorts as text.
	producedAtLayout = "2006-01-02T15:04:05.000000Z07:00"
)

// Limits that keep a chunk inside one Kafka transaction.
const (
	// maxTransactionTimeout is the broker's default
	// transaction.max.timeout.ms; a longer timeout is refused by
	// InitProducerID.
	maxTransactionTimeout = 15 * time.Minute
	// minTransactionTimeout leaves room for a slow flush and commit even
	// for a chunk that is produced in a blink.
	minTransactionTimeout = time.Minute
	// endTransactionTimeout bounds a commit or abort, which must not be
	// cut short by the activity's cancellation.
	endTransactionTimeout = time.Minute
	maxPayloadBytes       = 1 << 20

	producerMaxBufferedRecords = 50_000
	producerMaxBufferedBytes   = 256 << 20
	// recordBlockSize is how many kgo.Records are allocated at once; a
	// block is garbage once the producer is done with all of its records.
	recordBlockSize = 1024
)

// logicalQueueName is the logical queue of seq: q- plus seq mod queues,
// zero-padded to four digits.
func logicalQueueName(seq int64, queues int) string {
	return fmt.Sprintf("q-%04d", seq%int64(queues))
}

// chunkTransactionalID derives a chunk's transactional id from the run (its
// raw topic) and the chunk number. A retried attempt uses the same id, so its
// InitProducerID fences the earlier attempt and aborts whatever that attempt
// left open.
func chunkTransactionalID(names RunNames, chunk int) string {
	return names.RawTopic + ".chunk-" + strconv.Itoa(chunk)
}

// chunkLedgerKey is the ledger record key that marks chunk as committed.
func chunkLedgerKey(chunk int) string { return "chunk-" + strconv.Itoa(chunk) }

// chunkLedgerEntry is the ledger record value; the key alone decides, the
// value is there for a person reading the topic.
type chunkLedgerEntry struct {
	Chunk    int   `json:"chunk"`
	FirstSeq int64 `json:"first_seq"`
	Count    int   `json:"count"`
}

// rawValue is the JSON value of a raw record.
type rawValue struct {
	RunID        string `json:"run_id"`
	Seq          int64  `json:"seq"`
	LogicalQueue string `json:"logical_queue"`
	ProducedAt   string `json:"produced_at"`
	Payload      string `json:"payload"`
}

// rawValueEncoder writes raw values without encoding/json: the run id and the
// payload are the same for every record of a run, so they are encoded once,
// and a record costs a few appends into a caller-provided buffer.
type rawValueEncoder struct {
	prefix []byte // {"run_id":"...","seq":
	suffix []byte // ","payload":"..."}
}

func newRawValueEncoder(runID string, payloadBytes int) rawValueEncoder {
	// json.Marshal of a string cannot fail; it escapes whatever a run id
	// holds.
	quotedRunID, _ := json.Marshal(runID)
	prefix := make([]byte, 0, len(`{"run_id":,"seq":`)+len(quotedRunID))
	prefix = append(prefix, `{"run_id":`...)
	prefix = append(prefix, quotedRunID...)
	prefix = append(prefix, `,"seq":`...)

	suffix := make([]byte, 0, len(`","payload":""}`)+payloadBytes)
	suffix = append(suffix, `","payload":"`...)
	suffix = appendPayloadFiller(suffix, payloadBytes)
	suffix = append(suffix, `"}`...)
	return rawValueEncoder{prefix: prefix, suffix: suffix}
}

// appendPayloadFiller appends n bytes of filler that needs no JSON escaping.
func appendPayloadFiller(dst []byte, n int) []byte {
	const alphabet = "abcdefghijklmnopqrstuvwxyz0123456789"
	for i := range n {
		dst = append(dst, alphabet[i%len(alphabet)])
	}
	return dst
}

// maxLen is an upper bound of an encoded value whose logical queue name has
// queueLen bytes.
func (e rawValueEncoder) maxLen(queueLen int) int {
	const seqDigits = 20
	return len(e.prefix) + seqDigits + len(`,"logical_queue":"`) + queueLen +
		len(`","produced_at":"`) + len(producedAtLayout) + 8 + len(e.suffix)
}

// appendValue appends the value of message seq. logicalQueue must not need
// JSON escaping (queue names are q- and digits).
func (e rawValueEncoder) appendValue(dst []byte, seq int64, logicalQueue string, producedAt time.Time) []byte {
	dst = append(dst, e.prefix...)
	dst = strconv.AppendInt(dst, seq, 10)
	dst = append(dst, `,"logical_queue":"`...)
	dst = append(dst, logicalQueue...)
	dst = append(dst, `","produced_at":"`...)
	dst = producedAt.UTC().AppendFormat(dst, producedAtLayout)
	dst = append(dst, e.suffix...)
	return dst
}

// valueSlab hands out value buffers carved from large blocks, so a chunk
// allocates one block per few thousand records instead of one per record.
// A value stays referenced by its record until the producer is done with it;
// the block is only garbage once every value in it is.
type valueSlab struct {
	block []byte
	size  int
}

func (s *valueSlab) next(maxLen int) []byte {
	if cap(s.block)-len(s.block) < maxLen {
		s.block = make([]byte, 0, max(s.size, maxLen))
	}
	return s.block[len(s.block):len(s.block)]
}

// commit records that the last buffer from next now holds value.
func (s *valueSlab) commit(value []byte) []byte {
	s.block = s.block[:len(s.block)+len(value)]
	return value[:len(value):len(value)]
}

// chunkCounters count a chunk's records as they are handed to the producer
// and acknowledged by Kafka; the heartbeat reads them.
type chunkCounters struct {
	sent, acked atomic.Int64
}

// chunkProgress is the heartbeat detail of ProduceChunk.
type chunkProgress struct {
	Chunk int   `json:"chunk"`
	Sent  int64 `json:"sent"`
	Acked int64 `json:"acked"`
}

func validateProduceChunk(in ProduceChunkInput) error {
	switch {
	case in.Names.RawTopic == "":
		return invalidInput("names.raw_topic is empty")
	case in.Names.LedgerTopic == "":
		return invalidInput("names.ledger_topic is empty")
	case in.Chunk < 0:
		return invalidInput(fmt.Sprintf("chunk is %d; want 0 or more", in.Chunk))
	case in.FirstSeq < 0:
		return invalidInput(fmt.Sprintf("first_seq is %d; want 0 or more", in.FirstSeq))
	case in.Count < 1:
		return invalidInput(fmt.Sprintf("count is %d; want at least 1", in.Count))
	case in.LogicalQueues < 1:
		return invalidInput(fmt.Sprintf("logical_queues is %d; want at least 1", in.LogicalQueues))
	case in.PayloadBytes < 0 || in.PayloadBytes > maxPayloadBytes:
		return invalidInput(fmt.Sprintf("payload_bytes is %d; want 0 to %d", in.PayloadBytes, maxPayloadBytes))
	case in.RatePerSecond < 0:
		return invalidInput(fmt.Sprintf("rate_per_second is %g; want 0 (unlimited) or more", in.RatePerSecond))
	}
	if in.RatePerSecond > 0 {
		if expected := time.Duration(float64(in.Count) / in.RatePerSecond * float64(time.Second)); expected > maxTransactionTimeout/2 {
			return invalidInput(fmt.Sprintf("count %d at rate_per_second %g takes %s, longer than a Kafka transaction may stay open (%s); use smaller chunks",
				in.Count, in.RatePerSecond, expected.Round(time.Second), maxTransactionTimeout/2))
		}
	}
	return nil
}

// transactionTimeout is how long the broker lets the chunk's transaction
// stay open before aborting it: twice the expected duration, so a slow
// broker does not abort a healthy chunk, and short enough that an attempt
// whose worker died does not hold back read_committed readers for long
// (the retry fences it anyway).
func transactionTimeout(in ProduceChunkInput) time.Duration {
	timeout := minTransactionTimeout
	if in.RatePerSecond > 0 {
		expected := time.Duration(float64(in.Count) / in.RatePerSecond * float64(time.Second))
		timeout = max(timeout, 2*expected+30*time.Second)
	}
	return min(timeout, maxTransactionTimeout)
}

func invalidInput(msg string) error {
	return temporal.NewNonRetryableApplicationError(msg, "InvalidInput", nil)
}

// ProduceChunk writes messages FirstSeq .. FirstSeq+Count-1 to the raw topic
// and the chunk's ledger record in one Kafka transaction.
//
// Exactly-once across retries works like this: the attempt first claims the
// chunk's transactional id (which fences an earlier attempt and lets the
// broker finish or abort that attempt's transaction), then reads the ledger
// up to its last stable offset. If the chunk is there, an earlier attempt
// committed and only its result was lost, so this attempt writes nothing.
// Claiming before reading matters: read first, and an earlier attempt could
// still commit between the read and this attempt's own commit.
func (a *Activities) ProduceChunk(ctx context.Context, in ProduceChunkInput) (ProduceChunkResult, error) {
	if err := validateProduceChunk(in); err != nil {
		return ProduceChunkResult{}, err
	}
	started := time.Now()
	txnID := chunkTransactionalID(in.Names, in.Chunk)
	log := a.log.With(zap.String("topic", in.Names.RawTopic), zap.Int("chunk", in.Chunk), zap.Int64("first_seq", in.FirstSeq), zap.Int("count", in.Count))

	// Heartbeats start before the transactional id is claimed: claiming
	// waits while the broker aborts an earlier attempt's transaction.
	var progress chunkCounters
	stopHeartbeat := heartbeatEvery(ctx, time.Second, func() any {
		return chunkProgress{Chunk: in.Chunk, Sent: progress.sent.Load(), Acked: progress.acked.Load()}
	})
	defer stopHeartbeat()

	producer, err := a.newClient(
		kgo.TransactionalID(txnID),
		kgo.TransactionTimeout(transactionTimeout(in)),
		kgo.RequiredAcks(kgo.AllISRAcks()),
		kgo.RecordPartitioner(chunkPartitioner()),
		// Produce blocks while this much is unacknowledged, which bounds
		// a chunk's memory whatever its Count and payload size.
		kgo.MaxBufferedRecords(producerMaxBufferedRecords),
		kgo.MaxBufferedBytes(producerMaxBufferedBytes),
	)
	if err != nil {
		return ProduceChunkResult{}, fmt.Errorf("chunk %d: %w", in.Chunk, err)
	}
	defer producer.Close()

	if _, _, err := producer.ProducerID(ctx); err != nil {
		return ProduceChunkResult{}, fmt.Errorf("chunk %d: claim transactional id %s: %w", in.Chunk, txnID, err)
	}
	committed, err := a.ledgerHasChunk(ctx, in.Names.LedgerTopic, in.Chunk)
	if err != nil {
		return ProduceChunkResult{}, fmt.Errorf("chunk %d: read ledger %s: %w", in.Chunk, in.Names.LedgerTopic, err)
	}
	if committed {
		log.Info("chunk was committed by an earlier attempt; nothing written")
		return ProduceChunkResult{AlreadyCommitted: true, DurationMillis: time.Since(started).Milliseconds()}, nil
	}

	if err := producer.BeginTransaction(); err != nil {
		return ProduceChunkResult{}, fmt.Errorf("chunk %d: begin transaction: %w", in.Chunk, err)
	}
	produced, produceErr := a.produceChunkRecords(ctx, producer, in, &progress)
	if produceErr != nil {
		abortErr := abortTransaction(ctx, producer)
		log.Warn("chunk aborted", zap.Error(produceErr), zap.NamedError("abort_error", abortErr))
		if ctx.Err() != nil {
			return ProduceChunkResult{}, ctx.Err()
		}
		if abortErr != nil {
			return ProduceChunkResult{}, fmt.Errorf("chunk %d: produce: %w (and the abort failed: %v)", in.Chunk, produceErr, abortErr)
		}
		return ProduceChunkResult{}, fmt.Errorf("chunk %d: produce (transaction aborted): %w", in.Chunk, produceErr)
	}
	// Cancelling a commit midway would leave its outcome unknown (the
	// franz-go documentation warns against it), so the commit gets its own
	// bounded context.
	commitCtx, cancelCommit := context.WithTimeout(context.WithoutCancel(ctx), endTransactionTimeout)
	defer cancelCommit()
	if err := producer.EndTransaction(commitCtx, kgo.TryCommit); err != nil {
		// The commit may or may not have happened; the retry reads the
		// ledger to find out. Aborting here fences whatever is left open.
		if abortErr := abortTransaction(ctx, producer); abortErr != nil {
			return ProduceChunkResult{}, fmt.Errorf("chunk %d: commit: %w (and the abort afterwards failed: %v)", in.Chunk, err, abortErr)
		}
		return ProduceChunkResult{}, fmt.Errorf("chunk %d: commit failed, transaction aborted: %w", in.Chunk, err)
	}
	result := ProduceChunkResult{Produced: produced, DurationMillis: time.Since(started).Milliseconds()}
	log.Info("chunk committed", zap.Int("produced", produced), zap.Int64("duration_ms", result.DurationMillis))
	return result, nil
}

// abortTransaction aborts the open transaction of producer. It must finish
// even when ctx was cancelled (that is the usual reason to abort), so it uses
// a context of its own with a bound.
func abortTransaction(ctx context.Context, producer *kgo.Client) error {
	abortCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), endTransactionTimeout)
	defer cancel()
	bufErr := producer.AbortBufferedRecords(abortCtx)
	endErr := producer.EndTransaction(abortCtx, kgo.TryAbort)
	return errors.Join(bufErr, endErr)
}

// chunkPartitioner spreads a chunk's records over partitions the way
// Kafka's default partitioner does (murmur2 of the key), so a logical queue
// lands in the same partition whoever produces it. It is named here because
// warmupGroups computes partitions with it too.
func chunkPartitioner() kgo.Partitioner { return kgo.StickyKeyPartitioner(nil) }

// warmupGroup is the first records of a chunk that go to one broker.
type warmupGroup struct {
	leader int32
	seqs   []int64
}

// warmupGroups picks, for every partition of the raw topic that the chunk
// writes to, the first seq of the chunk that lands there, and groups them by
// the partition's leader (in ascending leader order).
//
// Why: with transactions (Kafka 4's transaction.version 2), the first write
// to a partition makes its broker add the partition to the transaction at
// the coordinator; when brokers do that concurrently, the coordinator answers
// CONCURRENT_TRANSACTIONS and the producer backs off for up to a second per
// retry — measured at seconds per chunk with 100 partitions. Opening the
// partitions one broker at a time avoids the collisions.
//
// Each picked seq is the first of its logical queue within the chunk (only
// the first min(Count, LogicalQueues) seqs are candidates), so sending it
// ahead of the rest keeps every queue in seq order.
func warmupGroups(in ProduceChunkInput, leaders map[int32]int32) []warmupGroup {
	partitions := len(leaders)
	if partitions == 0 {
		return nil
	}
	partitionOf := chunkPartitioner().ForTopic(in.Names.RawTopic)
	picked := make(map[int32]bool, partitions)
	byLeader := map[int32][]int64{}
	var record kgo.Record
	for i := 0; i < min(in.Count, in.LogicalQueues) && len(picked) < partitions; i++ {
		seq := in.FirstSeq + int64(i)
		record.Key = []byte(logicalQueueName(seq, in.LogicalQueues))
		partition := int32(partitionOf.Partition(&record, partitions))
		if picked[partition] {
			continue
		}
		picked[partition] = true
		leader := leaders[partition]
		byLeader[leader] = append(byLeader[leader], seq)
	}
	groups := make([]warmupGroup, 0, len(byLeader))
	for leader, seqs := range byLeader {
		groups = append(groups, warmupGroup{leader: leader, seqs: seqs})
	}
	slices.SortFunc(groups, func(a, b warmupGroup) int { return int(a.leader - b.leader) })
	return groups
}

// partitionLeaders returns the leader of every partition of topic.
func (a *Activities) partitionLeaders(ctx context.Context, topic string) (map[int32]int32, error) {
	details, err := freshTopicDetails(ctx, a.kafka, topic)
	if err != nil {
		return nil, fmt.Errorf("metadata of %s: %w", topic, err)
	}
	detail := details[topic]
	if detail.Err != nil {
		return nil, fmt.Errorf("metadata of %s: %w", topic, detail.Err)
	}
	if len(detail.Partitions) == 0 {
		return nil, fmt.Errorf("metadata of %s: no partitions (does the topic exist?)", topic)
	}
	leaders := make(map[int32]int32, len(detail.Partitions))
	for _, p := range detail.Partitions {
		leaders[p.Partition] = p.Leader
	}
	return leaders, nil
}

// produceChunkRecords hands the chunk's records and its ledger record to the
// producer and returns how many messages it handed over. It returns the
// first produce error (or the context's) and leaves committing to the
// caller.
func (a *Activities) produceChunkRecords(ctx context.Context, producer *kgo.Client, in ProduceChunkInput, progress *chunkCounters) (int, error) {
	rawLeaders, err := a.partitionLeaders(ctx, in.Names.RawTopic)
	if err != nil {
		return 0, err
	}
	ledgerLeaders, err := a.partitionLeaders(ctx, in.Names.LedgerTopic)
	if err != nil {
		return 0, err
	}

	var (
		firstErr error
		errOnce  sync.Once
		failed   atomic.Bool
	)
	promise := func(_ *kgo.Record, err error) {
		if err != nil {
			errOnce.Do(func() { firstErr = err })
			failed.Store(true)
			return
		}
		progress.acked.Add(1)
	}

	// pace lets records pass at RatePerSecond, a tenth of a second's worth
	// at a time, which keeps the rate smooth without a limiter call per
	// record.
	pace := func() error { return nil }
	if in.RatePerSecond > 0 {
		step := max(1, min(int(in.RatePerSecond/10), in.Count))
		limiter := rate.NewLimiter(rate.Limit(in.RatePerSecond), step)
		// The bucket starts full; drain it so the first step is paced too.
		limiter.AllowN(time.Now(), step)
		allowance := 0
		pace = func() error {
			if allowance == 0 {
				if err := limiter.WaitN(ctx, step); err != nil {
					return err
				}
				allowance = step
			}
			allowance--
			return nil
		}
	}

	// Seqs that share a logical queue share a slot: they differ by a
	// multiple of the queue count (with fewer seqs than queues, none
	// share). Names and headers are built once per queue and shared by its
	// records; the producer does not modify them.
	queueNames := make([]string, min(in.LogicalQueues, in.Count))
	queueHeaders := make([][]kgo.RecordHeader, len(queueNames))
	encoder := newRawValueEncoder(in.Names.RunID, in.PayloadBytes)
	maxValueLen := encoder.maxLen(len(logicalQueueName(int64(in.LogicalQueues-1), in.LogicalQueues)))
	slab := valueSlab{size: max(256<<10, 64*maxValueLen)}
	var records []kgo.Record

	produce := func(seq int64) error {
		if failed.Load() {
			return firstErr
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		if err := pace(); err != nil {
			return err
		}
		slot := int((seq - in.FirstSeq) % int64(len(queueNames)))
		if queueNames[slot] == "" {
			queueNames[slot] = logicalQueueName(seq, in.LogicalQueues)
			queueHeaders[slot] = []kgo.RecordHeader{{Key: headerLogicalQueue, Value: []byte(queueNames[slot])}}
		}
		if len(records) == 0 {
			records = make([]kgo.Record, recordBlockSize)
		}
		rec := &records[0]
		records = records[1:]
		rec.Topic = in.Names.RawTopic
		rec.Key = queueHeaders[slot][0].Value
		rec.Headers = queueHeaders[slot]
		producedAt := time.Now()
		rec.Timestamp = producedAt
		rec.Value = slab.commit(encoder.appendValue(slab.next(maxValueLen), seq, queueNames[slot], producedAt))
		producer.Produce(ctx, rec, promise)
		progress.sent.Add(1)
		return nil
	}

	ledgerValue, err := json.Marshal(chunkLedgerEntry{Chunk: in.Chunk, FirstSeq: in.FirstSeq, Count: in.Count})
	if err != nil {
		return 0, fmt.Errorf("encode ledger entry: %w", err)
	}
	ledgerErr := make(chan error, 1)
	produceLedger := func() {
		producer.Produce(ctx, &kgo.Record{Topic: in.Names.LedgerTopic, Key: []byte(chunkLedgerKey(in.Chunk)), Value: ledgerValue},
			func(_ *kgo.Record, err error) { ledgerErr <- err })
	}

	// Open the transaction's partitions one broker at a time (see
	// warmupGroups); the ledger's partition goes with its leader's group.
	warm := make(map[int64]bool)
	ledgerSent := false
	for _, group := range warmupGroups(in, rawLeaders) {
		for _, seq := range group.seqs {
			if err := produce(seq); err != nil {
				return int(progress.sent.Load()), err
			}
			warm[seq] = true
		}
		if !ledgerSent && group.leader == ledgerLeaders[0] {
			produceLedger()
			ledgerSent = true
		}
		if err := producer.Flush(ctx); err != nil {
			return int(progress.sent.Load()), err
		}
	}
	if !ledgerSent {
		produceLedger()
	}

	for i := range in.Count {
		seq := in.FirstSeq + int64(i)
		if warm[seq] {
			continue
		}
		if err := produce(seq); err != nil {
			return int(progress.sent.Load()), err
		}
	}
	if err := producer.Flush(ctx); err != nil {
		return int(progress.sent.Load()), err
	}
	if failed.Load() {
		return int(progress.sent.Load()), firstErr
	}
	if err := <-ledgerErr; err != nil {
		return int(progress.sent.Load()), fmt.Errorf("ledger record: %w", err)
	}
	return int(progress.sent.Load()), nil
}

// heartbeatEvery records a heartbeat with details() every interval until the
// returned stop is called. Heartbeating from its own goroutine keeps the
// activity alive while the producer blocks on a full buffer.
//
// Outside an activity (a tool or test calling the method directly) there is
// nobody to heartbeat to, and it does nothing.
func heartbeatEvery(ctx context.Context, interval time.Duration, details func() any) (stop func()) {
	if !activity.IsActivity(ctx) {
		return func() {}
	}
	done := make(chan struct{})
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		ticker := time.NewTicker(interval)
		defer ticker.Stop()
		for {
			select {
			case <-done:
				return
			case <-ctx.Done():
				return
			case <-ticker.C:
				activity.RecordHeartbeat(ctx, details())
			}
		}
	}()
	return func() {
		close(done)
		<-finished
	}
}

// ledgerHasChunk reads the ledger topic up to its last stable offset and
// reports whether chunk's ledger record is there, i.e. whether a transaction
// that wrote chunk committed.
func (a *Activities) ledgerHasChunk(ctx context.Context, ledgerTopic string, chunk int) (bool, error) {
	reader, err := newCommittedReader(ctx, a.kafka, a.admin, ledgerTopic)
	if err != nil {
		return false, err
	}
	key := chunkLedgerKey(chunk)
	found := false
	for !found && !reader.caughtUp() {
		if _, err := reader.fetchRound(ctx, 0, true, func(rec *kgo.Record) {
			if string(rec.Key) == key {
				found = true
			}
		}); err != nil {
			return false, err
		}
	}
	return found, nil
}
