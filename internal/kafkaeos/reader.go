package kafkaeos

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// Fetch sizes of CommittedReader. A round's records are all decoded before
// any is handed on, and the sizes count bytes as stored, so a round of
// compressed records takes several times its size in memory: at 32 MiB per
// leader, a whole 1,000,000-message raw topic (snappy, about 47 MB) came in
// one round and the worker peaked at 1.1-1.3 GiB during Verify. 4 MiB per
// leader (1 MiB a partition) bounds a round to a few hundred MB however
// large the run, at the cost of more rounds; SetRoundBytes raises it for a
// reader of uncompressed records.
const (
	readerMaxBytes = 4 << 20
	// readerMaxFailingFor bounds how long the reader rides out leader
	// changes and dropped connections before it gives up; a broker that
	// died keeps its partitions leaderless for its session timeout (9 s by
	// default) before they move.
	readerMaxFailingFor = 30 * time.Second
	readerRetryBackoff  = 250 * time.Millisecond
)

// CommittedReader reads a topic's committed records (read_committed) with
// its own Fetch requests, one per partition leader and round.
//
// A kgo consumer cannot say "everything committed so far has been read": it
// never surfaces a fetch without records, and the last offsets below a
// partition's last stable offset are often control records (transaction
// markers) or records of aborted transactions that a read_committed consumer
// never returns. Here every Fetch response carries the partition's last
// stable offset and the parser reports the next offset past the batches it
// skipped, so being caught up is a comparison, not a timeout.
type CommittedReader struct {
	kafka   *kgo.Client
	admin   *kadm.Client
	topic   string
	topicID [16]byte
	leaders map[int32]int32
	next    map[int32]int64
	// stable is, per partition, the offset up to which the newest response
	// said there is something to read: the last stable offset, or the high
	// watermark when uncommitted; absent until a response arrived.
	stable       map[int32]int64
	uncommitted  bool
	decompressor kgo.Decompressor
	failingSince time.Time // zero while rounds succeed
	// roundBytes bounds what one round fetches from each leader, as stored
	// (a partition's share is a quarter of it); see SetRoundBytes.
	roundBytes int32
}

// NewCommittedReader reads topic from its beginning with read_committed
// isolation, asking every partition's leader directly.
func NewCommittedReader(ctx context.Context, conn *Conn, topic string) (*CommittedReader, error) {
	return newReader(ctx, conn, topic, false)
}

// NewUncommittedReader is NewCommittedReader with read_uncommitted
// isolation: it reads up to the high watermark, records of open and aborted
// transactions included, so a transaction left open cannot hold it up. It
// suits records written outside transactions, and asking whether a record
// was written at all.
func NewUncommittedReader(ctx context.Context, conn *Conn, topic string) (*CommittedReader, error) {
	return newReader(ctx, conn, topic, true)
}

func newReader(ctx context.Context, conn *Conn, topic string, uncommitted bool) (*CommittedReader, error) {
	r := &CommittedReader{
		kafka:        conn.Client,
		admin:        conn.Admin,
		topic:        topic,
		stable:       make(map[int32]int64),
		uncommitted:  uncommitted,
		decompressor: kgo.DefaultDecompressor(),
		roundBytes:   readerMaxBytes,
	}
	if err := r.refreshLeaders(ctx); err != nil {
		return nil, err
	}
	starts, err := conn.Admin.ListStartOffsets(ctx, topic)
	if err != nil {
		return nil, fmt.Errorf("list start offsets of %s: %w", topic, err)
	}
	if err := starts.Error(); err != nil {
		return nil, fmt.Errorf("list start offsets of %s: %w", topic, err)
	}
	r.next = make(map[int32]int64, len(r.leaders))
	for partition := range r.leaders {
		start, ok := starts.Lookup(topic, partition)
		if !ok {
			return nil, fmt.Errorf("list start offsets of %s: partition %d missing from the answer", topic, partition)
		}
		r.next[partition] = start.Offset
	}
	return r, nil
}

// SetRoundBytes raises how many bytes, as stored, one round may fetch from
// each leader (readerMaxBytes unless raised; a partition at most a quarter
// of it). Fewer, larger rounds read a topic faster, and a round of
// compressed records takes several times its size in memory once decoded,
// so it suits uncompressed topics.
func (r *CommittedReader) SetRoundBytes(perLeader int32) {
	r.roundBytes = max(perLeader, readerMaxBytes)
}

// partitionBytes bounds what one round fetches from a partition.
func (r *CommittedReader) partitionBytes() int32 { return r.roundBytes / 4 }

func (r *CommittedReader) refreshLeaders(ctx context.Context) error {
	details, err := FreshTopicDetails(ctx, r.kafka, r.topic)
	if err != nil {
		return fmt.Errorf("metadata of %s: %w", r.topic, err)
	}
	detail, ok := details[r.topic]
	if !ok {
		return fmt.Errorf("metadata of %s: topic missing from the answer", r.topic)
	}
	if detail.Err != nil {
		return fmt.Errorf("metadata of %s: %w", r.topic, detail.Err)
	}
	r.topicID = detail.ID
	r.leaders = make(map[int32]int32, len(detail.Partitions))
	for _, p := range detail.Partitions {
		r.leaders[p.Partition] = p.Leader
	}
	return nil
}

// CaughtUp is true when every partition has been read up to the last stable
// offset (for an uncommitted reader: the high watermark) its newest Fetch
// response reported.
func (r *CommittedReader) CaughtUp() bool {
	for partition, next := range r.next {
		stable, known := r.stable[partition]
		if !known || next < stable {
			return false
		}
	}
	return true
}

type leaderFetch struct {
	partitions []kgo.FetchPartition
	next       map[int32]int64
	retry      bool  // a partition answered with a retriable error
	err        error // the request failed (connection, broker); worth a retry
	fatal      error // a partition cannot be read (decoding, offset out of range)
}

// FetchRound sends one Fetch per leader, concurrently, and passes the
// records to onRecord in partition order from the calling goroutine. With
// onlyBehind it asks only for partitions not yet known to be caught up;
// otherwise it asks for all, which is how a reader waits for new records.
// maxWait is how long a broker may hold the request for data to arrive. It
// returns the number of records passed to onRecord.
//
// Leader changes and dropped connections are ridden out: the round reports
// no records for those partitions, and the next round uses fresh metadata.
func (r *CommittedReader) FetchRound(ctx context.Context, maxWait time.Duration, onlyBehind bool, onRecord func(*kgo.Record)) (int, error) {
	byLeader, leaderless := r.partitionsByLeader(onlyBehind)
	results := r.fetchFromLeaders(ctx, byLeader, maxWait)

	retry := leaderless
	var requestErrs error
	var all []kgo.FetchPartition
	for _, result := range results {
		switch {
		case ctx.Err() != nil:
			return 0, ctx.Err()
		case result.fatal != nil:
			return 0, result.fatal
		case result.err != nil:
			retry = true
			requestErrs = errors.Join(requestErrs, result.err)
			continue
		case result.retry:
			retry = true
		}
		for p, o := range result.next {
			r.next[p] = max(r.next[p], o)
		}
		all = append(all, result.partitions...)
	}
	records := r.deliver(all, onRecord)
	if !retry {
		r.failingSince = time.Time{}
		return records, nil
	}
	return records, r.rideOut(ctx, requestErrs)
}

// partitionsByLeader groups the partitions to fetch by their leader; with
// onlyBehind, those known to be caught up are left out. leaderless is true
// when a partition has no leader right now.
func (r *CommittedReader) partitionsByLeader(onlyBehind bool) (byLeader map[int32][]int32, leaderless bool) {
	byLeader = make(map[int32][]int32)
	for partition, leader := range r.leaders {
		if onlyBehind {
			if stable, known := r.stable[partition]; known && r.next[partition] >= stable {
				continue
			}
		}
		byLeader[leader] = append(byLeader[leader], partition)
	}
	_, leaderless = byLeader[-1]
	delete(byLeader, -1)
	return byLeader, leaderless
}

// fetchFromLeaders sends one Fetch per leader, concurrently.
func (r *CommittedReader) fetchFromLeaders(ctx context.Context, byLeader map[int32][]int32, maxWait time.Duration) []leaderFetch {
	results := make([]leaderFetch, 0, len(byLeader))
	var (
		mu sync.Mutex
		wg sync.WaitGroup
	)
	for leader, partitions := range byLeader {
		wg.Go(func() {
			result := r.fetchFromLeader(ctx, leader, partitions, maxWait)
			mu.Lock()
			results = append(results, result)
			mu.Unlock()
		})
	}
	wg.Wait()
	return results
}

// deliver records the partitions' last stable offsets and passes their
// records to onRecord in partition order; it returns how many it passed.
func (r *CommittedReader) deliver(all []kgo.FetchPartition, onRecord func(*kgo.Record)) int {
	slices.SortFunc(all, func(a, b kgo.FetchPartition) int { return int(a.Partition - b.Partition) })
	records := 0
	for i := range all {
		until := all[i].LastStableOffset
		if r.uncommitted {
			until = all[i].HighWatermark
		}
		if until >= 0 {
			r.stable[all[i].Partition] = until
		}
		for _, rec := range all[i].Records {
			onRecord(rec)
			records++
		}
	}
	return records
}

// rideOut waits a little after a round with leaderless or failing
// partitions and refreshes the leaders, unless they have been failing for
// longer than readerMaxFailingFor.
func (r *CommittedReader) rideOut(ctx context.Context, requestErrs error) error {
	if r.failingSince.IsZero() {
		r.failingSince = time.Now()
	}
	if failing := time.Since(r.failingSince); failing > readerMaxFailingFor {
		return fmt.Errorf("read %s: partitions leaderless or failing for %s: %w", r.topic, failing.Round(time.Second), requestErrs)
	}
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(readerRetryBackoff):
	}
	if err := r.refreshLeaders(ctx); err != nil && ctx.Err() == nil {
		// The next round tries again with the leaders it knows.
		return nil
	}
	return ctx.Err()
}

func (r *CommittedReader) fetchFromLeader(ctx context.Context, leader int32, partitions []int32, maxWait time.Duration) leaderFetch {
	req := kmsg.NewPtrFetchRequest()
	req.MaxWaitMillis = int32(maxWait / time.Millisecond)
	req.MinBytes = 1
	req.MaxBytes = r.roundBytes
	req.IsolationLevel = 1 // read_committed
	isolation := kgo.ReadCommitted()
	if r.uncommitted {
		req.IsolationLevel, isolation = 0, kgo.ReadUncommitted()
	}
	topic := kmsg.NewFetchRequestTopic()
	topic.Topic = r.topic
	topic.TopicID = r.topicID
	for _, partition := range partitions {
		p := kmsg.NewFetchRequestTopicPartition()
		p.Partition = partition
		p.FetchOffset = r.next[partition]
		p.PartitionMaxBytes = r.partitionBytes()
		topic.Partitions = append(topic.Partitions, p)
	}
	req.Topics = append(req.Topics, topic)

	resp, err := req.RequestWith(ctx, r.kafka.Broker(int(leader)))
	if err != nil {
		return leaderFetch{err: fmt.Errorf("fetch %s from broker %d: %w", r.topic, leader, err)}
	}
	if err := kerr.ErrorForCode(resp.ErrorCode); err != nil {
		return leaderFetch{err: fmt.Errorf("fetch %s from broker %d: %w", r.topic, leader, err)}
	}

	result := leaderFetch{next: make(map[int32]int64, len(partitions))}
	for ti := range resp.Topics {
		for pi := range resp.Topics[ti].Partitions {
			rp := &resp.Topics[ti].Partitions[pi]
			if err := kerr.ErrorForCode(rp.ErrorCode); err != nil {
				if kerr.IsRetriable(err) {
					result.retry = true
					continue
				}
				return leaderFetch{fatal: fmt.Errorf("fetch %s partition %d at offset %d: %w", r.topic, rp.Partition, r.next[rp.Partition], err)}
			}
			from := r.next[rp.Partition]
			fp, next := kgo.ProcessFetchPartition(kgo.ProcessFetchPartitionOpts{
				Offset:         from,
				IsolationLevel: isolation,
				Topic:          r.topic,
				Partition:      rp.Partition,
			}, rp, r.decompressor, nil)
			if fp.Err != nil {
				return leaderFetch{fatal: fmt.Errorf("decode %s partition %d at offset %d: %w", r.topic, rp.Partition, from, fp.Err)}
			}
			until := fp.LastStableOffset
			if r.uncommitted {
				until = fp.HighWatermark
			}
			if next == from && len(rp.RecordBatches) > 0 && until > from {
				return leaderFetch{fatal: fmt.Errorf("decode %s partition %d: no progress at offset %d (a batch larger than %d bytes?)", r.topic, rp.Partition, from, r.partitionBytes())}
			}
			result.next[rp.Partition] = next
			result.partitions = append(result.partitions, fp)
		}
	}
	return result
}
