package kafkaadmin

import (
	"cmp"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// The age of a group's oldest unconsumed record tells how long the group has
// kept a message waiting without any drain rate: it acts from a run's first
// lag poll, while a slow consumer has not been measured yet. The record is
// the first readable one at the group's committed offset, in each partition
// the group lags on; only its batch's header is needed, so each partition's
// fetch asks for a few hundred bytes.

// oldestFetchPartitionBytes is what a fetch asks of each partition: the
// 61-byte header of the batch at the committed offset, and of the batch
// after it when that one is a commit marker (a control batch is about 80
// bytes with its record). A broker may return a batch cut short at this
// size; the header is all that is read.
const oldestFetchPartitionBytes = 512

// oldestFetchTimeout bounds the fetches of one poll's oldest records (see
// PollLag): a leader that does not answer (a broker just lost, before its partitions
// have moved) costs the age of its partitions, not the poll, whose lag
// the run's backpressure cannot do without.
const oldestFetchTimeout = 5 * time.Second

// recordBatchHeaderBytes is the size of a Kafka record batch's header
// (magic 2): base offset, length, leader epoch, magic, CRC, attributes,
// last offset delta, first and max timestamp, producer id and epoch, base
// sequence and record count.
const recordBatchHeaderBytes = 61

// unconsumedFrom is where a group's unconsumed records begin in one
// partition: its committed offset, where the partition has lag.
type unconsumedFrom struct {
	partition int32
	offset    int64
}

// oldestUnconsumed returns the timestamp in Unix milliseconds of the oldest
// readable record of topic at or after the given offsets, 0 when none of
// the partitions has a readable record there. It reads with read_committed
// isolation, as the run's consumers do. A broker that cannot be asked costs
// only the age of its partitions: the age is a second signal beside the
// lag, so the failures are returned with what was found, for the caller to
// log, not instead of it.
func oldestUnconsumed(ctx context.Context, kafka *kgo.Client, topic kadm.TopicDetail, from []unconsumedFrom) (int64, error) {
	byLeader := map[int32][]unconsumedFrom{}
	var errs []error
	for _, f := range from {
		p, ok := topic.Partitions[f.partition]
		if !ok || p.Err != nil || p.Leader < 0 {
			errs = append(errs, fmt.Errorf("topic %s partition %d: no leader to fetch its oldest record from", topic.Topic, f.partition))
			continue
		}
		byLeader[p.Leader] = append(byLeader[p.Leader], f)
	}
	leaders := slices.Sorted(maps.Keys(byLeader))
	found := make([]int64, len(leaders))
	leaderErrs := make([]error, len(leaders))
	var wg sync.WaitGroup
	for i, leader := range leaders {
		wg.Go(func() {
			found[i], leaderErrs[i] = oldestFromLeader(ctx, kafka.Broker(int(leader)), topic, byLeader[leader])
			if leaderErrs[i] != nil {
				leaderErrs[i] = fmt.Errorf("broker %d: %w", leader, leaderErrs[i])
			}
		})
	}
	wg.Wait()
	errs = append(errs, leaderErrs...)
	var oldest int64
	for _, ts := range found {
		if ts > 0 && (oldest == 0 || ts < oldest) {
			oldest = ts
		}
	}
	return oldest, errors.Join(errs...)
}

// oldestFromLeader fetches the batches at the given offsets of partitions
// that one broker leads, without waiting for data, and returns the oldest
// first-record timestamp among them (0 for none).
func oldestFromLeader(ctx context.Context, broker kmsg.Requestor, topic kadm.TopicDetail, from []unconsumedFrom) (int64, error) {
	req := kmsg.NewPtrFetchRequest()
	req.MaxWaitMillis = 0
	req.MinBytes = 1
	req.MaxBytes = int32(len(from)) * oldestFetchPartitionBytes
	req.IsolationLevel = 1 // read_committed
	rt := kmsg.NewFetchRequestTopic()
	rt.Topic, rt.TopicID = topic.Topic, topic.ID
	offsets := make(map[int32]int64, len(from))
	for _, f := range from {
		offsets[f.partition] = f.offset
		p := kmsg.NewFetchRequestTopicPartition()
		p.Partition, p.FetchOffset, p.PartitionMaxBytes = f.partition, f.offset, oldestFetchPartitionBytes
		rt.Partitions = append(rt.Partitions, p)
	}
	req.Topics = append(req.Topics, rt)
	resp, err := req.RequestWith(ctx, broker)
	if err == nil {
		err = kerr.ErrorForCode(resp.ErrorCode)
	}
	if err != nil {
		return 0, fmt.Errorf("fetch the oldest unconsumed records of %s: %w", topic.Topic, err)
	}
	var oldest int64
	var errs []error
	for _, rt := range resp.Topics {
		for _, rp := range rt.Partitions {
			if err := kerr.ErrorForCode(rp.ErrorCode); err != nil {
				errs = append(errs, fmt.Errorf("topic %s partition %d: %w", topic.Topic, rp.Partition, err))
				continue
			}
			ts, ok := firstReadableTimestamp(rp.RecordBatches, offsets[rp.Partition], rp.AbortedTransactions)
			if ok && (oldest == 0 || ts < oldest) {
				oldest = ts
			}
		}
	}
	return oldest, errors.Join(errs...)
}

// firstReadableTimestamp is the timestamp of the first batch in batches (a
// read_committed fetch's answer from offset from) that a read_committed
// consumer would read from: not a control batch (a commit or abort marker)
// and not part of an aborted transaction. A batch that begins before from
// (the fetch returns the whole batch holding from) gives its first record's
// time, which is at most the batch's linger older than the record at from.
// False when no such batch header is in batches.
func firstReadableTimestamp(batches []byte, from int64, aborted []kmsg.FetchResponseTopicPartitionAbortedTransaction) (int64, bool) {
	// Aborted transactions by first offset, as a consumer applies them: a
	// producer's batches are aborted from its entry's first offset until
	// its abort marker.
	aborted = slices.Clone(aborted)
	slices.SortFunc(aborted, func(a, b kmsg.FetchResponseTopicPartitionAbortedTransaction) int {
		return cmp.Compare(a.FirstOffset, b.FirstOffset)
	})
	abortedProducers := map[int64]bool{}
	for len(batches) >= recordBatchHeaderBytes {
		var (
			baseOffset      = int64(binary.BigEndian.Uint64(batches[0:8]))
			length          = int64(int32(binary.BigEndian.Uint32(batches[8:12])))
			magic           = int8(batches[16])
			attributes      = int16(binary.BigEndian.Uint16(batches[21:23]))
			lastOffsetDelta = int64(int32(binary.BigEndian.Uint32(batches[23:27])))
			firstTimestamp  = int64(binary.BigEndian.Uint64(batches[27:35]))
			maxTimestamp    = int64(binary.BigEndian.Uint64(batches[35:43]))
			producerID      = int64(binary.BigEndian.Uint64(batches[43:51]))
		)
		if magic != 2 || length < recordBatchHeaderBytes-12 {
			// Message sets of magic 0 and 1 predate transactions and
			// Kafka 0.11; no cluster flowproof runs on writes them.
			return 0, false
		}
		for len(aborted) > 0 && aborted[0].FirstOffset <= baseOffset {
			abortedProducers[aborted[0].ProducerID] = true
			aborted = aborted[1:]
		}
		const (
			controlBatch  = 0x20
			logAppendTime = 0x08
		)
		switch {
		case baseOffset+lastOffsetDelta < from:
			// Wholly before from: a broker answers from the batch that
			// holds from, so this only guards against an odd answer.
		case attributes&controlBatch != 0:
			// An abort marker ends its producer's aborted transaction.
			delete(abortedProducers, producerID)
		case abortedProducers[producerID]:
		case attributes&logAppendTime != 0:
			// The broker's append time, set for the whole batch.
			return maxTimestamp, true
		default:
			return firstTimestamp, true
		}
		next := 12 + length
		if next > int64(len(batches)) {
			return 0, false
		}
		batches = batches[next:]
	}
	return 0, false
}
