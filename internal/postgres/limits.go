package postgres

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"optin/internal/consent"
)

// takeToken refills the bucket for the time since it was last written,
// takes one event when it then holds one, and says so in took, in one
// statement; a missing row is a full bucket. $2 is the refill rate per
// second, $3 the burst, $4 now. consent.Bucket.Take is the same rule.
const takeToken = `
INSERT INTO limit_buckets AS b (key, tokens, at, full_at, took)
VALUES ($1, $3::float8 - 1, $4::timestamptz, $4::timestamptz + make_interval(secs => 1 / $2::float8), true)
ON CONFLICT (key) DO UPDATE SET
	tokens = limit_refill(b.tokens, b.at, $4, $2, $3) - CASE WHEN limit_refill(b.tokens, b.at, $4, $2, $3) >= 1 THEN 1 ELSE 0 END,
	at = greatest(b.at, $4),
	full_at = greatest(b.at, $4) + make_interval(secs => ($3 - limit_refill(b.tokens, b.at, $4, $2, $3)
		+ CASE WHEN limit_refill(b.tokens, b.at, $4, $2, $3) >= 1 THEN 1 ELSE 0 END) / $2),
	took = limit_refill(b.tokens, b.at, $4, $2, $3) >= 1
RETURNING b.took, b.tokens`

// limitSweep is how often an instance deletes full buckets and expired
// nonces.
const limitSweep = time.Minute

// TakeToken implements consent.LimitStore: the bucket is a row of the
// UNLOGGED table limit_buckets, so every instance spends from the same
// budget.
func (db *DB) TakeToken(ctx context.Context, key string, r consent.TokenRate, now time.Time) (bool, time.Duration, error) {
	if err := db.SchemaMoved(); err != nil {
		return false, 0, err // closed: a newer optin's schema
	}
	db.sweepLimits(ctx, now)
	var took bool
	var tokens float64
	err := db.read(ctx).q.QueryRow(ctx, takeToken, key, r.PerSecond, float64(r.Burst), now).Scan(&took, &tokens)
	if err != nil {
		return false, 0, fmt.Errorf("postgres: take token: %w", err)
	}
	if took {
		return true, 0, nil
	}
	return false, r.Wait(tokens), nil
}

// TokenSpent implements consent.LimitStore.
func (db *DB) TokenSpent(ctx context.Context, key string, r consent.TokenRate, now time.Time) (bool, time.Duration, error) {
	var b consent.Bucket
	err := db.read(ctx).q.QueryRow(ctx, "SELECT tokens, at FROM limit_buckets WHERE key = $1", key).Scan(&b.Tokens, &b.At)
	if errors.Is(err, pgx.ErrNoRows) {
		return false, 0, nil
	}
	if err != nil {
		return false, 0, fmt.Errorf("postgres: token bucket: %w", err)
	}
	b = b.Refill(r, now)
	return b.Tokens < 1, r.Wait(b.Tokens), nil
}

// SpendNonce implements consent.LimitStore: the first instance to insert
// the nonce uses it; an expired row is taken over.
func (db *DB) SpendNonce(ctx context.Context, nonce string, now, expires time.Time) (bool, error) {
	if err := db.SchemaMoved(); err != nil {
		return false, err
	}
	db.sweepLimits(ctx, now)
	tag, err := db.read(ctx).q.Exec(ctx, `INSERT INTO spent_nonces AS n (nonce, expires) VALUES ($1, $3)
		ON CONFLICT (nonce) DO UPDATE SET expires = $3 WHERE n.expires <= $2`, nonce, now, expires)
	if err != nil {
		return false, fmt.Errorf("postgres: spend nonce: %w", err)
	}
	return tag.RowsAffected() == 1, nil
}

// sweepLimits deletes full buckets and expired nonces, at most once a
// limitSweep on this instance. It is housekeeping: a failure is retried
// at the next sweep.
func (db *DB) sweepLimits(ctx context.Context, now time.Time) {
	last := db.limitsSwept.Load()
	if db.SchemaMoved() != nil || now.UnixNano()-last < int64(limitSweep) || !db.limitsSwept.CompareAndSwap(last, now.UnixNano()) {
		return
	}
	_, _ = db.pool.Exec(ctx, `DELETE FROM limit_buckets WHERE full_at <= $1`, now)
	_, _ = db.pool.Exec(ctx, `DELETE FROM spent_nonces WHERE expires <= $1`, now)
}
