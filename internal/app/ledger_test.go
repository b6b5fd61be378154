package app

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/mod/sumdb/tlog"

	"optin/internal/config"
	"optin/internal/ledger"
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
}

// headParam is a head as GET /api/v1/ledger/verify takes it.
func headParam(h ledger.Head) string {
	return fmt.Sprintf("%d:%s", h.Tree.N, base64.StdEncoding.EncodeToString(h.Tree.Hash[:]))
}
