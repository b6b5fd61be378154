// Package webhooktest runs a real webhook receiver on a loopback port for
// tests. It checks every delivery's signature the way the Standard
// Webhooks specification describes, written out here on its own rather
// than through optin's signer, so a signer that drifted from the
// specification fails the tests.
package webhooktest

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// tolerance is how far a delivery's timestamp may be from the receiver's
// clock (the specification's recommended replay window).
const tolerance = 5 * time.Minute

// Message is one delivery the receiver accepted.
type Message struct {
	ID   string // webhook-id
	Type string `json:"type"`
	Data struct {
		Subscriber string          `json:"subscriber"`
		Email      string          `json:"email"`
		Name       string          `json:"name"`
		Evidence   json.RawMessage `json:"evidence"`
	} `json:"data"`
	Body string // the raw body
}

// Receiver is a webhook endpoint on 127.0.0.1.
type Receiver struct {
	URL string

	mu       sync.Mutex
	secret   string
	down     bool
	failNext int
	accepted []Message
	bad      []string
	failed   int
}

// Start runs a receiver until the test ends.
func Start(t *testing.T) *Receiver {
	r := &Receiver{}
	srv := httptest.NewServer(http.HandlerFunc(r.serve))
	t.Cleanup(srv.Close)
	r.URL = srv.URL
	return r
}

// SetSecret sets the endpoint's signing secret (whsec_...).
func (r *Receiver) SetSecret(s string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.secret = s
}

// Down makes the receiver answer 500 to everything until Down(false).
func (r *Receiver) Down(down bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.down = down
}

// FailNext makes the receiver answer 500 to the next n deliveries.
func (r *Receiver) FailNext(n int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.failNext = n
}

// Messages returns the deliveries accepted so far, in arrival order.
func (r *Receiver) Messages() []Message {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]Message(nil), r.accepted...)
}

// Bad returns why deliveries were refused for a bad signature or shape.
func (r *Receiver) Bad() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.bad...)
}

// Failed returns how many deliveries were answered 500 on purpose.
func (r *Receiver) Failed() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.failed
}

func (r *Receiver) serve(w http.ResponseWriter, req *http.Request) {
	body, err := io.ReadAll(io.LimitReader(req.Body, 1<<20))
	r.mu.Lock()
	defer r.mu.Unlock()
	if err != nil || req.Method != http.MethodPost {
		r.bad = append(r.bad, "not a readable POST")
		w.WriteHeader(http.StatusBadRequest)
		return
	}
	if reason := verify(r.secret, req.Header, body); reason != "" {
		r.bad = append(r.bad, reason)
		w.WriteHeader(http.StatusUnauthorized)
		return
	}
	if r.down || r.failNext > 0 {
		r.failNext = max(r.failNext-1, 0)
		r.failed++
		w.WriteHeader(http.StatusInternalServerError)
		return
	}
	m := Message{ID: req.Header.Get("webhook-id"), Body: string(body)}
	if err := json.Unmarshal(body, &m); err != nil || m.Type == "" {
		r.bad = append(r.bad, "body is not a webhook message: "+string(body))
		w.WriteHeader(http.StatusBadRequest)
		return
	}
	r.accepted = append(r.accepted, m)
	w.WriteHeader(http.StatusNoContent)
}

// verify checks a delivery per Standard Webhooks: the signed content is
// the webhook-id, the webhook-timestamp and the body joined by dots; the
// key is the base64 after "whsec_"; webhook-signature holds one or more
// space-separated "v1,<base64 HMAC-SHA256>" of which one must match; the
// timestamp must be within tolerance. It returns "" when all hold.
func verify(secret string, h http.Header, body []byte) string {
	id, ts, sigs := h.Get("webhook-id"), h.Get("webhook-timestamp"), h.Get("webhook-signature")
	if id == "" || ts == "" || sigs == "" {
		return "missing webhook headers"
	}
	sec, err := strconv.ParseInt(ts, 10, 64)
	if err != nil {
		return "webhook-timestamp is not Unix seconds"
	}
	if d := time.Since(time.Unix(sec, 0)); d > tolerance || d < -tolerance {
		return "webhook-timestamp outside the tolerance"
	}
	key, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(secret, "whsec_"))
	if err != nil || !strings.HasPrefix(secret, "whsec_") {
		return "receiver has no whsec_ secret"
	}
	mac := hmac.New(sha256.New, key)
	mac.Write([]byte(id + "." + ts + "." + string(body)))
	want := mac.Sum(nil)
	for _, sig := range strings.Fields(sigs) {
		version, b64, ok := strings.Cut(sig, ",")
		got, err := base64.StdEncoding.DecodeString(b64)
		if ok && version == "v1" && err == nil && hmac.Equal(got, want) {
			return ""
		}
	}
	return "no webhook-signature matches"
}
