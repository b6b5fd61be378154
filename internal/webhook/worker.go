package webhook

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"sync"
	"time"

	"optin/internal/consent"
	"optin/internal/faillog"
	"optin/internal/flight"
)

// Store is what the worker needs from the store.
type Store interface {
	Webhook(ctx context.Context, id string) (consent.Webhook, error)
	DueDeliveries(ctx context.Context, now time.Time, limit int, skip func(d consent.Delivery) bool) ([]consent.Delivery, error)
	NextDelivery(ctx context.Context) (time.Time, error)
	DeliveryContent(ctx context.Context, d consent.Delivery) (*consent.Event, *consent.Subscriber, error)
	FinishDelivery(ctx context.Context, d consent.Delivery) error
	RetryDelivery(ctx context.Context, d consent.Delivery, next time.Time, reason string) error
	ParkDelivery(ctx context.Context, d consent.Delivery, reason string) error
}

// Metrics receives delivery outcomes; nil disables them.
type Metrics interface {
	WebhookResult(event consent.WebhookEvent, result string)
}

// Delivery outcomes, the values of the result label.
const (
	ResultDelivered = "delivered" // the endpoint answered 2xx
	ResultRetry     = "retry"     // it failed; another attempt is due later
	ResultParked    = "parked"    // it failed for the last time
	ResultDropped   = "dropped"   // its endpoint was deleted
)

// maxResponse is how much of a response body the worker reads (and
// discards) so the connection can be reused; the rest is cut off.
const maxResponse = 64 << 10

// Worker sends due deliveries: at least once, because a delivery leaves
// the queue only after its endpoint answered 2xx; a crash in between
// sends it again with the same webhook-id, which receivers use to drop
// the duplicate. A failed delivery is retried after Backoff, and parked
// after MaxAttempts; the next delivery of its endpoint about the same
// subscriber waits until then.
type Worker struct {
	Store   Store
	Log     *slog.Logger
	Metrics Metrics
	// Client sends the requests; nil means NewClient(Timeout).
	Client *http.Client
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// Senders is how many deliveries are sent at once; default 8. One
	// endpoint gets at most half of them, so a slow one cannot hold up
	// the others.
	Senders int
	// Timeout bounds one request, from dialling to the end of the
	// response; default 10 s.
	Timeout time.Duration
	// MaxAttempts parks a delivery after this many failed attempts;
	// default 10 (a day and a half with DefaultBackoff).
	MaxAttempts int
	// Backoff returns the wait after the n-th failed attempt (n >= 1);
	// nil means DefaultBackoff.
	Backoff func(n int) time.Duration
	// Poll is the longest the worker sleeps without being woken; default 1 s.
	Poll time.Duration

	once     sync.Once
	wake     chan struct{}
	inflight flight.Set // the deliveries being sent
	mu       sync.Mutex
	perHook  map[string]int // how many per endpoint
}

// DefaultBackoff is the Standard Webhooks schedule: 5 s, 5 min, 30 min,
// 2 h, 5 h, then 10 h.
func DefaultBackoff(n int) time.Duration {
	steps := []time.Duration{5 * time.Second, 5 * time.Minute, 30 * time.Minute, 2 * time.Hour, 5 * time.Hour}
	if n >= 1 && n <= len(steps) {
		return steps[n-1]
	}
	return 10 * time.Hour
}

// NewClient returns the HTTP client deliveries go out with: each request
// bounded by timeout, redirects never followed (a 3xx is a failed
// attempt, so a delivery cannot be steered to a host nobody registered),
// no cookies, and proxies from the environment.
func NewClient(timeout time.Duration) *http.Client {
	return &http.Client{
		Timeout:   timeout,
		Transport: &http.Transport{Proxy: http.ProxyFromEnvironment, MaxIdleConnsPerHost: 4, IdleConnTimeout: 90 * time.Second, TLSHandshakeTimeout: timeout, ResponseHeaderTimeout: timeout},
		CheckRedirect: func(*http.Request, []*http.Request) error {
			return http.ErrUseLastResponse
		},
	}
}

func (w *Worker) init() {
	w.once.Do(func() {
		w.wake = make(chan struct{}, 1)
		w.perHook = map[string]int{}
		if w.Log == nil {
			w.Log = slog.New(slog.DiscardHandler)
		}
		if w.Now == nil {
			w.Now = time.Now
		}
		if w.Senders <= 0 {
			w.Senders = 8
		}
		if w.Timeout <= 0 {
			w.Timeout = 10 * time.Second
		}
		if w.Client == nil {
			w.Client = NewClient(w.Timeout)
		}
		if w.MaxAttempts <= 0 {
			w.MaxAttempts = 10
		}
		if w.Backoff == nil {
			w.Backoff = DefaultBackoff
		}
		if w.Poll <= 0 {
			w.Poll = time.Second
		}
	})
}

// Notify wakes the worker: a delivery was queued or settled. It never
// blocks.
func (w *Worker) Notify() {
	w.init()
	select {
	case w.wake <- struct{}{}:
	default:
	}
}

// Run sends due deliveries until ctx is cancelled, then waits for the
// sends in progress (each bounded by Timeout) and returns.
func (w *Worker) Run(ctx context.Context) {
	w.init()
	perHook := max(w.Senders/2, 1)
	sends := make(chan consent.Delivery)
	var wg sync.WaitGroup
	for range w.Senders {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for d := range sends {
				w.deliver(context.WithoutCancel(ctx), d)
			}
		}()
	}
	defer func() {
		close(sends)
		wg.Wait()
	}()
	readLog := faillog.New(w.Log, "webhooks: reading due deliveries", time.Now) // monotonic, not w.Now (faillog)
	for ctx.Err() == nil {
		w.inflight.Release()
		// held says a due delivery was left out because it is being sent
		// or its endpoint is busy: the loop then waits for a send to end
		// (settle wakes it), not for the next due time, which is now.
		held := false
		due, err := w.Store.DueDeliveries(ctx, w.Now(), w.Senders, func(d consent.Delivery) bool {
			if w.inflight.Has(d.ID) || w.busy(d.Webhook, perHook) {
				held = true
				return true
			}
			return false
		})
		if err == nil {
			readLog.OK()
		} else if ctx.Err() == nil {
			readLog.Failed(err)
		}
		for _, d := range due {
			if !w.take(d, perHook) {
				held = true
				continue
			}
			select {
			case sends <- d:
			case <-ctx.Done():
				return
			}
		}
		wait := w.Poll
		if !held {
			if next, err := w.Store.NextDelivery(ctx); err == nil && !next.IsZero() {
				wait = min(wait, max(next.Sub(w.Now()), 10*time.Millisecond))
			}
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
		case <-w.wake:
		case <-t.C:
		}
		t.Stop()
	}
}

// busy reports whether endpoint hook has perHook sends going.
func (w *Worker) busy(hook string, perHook int) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.perHook[hook] >= perHook
}

// take marks d in flight unless its endpoint has perHook sends going.
func (w *Worker) take(d consent.Delivery, perHook int) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.perHook[d.Webhook] >= perHook {
		return false
	}
	w.perHook[d.Webhook]++
	w.inflight.Add(d.ID)
	return true
}

// settle records that d's attempt is over; with wake (its outcome is
// committed) it wakes the loop, since the next delivery of its group may
// be due now. Without, the loop finds d again at its next poll.
func (w *Worker) settle(d consent.Delivery, wake bool) {
	w.mu.Lock()
	w.perHook[d.Webhook]--
	if w.perHook[d.Webhook] <= 0 {
		delete(w.perHook, d.Webhook)
	}
	w.mu.Unlock()
	w.inflight.Settle(d.ID)
	if wake {
		w.Notify()
	}
}

// deliver sends d once and records the outcome.
func (w *Worker) deliver(ctx context.Context, d consent.Delivery) {
	result, reason, err := w.attempt(ctx, d)
	defer func() { w.settle(d, err == nil) }()
	switch {
	case err != nil:
		// The store failed: the delivery stays as it is and is tried again.
		w.Log.Error("webhooks: delivery", "webhook", d.Webhook, "delivery", d.ID, "err", err)
		return
	case result == ResultDelivered || result == ResultDropped:
		err = w.Store.FinishDelivery(ctx, d)
	case d.Attempts+1 >= w.MaxAttempts:
		result = ResultParked
		err = w.Store.ParkDelivery(ctx, d, reason)
		w.Log.Warn("webhooks: delivery parked after its last attempt", "webhook", d.Webhook, "delivery", d.ID,
			"event", d.Event, "attempts", d.Attempts+1, "reason", reason)
	default:
		result = ResultRetry
		err = w.Store.RetryDelivery(ctx, d, w.Now().Add(w.Backoff(d.Attempts+1)), reason)
	}
	if err != nil {
		w.Log.Error("webhooks: recording a delivery's outcome", "webhook", d.Webhook, "delivery", d.ID, "err", err)
		return
	}
	if w.Metrics != nil {
		w.Metrics.WebhookResult(d.Event, result)
	}
}

// attempt renders d from what the store holds now, signs it and posts it.
// It returns ResultDelivered, ResultDropped, or a failure's reason; err is
// set only when the store failed.
func (w *Worker) attempt(ctx context.Context, d consent.Delivery) (result, reason string, err error) {
	hook, err := w.Store.Webhook(ctx, d.Webhook)
	if consent.ErrorCode(err) == consent.ENotFound {
		return ResultDropped, "", nil
	} else if err != nil {
		return "", "", err
	}
	ev, sub, err := w.Store.DeliveryContent(ctx, d)
	if err != nil {
		return "", "", err
	}
	if d.Seq != 0 && ev == nil {
		return "", fmt.Sprintf("ledger event %d not found", d.Seq), nil
	}
	key, err := hook.Key()
	if err != nil {
		return "", "", fmt.Errorf("webhook %s: secret: %w", hook.ID, err)
	}
	body, err := json.Marshal(consent.RenderWebhook(d, ev, sub, hook.Scope))
	if err != nil {
		return "", "", err
	}
	ctx, cancel := context.WithTimeout(ctx, w.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, hook.URL, bytes.NewReader(body))
	if err != nil {
		return "", "bad endpoint URL", nil
	}
	ts := w.Now()
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "optin-webhooks")
	req.Header.Set(HeaderID, d.MessageID())
	req.Header.Set(HeaderTimestamp, strconv.FormatInt(ts.Unix(), 10))
	req.Header.Set(HeaderSignature, Sign(key, d.MessageID(), ts, body))
	resp, err := w.Client.Do(req)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err // without the URL, which may carry a receiver's token
		}
		return "", err.Error(), nil
	}
	io.Copy(io.Discard, io.LimitReader(resp.Body, maxResponse))
	resp.Body.Close()
	if resp.StatusCode/100 == 2 {
		return ResultDelivered, "", nil
	}
	if resp.StatusCode/100 == 3 {
		return "", "HTTP " + strconv.Itoa(resp.StatusCode) + " (redirects are not followed)", nil
	}
	return "", "HTTP " + strconv.Itoa(resp.StatusCode), nil
}
