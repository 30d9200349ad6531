package identity

import (
	"sync"
	"time"
)

// limiter counts wrong passwords and client secrets per principal in a token
// bucket: each failure takes a token, one token comes back every refill, and
// with no token left every attempt, right or wrong, is refused until one comes
// back. That makes guessing slow without locking an owner out for long. The
// buckets live in memory: each process of a cluster limits on its own, which
// multiplies the guessing rate by the number of processes at most.
type limiter struct {
	mu     sync.Mutex
	max    float64
	refill time.Duration
	b      map[string]*bucket
}

type bucket struct {
	tokens float64
	at     time.Time
}

// maxBuckets bounds the limiter's memory; full buckets are forgotten first.
const maxBuckets = 100_000

func newLimiter(max int, refill time.Duration) *limiter {
	return &limiter{max: float64(max), refill: refill, b: map[string]*bucket{}}
}

// level refills k's bucket up to now and returns it, or nil if k has no
// failures on record. Callers hold l.mu.
func (l *limiter) level(k string, now time.Time) *bucket {
	b := l.b[k]
	if b == nil {
		return nil
	}
	if d := now.Sub(b.at); d > 0 {
		b.tokens += float64(d) / float64(l.refill)
		b.at = now
	}
	if b.tokens >= l.max {
		delete(l.b, k)
		return nil
	}
	return b
}

// locked reports whether k is locked out at now, and for how long still.
func (l *limiter) locked(k string, now time.Time) (time.Duration, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	b := l.level(k, now)
	if b == nil || b.tokens >= 1 {
		return 0, false
	}
	wait := time.Duration((1 - b.tokens) * float64(l.refill))
	if wait < time.Second {
		wait = time.Second
	}
	return wait, true
}

// fail records a failed attempt of k at now.
func (l *limiter) fail(k string, now time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	b := l.level(k, now)
	if b == nil {
		if len(l.b) >= maxBuckets {
			l.prune(now)
		}
		b = &bucket{tokens: l.max, at: now}
		l.b[k] = b
	}
	b.tokens--
	if b.tokens < 0 {
		b.tokens = 0
	}
}

// succeed forgets k's failures after a successful attempt.
func (l *limiter) succeed(k string) {
	l.mu.Lock()
	delete(l.b, k)
	l.mu.Unlock()
}

// prune drops refilled buckets and, if that is not enough, arbitrary ones:
// under a flood of distinct names, forgetting some is better than running out
// of memory. Callers hold l.mu.
func (l *limiter) prune(now time.Time) {
	for k := range l.b {
		l.level(k, now)
	}
	for k := range l.b {
		if len(l.b) < maxBuckets/2 {
			break
		}
		delete(l.b, k)
	}
}
