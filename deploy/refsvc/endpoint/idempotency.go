package endpoint

import (
	"container/list"
	"context"
	"errors"
	"sync"
	"time"
)

// errKeyReused means an Idempotency-Key came back with a different body.
var errKeyReused = errors.New("this Idempotency-Key was already used with a different request body")

// idempotencyStore remembers the response to each accepted batch by key, so a
// client that retries (after a timeout, say) gets the same batch number and
// sending ids instead of a second acceptance. Only accepted batches are
// stored: a refused one may be retried and then accepted.
//
// Entries expire after ttl and the oldest go first beyond maxEntries; a retry
// later than that is treated as a new batch.
type idempotencyStore struct {
	mu         sync.Mutex
	entries    map[string]*idempotencyEntry
	order      *list.List // of keys, oldest first; ttl is uniform, so also by expiry
	ttl        time.Duration
	maxEntries int
}

type idempotencyEntry struct {
	fingerprint [32]byte
	// done is closed when the first request with this key finishes; until
	// then response is nil and later requests with the key wait for it.
	done     chan struct{}
	response []byte
	expires  time.Time
	element  *list.Element
}

func newIdempotencyStore(ttl time.Duration, maxEntries int) *idempotencyStore {
	return &idempotencyStore{entries: make(map[string]*idempotencyEntry), order: list.New(), ttl: ttl, maxEntries: maxEntries}
}

// begin returns the stored response for key, or, when there is none, makes
// the caller the key's owner (stored == nil), who must then call complete or
// abandon. A request that finds the key in flight waits for the owner.
func (s *idempotencyStore) begin(ctx context.Context, key string, fingerprint [32]byte, now time.Time) (stored []byte, err error) {
	for {
		s.mu.Lock()
		s.evict(now)
		e := s.entries[key]
		if e == nil {
			e = &idempotencyEntry{fingerprint: fingerprint, done: make(chan struct{})}
			s.entries[key] = e
			s.mu.Unlock()
			return nil, nil
		}
		if e.fingerprint != fingerprint {
			s.mu.Unlock()
			return nil, errKeyReused
		}
		if e.response != nil {
			s.mu.Unlock()
			return e.response, nil
		}
		done := e.done
		s.mu.Unlock()
		select {
		case <-done:
			// The owner stored a response or gave up; look again.
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

// complete stores the owner's response.
func (s *idempotencyStore) complete(key string, response []byte, now time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	e := s.entries[key]
	e.response, e.expires = response, now.Add(s.ttl)
	e.element = s.order.PushBack(key)
	close(e.done)
}

// restore puts back an entry accepted before a restart; acceptedAt keeps its
// original expiry. Journal order is acceptance order, which keeps the list
// sorted by expiry.
func (s *idempotencyStore) restore(key string, fingerprint [32]byte, response []byte, acceptedAt time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if old := s.entries[key]; old != nil && old.element != nil {
		s.order.Remove(old.element)
	}
	done := make(chan struct{})
	close(done)
	s.entries[key] = &idempotencyEntry{
		fingerprint: fingerprint,
		done:        done,
		response:    response,
		expires:     acceptedAt.Add(s.ttl),
		element:     s.order.PushBack(key),
	}
}

// abandon forgets a key whose batch was not accepted.
func (s *idempotencyStore) abandon(key string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	e := s.entries[key]
	delete(s.entries, key)
	close(e.done)
}

// evict drops expired entries and, beyond maxEntries, the oldest ones.
// Entries still in flight are not in order and so never evicted.
func (s *idempotencyStore) evict(now time.Time) {
	for front := s.order.Front(); front != nil; front = s.order.Front() {
		key := front.Value.(string)
		if s.order.Len() <= s.maxEntries && now.Before(s.entries[key].expires) {
			return
		}
		s.order.Remove(front)
		delete(s.entries, key)
	}
}

func (s *idempotencyStore) len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.order.Len()
}
