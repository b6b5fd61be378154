package webhook_test

import (
	"bytes"
	"context"
	"fmt"
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
	"optin/internal/transfer"
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

// openStore opens a bbolt store in a temporary directory until t ends.
func openStore(t *testing.T) *bolt.DB {
	t.Helper()
	db, err := bolt.Open(filepath.Join(t.TempDir(), "optin.db"), bolt.Options{HMACKey: bytes.Repeat([]byte{7}, 32)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// addHook registers an endpoint at url for event.
func addHook(t *testing.T, db *bolt.DB, url string, event consent.WebhookEvent) {
	t.Helper()
	w, err := consent.NewWebhook(bytes.NewReader(make([]byte, 32)), consent.WebhookInput{URL: url, Events: []consent.WebhookEvent{event}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.CreateWebhook(t.Context(), consent.CLIActor(), w); err != nil {
		t.Fatal(err)
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

	db := openStore(t)
	ctx := t.Context()
	addHook(t, db, redirect.URL, consent.WebhookSuppressed)
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

// TestBusyEndpointDoesNotHoldUpOthers: with two senders, an endpoint
// that never answers gets one of them; the other endpoint's deliveries
// all go out meanwhile.
func TestBusyEndpointDoesNotHoldUpOthers(t *testing.T) {
	release := make(chan struct{})
	var slowHits atomic.Int32
	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		slowHits.Add(1)
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	defer slow.Close()
	var fastHits atomic.Int32
	fast := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { fastHits.Add(1) }))
	defer fast.Close()

	db := openStore(t)
	ctx := t.Context()
	form := consent.Form{ID: "newsletter", Topics: []string{"news"}, Locale: "en", Wording: map[string]string{"en": "Yes"}, WordingVersion: 1}
	if _, err := db.Bootstrap(ctx, consent.Topic{ID: "news", Name: "News"}, form, "key"); err != nil {
		t.Fatal(err)
	}
	addHook(t, db, slow.URL, consent.WebhookUnsubscribed)
	addHook(t, db, fast.URL, consent.WebhookUnsubscribed)
	const people = 6
	var csv strings.Builder
	csv.WriteString("email,topics,basis,consented_at,source\n")
	for i := range people {
		fmt.Fprintf(&csv, "p%d@example.com,news,consent,2025-01-01,shop\n", i)
	}
	rows, err := transfer.NewReader(strings.NewReader(csv.String()), transfer.FormatCSV)
	if err != nil {
		t.Fatal(err)
	}
	if rep, err := db.Import(ctx, consent.CLIActor(), rows, consent.ImportOptions{}); err != nil || rep.Imported != people {
		t.Fatalf("Import: got %+v, %v", rep, err)
	}
	for i := range people {
		a, _ := consent.ParseAddress(fmt.Sprintf("p%d@example.com", i))
		sub, err := db.SubscriberByAddress(ctx, a)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := db.WithdrawFor(ctx, consent.CLIActor(), sub.ID, "", "asked"); err != nil {
			t.Fatal(err)
		}
	}
	worker := &webhook.Worker{Store: db, Senders: 2, Timeout: time.Minute, Poll: 10 * time.Millisecond}
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { defer close(done); worker.Run(runCtx) }()
	defer func() {
		close(release)
		stop()
		<-done
	}()
	for deadline := time.Now().Add(20 * time.Second); fastHits.Load() < people; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("the fast endpoint got %d of %d deliveries while the slow one holds %d", fastHits.Load(), people, slowHits.Load())
		}
	}
	if n := slowHits.Load(); n != 1 {
		t.Errorf("the slow endpoint got %d requests at once, want 1 (its share of two senders)", n)
	}
}
