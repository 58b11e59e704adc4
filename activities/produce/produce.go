// Package produce writes a run's messages to its raw topic, in resumable
// chunks of one Kafka transaction each.
package produce

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/log"

	"github.com/flowproof/flowproof/activities"
	"github.com/flowproof/flowproof/internal/errtype"
	"github.com/flowproof/flowproof/internal/kafkaeos"
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
	// MaxChunkDuration is the longest a chunk may take at its rate: half
	// of the longest transaction, which leaves room for a slow broker.
	MaxChunkDuration = maxTransactionTimeout / 2
	// MaxPayloadBytes is the largest payload of a message.
	MaxPayloadBytes = 1 << 20

	producerMaxBufferedRecords = 50_000
	producerMaxBufferedBytes   = 256 << 20
	// ledgerStableSlack is how late after its timeout the broker may abort
	// an expired transaction (transaction.abort.timed.out.transaction.
	// cleanup.interval.ms is 10 s by default).
	ledgerStableSlack = 30 * time.Second
	// producerMetadataMinAge: see claimChunk.
	producerMetadataMinAge = 100 * time.Millisecond
	// producerLinger: see claimChunk.
	producerLinger = time.Second
	// recordBlockSize is how many kgo.Records are allocated at once; a
	// block is garbage once the producer is done with all of its records.
	recordBlockSize = 1024
)

// Activities holds the chunk writer, which holds the shared Kafka
// connection and the producers kept between a lane's chunks.
type Activities struct {
	writer *Writer
}

// New returns the produce activity, which writes with writer; closing the
// writer is the caller's (an activity struct's exported methods are all
// activities).
func New(writer *Writer) *Activities { return &Activities{writer: writer} }

// laneIdleFor is how long a lane's producer is kept without a chunk.
const laneIdleFor = 2 * time.Minute

// Writer writes chunks, each in a Kafka transaction of its own. It keeps a
// lane's transactional producer from one of the lane's chunks to the next.
type Writer struct {
	kafka     *kafkaeos.Conn
	producers *kafkaeos.KeptProducers
}

// NewWriter returns a chunk writer on kafka.
func NewWriter(kafka *kafkaeos.Conn) *Writer {
	return &Writer{kafka: kafka, producers: kafkaeos.NewKeptProducers(laneIdleFor)}
}

// Close closes the producers kept for lanes; the Kafka connection is the
// caller's.
func (w *Writer) Close() { w.producers.Close() }

// ChunkInput is one resumable unit of production: messages
// FirstSeq .. FirstSeq+Count-1, written in one Kafka transaction.
type ChunkInput struct {
	Names         activities.RunNames `json:"names"`
	Chunk         int                 `json:"chunk"`
	FirstSeq      int64               `json:"first_seq"`
	Count         int                 `json:"count"`
	LogicalQueues int                 `json:"logical_queues"`
	PayloadBytes  int                 `json:"payload_bytes"`
	// RatePerSecond caps this chunk's production; 0 means unlimited.
	RatePerSecond float64 `json:"rate_per_second"`
	// TransactionalID is the lane's (LaneTransactionalID): the workflow
	// runs a run's chunks in lanes, one chunk of a lane at a time, so a
	// worker can keep the lane's producer from chunk to chunk. Empty, as
	// in inputs recorded before lanes, means the chunk's own id, and no
	// producer is kept.
	TransactionalID string `json:"transactional_id,omitempty"`
}

// ChunkResult reports one chunk.
type ChunkResult struct {
	Produced int `json:"produced"`
	// AlreadyCommitted is true when an earlier attempt had committed the
	// chunk and this attempt wrote nothing.
	AlreadyCommitted bool  `json:"already_committed"`
	DurationMillis   int64 `json:"duration_ms"`
}

// ProduceChunk writes messages FirstSeq .. FirstSeq+Count-1 to the raw topic
// and the chunk's ledger record in one Kafka transaction.
//
// Exactly-once across retries works like this: the attempt first claims the
// chunk's transactional id (which fences an earlier attempt and lets the
// broker finish or abort that attempt's transaction), waits until the
// transactions then open on the ledger (other chunks') have ended, and reads
// the ledger. If the chunk is there, an earlier attempt committed and only
// its result was lost, so this attempt writes nothing. Claiming before
// reading matters: read first, and an earlier attempt could still commit
// between the read and this attempt's own commit.
//
// A first attempt may instead take the producer this worker kept from the
// lane's previous chunk: it claimed the id, so it has already fenced every
// producer that claimed it before; and if another claimed the id since,
// the coordinator refuses the kept producer's first request (the partition
// add) before anything is written, and the chunk claims the id anew and
// reads the ledger again. A retry always claims anew.
func (a *Activities) ProduceChunk(ctx context.Context, in ChunkInput) (ChunkResult, error) {
	retry := activity.GetInfo(ctx).Attempt > 1
	return a.writer.WriteChunk(ctx, in, retry, activities.ReporterOf(ctx))
}

// WriteChunk is ProduceChunk for any caller; the benchmark calls it
// directly. retry says whether an earlier attempt of the chunk may have
// run; rep is where it reports.
func (w *Writer) WriteChunk(ctx context.Context, in ChunkInput, retry bool, rep activities.Reporter) (ChunkResult, error) {
	if err := validateProduceChunk(in); err != nil {
		return ChunkResult{}, err
	}
	started := time.Now()
	// Heartbeats start before the transactional id is claimed: claiming
	// waits while the broker aborts an earlier attempt's transaction.
	var progress chunkCounters
	defer rep.HeartbeatEvery(ctx, func() any {
		return chunkProgress{Chunk: in.Chunk, Sent: progress.sent.Load(), Acked: progress.acked.Load()}
	})()

	txnID, timeout := in.transactionalID(), transactionTimeout(in)
	var producer *kgo.Client
	if in.TransactionalID != "" {
		producer = w.producers.Take(txnID, timeout)
	}
	if producer != nil && retry {
		// The claim below fences it anyway; closed now, it is not kept
		// in place of the producer that claims.
		producer.Close()
		producer = nil
	}
	kept := producer != nil
	for {
		if producer == nil {
			var err error
			if producer, err = claimChunk(ctx, w.kafka, in); err != nil {
				return ChunkResult{}, err
			}
		}
		result, err := writeClaimedChunk(ctx, w.kafka, producer, in, &progress, rep.Log)
		if kept && errors.Is(err, kafkaeos.ErrStaleProducer) {
			rep.Log.Info("the lane's kept producer was fenced by a newer claim of its id; claiming it anew",
				"Chunk", in.Chunk, "TransactionalID", txnID, "Error", err)
			producer.Close()
			producer, kept = nil, false
			continue
		}
		if err != nil {
			producer.Close()
			return ChunkResult{}, err
		}
		if in.TransactionalID != "" {
			w.producers.Put(txnID, timeout, producer)
		} else {
			producer.Close()
		}
		result.DurationMillis = time.Since(started).Milliseconds()
		if !result.AlreadyCommitted {
			rep.Log.Info("chunk committed", "Chunk", in.Chunk, "Topic", in.Names.RawTopic, "FirstSeq", in.FirstSeq,
				"Produced", result.Produced, "DurationMillis", result.DurationMillis,
				"PacedMillis", time.Duration(progress.paced.Load()).Milliseconds(), "KeptProducer", kept)
		}
		return result, nil
	}
}

// writeClaimedChunk writes the chunk with producer, which has claimed the
// chunk's transactional id and has no transaction open: it reads the
// ledger, then writes and commits the chunk unless the ledger has it.
func writeClaimedChunk(ctx context.Context, kafka *kafkaeos.Conn, producer *kgo.Client, in ChunkInput,
	progress *chunkCounters, logger log.Logger,
) (ChunkResult, error) {
	committed, err := ledgerHasChunk(ctx, kafka, in)
	if err != nil {
		return ChunkResult{}, fmt.Errorf("chunk %d: read ledger %s: %w", in.Chunk, in.Names.LedgerTopic, err)
	}
	if committed {
		logger.Info("chunk was committed by an earlier attempt; nothing written", "Chunk", in.Chunk, "Topic", in.Names.RawTopic)
		return ChunkResult{AlreadyCommitted: true}, nil
	}
	if err := producer.BeginTransaction(); err != nil {
		return ChunkResult{}, fmt.Errorf("chunk %d: begin transaction: %w", in.Chunk, err)
	}
	if err := addChunkPartitions(ctx, kafka, producer, in); err != nil {
		if errors.Is(err, kafkaeos.ErrStaleProducer) {
			return ChunkResult{}, fmt.Errorf("chunk %d: %w", in.Chunk, err)
		}
		return ChunkResult{}, abortChunk(ctx, producer, in.Chunk, err, logger)
	}
	produced, err := writeChunkRecords(ctx, producer, in, progress)
	if err != nil {
		return ChunkResult{}, abortChunk(ctx, producer, in.Chunk, err, logger)
	}
	if err := commitChunk(ctx, producer, in.Chunk); err != nil {
		return ChunkResult{}, err
	}
	return ChunkResult{Produced: produced}, nil
}

// abortChunk aborts the chunk's transaction after err and says why.
func abortChunk(ctx context.Context, producer *kgo.Client, chunk int, err error, logger log.Logger) error {
	abortErr := kafkaeos.AbortTransaction(ctx, producer)
	logger.Warn("chunk aborted", "Chunk", chunk, "Error", err, "AbortError", abortErr)
	return abortedChunkError(ctx, chunk, err, abortErr)
}

// claimChunk builds the chunk's transactional producer and claims its
// transactional id, which fences every earlier attempt of the chunk.
func claimChunk(ctx context.Context, kafka *kafkaeos.Conn, in ChunkInput) (*kgo.Client, error) {
	txnID := in.transactionalID()
	producer, err := kafka.NewClient(
		kgo.TransactionalID(txnID),
		kgo.TransactionTimeout(transactionTimeout(in)),
		kgo.RequiredAcks(kgo.AllISRAcks()),
		kgo.RecordPartitioner(chunkPartitioner()),
		// Produce blocks while this much is unacknowledged, which bounds
		// a chunk's memory whatever its Count and payload size.
		kgo.MaxBufferedRecords(producerMaxBufferedRecords),
		kgo.MaxBufferedBytes(producerMaxBufferedBytes),
		// A produce that failed with a retriable error (a partition add
		// that collided at the transaction coordinator, a leader that
		// moved) is retried after the client's next metadata refresh,
		// which by default comes 5 s after the last: in a traced run a
		// collision held a chunk for 5 s. The Java producer retries after
		// 100 ms (retry.backoff.ms).
		kgo.MetadataMinAge(producerMetadataMinAge),
		// A chunk's records stay invisible to read_committed readers
		// until its commit, so sending them before the Flush at its end
		// buys no latency. Lingering up to a second sends a paced chunk
		// in a few large produce requests instead of one every few
		// milliseconds, which made chunks faster (docs/performance.md,
		// "A chunk's records sent together").
		kgo.ProducerLinger(producerLinger),
	)
	if err != nil {
		return nil, fmt.Errorf("chunk %d: %w", in.Chunk, err)
	}
	if _, _, err := producer.ProducerID(ctx); err != nil {
		producer.Close()
		return nil, fmt.Errorf("chunk %d: claim transactional id %s: %w", in.Chunk, txnID, err)
	}
	return producer, nil
}

// abortedChunkError says why the chunk was aborted, and whether the abort
// itself failed; a cancelled chunk reports only the cancellation.
func abortedChunkError(ctx context.Context, chunk int, produceErr, abortErr error) error {
	switch {
	case ctx.Err() != nil:
		return ctx.Err()
	case abortErr != nil:
		return fmt.Errorf("chunk %d: produce: %w (and the abort failed: %w)", chunk, produceErr, abortErr)
	default:
		return fmt.Errorf("chunk %d: produce (transaction aborted): %w", chunk, produceErr)
	}
}

// commitChunk commits the chunk's transaction. Cancelling a commit midway
// would leave its outcome unknown (the franz-go documentation warns against
// it), so the commit gets its own bounded context. When it fails, the
// commit may or may not have happened; the retry reads the ledger to find
// out, and aborting here fences whatever is left open.
func commitChunk(ctx context.Context, producer *kgo.Client, chunk int) error {
	commitCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), kafkaeos.EndTransactionTimeout)
	defer cancel()
	err := producer.EndTransaction(commitCtx, kgo.TryCommit)
	if err == nil {
		return nil
	}
	if abortErr := kafkaeos.AbortTransaction(ctx, producer); abortErr != nil {
		return fmt.Errorf("chunk %d: commit: %w (and the abort afterwards failed: %w)", chunk, err, abortErr)
	}
	return fmt.Errorf("chunk %d: commit failed, transaction aborted: %w", chunk, err)
}

// chunkCounters count a chunk's records as they are handed to the producer
// and acknowledged by Kafka; the heartbeat reads them.
type chunkCounters struct {
	sent, acked atomic.Int64
	// paced is the time, in nanoseconds, spent waiting for the chunk's rate.
	paced atomic.Int64
}

// chunkProgress is the heartbeat detail of ProduceChunk.
type chunkProgress struct {
	Chunk int   `json:"chunk"`
	Sent  int64 `json:"sent"`
	Acked int64 `json:"acked"`
}

func validateProduceChunk(in ChunkInput) error {
	switch {
	case in.Names.RawTopic == "":
		return errtype.InvalidInputf("names.raw_topic is empty")
	case in.Names.LedgerTopic == "":
		return errtype.InvalidInputf("names.ledger_topic is empty")
	case in.Chunk < 0:
		return errtype.InvalidInputf("chunk is %d; want 0 or more", in.Chunk)
	case in.FirstSeq < 0:
		return errtype.InvalidInputf("first_seq is %d; want 0 or more", in.FirstSeq)
	case in.Count < 1:
		return errtype.InvalidInputf("count is %d; want at least 1", in.Count)
	case in.LogicalQueues < 1:
		return errtype.InvalidInputf("logical_queues is %d; want at least 1", in.LogicalQueues)
	case in.PayloadBytes < 0 || in.PayloadBytes > MaxPayloadBytes:
		return errtype.InvalidInputf("payload_bytes is %d; want 0 to %d", in.PayloadBytes, MaxPayloadBytes)
	case in.RatePerSecond < 0:
		return errtype.InvalidInputf("rate_per_second is %g; want 0 (unlimited) or more", in.RatePerSecond)
	}
	if in.RatePerSecond > 0 {
		// In seconds, as a float: a rate so low that the duration
		// overflows time.Duration must still be refused.
		if seconds := float64(in.Count) / in.RatePerSecond; seconds > MaxChunkDuration.Seconds() {
			return errtype.InvalidInputf("count %d at rate_per_second %g takes %.0fs, longer than a Kafka transaction may stay open (%s); use smaller chunks",
				in.Count, in.RatePerSecond, seconds, MaxChunkDuration)
		}
	}
	return nil
}

// ValidateChunkInput is ProduceChunk's own check of its input, which the
// workflows' input checks are tested against.
func ValidateChunkInput(in ChunkInput) error { return validateProduceChunk(in) }

// transactionTimeout is how long the broker lets the chunk's transaction
// stay open before aborting it: twice the expected duration, so a slow
// broker does not abort a healthy chunk, and short enough that an attempt
// whose worker died does not hold back read_committed readers for long
// (the retry fences it anyway).
func transactionTimeout(in ChunkInput) time.Duration {
	timeout := minTransactionTimeout
	if in.RatePerSecond > 0 {
		expected := time.Duration(float64(in.Count) / in.RatePerSecond * float64(time.Second))
		timeout = max(timeout, 2*expected+30*time.Second)
	}
	return min(timeout, maxTransactionTimeout)
}

// chunkTransactionalID derives a chunk's transactional id from the run (its
// raw topic) and the chunk number: the id of a chunk whose input names no
// lane. A retried attempt uses the same id, so its InitProducerID fences the
// earlier attempt and aborts whatever that attempt left open.
func chunkTransactionalID(names activities.RunNames, chunk int) string {
	return names.RawTopic + ".chunk-" + strconv.Itoa(chunk)
}

// LanesPerChunkInFlight is how many lanes a run has for each chunk it
// writes at a time: two, because a lane's next transaction cannot begin
// until the coordinator has finished its last (the commit markers written
// to every partition and replicated: 40-270 ms measured). With one lane per
// chunk in flight each chunk would wait out its predecessor's markers;
// with two, the markers are written while the other lane's chunk runs
// (docs/performance.md, "Producers kept across a lane's chunks").
const LanesPerChunkInFlight = 2

// LaneTransactionalID is the transactional id of a run's lane. Every chunk
// of the lane, and every attempt of each, uses it, so a retry fences its
// earlier attempt as with a chunk's own id, provided the lane runs one
// chunk at a time and a chunk always goes to the same lane.
func LaneTransactionalID(names activities.RunNames, lane int) string {
	return names.RawTopic + ".lane-" + strconv.Itoa(lane)
}

// transactionalID is the id the chunk is written under: its lane's, or
// its own.
func (in ChunkInput) transactionalID() string {
	if in.TransactionalID != "" {
		return in.TransactionalID
	}
	return chunkTransactionalID(in.Names, in.Chunk)
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

// ledgerHasChunk reports whether the chunk's ledger record is committed,
// i.e. whether a transaction that wrote the chunk committed.
//
// A read_committed reader stops at the ledger's last stable offset, the
// first offset of a transaction still open, so another chunk's transaction
// begun before this chunk's earlier attempt committed would hide that
// attempt's record. So: when the ledger holds no record of the chunk at all,
// committed or not, no attempt committed it (a first attempt, the usual
// case, goes on without waiting for other chunks). Otherwise the reader
// waits until the transactions open now have ended, which the claim already
// did for the chunk's own, and reads what is committed. Chunks of a run
// share their rate and nearly their size, so each ends (or the broker
// expires it) within about this chunk's own transaction timeout.
func ledgerHasChunk(ctx context.Context, kafka *kafkaeos.Conn, in ChunkInput) (bool, error) {
	key := chunkLedgerKey(in.Chunk)
	written, err := ledgerHasKey(ctx, kafka, in.Names.LedgerTopic, key, kafkaeos.NewUncommittedReader)
	if err != nil || !written {
		return false, err
	}
	if err := kafkaeos.WaitStable(ctx, kafka, in.Names.LedgerTopic, transactionTimeout(in)+ledgerStableSlack); err != nil {
		return false, err
	}
	return ledgerHasKey(ctx, kafka, in.Names.LedgerTopic, key, kafkaeos.NewCommittedReader)
}

// ledgerHasKey reads the ledger with the reader newReader makes until it
// finds a record with key or has read everything.
func ledgerHasKey(ctx context.Context, kafka *kafkaeos.Conn, ledgerTopic, key string,
	newReader func(context.Context, *kafkaeos.Conn, string) (*kafkaeos.CommittedReader, error),
) (bool, error) {
	reader, err := newReader(ctx, kafka, ledgerTopic)
	if err != nil {
		return false, err
	}
	found := false
	for !found && !reader.CaughtUp() {
		if _, err := reader.FetchRound(ctx, 0, true, func(rec *kgo.Record) {
			if string(rec.Key) == key {
				found = true
			}
		}); err != nil {
			return false, err
		}
	}
	return found, nil
}
