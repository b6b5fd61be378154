package web

import (
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// limiter keeps one token bucket per key (a client IP) and forgets keys
// that have been idle for longer than it takes to refill.
type limiter struct {
	mu      sync.Mutex
	r       Rate
	buckets map[string]*bucket
	swept   time.Time
}

type bucket struct {
	l    *rate.Limiter
	seen time.Time
}

// newLimiter returns a limiter for r; a zero r allows everything.
func newLimiter(r Rate) *limiter {
	return &limiter{r: r, buckets: map[string]*bucket{}}
}

// allow takes one event for key at now. When the bucket is empty it
// returns false and how long to wait.
func (l *limiter) allow(key string, now time.Time) (bool, time.Duration) {
	if l.r.N <= 0 || l.r.Per <= 0 {
		return true, 0
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if now.Sub(l.swept) > l.r.Per {
		for k, b := range l.buckets {
			if now.Sub(b.seen) > l.r.Per {
				delete(l.buckets, k)
			}
		}
		l.swept = now
	}
	b, ok := l.buckets[key]
	if !ok {
		b = &bucket{l: rate.NewLimiter(rate.Every(l.r.Per/time.Duration(l.r.N)), l.r.N)}
		l.buckets[key] = b
	}
	b.seen = now
	res := b.l.ReserveN(now, 1)
	if d := res.DelayFrom(now); d > 0 {
		res.CancelAt(now)
		return false, d
	}
	return true, 0
}
