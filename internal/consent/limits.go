package consent

import (
	"context"
	"time"
)

// LimitStore keeps the state of optin's abuse defences: the token buckets
// of the per-address and per-network limits, the global brake on
// confirmation mails and the failed sign-ins, and the proof-of-work
// challenges already used. Every instance on one database must see the
// same state, or each would grant the whole budget again; a store used by
// one process at a time may keep it in memory. The state is not evidence:
// losing it (a restart, a crash) only refills the buckets.
type LimitStore interface {
	// TakeToken takes one event from the bucket named key, which holds
	// at most r.Burst events and refills at r.PerSecond, at now. When the
	// bucket is empty it takes nothing and returns false and how long
	// until it holds one event again.
	TakeToken(ctx context.Context, key string, r TokenRate, now time.Time) (bool, time.Duration, error)
	// TokenSpent reports, without taking an event, whether the bucket
	// named key is empty at now, and how long until it holds one again.
	TokenSpent(ctx context.Context, key string, r TokenRate, now time.Time) (bool, time.Duration, error)
	// SpendNonce marks nonce used until expires and returns true, or
	// returns false when it was used already and has not expired at now.
	SpendNonce(ctx context.Context, nonce string, now, expires time.Time) (bool, error)
}

// TokenRate is a token bucket's size and refill rate.
type TokenRate struct {
	PerSecond float64
	Burst     int
}

// Bucket is one token bucket: the events it held at At. A bucket never
// seen is full.
type Bucket struct {
	Tokens float64
	At     time.Time
}

// FullBucket is a bucket of r that is full at now.
func FullBucket(r TokenRate, now time.Time) Bucket {
	return Bucket{Tokens: float64(r.Burst), At: now}
}

// Refill returns b as it is at now under r: refilled for the time since
// b.At, at most r.Burst. A now before b.At (another instance's clock)
// refills nothing and keeps b.At.
func (b Bucket) Refill(r TokenRate, now time.Time) Bucket {
	if now.After(b.At) {
		b.Tokens = min(float64(r.Burst), b.Tokens+now.Sub(b.At).Seconds()*r.PerSecond)
		b.At = now
	}
	return b
}

// Take takes one event from b at now under r. It returns the bucket
// after, whether an event was taken and, when not, how long until one is
// there.
func (b Bucket) Take(r TokenRate, now time.Time) (Bucket, bool, time.Duration) {
	b = b.Refill(r, now)
	if b.Tokens < 1 {
		return b, false, r.Wait(b.Tokens)
	}
	b.Tokens--
	return b, true, 0
}

// Wait is how long a bucket of r holding tokens events needs to hold one.
func (r TokenRate) Wait(tokens float64) time.Duration {
	if tokens >= 1 || r.PerSecond <= 0 {
		return 0
	}
	return time.Duration((1 - tokens) / r.PerSecond * float64(time.Second))
}

// FullAfter is how long a bucket of r holding tokens events takes to be
// full again: after that it is the same as a bucket never seen, and a
// store may forget it.
func (r TokenRate) FullAfter(tokens float64) time.Duration {
	if r.PerSecond <= 0 || tokens >= float64(r.Burst) {
		return 0
	}
	return time.Duration((float64(r.Burst) - tokens) / r.PerSecond * float64(time.Second))
}
