package produce

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
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
		pace:         pacer(in),
		first:        kgo.AbortingFirstErrPromise(producer),
		queueNames:   make([]string, queues),
		queueHeaders: make([][]kgo.RecordHeader, queues),
		encoder:      encoder,
		maxValueLen:  maxValueLen,
		slab:         valueSlab{size: max(256<<10, 64*maxValueLen)},
	}
}

// writeChunkRecords hands the chunk's records and its ledger record to the
// producer and returns how many messages it handed over. It returns the
// first produce error (or the context's) and leaves committing to the
// caller.
func writeChunkRecords(ctx context.Context, kafka *kafkaeos.Conn, producer *kgo.Client, in ChunkInput, progress *chunkCounters) (int, error) {
	rawLeaders, err := kafkaeos.PartitionLeaders(ctx, kafka.Client, in.Names.RawTopic)
	if err != nil {
		return 0, err
	}
	ledgerLeaders, err := kafkaeos.PartitionLeaders(ctx, kafka.Client, in.Names.LedgerTopic)
	if err != nil {
		return 0, err
	}
	w := newChunkWriter(producer, in, progress)
	warm, err := w.warmUp(ctx, warmupGroups(in, rawLeaders), ledgerLeaders[0])
	if err == nil {
		err = w.produceRest(ctx, warm)
	}
	return int(progress.sent.Load()), err
}

// warmUp opens the transaction's partitions one broker at a time (see
// warmupGroups) by producing each group's seqs and flushing; the ledger's
// partition goes with its leader's group. It returns the seqs it produced.
func (w *chunkWriter) warmUp(ctx context.Context, groups []warmupGroup, ledgerLeader int32) (map[int64]bool, error) {
	warm := make(map[int64]bool)
	ledgerSent := false
	for _, group := range groups {
		for _, seq := range group.seqs {
			if err := w.produce(ctx, seq); err != nil {
				return nil, err
			}
			warm[seq] = true
		}
		if !ledgerSent && group.leader == ledgerLeader {
			if err := w.produceLedger(ctx); err != nil {
				return nil, err
			}
			ledgerSent = true
		}
		if err := w.producer.Flush(ctx); err != nil {
			return nil, err
		}
	}
	if !ledgerSent {
		return warm, w.produceLedger(ctx)
	}
	return warm, nil
}

// produceRest produces every seq of the chunk not in warm, flushes, and
// returns the first error of any record.
func (w *chunkWriter) produceRest(ctx context.Context, warm map[int64]bool) error {
	for i := range w.in.Count {
		seq := w.in.FirstSeq + int64(i)
		if warm[seq] {
			continue
		}
		if err := w.produce(ctx, seq); err != nil {
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
// a time, which keeps the rate smooth without a limiter call per record.
func pacer(in ChunkInput) func(context.Context) error {
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
			if err := limiter.WaitN(ctx, step); err != nil {
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
func warmupGroups(in ChunkInput, leaders map[int32]int32) []warmupGroup {
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
