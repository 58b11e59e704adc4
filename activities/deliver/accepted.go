package deliver

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/flowproof/flowproof/activities"
	"github.com/flowproof/flowproof/internal/kafkaeos"
)

// acceptedWriteTimeout bounds how long a record of an accepted batch may
// take to be acknowledged; the segment fails (and is retried) after it.
const acceptedWriteTimeout = 30 * time.Second

// acceptedLog records the endpoint's hop: one activities.AcceptedBatch per
// batch the endpoint accepted, written to the run's accepted topic as soon
// as the answer arrives.
//
// The writes are outside the segment's transaction, so neither an abort nor
// a retry of the segment erases them, and they go through one idempotent
// producer with acks=all that every segment of the worker shares (made on
// first use): a segment produces asynchronously and waits only for its own
// records before it counts a batch as delivered and before it commits.
type acceptedLog struct {
	kafka *kafkaeos.Conn

	mu       sync.Mutex
	producer *kgo.Client
}

func newAcceptedLog(kafka *kafkaeos.Conn) *acceptedLog {
	return &acceptedLog{kafka: kafka}
}

func (l *acceptedLog) client() (*kgo.Client, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.producer != nil {
		return l.producer, nil
	}
	if l.kafka == nil {
		return nil, errors.New("accepted batches: no Kafka connection")
	}
	// Idempotent writes are franz-go's default, and stay on: a retried
	// produce request must not record a batch twice.
	producer, err := l.kafka.NewClient(
		kgo.RequiredAcks(kgo.AllISRAcks()),
		kgo.RecordDeliveryTimeout(acceptedWriteTimeout),
	)
	if err != nil {
		return nil, fmt.Errorf("accepted batches: %w", err)
	}
	l.producer = producer
	return producer, nil
}

// write produces rec to topic and calls done with the broker's answer, from
// a goroutine of the producer. The write goes on when ctx ends: what the
// endpoint accepted must be recorded whatever becomes of the segment.
func (l *acceptedLog) write(ctx context.Context, topic string, rec activities.AcceptedBatch, done func(error)) {
	value := acceptedBatchValue(rec)
	producer, err := l.client()
	if err != nil {
		done(err)
		return
	}
	producer.Produce(context.WithoutCancel(ctx), &kgo.Record{Topic: topic, Key: []byte(rec.BatchID), Value: value},
		func(_ *kgo.Record, err error) {
			if err != nil {
				err = fmt.Errorf("record accepted batch %s in %s: %w", rec.BatchID, topic, err)
			}
			done(err)
		})
}

// acceptedRecord is the accepted topic's record of a batch.
func acceptedRecord(b *deliveryBatch, segment int, attempt int32, replayed bool, at time.Time) activities.AcceptedBatch {
	seqs := make([]int64, len(b.messages))
	for i, m := range b.messages {
		seqs[i] = m.Seq
	}
	return activities.AcceptedBatch{
		BatchID: b.id, Segment: segment, Attempt: attempt, Replayed: replayed,
		Seqs: seqs, AcceptedAtUnixMillis: at.UnixMilli(),
	}
}
