package kafkaeos

import (
	"context"
	"errors"
	"fmt"
	"iter"
	"maps"
	"slices"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// EndTransactionTimeout bounds a commit or abort, which must not be cut
// short by the caller's cancellation.
const EndTransactionTimeout = time.Minute

// AbortTransaction aborts the open transaction of producer, buffered
// records included. It must finish even when ctx was cancelled (that is
// the usual reason to abort), so it runs on a context of its own, bounded
// by EndTransactionTimeout.
func AbortTransaction(ctx context.Context, producer *kgo.Client) error {
	abortCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), EndTransactionTimeout)
	defer cancel()
	var errs []error
	if err := producer.AbortBufferedRecords(abortCtx); err != nil {
		errs = append(errs, fmt.Errorf("abort buffered records: %w", err))
	}
	if err := producer.EndTransaction(abortCtx, kgo.TryAbort); err != nil {
		errs = append(errs, fmt.Errorf("abort transaction: %w", err))
	}
	return errors.Join(errs...)
}

// Fenced reports whether err says the producer's claim of its
// transactional id is no longer the newest: another producer claimed the
// id since (InitProducerId), so this one can neither write nor commit.
func Fenced(err error) bool {
	return errors.Is(err, kerr.ProducerFenced) || errors.Is(err, kerr.InvalidProducerEpoch)
}

// AddPartitionsToTxn adds partitions (by topic) to the producer's open
// transaction in one request. A producer adds a partition by itself when it
// first writes to it (Kafka 4's transaction.version 2: the partition's
// broker asks the coordinator), but brokers that do so at the same moment
// collide at the coordinator, which answers CONCURRENT_TRANSACTIONS and
// makes the producer back off; and each add is a write to the transaction
// log. Added up front, the partitions cost one such write, and the brokers'
// own adds find them there and return at once.
//
// Called before the transaction's first write, as it is meant to be, an
// answer that the producer is fenced (see Fenced) means nothing was
// written: the error is then also ErrStaleProducer.
func AddPartitionsToTxn(ctx context.Context, producer *kgo.Client, txnID string, partitions map[string][]int32) error {
	id, epoch, err := producer.ProducerID(ctx)
	if err != nil {
		return fmt.Errorf("producer id of %s: %w", txnID, err)
	}
	add := kmsg.NewPtrAddPartitionsToTxnRequest()
	add.TransactionalID, add.ProducerID, add.ProducerEpoch = txnID, id, epoch
	for _, topic := range slices.Sorted(maps.Keys(partitions)) {
		rt := kmsg.NewAddPartitionsToTxnRequestTopic()
		rt.Topic, rt.Partitions = topic, partitions[topic]
		add.Topics = append(add.Topics, rt)
	}
	return RetryRetriable(ctx, func() error {
		resp, err := add.RequestWith(ctx, producer)
		if err != nil {
			return fmt.Errorf("add partitions to transaction %s: %w", txnID, err)
		}
		err = addPartitionsError(txnID, resp)
		if Fenced(err) {
			return fmt.Errorf("%w: %w", ErrStaleProducer, err)
		}
		return err
	})
}

// ErrStaleProducer marks a transaction refused at its first request
// because its producer's claim of the transactional id is no longer the
// newest: nothing of it was written, and claiming the id anew lets the
// unit of work go on.
var ErrStaleProducer = errors.New("producer fenced before writing")

// PartitionsOf returns the partitions, in ascending order, that
// partitionOf puts records in, of partitions in all: the list to give
// AddPartitionsToTxn. It stops early once every partition is named.
func PartitionsOf(partitionOf kgo.TopicPartitioner, partitions int, records iter.Seq[*kgo.Record]) []int32 {
	picked := make(map[int32]bool, partitions)
	for rec := range records {
		picked[int32(partitionOf.Partition(rec, partitions))] = true
		if len(picked) == partitions {
			break
		}
	}
	return slices.Sorted(maps.Keys(picked))
}

// addPartitionsError is what an AddPartitionsToTxn answer says went wrong,
// nil if nothing did. A partition the coordinator did not get to
// (OPERATION_NOT_ATTEMPTED, because another failed) is left out: the
// failure that stopped it is what decides whether to retry.
func addPartitionsError(txnID string, resp *kmsg.AddPartitionsToTxnResponse) error {
	if err := kerr.ErrorForCode(resp.ErrorCode); err != nil {
		return fmt.Errorf("add partitions to transaction %s: %w", txnID, err)
	}
	var errs []error
	for _, rt := range resp.Topics {
		for _, rp := range rt.Partitions {
			if err := kerr.ErrorForCode(rp.ErrorCode); err != nil && !errors.Is(err, kerr.OperationNotAttempted) {
				errs = append(errs, fmt.Errorf("add %s[%d] to transaction %s: %w", rt.Topic, rp.Partition, txnID, err))
			}
		}
	}
	return errors.Join(errs...)
}

// CommitOffsetsInTxn adds the group's offsets to the producer's open
// transaction (AddOffsetsToTxn + TxnOffsetCommit), as a transactional
// consumer would, so the offsets become visible exactly when the records
// do. kgo's GroupTransactSession needs a group member; the caller assigns
// partitions itself and is none, so the commit uses generation -1, which
// brokers accept for a group without members.
func CommitOffsetsInTxn(ctx context.Context, producer *kgo.Client, txnID, group, topic string, offsets map[int32]int64, metadata string) error {
	id, epoch, err := producer.ProducerID(ctx)
	if err != nil {
		return fmt.Errorf("producer id of %s: %w", txnID, err)
	}
	add := kmsg.NewPtrAddOffsetsToTxnRequest()
	add.TransactionalID, add.ProducerID, add.ProducerEpoch, add.Group = txnID, id, epoch, group
	if err := RetryRetriable(ctx, func() error {
		resp, err := add.RequestWith(ctx, producer)
		if err != nil {
			return err
		}
		return kerr.ErrorForCode(resp.ErrorCode)
	}); err != nil {
		return fmt.Errorf("add group %s to transaction %s: %w", group, txnID, err)
	}
	commit := txnOffsetCommitRequest(txnID, group, topic, id, epoch, offsets, metadata)
	return RetryRetriable(ctx, func() error {
		resp, err := commit.RequestWith(ctx, producer)
		if err != nil {
			return fmt.Errorf("commit offsets of group %s in transaction %s: %w", group, txnID, err)
		}
		var errs []error
		for _, rt := range resp.Topics {
			for _, rp := range rt.Partitions {
				if err := kerr.ErrorForCode(rp.ErrorCode); err != nil {
					errs = append(errs, fmt.Errorf("commit offset of group %s for %s[%d]: %w", group, rt.Topic, rp.Partition, err))
				}
			}
		}
		return errors.Join(errs...)
	})
}

func txnOffsetCommitRequest(txnID, group, topic string, id int64, epoch int16, offsets map[int32]int64, metadata string) *kmsg.TxnOffsetCommitRequest {
	commit := kmsg.NewPtrTxnOffsetCommitRequest()
	commit.TransactionalID, commit.Group, commit.ProducerID, commit.ProducerEpoch = txnID, group, id, epoch
	commit.Generation, commit.MemberID = -1, ""
	t := kmsg.NewTxnOffsetCommitRequestTopic()
	t.Topic = topic
	partitions := make([]int32, 0, len(offsets))
	for p := range offsets {
		partitions = append(partitions, p)
	}
	slices.Sort(partitions)
	for _, p := range partitions {
		part := kmsg.NewTxnOffsetCommitRequestTopicPartition()
		part.Partition, part.Offset, part.LeaderEpoch = p, offsets[p], -1
		part.Metadata = &metadata
		t.Partitions = append(t.Partitions, part)
	}
	commit.Topics = append(commit.Topics, t)
	return commit
}

// RetryRetriableValue is RetryRetriable for a call that returns a value:
// the value of the last call.
func RetryRetriableValue[T any](ctx context.Context, fn func() (T, error)) (T, error) {
	var value T
	err := RetryRetriable(ctx, func() error {
		var err error
		value, err = fn()
		return err
	})
	return value, err
}

// RetryRetriable repeats fn while it fails with a retriable Kafka error (a
// coordinator moving or loading, a transaction still ending), for up to
// about ten seconds, waiting as retryWaits says.
func RetryRetriable(ctx context.Context, fn func() error) error {
	return retryRetriable(ctx, fn, func(ctx context.Context, d time.Duration) error {
		select {
		case <-time.After(d):
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	})
}

// retryRetriable is RetryRetriable with its waits made by wait, which a
// test replaces to see them.
func retryRetriable(ctx context.Context, fn func() error, wait func(context.Context, time.Duration) error) error {
	var waits retryWaits
	deadline := time.Now().Add(10 * time.Second)
	for {
		err := fn()
		if err == nil || !kerr.IsRetriable(err) && !errors.Is(err, kerr.ConcurrentTransactions) || time.Now().After(deadline) {
			return err
		}
		if waitErr := wait(ctx, waits.after(err)); waitErr != nil {
			return errors.Join(err, waitErr)
		}
	}
}

// A commit returns once the transaction coordinator has logged it; the
// coordinator then writes the transaction's markers, and until they are
// written it answers the producer's next transaction with
// CONCURRENT_TRANSACTIONS. On the local stack that lasts 5–10 ms, so a
// lane whose chunks follow one another, asked again after 50 and 100 ms,
// lost 50–150 ms a chunk (docs/performance.md, "A transaction still
// ending, asked again sooner"). The Java producer and franz-go's own
// adds ask again after 20 ms for the same reason.
const (
	endingTransactionWait    = 5 * time.Millisecond
	endingTransactionRetries = 20
	firstBackoff             = 50 * time.Millisecond
	maxBackoff               = time.Second
)

// retryWaits says how long to wait before the next try: a transaction
// still ending is asked again every endingTransactionWait for its first
// endingTransactionRetries answers; any other retriable error, and a
// transaction that takes longer to end, backs off from firstBackoff to
// maxBackoff.
type retryWaits struct {
	ending  int
	backoff time.Duration
}

func (w *retryWaits) after(err error) time.Duration {
	if errors.Is(err, kerr.ConcurrentTransactions) && w.ending < endingTransactionRetries {
		w.ending++
		return endingTransactionWait
	}
	if w.backoff == 0 {
		w.backoff = firstBackoff
	} else {
		w.backoff = min(2*w.backoff, maxBackoff)
	}
	return w.backoff
}
