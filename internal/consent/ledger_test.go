package consent_test

import (
	"encoding/json"

	"errors"
	"fmt"
	"testing"
	"time"

	"optin/internal/consent"
)

// ledgerEntry is one event with the personal record it commits to, as a
// store would hand them to a Chain.
type ledgerEntry struct {
	ev       consent.Event
	personal *consent.Personal
}

// sealedLedger returns n events sealed into a chain the way the store does:
// Seq from 1, PersonalDigest set, each sealed onto the previous hash.
func sealedLedger(n int) []ledgerEntry {
	var out []ledgerEntry
	prev := ""
	for i := 1; i <= n; i++ {
		p := &consent.Personal{Salt: fmt.Sprintf("salt%d", i), Email: fmt.Sprintf("p%d@example.com", i),
			IP: "192.0.2.1", UserAgent: "test"}
		ev := consent.Event{Seq: uint64(i), Time: t0.Add(time.Duration(i) * time.Minute), Type: consent.EventRequested,
			Subscriber: fmt.Sprintf("sub%d", i), Topics: []string{"news"}, Basis: consent.BasisConsent,
			Source: "form:newsletter", Request: fmt.Sprintf("req%d", i), PersonalDigest: p.Digest()}
		ev.Seal(prev)
		prev = ev.Hash
		out = append(out, ledgerEntry{ev: ev, personal: p})
	}
	return out
}

// checkAll runs entries through a fresh Chain and returns the first error.
func checkAll(entries []ledgerEntry) (*consent.Chain, error) {
	var c consent.Chain
	for i := range entries {
		if err := c.Check(&entries[i].ev, entries[i].personal); err != nil {
			return &c, err
		}
	}
	return &c, nil
}

func TestChainIntact(t *testing.T) {
	entries := sealedLedger(5)
	c, err := checkAll(entries)
	if err != nil {
		t.Fatalf("Check: got err %v, want nil", err)
	}
	if got, want := c.Count(), uint64(5); got != want {
		t.Errorf("Count: got %d, want %d", got, want)
	}
	if got, want := c.Head(), entries[4].ev.Hash; got != want {
		t.Errorf("Head: got %q, want %q", got, want)
	}
	if got := entries[0].ev.Prev; got != "" {
		t.Errorf("first Prev: got %q, want empty", got)
	}
}

func TestChainErasedPersonal(t *testing.T) {
	entries := sealedLedger(5)
	entries[1].personal = nil // erased: the record is gone, the digest stays
	entries[2].personal = nil
	if _, err := checkAll(entries); err != nil {
		t.Errorf("Check with erased personal records: got err %v, want nil", err)
	}
}

func TestChainTampering(t *testing.T) {
	tests := []struct {
		name    string
		tamper  func(es []ledgerEntry) []ledgerEntry
		wantSeq uint64
	}{
		{
			name: "change Topics of event 3",
			tamper: func(es []ledgerEntry) []ledgerEntry {
				es[2].ev.Topics = []string{"news", "offers"}
				return es
			},
			wantSeq: 3,
		},
		{
			name: "change Time of event 3",
			tamper: func(es []ledgerEntry) []ledgerEntry {
				es[2].ev.Time = es[2].ev.Time.Add(-time.Hour)
				return es
			},
			wantSeq: 3,
		},
		{
			name: "change Type of event 3",
			tamper: func(es []ledgerEntry) []ledgerEntry {
				es[2].ev.Type = consent.EventConfirmed
				return es
			},
			wantSeq: 3,
		},
		{
			name: "drop event 3",
			tamper: func(es []ledgerEntry) []ledgerEntry {
				return append(es[:2:2], es[3:]...)
			},
			wantSeq: 4,
		},
		{
			name: "swap events 2 and 3",
			tamper: func(es []ledgerEntry) []ledgerEntry {
				es[1], es[2] = es[2], es[1]
				return es
			},
			wantSeq: 3, // event 3 arrives where 2 belongs
		},
		{
			name: "swap events 2 and 3 and renumber",
			tamper: func(es []ledgerEntry) []ledgerEntry {
				es[1], es[2] = es[2], es[1]
				es[1].ev.Seq, es[2].ev.Seq = 2, 3
				return es
			},
			wantSeq: 2,
		},
		{
			name: "change Personal.Email of event 2 without updating the digest",
			tamper: func(es []ledgerEntry) []ledgerEntry {
				p := *es[1].personal
				p.Email = "mallory@example.com"
				es[1].personal = &p
				return es
			},
			wantSeq: 2,
		},
		{
			name: "change event 3 and recompute its own hash",
			tamper: func(es []ledgerEntry) []ledgerEntry {
				es[2].ev.Source = "import:forged"
				es[2].ev.Hash = es[2].ev.ComputeHash()
				return es
			},
			wantSeq: 4, // 3 is self-consistent; 4's prev link breaks
		},
		{
			name: "change event 3 and reseal it on its prev",
			tamper: func(es []ledgerEntry) []ledgerEntry {
				es[2].ev.Topics = nil
				es[2].ev.Seal(es[2].ev.Prev)
				return es
			},
			wantSeq: 4,
		},
		{
			name: "change PersonalDigest of event 2 to match a forged record",
			tamper: func(es []ledgerEntry) []ledgerEntry {
				p := *es[1].personal
				p.Email = "mallory@example.com"
				es[1].personal = &p
				es[1].ev.PersonalDigest = p.Digest()
				return es
			},
			wantSeq: 2,
		},
		{
			name: "resealed chain with a sequence gap",
			tamper: func(es []ledgerEntry) []ledgerEntry {
				// Every hash and prev link is valid; only the numbering
				// shows that an event is missing.
				for i := 2; i < len(es); i++ {
					es[i].ev.Seq++
					es[i].ev.Seal(es[i-1].ev.Hash)
				}
				return es
			},
			wantSeq: 4,
		},
		{
			name: "first event with a prev",
			tamper: func(es []ledgerEntry) []ledgerEntry {
				es[0].ev.Seal(es[4].ev.Hash)
				return es
			},
			wantSeq: 1,
		},
		{
			name: "sequence not starting at 1",
			tamper: func(es []ledgerEntry) []ledgerEntry {
				return es[1:]
			},
			wantSeq: 2,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			entries := tt.tamper(sealedLedger(5))
			_, err := checkAll(entries)
			if err == nil {
				t.Fatalf("Check: got nil, want a *ChainError at seq %d", tt.wantSeq)
			}
			var ce *consent.ChainError
			if !errors.As(err, &ce) {
				t.Fatalf("Check: got %T %v, want *consent.ChainError", err, err)
			}
			if got, want := ce.Seq, tt.wantSeq; got != want {
				t.Errorf("ChainError.Seq: got %d, want %d (%v)", got, want, ce)
			}
			if ce.Reason == "" {
				t.Errorf("ChainError.Reason: got empty, want a reason")
			}
		})
	}
}

func TestChainStopsAtFirstError(t *testing.T) {
	entries := sealedLedger(5)
	entries[2].ev.Topics = nil
	var c consent.Chain
	var errs []uint64
	for i := range entries {
		if err := c.Check(&entries[i].ev, entries[i].personal); err != nil {
			var ce *consent.ChainError
			if errors.As(err, &ce) {
				errs = append(errs, ce.Seq)
			}
		}
	}
	// A failed Check leaves the chain where it was, so every later event
	// fails too: the walk must stop at the first error.
	if got, want := c.Count(), uint64(2); got != want {
		t.Errorf("Count after failure: got %d, want %d", got, want)
	}
	if got, want := fmt.Sprint(errs), "[3 4 5]"; got != want {
		t.Errorf("failing seqs: got %s, want %s", got, want)
	}
}

func TestWordingHash(t *testing.T) {
	base := func() consent.Wording {
		return consent.Wording{Form: "newsletter", Version: 2, Locale: "en", Text: "Yes, send me mail.",
			Topics: map[string]string{"news": "Product news", "offers": "Offers"},
			Notice: "Shop Ltd sends this; unsubscribe at any time."}
	}
	h := base().Hash()
	if len(h) != 64 {
		t.Errorf("len(Hash): got %d, want 64 hex digits", len(h))
	}

	t.Run("stable", func(t *testing.T) {
		// The same content built in another map insertion order.
		w := base()
		w.Topics = map[string]string{}
		w.Topics["offers"] = "Offers"
		w.Topics["news"] = "Product news"
		for range 10 {
			if got := w.Hash(); got != h {
				t.Fatalf("Hash of equal content: got %s, want %s", got, h)
			}
		}
	})

	changes := []struct {
		name   string
		change func(w *consent.Wording)
	}{
		{"Text", func(w *consent.Wording) { w.Text = "Yes, send me mail!" }},
		{"Notice", func(w *consent.Wording) { w.Notice = "" }},
		{"topic label", func(w *consent.Wording) { w.Topics["offers"] = "Special offers" }},
		{"topic added", func(w *consent.Wording) { w.Topics["health"] = "Health" }},
		{"topic removed", func(w *consent.Wording) { delete(w.Topics, "offers") }},
		{"Locale", func(w *consent.Wording) { w.Locale = "de" }},
		{"Version", func(w *consent.Wording) { w.Version = 3 }},
		{"Form", func(w *consent.Wording) { w.Form = "checkout" }},
	}
	for _, tt := range changes {
		t.Run("changes with "+tt.name, func(t *testing.T) {
			w := base()
			tt.change(&w)
			if got := w.Hash(); got == h {
				t.Errorf("Hash: got %s, the same as before the change; want a different hash", got)
			}
		})
	}
}

// TestSealRepairsUTF8: an event or personal record carrying bytes that
// are not UTF-8 still verifies after a JSON round trip.
func TestSealRepairsUTF8(t *testing.T) {
	p := consent.Personal{Salt: "s", UserAgent: "agent\xff"}.Repaired()
	e := consent.Event{Seq: 1, Subscriber: "a\xffb", Topics: []string{"n\xfe"}, PersonalDigest: p.Digest()}
	e.Seal("")
	b, err := json.Marshal(e)
	if err != nil {
		t.Fatal(err)
	}
	var back consent.Event
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	pb, _ := json.Marshal(p)
	var pback consent.Personal
	if err := json.Unmarshal(pb, &pback); err != nil {
		t.Fatal(err)
	}
	var c consent.Chain
	if err := c.Check(&back, &pback); err != nil {
		t.Errorf("round-tripped event: %v", err)
	}
}

// TestSealReturnsLeafData: the leaf Seal returns, made from the encoding
// it hashed, is the sealed event's LeafData byte for byte, whatever fields
// are set.
func TestSealReturnsLeafData(t *testing.T) {
	at := time.Date(2026, 12, 3, 6, 0, 0, 0, time.UTC)
	for _, e := range []consent.Event{
		{Seq: 1},
		{Seq: 2, Time: at, Type: consent.EventImported, Subscriber: "s\xff", Topics: []string{"news", "offers"},
			Basis: consent.BasisConsent, Source: "import:b", Page: `source=x; "quoted" <tag>`, PersonalDigest: "ab"},
		{Seq: 3, Time: at, Type: consent.EventConfirmed, Request: "r", MessageID: "m@x", OccurredAt: at, Check: &consent.Check{}},
	} {
		leaf := e.Seal("prevhash")
		if want := e.LeafData(); string(leaf) != string(want) {
			t.Errorf("event %d: Seal returned\n%s\nwant LeafData\n%s", e.Seq, leaf, want)
		}
		if e.Hash == "" || e.Hash != e.ComputeHash() {
			t.Errorf("event %d: Hash %q, want %q", e.Seq, e.Hash, e.ComputeHash())
		}
	}
}
