package deliver

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"go.temporal.io/sdk/temporal"

	"github.com/flowproof/flowproof/internal/errtype"
	"github.com/flowproof/flowproof/internal/kafkaeos"
)

// enrichedLongPoll is how long a broker may hold one of the reader's
// fetches for records to arrive.
const enrichedLongPoll = 500 * time.Millisecond

// enrichedReader reads a segment's enriched records, read_committed, from
// the segment's offsets. Its fetches go over the worker's shared Kafka
// connections: a consumer client of its own per plan and per segment
// opened about ten connections a segment, a thousand in a run of a million
// messages, each costing the brokers a connection set-up (and, on a secured
// cluster, a TLS handshake and a SASL login). It reads only when polled,
// from one goroutine.
type enrichedReader struct {
	reader *kafkaeos.CommittedReader
	// buffered are records of the last round that a poll with a limit
	// left for the next one.
	buffered []*kgo.Record
}

func (a *Activities) enrichedReader(ctx context.Context, topic string, offsets map[int32]int64, partitions []int32) (*enrichedReader, error) {
	reader, err := kafkaeos.NewCommittedReaderAt(ctx, a.kafka, topic, partitions, offsets)
	if err != nil {
		return nil, err
	}
	return &enrichedReader{reader: reader}, nil
}

// poll returns up to maxRecords records (0: no limit), waiting until
// deadline (zero: no limit) for the first; it returns none when the
// deadline passed, and ctx's error when ctx ended.
func (e *enrichedReader) poll(ctx context.Context, maxRecords int, deadline time.Time) ([]*kgo.Record, error) {
	for len(e.buffered) == 0 {
		wait := enrichedLongPoll
		if !deadline.IsZero() {
			left := time.Until(deadline)
			if left <= 0 {
				return nil, nil
			}
			wait = min(wait, left)
		}
		if _, err := e.reader.FetchRound(ctx, wait, false, func(rec *kgo.Record) {
			e.buffered = append(e.buffered, rec)
		}); err != nil {
			if ctxErr := ctx.Err(); ctxErr != nil {
				return nil, ctxErr
			}
			if errors.Is(err, kerr.OffsetOutOfRange) {
				return nil, temporal.NewNonRetryableApplicationError(err.Error()+"; the segment's start offsets are outside the topic", errtype.OffsetOutOfRange, err)
			}
			return nil, fmt.Errorf("read enriched records: %w", err)
		}
	}
	n := len(e.buffered)
	if maxRecords > 0 {
		n = min(n, maxRecords)
	}
	recs := e.buffered[:n:n]
	e.buffered = e.buffered[n:]
	return recs, nil
}

// stop reads partitions no more, and drops what is buffered of them.
func (e *enrichedReader) stop(partitions []int32) {
	e.reader.StopReading(partitions...)
	kept := e.buffered[:0]
	for _, rec := range e.buffered {
		stopped := false
		for _, p := range partitions {
			stopped = stopped || rec.Partition == p
		}
		if !stopped {
			kept = append(kept, rec)
		}
	}
	e.buffered = kept
}
