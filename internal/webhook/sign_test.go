package webhook_test

import (
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"optin/internal/bolt"
	"optin/internal/consent"
	"optin/internal/webhook"
)

// TestSignStandardVector: the test vector published with the Standard
// Webhooks reference implementations.
func TestSignStandardVector(t *testing.T) {
	w := consent.Webhook{Secret: "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"}
	key, err := w.Key()
	if err != nil {
		t.Fatal(err)
	}
	got := webhook.Sign(key, "msg_p5jXN8AQM9LWM0D4loKWxJek", time.Unix(1614265330, 0), []byte(`{"test": 2432232314}`))
	if want := "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="; got != want {
		t.Errorf("Sign: got %s, want %s", got, want)
	}
}

// results records the worker's outcomes.
type results struct {
	mu  sync.Mutex
	got []string
}

func (r *results) WebhookResult(event consent.WebhookEvent, result string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.got = append(r.got, string(event)+" "+result)
}

// TestRedirectNotFollowed: an endpoint that answers with a redirect has
// not taken the delivery, and the worker does not follow it to a host
// nobody registered.
func TestRedirectNotFollowed(t *testing.T) {
	var elsewhere atomic.Int32
	target := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { elsewhere.Add(1) }))
	defer target.Close()
	redirect := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, target.URL, http.StatusTemporaryRedirect)
	}))
	defer redirect.Close()

	db, err := bolt.Open(filepath.Join(t.TempDir(), "optin.db"), bolt.Options{HMACKey: bytes.Repeat([]byte{7}, 32)})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	ctx := t.Context()
	w, err := consent.NewWebhook(bytes.NewReader(make([]byte, 32)), consent.WebhookInput{URL: redirect.URL,
		Events: []consent.WebhookEvent{consent.WebhookSuppressed}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.CreateWebhook(ctx, consent.CLIActor(), w); err != nil {
		t.Fatal(err)
	}
	addr, _ := consent.ParseAddress("ann@example.com")
	if _, _, err := db.AddSuppression(ctx, consent.CLIActor(), addr, "", ""); err != nil {
		t.Fatal(err)
	}
	rec := &results{}
	worker := &webhook.Worker{Store: db, MaxAttempts: 1, Poll: 10 * time.Millisecond, Metrics: rec}
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { defer close(done); worker.Run(runCtx) }()
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		if _, parked, err := db.WebhookDepth(ctx); err != nil || parked == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the delivery was not parked")
		}
	}
	stop()
	<-done
	if n := elsewhere.Load(); n != 0 {
		t.Errorf("the redirect target got %d requests, want 0", n)
	}
	if got := strings.Join(rec.got, ", "); got != "suppressed parked" {
		t.Errorf("outcomes: got %q, want one suppressed parked (a redirect is a failed attempt)", got)
	}
}
