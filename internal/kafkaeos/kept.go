package kafkaeos

import (
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// KeptProducers keeps a lane's transactional producer between the units of
// work that run on the lane one after another (a run's chunks, a run's
// delivery segments), so a unit that finds one skips building a client,
// dialing the brokers (a TLS handshake and a SASL exchange each on a
// secured cluster) and claiming the transactional id (InitProducerId, a
// write to the transaction log): together a third of a 10,000-record chunk
// on the local stack (docs/performance.md, "Producers kept across a lane's
// chunks").
//
// A producer is taken out while a unit uses it, so two units never share
// one; only a unit that committed (or found itself committed) puts its
// producer back, with no transaction open. A kept producer whose id another
// producer claimed since is fenced: the unit that takes it finds out at its
// transaction's first request (see Fenced) and claims the id anew.
type KeptProducers struct {
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

// NewKeptProducers keeps each producer put back for idleFor without use:
// far longer than a backpressure hold between two of a run's units, and
// short enough that a finished run's producers and their connections soon
// go. Close closes them.
func NewKeptProducers(idleFor time.Duration) *KeptProducers {
	return &KeptProducers{idleFor: idleFor, idle: make(map[string]*idleProducer)}
}

// Take returns the kept producer of txnID if it was claimed with timeout,
// and nil otherwise; a producer of another timeout is closed.
func (l *KeptProducers) Take(txnID string, timeout time.Duration) *kgo.Client {
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

// Put keeps client, a producer of txnID with no transaction open, for the
// lane's next unit, in place of one kept already (put back by an attempt
// that ended after a newer one started: the newest to finish is the likelier
// to hold the id's newest claim). Once the pool is closed, client is closed.
func (l *KeptProducers) Put(txnID string, timeout time.Duration, client *kgo.Client) {
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
func (l *KeptProducers) expire(txnID string, kept *idleProducer) {
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

// Kept is the producer kept for txnID, nil if none: for tests and logs;
// the producer stays kept.
func (l *KeptProducers) Kept(txnID string) *kgo.Client {
	l.mu.Lock()
	defer l.mu.Unlock()
	if kept := l.idle[txnID]; kept != nil {
		return kept.client
	}
	return nil
}

// Close closes every kept producer; producers put back afterwards are
// closed at once.
func (l *KeptProducers) Close() {
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
