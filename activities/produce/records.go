package produce

import (
	"context"
	"encoding/json"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"golang.org/x/time/rate"

	"github.com/flowproof/flowproof/activities"
	"github.com/flowproof/flowproof/internal/kafkaeos"
)

// chunkWriter hands one chunk's records to a transactional producer. Names
// and headers are built once per logical queue and shared by its records
// (the producer does not modify them); values are carved from slabs and
// records from blocks, so a record costs a few appends.
type chunkWriter struct {
	producer *kgo.Client
	in       ChunkInput
	progress *chunkCounters
	pace     func(context.Context) error

	// first keeps the first failed record's error and aborts the buffered
	// rest; failed lets the writer stop without waiting for it.
	first  *kgo.FirstErrPromise
	failed atomic.Bool

	// Seqs that share a logical queue share a slot: they differ by a
	// multiple of the queue count (with fewer seqs than queues, none share).
	queueNames   []string
	queueHeaders [][]kgo.RecordHeader
	encoder      rawValueEncoder
	maxValueLen  int
	slab         valueSlab
	records      []kgo.Record
}

func newChunkWriter(producer *kgo.Client, in ChunkInput, progress *chunkCounters) *chunkWriter {
	encoder := newRawValueEncoder(in.Names.RunID, in.PayloadBytes)
	maxValueLen := encoder.maxLen(len(logicalQueueName(int64(in.LogicalQueues-1), in.LogicalQueues)))
	queues := min(in.LogicalQueues, in.Count)
	return &chunkWriter{
		producer:     producer,
		in:           in,
		progress:     progress,
		pace:         pacer(in, &progress.paced),
		first:        kgo.AbortingFirstErrPromise(producer),
		queueNames:   make([]string, queues),
		queueHeaders: make([][]kgo.RecordHeader, queues),
		encoder:      encoder,
		maxValueLen:  maxValueLen,
		slab:         valueSlab{size: max(256<<10, 64*maxValueLen)},
	}
}

// addChunkPartitions adds the partitions the chunk's records go to, and
// the ledger's, to the producer's open transaction: the transaction's first
// request to its coordinator.
func addChunkPartitions(ctx context.Context, kafka *kafkaeos.Conn, producer *kgo.Client, in ChunkInput) error {
	partitions, err := chunkPartitions(ctx, kafka, in)
	if err != nil {
		return err
	}
	return kafkaeos.AddPartitionsToTxn(ctx, producer, in.transactionalID(), partitions)
}

// writeChunkRecords hands the producer the chunk's ledger record and its
// messages in seq order, and returns how many messages it handed over. It
// returns the first produce error (or the context's) and leaves committing
// to the caller.
func writeChunkRecords(ctx context.Context, producer *kgo.Client, in ChunkInput, progress *chunkCounters) (int, error) {
	w := newChunkWriter(producer, in, progress)
	if err := w.produceLedger(ctx); err != nil {
		return 0, err
	}
	err := w.produceAll(ctx)
	return int(progress.sent.Load()), err
}

// produceAll produces every seq of the chunk, flushes, and returns the first
// error of any record.
func (w *chunkWriter) produceAll(ctx context.Context) error {
	for i := range w.in.Count {
		if err := w.produce(ctx, w.in.FirstSeq+int64(i)); err != nil {
			return err
		}
	}
	if err := w.producer.Flush(ctx); err != nil {
		return err
	}
	return w.first.Err()
}

// produce hands message seq to the producer, at the chunk's pace.
func (w *chunkWriter) produce(ctx context.Context, seq int64) error {
	if w.failed.Load() {
		return w.first.Err()
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := w.pace(ctx); err != nil {
		return err
	}
	slot := int((seq - w.in.FirstSeq) % int64(len(w.queueNames)))
	if w.queueNames[slot] == "" {
		w.queueNames[slot] = logicalQueueName(seq, w.in.LogicalQueues)
		w.queueHeaders[slot] = []kgo.RecordHeader{{Key: activities.HeaderLogicalQueue, Value: []byte(w.queueNames[slot])}}
	}
	if len(w.records) == 0 {
		w.records = make([]kgo.Record, recordBlockSize)
	}
	rec := &w.records[0]
	w.records = w.records[1:]
	rec.Topic = w.in.Names.RawTopic
	rec.Key = w.queueHeaders[slot][0].Value
	rec.Headers = w.queueHeaders[slot]
	producedAt := time.Now()
	rec.Timestamp = producedAt
	rec.Value = w.slab.commit(w.encoder.appendValue(w.slab.next(w.maxValueLen), seq, w.queueNames[slot], producedAt))
	w.producer.Produce(ctx, rec, w.promise(nil))
	w.progress.sent.Add(1)
	return nil
}

// produceLedger hands the chunk's ledger record to the producer.
func (w *chunkWriter) produceLedger(ctx context.Context) error {
	value, err := json.Marshal(chunkLedgerEntry{Chunk: w.in.Chunk, FirstSeq: w.in.FirstSeq, Count: w.in.Count})
	if err != nil {
		return fmt.Errorf("encode ledger entry: %w", err)
	}
	rec := &kgo.Record{Topic: w.in.Names.LedgerTopic, Key: []byte(chunkLedgerKey(w.in.Chunk)), Value: value}
	w.producer.Produce(ctx, rec, w.promise(func(err error) error { return fmt.Errorf("ledger record: %w", err) }))
	return nil
}

// promise counts an acknowledged message, or marks the chunk failed with
// the record's error (wrapped by wrap, if set).
func (w *chunkWriter) promise(wrap func(error) error) func(*kgo.Record, error) {
	done := w.first.Promise()
	return func(rec *kgo.Record, err error) {
		switch {
		case err != nil:
			w.failed.Store(true)
			if wrap != nil {
				err = wrap(err)
			}
		case wrap == nil:
			w.progress.acked.Add(1)
		}
		done(rec, err)
	}
}

// pacer lets records pass at RatePerSecond, a tenth of a second's worth at
// a time, which keeps the rate smooth without a limiter call per record. It
// adds the nanoseconds it waits to waited.
func pacer(in ChunkInput, waited *atomic.Int64) func(context.Context) error {
	if in.RatePerSecond <= 0 {
		return func(context.Context) error { return nil }
	}
	step := max(1, min(int(in.RatePerSecond/10), in.Count))
	limiter := rate.NewLimiter(rate.Limit(in.RatePerSecond), step)
	// The bucket starts full; drain it so the first step is paced too.
	limiter.AllowN(time.Now(), step)
	allowance := 0
	return func(ctx context.Context) error {
		if allowance == 0 {
			start := time.Now()
			err := limiter.WaitN(ctx, step)
			waited.Add(int64(time.Since(start)))
			if err != nil {
				return err
			}
			allowance = step
		}
		allowance--
		return nil
	}
}

// chunkPartitioner spreads a chunk's records over partitions the way
// Kafka's default partitioner does (murmur2 of the key), so a logical queue
// lands in the same partition whoever produces it. It is named here because
// chunkPartitions computes partitions with it too.
func chunkPartitioner() kgo.Partitioner { return kgo.StickyKeyPartitioner(nil) }

// chunkPartitions returns the partitions the chunk writes to, by topic: the
// raw topic's partitions of its logical queues, and the ledger's partition
// of its key. A partition the producer then writes to but that is missing
// here (the topic grew in between) is added by the producer itself.
func chunkPartitions(ctx context.Context, kafka *kafkaeos.Conn, in ChunkInput) (map[string][]int32, error) {
	counts, err := kafkaeos.PartitionCounts(ctx, kafka.Client, in.Names.RawTopic, in.Names.LedgerTopic)
	if err != nil {
		return nil, err
	}
	return chunkPartitionsOf(in, counts[in.Names.RawTopic], counts[in.Names.LedgerTopic]), nil
}

// chunkPartitionsOf is chunkPartitions for known partition counts. Seqs
// that share a logical queue share a partition, so the first
// min(Count, LogicalQueues) seqs of the chunk name them all.
func chunkPartitionsOf(in ChunkInput, rawPartitions, ledgerPartitions int) map[string][]int32 {
	partitioner := chunkPartitioner()
	queueRecords := func(yield func(*kgo.Record) bool) {
		var record kgo.Record
		for i := range min(in.Count, in.LogicalQueues) {
			record.Key = []byte(logicalQueueName(in.FirstSeq+int64(i), in.LogicalQueues))
			if !yield(&record) {
				return
			}
		}
	}
	ledgerRecord := kgo.Record{Key: []byte(chunkLedgerKey(in.Chunk))}
	return map[string][]int32{
		in.Names.RawTopic:    kafkaeos.PartitionsOf(partitioner.ForTopic(in.Names.RawTopic), rawPartitions, queueRecords),
		in.Names.LedgerTopic: {int32(partitioner.ForTopic(in.Names.LedgerTopic).Partition(&ledgerRecord, ledgerPartitions))},
	}
}
