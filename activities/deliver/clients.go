package deliver

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"go.temporal.io/sdk/temporal"

	"github.com/flowproof/flowproof/internal/errtype"
	"github.com/flowproof/flowproof/internal/kafkaeos"
)

// consumerPoolIdle caps the consumers a pool keeps between uses: a run's
// delivery has a segment and the next one's plan reading at once, so two
// per run in flight on the worker, and more are closed when given back.
const consumerPoolIdle = 4

// segmentProducerIdleFor is how long a run's delivery producer is kept
// without a segment: far longer than a wait for the next plan or token.
const segmentProducerIdleFor = 2 * time.Minute

// Clients are the Kafka clients a worker keeps from one plan or segment to
// the next: building a client per plan and per segment opened about ten
// broker connections a segment, 2,800 a run, and on a secured cluster each
// connection costs the brokers a TLS handshake and a SASL login. Close
// releases them.
type Clients struct {
	consumers *consumerPool
	producers *kafkaeos.KeptProducers
}

// NewClients keeps no client yet; they are built with kafka's connection
// options.
func NewClients(kafka *kafkaeos.Conn) *Clients {
	return &Clients{
		consumers: &consumerPool{kafka: kafka},
		producers: kafkaeos.NewKeptProducers(segmentProducerIdleFor),
	}
}

// Close closes the kept clients; those in use are closed when their plan
// or segment ends.
func (c *Clients) Close() {
	c.consumers.close()
	c.producers.Close()
}

// consumerPool lends read_committed partition consumers to plans and
// segments. A pooled consumer is still a client of its own that fetches
// from each leader separately and hands on what arrives first; reading
// over the worker's shared client instead made each round wait for the
// slowest leader (docs/performance.md, "Delivery's segments").
type consumerPool struct {
	kafka *kafkaeos.Conn

	mu     sync.Mutex
	idle   []*kgo.Client
	closed bool
}

// partitionConsumer reads partitions of one topic from given offsets, until
// it is given back to its pool.
type partitionConsumer struct {
	client     *kgo.Client
	topic      string
	partitions []int32
	pool       *consumerPool
}

// take lends a consumer of partitions of topic, read_committed, from
// offsets (the start of a partition that has none).
func (p *consumerPool) take(topic string, offsets map[int32]int64, partitions []int32) (*partitionConsumer, error) {
	client, err := p.idleOrNew()
	if err != nil {
		return nil, err
	}
	starts := make(map[int32]kgo.Offset, len(partitions))
	for _, partition := range partitions {
		if o, ok := offsets[partition]; ok {
			starts[partition] = kgo.NewOffset().At(o)
		} else {
			starts[partition] = kgo.NewOffset().AtStart()
		}
	}
	client.AddConsumePartitions(map[string]map[int32]kgo.Offset{topic: starts})
	return &partitionConsumer{client: client, topic: topic, partitions: partitions, pool: p}, nil
}

func (p *consumerPool) idleOrNew() (*kgo.Client, error) {
	p.mu.Lock()
	if n := len(p.idle); n > 0 {
		client := p.idle[n-1]
		p.idle = p.idle[:n-1]
		p.mu.Unlock()
		return client, nil
	}
	p.mu.Unlock()
	return p.kafka.NewClient(
		// A direct consumer of no partition yet; take adds them.
		kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{}),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		kgo.FetchMaxWait(500*time.Millisecond),
		// A start offset outside the partition means the workflow's offsets
		// do not belong to this topic; silently reading from the start or
		// the end would deliver messages twice or never.
		kgo.ConsumeResetOffset(kgo.NoResetOffset()),
	)
}

// giveBack returns the consumer to its pool, forgetting its topic: the
// fetches in flight for it are dropped, and so is what it buffered. A
// consumer whose work failed is closed instead, so that a client in a
// state nobody looked into never serves another segment.
func (c *partitionConsumer) giveBack(failed bool) {
	if !failed {
		c.client.ResumeFetchPartitions(map[string][]int32{c.topic: c.partitions})
		c.client.PurgeTopicsFromClient(c.topic)
		c.pool.mu.Lock()
		kept := !c.pool.closed && len(c.pool.idle) < consumerPoolIdle
		if kept {
			c.pool.idle = append(c.pool.idle, c.client)
		}
		c.pool.mu.Unlock()
		if kept {
			return
		}
	}
	c.client.Close()
}

// pause stops reading partitions until the consumer is given back.
func (c *partitionConsumer) pause(partitions []int32) {
	c.client.PauseFetchPartitions(map[string][]int32{c.topic: partitions})
}

// poll polls up to maxRecords committed records (0: no limit), waiting until
// deadline (zero: no limit) for the first; it returns none when the
// deadline passed, and ctx's error when ctx ended.
func (c *partitionConsumer) poll(ctx context.Context, maxRecords int, deadline time.Time) ([]*kgo.Record, error) {
	for {
		pollCtx, cancel := ctx, context.CancelFunc(func() {})
		if !deadline.IsZero() {
			pollCtx, cancel = context.WithDeadline(ctx, deadline)
		}
		fetches := c.client.PollRecords(pollCtx, maxRecords)
		cancel()
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		var fetchErr error
		fetches.EachError(func(topic string, partition int32, err error) {
			if fetchErr == nil && !errors.Is(err, context.DeadlineExceeded) && !errors.Is(err, context.Canceled) {
				fetchErr = fmt.Errorf("fetch %s[%d]: %w", topic, partition, err)
			}
		})
		if errors.Is(fetchErr, kerr.OffsetOutOfRange) {
			return nil, temporal.NewNonRetryableApplicationError(fetchErr.Error()+"; the segment's start offsets are outside the topic", errtype.OffsetOutOfRange, fetchErr)
		}
		if fetchErr != nil {
			return nil, fetchErr
		}
		if recs := fetches.Records(); len(recs) > 0 {
			return recs, nil
		}
		if !deadline.IsZero() && !time.Now().Before(deadline) {
			return nil, nil
		}
	}
}

// close closes the kept consumers; those lent out are closed when given
// back.
func (p *consumerPool) close() {
	p.mu.Lock()
	idle := p.idle
	p.idle, p.closed = nil, true
	p.mu.Unlock()
	for _, client := range idle {
		client.Close()
	}
}
