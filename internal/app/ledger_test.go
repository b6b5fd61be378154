package app

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/tlog"

	"optin/internal/config"
	"optin/internal/ledger"
	"optin/internal/webhooktest"
)

// head fetches GET /ledger/head and checks its signature with the keys
// GET /ledger/key serves.
func (s *service) head() ledger.Head {
	s.t.Helper()
	k := s.do("GET", "/ledger/key", "", "")
	if k.status != http.StatusOK || !strings.HasPrefix(k.header.Get("Content-Type"), "text/plain") {
		s.t.Fatalf("GET /ledger/key: got %d %s, want 200 text/plain", k.status, k.header.Get("Content-Type"))
	}
	keys, err := ledger.ParseVerifierKeys([]byte(k.body))
	if err != nil {
		s.t.Fatalf("GET /ledger/key: %v\n%s", err, k.body)
	}
	r := s.do("GET", "/ledger/head", "", "")
	if r.status != http.StatusOK {
		s.t.Fatalf("GET /ledger/head: got %d, want 200 (%s)", r.status, r.body)
	}
	h, err := ledger.ParseHead([]byte(r.body), keys)
	if err != nil {
		s.t.Fatalf("GET /ledger/head: %v\n%s", err, r.body)
	}
	return h
}

// TestLedgerHeadAndConsistency: GET /ledger/head serves a head signed by
// the key GET /ledger/key serves, covering every event committed before
// the request; GET /ledger/consistency proves a later head extends an
// earlier one; a published head lands in the witness directory and the
// log.
func TestLedgerHeadAndConsistency(t *testing.T) {
	witness := t.TempDir()
	s := startService(t, func(c *config.Config) { c.Ledger.WitnessDir = witness })
	rcv := webhooktest.Start(t)
	var hook webhookOut
	s.adminJSON("POST", "/webhooks", `{"url":"`+rcv.URL+`/heads","events":["ledger_head"]}`, http.StatusCreated, &hook)
	rcv.SetSecret(hook.Secret)
	h0 := s.head()
	if h0.Tree.N != 0 || h0.Origin != strings.TrimPrefix(s.url, "http://")+"/ledger" || h0.Time.IsZero() {
		t.Errorf("head of the empty ledger: got %+v, want size 0, origin of base_url, a time", h0)
	}
	if r := s.signupJSON("ann@example.com", "news"); r.status != http.StatusAccepted {
		t.Fatalf("signup: %d %s", r.status, r.body)
	}
	h1 := s.head()
	if h1.Tree.N != 1 {
		t.Fatalf("head after a signup: got size %d, want 1", h1.Tree.N)
	}
	if again := s.head(); string(again.Note) != string(h1.Note) {
		t.Errorf("head while nothing changed: got a new one, want the cached one\n%s\n%s", again.Note, h1.Note)
	}
	for _, addr := range []string{"bob@example.com", "cy@example.com"} {
		if r := s.signupJSON(addr, "news"); r.status != http.StatusAccepted {
			t.Fatalf("signup: %d %s", r.status, r.body)
		}
	}
	h3 := s.head()
	if h3.Tree.N != 3 {
		t.Fatalf("head after three signups: got size %d, want 3", h3.Tree.N)
	}

	r := s.do("GET", fmt.Sprintf("/ledger/consistency?from=%d&to=%d", h1.Tree.N, h3.Tree.N), "", "")
	var proof struct {
		From, To int64
		Proof    []tlog.Hash
	}
	if r.status != http.StatusOK || json.Unmarshal([]byte(r.body), &proof) != nil {
		t.Fatalf("GET /ledger/consistency: got %d %s", r.status, r.body)
	}
	if err := tlog.CheckTree(proof.Proof, h3.Tree.N, h3.Tree.Hash, h1.Tree.N, h1.Tree.Hash); err != nil {
		t.Errorf("consistency proof from 1 to 3: %v", err)
	}
	for _, q := range []string{"", "from=0&to=1", "from=2&to=1", "from=1&to=4", "from=a&to=3"} {
		if r := s.do("GET", "/ledger/consistency?"+q, "", ""); r.status != http.StatusBadRequest || !strings.Contains(r.body, `"invalid"`) {
			t.Errorf("GET /ledger/consistency?%s: got %d %s, want 400 invalid", q, r.status, r.body)
		}
	}

	var rep struct {
		OK    bool
		Heads []struct{ OK bool }
	}
	q := url.Values{"head": {headParam(h1), headParam(h3)}}
	if st := s.admin("/ledger/verify?"+q.Encode(), &rep); st != http.StatusOK || !rep.OK || len(rep.Heads) != 2 {
		t.Errorf("GET /api/v1/ledger/verify with both heads: got %d %+v, want OK for both", st, rep)
	}

	if err := s.app.Heads.PublishNew(t.Context()); err != nil {
		t.Fatalf("PublishNew: %v", err)
	}
	b, err := os.ReadFile(filepath.Join(witness, "head-000000000003.txt"))
	if err != nil || string(b) != string(h3.Note) {
		t.Errorf("witness file of head 3: got %q, %v, want the head served", b, err)
	}
	if !strings.Contains(s.logs.String(), "ledger head signed") {
		t.Errorf("log: want a line for the published head, got:\n%s", s.logs.String())
	}
	// The webhook witness gets the same head, signed as every delivery.
	for deadline := time.Now().Add(patience); ; time.Sleep(20 * time.Millisecond) {
		if ms := rcv.Messages(); len(ms) > 0 {
			var body struct{ Data struct{ Head string } }
			if err := json.Unmarshal([]byte(ms[0].Body), &body); err != nil || ms[0].Type != "ledger_head" || body.Data.Head != string(h3.Note) {
				t.Errorf("webhook witness: got %s, %v, want ledger_head with head 3", ms[0].Body, err)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("no ledger_head webhook after the head was published")
		}
	}
	if bad := rcv.Bad(); len(bad) > 0 {
		t.Errorf("webhook signatures: %v", bad)
	}
}

// headParam is a head as GET /api/v1/ledger/verify takes it.
func headParam(h ledger.Head) string {
	return fmt.Sprintf("%d:%s", h.Tree.N, base64.StdEncoding.EncodeToString(h.Tree.Hash[:]))
}

var receiptLinkRE = regexp.MustCompile(`href="(http://127\.0\.0\.1:\d+/preferences/[A-Za-z0-9._-]+/receipt)"`)

// TestReceipt: the page after confirming links to the person's consent
// receipt; it holds the requested and confirmed events with the wording
// shown and the personal records, each proven in a signed head, and
// verifies offline with the key GET /ledger/key serves. The preference
// page links to it too; a link of an erased person finds nothing, and the
// receipt made before the erasure still checks against the head after it.
func TestReceipt(t *testing.T) {
	s := startService(t, nil)
	if r := s.signupJSON("ann@example.com", "news"); r.status != http.StatusAccepted {
		t.Fatalf("signup: %d %s", r.status, r.body)
	}
	confirm, _ := links(t, parseMail(t, s.waitMails(1)[0].Data).text)
	page := s.do("POST", confirm, "application/x-www-form-urlencoded", "")
	m := receiptLinkRE.FindStringSubmatch(page.body)
	if page.status != http.StatusOK || m == nil {
		t.Fatalf("page after confirming: got %d without a receipt link:\n%s", page.status, page.body)
	}
	r := s.do("GET", m[1], "", "")
	if r.status != http.StatusOK || !strings.Contains(r.header.Get("Content-Disposition"), "attachment") {
		t.Fatalf("GET receipt: got %d %v, want 200 and an attachment\n%s", r.status, r.header, r.body)
	}
	var rec ledger.Receipt
	if err := json.Unmarshal([]byte(r.body), &rec); err != nil {
		t.Fatalf("receipt: %v\n%s", err, r.body)
	}
	keys, err := ledger.ParseVerifierKeys([]byte(s.do("GET", "/ledger/key", "", "").body))
	if err != nil {
		t.Fatal(err)
	}
	check, err := ledger.VerifyReceipt(&rec, keys, nil, nil)
	if err != nil || check.Events != 2 || check.Head.Tree.N != 2 {
		t.Fatalf("VerifyReceipt: got %+v, %v, want 2 events in a head of 2", check, err)
	}
	sub, _ := s.subscriber("ann@example.com")
	types := []string{}
	for _, e := range rec.Events {
		types = append(types, string(e.Event.Type))
		if e.Personal == nil || e.Personal.Email != "ann@example.com" || (e.Event.Wording != "") != (e.Notice != nil) {
			t.Errorf("receipt event %d: got personal %+v, notice %+v, want the address and the wording shown", e.Event.Seq, e.Personal, e.Notice)
		}
	}
	if rec.Events[0].Notice == nil || rec.Events[0].Notice.Text == "" {
		t.Errorf("receipt's requested event: got notice %+v, want the wording shown", rec.Events[0].Notice)
	}
	if rec.PIIPrincipalID != sub.ID || strings.Join(types, ",") != "requested,confirmed" ||
		len(rec.Purposes) != 1 || rec.Purposes[0].Status != "confirmed" || rec.Purposes[0].Purpose != "Product news" ||
		rec.Controller.Name != "Example News" || rec.PrivacyNotice != s.url+"/privacy" {
		t.Errorf("receipt: got %s, %q, %+v, %+v, %q, want ann's confirmed news with its events and controller", rec.PIIPrincipalID, types, rec.Purposes, rec.Controller, rec.PrivacyNotice)
	}
	var tampered ledger.Receipt
	_ = json.Unmarshal([]byte(strings.Replace(r.body, `"type": "requested"`, `"type": "confirmed"`, 1)), &tampered)
	if _, err := ledger.VerifyReceipt(&tampered, keys, nil, nil); err == nil {
		t.Error("VerifyReceipt of a receipt whose event was edited: got nil error, want one")
	}

	prefs := strings.Replace(m[1], "/receipt", "", 1)
	if p := s.do("GET", prefs, "", ""); p.status != http.StatusOK || !strings.Contains(p.body, `/receipt"`) {
		t.Errorf("preference page: got %d without a receipt link", p.status)
	}
	var viaAPI ledger.Receipt
	if st := s.admin("/subscribers/"+sub.ID+"/receipt", &viaAPI); st != http.StatusOK || len(viaAPI.Events) != 2 {
		t.Errorf("GET /api/v1/subscribers/{id}/receipt: got %d with %d events, want 200 with 2", st, len(viaAPI.Events))
	}
	if p := s.do("POST", prefs+"/erase", "application/x-www-form-urlencoded", ""); p.status != http.StatusOK {
		t.Fatalf("erase: %d %s", p.status, p.body)
	}
	if r := s.do("GET", m[1], "", ""); r.status != http.StatusGone {
		t.Errorf("receipt link after erasure: got %d, want 410", r.status)
	}
	later := s.head()
	if _, err := ledger.VerifyReceipt(&rec, keys, []ledger.Head{later}, nil); err == nil || !strings.Contains(err.Error(), "consistency proof") {
		t.Errorf("receipt against a later head without a proof: got %v, want it to ask for the proof", err)
	}
	// Erasure left every leaf: the receipt made before it still checks,
	// and the head after it extends the receipt's.
	var proof ledger.Consistency
	pr := s.do("GET", fmt.Sprintf("/ledger/consistency?from=%d&to=%d", check.Head.Tree.N, later.Tree.N), "", "")
	if err := json.Unmarshal([]byte(pr.body), &proof); err != nil || later.Tree.N <= check.Head.Tree.N {
		t.Fatalf("consistency proof after erasure: %v %s (heads of %d and %d events)", err, pr.body, check.Head.Tree.N, later.Tree.N)
	}
	if _, err := ledger.VerifyReceipt(&rec, keys, []ledger.Head{later}, []ledger.Consistency{proof}); err != nil {
		t.Errorf("receipt made before the erasure, against the head after it with the proof: %v", err)
	}
}

// TestLedgerKeyRotation: with a new seed put first in secrets.json's
// ledger_keys, new heads are signed with it, GET /ledger/key lists it
// first and the retired key after it, and a head the retired key signed
// still checks, and the ledger still extends it.
func TestLedgerKeyRotation(t *testing.T) {
	dir := t.TempDir()
	s := startService(t, func(c *config.Config) { c.DataDir = dir })
	cfg := s.app.cfg
	if r := s.signupJSON("ann@example.com", "news"); r.status != http.StatusAccepted {
		t.Fatalf("signup: %d %s", r.status, r.body)
	}
	old := s.head()
	s.shutdown()

	if err := RotateLedgerKey(t.Context(), cfg); err != nil {
		t.Fatalf("RotateLedgerKey: %v", err)
	}

	s = startService(t, func(c *config.Config) {
		c.DataDir, c.Store, c.Postgres.URL = dir, cfg.Store, cfg.Postgres.URL
		c.BaseURL = cfg.BaseURL // heads name the log by base_url
	})
	s.url = "http://" + s.app.cfg.Listen
	keys := strings.Fields(s.do("GET", "/ledger/key", "", "").body)
	if len(keys) != 2 {
		t.Fatalf("GET /ledger/key after rotation: got %q, want the new key and the retired one", keys)
	}
	if r := s.signupJSON("bob@example.com", "news"); r.status != http.StatusAccepted {
		t.Fatalf("signup: %d %s", r.status, r.body)
	}
	newHead := s.head() // checked with both keys
	onlyNew, _ := ledger.ParseVerifierKeys([]byte(keys[0]))
	if _, err := ledger.ParseHead(newHead.Note, onlyNew); err != nil {
		t.Errorf("a head after rotation, checked with the first key alone: %v", err)
	}
	both, _ := ledger.ParseVerifierKeys([]byte(strings.Join(keys, "\n")))
	if _, err := ledger.ParseHead(old.Note, both); err != nil {
		t.Errorf("a head of the retired key, checked with GET /ledger/key: %v", err)
	}
	var rep struct{ OK bool }
	if st := s.admin("/ledger/verify?"+url.Values{"head": {headParam(old)}}.Encode(), &rep); st != http.StatusOK || !rep.OK {
		t.Errorf("verify against the head of the retired key: got %d %+v, want OK", st, rep)
	}
}
