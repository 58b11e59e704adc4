package endpoint

import (
	"sync"
	"time"
)

// quotaLedger counts the messages accepted under each token (by jti). An
// entry lives until its token expires, after which no request can use it.
type quotaLedger struct {
	mu        sync.Mutex
	used      map[string]*quotaUse
	lastSweep time.Time
}

type quotaUse struct {
	messages int64
	expires  time.Time
}

const quotaSweepInterval = time.Minute

func newQuotaLedger() *quotaLedger {
	return &quotaLedger{used: make(map[string]*quotaUse)}
}

// consume adds n messages to the token's count if that stays within quota,
// and reports the count after the call and whether it was added. The check
// and the add are one step, so concurrent batches cannot overrun the quota.
func (l *quotaLedger) consume(jti string, n, quota int64, expires, now time.Time) (used int64, ok bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if now.Sub(l.lastSweep) >= quotaSweepInterval {
		for id, u := range l.used {
			if now.After(u.expires) {
				delete(l.used, id)
			}
		}
		l.lastSweep = now
	}
	u := l.used[jti]
	if u == nil {
		u = &quotaUse{expires: expires}
		l.used[jti] = u
	}
	if u.messages+n > quota {
		return u.messages, false
	}
	u.messages += n
	return u.messages, true
}

func (l *quotaLedger) tokens() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.used)
}

// add records messages accepted before a restart, without the quota check.
func (l *quotaLedger) add(jti string, n int64, expires time.Time) {
	if jti == "" {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	u := l.used[jti]
	if u == nil {
		u = &quotaUse{expires: expires}
		l.used[jti] = u
	}
	u.messages += n
}
