package produce

import (
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// laneIdleFor is how long a lane's producer is kept without a chunk: far
// longer than a backpressure hold between two of a run's chunks, and short
// enough that a finished run's producers and their connections soon go.
const laneIdleFor = 2 * time.Minute

// laneProducers keeps each lane's transactional producer between the lane's
// chunks, so a chunk that finds one skips building a client, dialing the
// brokers (a TLS handshake and a SASL exchange each on a secured cluster)
// and claiming the transactional id (InitProducerId, a write to the
// transaction log): together a third of a 10,000-record chunk on the local
// stack (docs/performance.md, "Producers kept across a lane's chunks").
//
// A producer is taken out while a chunk uses it, so two chunks never share
// one; only a chunk that committed (or found its chunk committed) puts its
// producer back, with no transaction open.
type laneProducers struct {
	idleFor time.Duration

	mu     sync.Mutex
	idle   map[string]*idleProducer // by transactional id
	closed bool
}

type idleProducer struct {
	client *kgo.Client
	// timeout is the transaction timeout the id was claimed with.
	timeout time.Duration
	expiry  *time.Timer
}

func newLaneProducers(idleFor time.Duration) *laneProducers {
	return &laneProducers{idleFor: idleFor, idle: make(map[string]*idleProducer)}
}

// take returns the kept producer of txnID if it was claimed with timeout,
// and nil otherwise; a producer of another timeout is closed.
func (l *laneProducers) take(txnID string, timeout time.Duration) *kgo.Client {
	l.mu.Lock()
	kept, ok := l.idle[txnID]
	if ok {
		delete(l.idle, txnID)
		kept.expiry.Stop()
	}
	l.mu.Unlock()
	switch {
	case !ok:
		return nil
	case kept.timeout != timeout:
		kept.client.Close()
		return nil
	}
	return kept.client
}

// put keeps client, a producer of txnID with no transaction open, for the
// lane's next chunk, in place of one kept already (put back by an attempt
// that ended after a newer one started: the newest to finish is the likelier
// to hold the id's newest claim). Once the pool is closed, client is closed.
func (l *laneProducers) put(txnID string, timeout time.Duration, client *kgo.Client) {
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		client.Close()
		return
	}
	replaced := l.idle[txnID]
	kept := &idleProducer{client: client, timeout: timeout}
	kept.expiry = time.AfterFunc(l.idleFor, func() { l.expire(txnID, kept) })
	l.idle[txnID] = kept
	l.mu.Unlock()
	if replaced != nil {
		replaced.expiry.Stop()
		replaced.client.Close()
	}
}

// expire closes kept if it is still the idle producer of txnID.
func (l *laneProducers) expire(txnID string, kept *idleProducer) {
	l.mu.Lock()
	current := l.idle[txnID] == kept
	if current {
		delete(l.idle, txnID)
	}
	l.mu.Unlock()
	if current {
		kept.client.Close()
	}
}

// close closes every kept producer; producers put back afterwards are
// closed at once.
func (l *laneProducers) close() {
	l.mu.Lock()
	l.closed = true
	idle := l.idle
	l.idle = make(map[string]*idleProducer)
	l.mu.Unlock()
	for _, kept := range idle {
		kept.expiry.Stop()
		kept.client.Close()
	}
}
