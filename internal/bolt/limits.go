package bolt

import (
	"context"
	"sync"
	"time"

	"optin/internal/consent"
)

// limits is the abuse defences' state (consent.LimitStore). It lives in
// memory: only one process opens the database file at a time, so that
// process is every instance there is, and a restart only refills the
// buckets.
type limits struct {
	mu      sync.Mutex
	buckets map[string]limitBucket
	nonces  map[string]time.Time // nonce -> expiry
	swept   time.Time
}

// limitBucket is a bucket with the time it is full again.
type limitBucket struct {
	consent.Bucket
	full time.Time
}

// limitSweep is how often the maps drop full buckets and expired nonces.
const limitSweep = time.Minute

// sweep drops full buckets and expired nonces at most once a limitSweep;
// l.mu is held.
func (l *limits) sweep(now time.Time) {
	if now.Sub(l.swept) < limitSweep {
		return
	}
	l.swept = now
	for k, b := range l.buckets {
		if !now.Before(b.full) {
			delete(l.buckets, k)
		}
	}
	for n, exp := range l.nonces {
		if !now.Before(exp) {
			delete(l.nonces, n)
		}
	}
}

// TakeToken implements consent.LimitStore.
func (db *DB) TakeToken(_ context.Context, key string, r consent.TokenRate, now time.Time) (bool, time.Duration, error) {
	l := &db.limits
	l.mu.Lock()
	defer l.mu.Unlock()
	l.sweep(now)
	b, ok := l.buckets[key]
	if !ok {
		b.Bucket = consent.FullBucket(r, now)
	}
	after, took, wait := b.Take(r, now)
	if l.buckets == nil {
		l.buckets = map[string]limitBucket{}
	}
	l.buckets[key] = limitBucket{Bucket: after, full: after.At.Add(r.FullAfter(after.Tokens))}
	return took, wait, nil
}

// TokenSpent implements consent.LimitStore.
func (db *DB) TokenSpent(_ context.Context, key string, r consent.TokenRate, now time.Time) (bool, time.Duration, error) {
	l := &db.limits
	l.mu.Lock()
	defer l.mu.Unlock()
	b, ok := l.buckets[key]
	if !ok {
		return false, 0, nil
	}
	after := b.Refill(r, now)
	return after.Tokens < 1, r.Wait(after.Tokens), nil
}

// SpendNonce implements consent.LimitStore.
func (db *DB) SpendNonce(_ context.Context, nonce string, now, expires time.Time) (bool, error) {
	l := &db.limits
	l.mu.Lock()
	defer l.mu.Unlock()
	l.sweep(now)
	if exp, used := l.nonces[nonce]; used && now.Before(exp) {
		return false, nil
	}
	if l.nonces == nil {
		l.nonces = map[string]time.Time{}
	}
	l.nonces[nonce] = expires
	return true, nil
}
