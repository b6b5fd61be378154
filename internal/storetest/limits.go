package storetest

import (
	"testing"
	"time"

	"optin/internal/consent"
)

// testLimits: a token bucket grants its burst, then refuses with the time
// until the next event, refills at its rate and never beyond its burst;
// buckets are independent; TokenSpent takes nothing; a nonce is spent
// once until it expires.
func testLimits(t *testing.T, f *fixture) {
	ctx := t.Context()
	r := consent.TokenRate{PerSecond: 0.5, Burst: 2} // one event every 2 s
	now := start
	take := func(key string, at time.Time, want bool) time.Duration {
		t.Helper()
		ok, wait, err := f.s.TakeToken(ctx, key, r, at)
		if err != nil || ok != want {
			t.Fatalf("TakeToken(%s, +%v): got %v, %v, want %v, nil", key, at.Sub(start), ok, err, want)
		}
		if ok != (wait == 0) {
			t.Fatalf("TakeToken(%s, +%v): took %v with wait %v", key, at.Sub(start), ok, wait)
		}
		// A store may keep time in microseconds.
		return wait.Round(time.Millisecond)
	}
	if spent, _, err := f.s.TokenSpent(ctx, "a", r, now); err != nil || spent {
		t.Fatalf("TokenSpent of a bucket never used: got %v, %v, want false, nil", spent, err)
	}
	take("a", now, true)
	take("a", now, true)
	if wait := take("a", now, false); wait != 2*time.Second {
		t.Errorf("wait of an empty bucket: got %v, want 2s", wait)
	}
	if spent, wait, err := f.s.TokenSpent(ctx, "a", r, now); err != nil || !spent || wait.Round(time.Millisecond) != 2*time.Second {
		t.Errorf("TokenSpent of an empty bucket: got %v, %v, %v, want true, 2s, nil", spent, wait, err)
	}
	take("b", now, true) // another key has its own budget
	// A clock behind the bucket's last write refills nothing.
	take("b", now.Add(-time.Minute), true)
	take("b", now.Add(-time.Minute), false)
	if wait := take("a", now.Add(time.Second), false); wait != time.Second {
		t.Errorf("wait half-way: got %v, want 1s", wait)
	}
	take("a", now.Add(2*time.Second), true)
	take("a", now.Add(2*time.Second), false)
	// A long rest refills to the burst, not beyond it.
	later := now.Add(time.Hour)
	take("a", later, true)
	take("a", later, true)
	take("a", later, false)

	exp := now.Add(5 * time.Minute)
	for i, want := range []bool{true, false} {
		if ok, err := f.s.SpendNonce(ctx, "n1", now, exp); err != nil || ok != want {
			t.Fatalf("SpendNonce #%d: got %v, %v, want %v, nil", i+1, ok, err, want)
		}
	}
	if ok, err := f.s.SpendNonce(ctx, "n2", now, exp); err != nil || !ok {
		t.Errorf("SpendNonce of another nonce: got %v, %v, want true, nil", ok, err)
	}
	if ok, err := f.s.SpendNonce(ctx, "n1", exp, exp.Add(5*time.Minute)); err != nil || !ok {
		t.Errorf("SpendNonce after expiry: got %v, %v, want true, nil", ok, err)
	}
}
