// Package produce writes a run's messages to its raw topic, in resumable
// chunks of one Kafka transaction each.
package produce

import (
	"context"
	"fmt"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

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
	// recordBlockSize is how many kgo.Records are allocated at once; a
	// block is garbage once the producer is done with all of its records.
	recordBlockSize = 1024
)

// Activities holds the shared Kafka connection; each chunk makes its own
// transactional producer, because a transactional id belongs to one chunk.
type Activities struct {
	kafka *kafkaeos.Conn
}

// New returns the produce activity.
func New(kafka *kafkaeos.Conn) *Activities { return &Activities{kafka: kafka} }

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
func (a *Activities) ProduceChunk(ctx context.Context, in ChunkInput) (ChunkResult, error) {
	return WriteChunk(ctx, a.kafka, in, activities.ReporterOf(ctx))
}

// WriteChunk is ProduceChunk for a caller that is no activity (the
// benchmark): it reports to rep.
func WriteChunk(ctx context.Context, kafka *kafkaeos.Conn, in ChunkInput, rep activities.Reporter) (ChunkResult, error) {
	if err := validateProduceChunk(in); err != nil {
		return ChunkResult{}, err
	}
	started := time.Now()
	logger := rep.Log
	// Heartbeats start before the transactional id is claimed: claiming
	// waits while the broker aborts an earlier attempt's transaction.
	var progress chunkCounters
	defer rep.HeartbeatEvery(ctx, func() any {
		return chunkProgress{Chunk: in.Chunk, Sent: progress.sent.Load(), Acked: progress.acked.Load()}
	})()

	producer, err := claimChunk(ctx, kafka, in)
	if err != nil {
		return ChunkResult{}, err
	}
	defer producer.Close()
	committed, err := ledgerHasChunk(ctx, kafka, in)
	if err != nil {
		return ChunkResult{}, fmt.Errorf("chunk %d: read ledger %s: %w", in.Chunk, in.Names.LedgerTopic, err)
	}
	if committed {
		logger.Info("chunk was committed by an earlier attempt; nothing written", "Chunk", in.Chunk, "Topic", in.Names.RawTopic)
		return ChunkResult{AlreadyCommitted: true, DurationMillis: time.Since(started).Milliseconds()}, nil
	}
	if err := producer.BeginTransaction(); err != nil {
		return ChunkResult{}, fmt.Errorf("chunk %d: begin transaction: %w", in.Chunk, err)
	}
	produced, err := writeChunkRecords(ctx, kafka, producer, in, &progress)
	if err != nil {
		abortErr := kafkaeos.AbortTransaction(ctx, producer)
		logger.Warn("chunk aborted", "Chunk", in.Chunk, "Error", err, "AbortError", abortErr)
		return ChunkResult{}, abortedChunkError(ctx, in.Chunk, err, abortErr)
	}
	if err := commitChunk(ctx, producer, in.Chunk); err != nil {
		return ChunkResult{}, err
	}
	result := ChunkResult{Produced: produced, DurationMillis: time.Since(started).Milliseconds()}
	logger.Info("chunk committed", "Chunk", in.Chunk, "Topic", in.Names.RawTopic, "FirstSeq", in.FirstSeq,
		"Produced", produced, "DurationMillis", result.DurationMillis)
	return result, nil
}

// claimChunk builds the chunk's transactional producer and claims its
// transactional id, which fences every earlier attempt of the chunk.
func claimChunk(ctx context.Context, kafka *kafkaeos.Conn, in ChunkInput) (*kgo.Client, error) {
	txnID := chunkTransactionalID(in.Names, in.Chunk)
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
// raw topic) and the chunk number. A retried attempt uses the same id, so its
// InitProducerID fences the earlier attempt and aborts whatever that attempt
// left open.
func chunkTransactionalID(names activities.RunNames, chunk int) string {
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
