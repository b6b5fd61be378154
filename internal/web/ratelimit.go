package web

import (
	"net/netip"
	"strconv"
	"sync"
	"time"

	"github.com/gin-gonic/gin"
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

// spent reports, without taking an event, whether key's bucket is empty
// at now, and how long until it holds one event again.
func (l *limiter) spent(key string, now time.Time) (bool, time.Duration) {
	if l.r.N <= 0 || l.r.Per <= 0 {
		return false, 0
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	b, ok := l.buckets[key]
	if !ok {
		return false, 0
	}
	tokens := b.l.TokensAt(now)
	if tokens >= 1 {
		return false, 0
	}
	return true, time.Duration((1 - tokens) / float64(b.l.Limit()) * float64(time.Second))
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
func allowIP(perIP, perNet *limiter, ip string, now time.Time) (bool, time.Duration) {
	if ok, wait := perIP.allow(ip, now); !ok {
		return false, wait
	}
	return perNet.allow(subnetKey(ip), now)
}

// Brake is a process-wide rate: PerSecond events on average, at most Burst
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

// brake is one token bucket shared by every request: the circuit breaker
// on the rate of confirmation mails, whatever their source.
type brake struct {
	off    bool
	mu     sync.Mutex
	rate   float64
	burst  float64
	tokens float64
	last   time.Time
}

func newBrake(b Brake) *brake {
	if b.Off {
		return &brake{off: true}
	}
	if b.PerSecond <= 0 || b.Burst <= 0 {
		b = Brake{PerSecond: defaultBrakeRate, Burst: defaultBrakeBurst}
	}
	return &brake{rate: b.PerSecond, burst: float64(b.Burst), tokens: float64(b.Burst)}
}

// take takes one token at now. When none is left it returns false and how
// long until one is.
func (b *brake) take(now time.Time) (bool, time.Duration) {
	if b.off {
		return true, 0
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if !b.last.IsZero() && now.After(b.last) {
		b.tokens = min(b.burst, b.tokens+now.Sub(b.last).Seconds()*b.rate)
	}
	if now.After(b.last) {
		b.last = now
	}
	if b.tokens < 1 {
		return false, time.Duration((1 - b.tokens) / b.rate * float64(time.Second))
	}
	b.tokens--
	return true, 0
}

// retryAfter sets the Retry-After header for a wait of d, in whole
// seconds rounded up, at least 1.
func retryAfter(c *gin.Context, d time.Duration) {
	c.Header("Retry-After", strconv.Itoa(int((d+time.Second-1)/time.Second)))
}
