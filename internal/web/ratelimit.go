package web

import (
	"context"
	"net/netip"
	"strconv"
	"time"

	"github.com/gin-gonic/gin"

	"optin/internal/consent"
)

// limiter is one named limit: a token bucket per key (a client IP, a
// subnet, or "" for one shared by every request). The buckets live in the
// store (consent.LimitStore), so every instance on one database spends
// from the same budget. A zero rate allows everything.
type limiter struct {
	store consent.LimitStore
	name  string
	rate  consent.TokenRate
}

// newLimiter returns the limiter called name with r events per r.Per
// (N at once).
func newLimiter(store consent.LimitStore, name string, r Rate) limiter {
	if r.N <= 0 || r.Per <= 0 {
		return limiter{store: store, name: name}
	}
	return limiter{store: store, name: name, rate: consent.TokenRate{PerSecond: float64(r.N) / r.Per.Seconds(), Burst: r.N}}
}

// allow takes one event for key at now. When the bucket is empty it
// returns false and how long to wait.
func (l limiter) allow(ctx context.Context, key string, now time.Time) (bool, time.Duration, error) {
	if l.rate.Burst <= 0 {
		return true, 0, nil
	}
	return l.store.TakeToken(ctx, l.name+":"+key, l.rate, now)
}

// spent reports, without taking an event, whether key's bucket is empty
// at now, and how long until it holds one event again.
func (l limiter) spent(ctx context.Context, key string, now time.Time) (bool, time.Duration, error) {
	if l.rate.Burst <= 0 {
		return false, 0, nil
	}
	return l.store.TokenSpent(ctx, l.name+":"+key, l.rate, now)
}

// subnetFactor is how many times the per-IP budget one subnet (/24 for
// IPv4, /64 for IPv6) may spend: enough for an office or a carrier NAT,
// too little for a botnet spread over one provider's block.
const subnetFactor = 3

// subnetKey returns the /24 (IPv4) or /64 (IPv6) network of ip, or ip
// itself when it does not parse.
func subnetKey(ip string) string {
	a, err := netip.ParseAddr(ip)
	if err != nil {
		return ip
	}
	a = a.Unmap()
	bits := 64
	if a.Is4() {
		bits = 24
	}
	p, err := a.Prefix(bits)
	if err != nil {
		return ip
	}
	return p.String()
}

// allowIP takes one event for ip from the per-IP limiter, then from the
// per-subnet one.
func allowIP(ctx context.Context, perIP, perNet limiter, ip string, now time.Time) (bool, time.Duration, error) {
	if ok, wait, err := perIP.allow(ctx, ip, now); !ok || err != nil {
		return false, wait, err
	}
	return perNet.allow(ctx, subnetKey(ip), now)
}

// Brake is a rate shared by every request: PerSecond events on average, at most Burst
// at once. The zero Brake means the default for confirmation mails: 50 a
// second, 100 in a burst: a circuit breaker against list bombing, bots
// signing victims' addresses up to bury their mail in confirmations.
type Brake struct {
	PerSecond float64
	Burst     int
	// Off disables the brake.
	Off bool
}

// Default global brake on confirmation mails.
const (
	defaultBrakeRate  = 50
	defaultBrakeBurst = 100
)

// newBrake returns the brake as a limiter with one bucket, "": the
// circuit breaker on the rate of confirmation mails, whatever their
// source, across every instance.
func newBrake(store consent.LimitStore, b Brake) limiter {
	if b.Off {
		return limiter{store: store, name: "brake"}
	}
	if b.PerSecond <= 0 || b.Burst <= 0 {
		b = Brake{PerSecond: defaultBrakeRate, Burst: defaultBrakeBurst}
	}
	return limiter{store: store, name: "brake", rate: consent.TokenRate{PerSecond: b.PerSecond, Burst: b.Burst}}
}

// retryAfter sets the Retry-After header for a wait of d, in whole
// seconds rounded up, at least 1.
func retryAfter(c *gin.Context, d time.Duration) {
	c.Header("Retry-After", strconv.Itoa(int((d+time.Second-1)/time.Second)))
}
