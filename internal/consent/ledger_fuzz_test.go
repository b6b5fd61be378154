package consent_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"optin/internal/consent"
)

// fuzzEventTypes are the event types FuzzChain draws from.
var fuzzEventTypes = []consent.EventType{consent.EventRequested, consent.EventConfirmed, consent.EventReconfirmed,
	consent.EventUnsubscribed, consent.EventLapsed, consent.EventImported, consent.EventPreferencesUpdated,
	consent.EventErased, consent.EventCanceled}

// fuzzMaxUnix is 9999-12-31T23:59:59Z, the last second encoding/json can
// marshal.
const fuzzMaxUnix = 253402300799

// FuzzChain seals a ledger of 1 to 4 events built from fuzzed fields,
// stores each event and personal record as JSON the way the store does,
// replaces one byte of one of them and decodes them again. The untouched
// ledger must verify. The tampered one must fail to decode, or fail
// Chain.Check with a *ChainError at the tampered event, unless the
// replacement left the decoded record identical (same JSON re-encoding,
// which is exactly what the hash commits to), in which case it must verify.
//
// Seeds: testdata/fuzz/FuzzChain.
func FuzzChain(f *testing.F) {
	f.Fuzz(func(t *testing.T, n uint8, unix uint64, nanos uint32, kind uint8, subscriber, topics, source, page, email, userAgent string,
		target uint8, inPersonal bool, pos uint16, val byte) {
		n = n%4 + 1
		// Hashes cover the JSON encoding, which does not survive a round
		// trip for invalid UTF-8 (an invalid byte is written as \ufffd,
		// read back as U+FFFD and then written raw), so such an event no
		// longer verifies once stored. The store only puts valid UTF-8
		// into events; so does this target.
		for _, s := range []*string{&subscriber, &topics, &source, &page, &email, &userAgent} {
			*s = strings.ToValidUTF8(*s, "\uFFFD")
		}
		base := time.Unix(int64(unix%fuzzMaxUnix), int64(nanos%1e9)).UTC()
		var (
			events    = make([][]byte, n)
			personals = make([][]byte, n)
			prev      string
		)
		for i := range int(n) {
			p := consent.Personal{Salt: strings.Repeat("s", i+1), Email: email, IP: "192.0.2.1", UserAgent: userAgent}
			ev := consent.Event{Seq: uint64(i + 1), Time: base.Add(-time.Duration(int(n)-i) * time.Second),
				Type: fuzzEventTypes[(int(kind)+i)%len(fuzzEventTypes)], Subscriber: subscriber, Basis: consent.BasisConsent,
				Source: source, Page: page, Wording: strings.Repeat("ab", 32), Request: subscriber + "-req",
				MessageID: subscriber + "@optin.test", PersonalDigest: p.Digest()}
			if topics != "" {
				ev.Topics = strings.Split(topics, ",")
			}
			ev.Seal(prev)
			prev = ev.Hash
			events[i] = fuzzMarshal(t, ev)
			personals[i] = fuzzMarshal(t, p)
		}
		if _, err := fuzzCheckLedger(t, events, personals); err != nil {
			t.Fatalf("untouched ledger: got err %v, want nil", err)
		}

		ti := int(target) % int(n)
		recs := events
		if inPersonal {
			recs = personals
		}
		orig := recs[ti]
		mut := bytes.Clone(orig)
		mut[int(pos)%len(mut)] = val
		recs[ti] = mut

		var identical bool
		if inPersonal {
			var a, b consent.Personal
			if json.Unmarshal(mut, &b) != nil {
				return
			}
			fuzzUnmarshal(t, orig, &a)
			identical = bytes.Equal(fuzzMarshal(t, a), fuzzMarshal(t, b))
		} else {
			var a, b consent.Event
			if json.Unmarshal(mut, &b) != nil {
				return
			}
			fuzzUnmarshal(t, orig, &a)
			identical = bytes.Equal(fuzzMarshal(t, a), fuzzMarshal(t, b))
		}

		tampered, err := fuzzCheckLedger(t, events, personals)
		switch {
		case identical && err != nil:
			t.Fatalf("record %d changed %q -> %q without changing its content: got err %v, want nil", ti, orig, mut, err)
		case !identical && err == nil:
			t.Fatalf("record %d changed %q -> %q: Check found nothing, want a *ChainError", ti, orig, mut)
		case !identical:
			var ce *consent.ChainError
			if !errors.As(err, &ce) {
				t.Fatalf("record %d changed %q -> %q: got err %T %v, want a *ChainError", ti, orig, mut, err, err)
			}
			if got, want := ce.Seq, tampered[ti].Seq; got != want {
				t.Fatalf("record %d changed %q -> %q: got ChainError at seq %d, want %d (%v)", ti, orig, mut, got, want, err)
			}
		}
	})
}

// fuzzCheckLedger decodes events and personals and runs them through a
// fresh Chain, returning the decoded events and the first Check error.
func fuzzCheckLedger(t *testing.T, events, personals [][]byte) ([]consent.Event, error) {
	t.Helper()
	evs := make([]consent.Event, len(events))
	var c consent.Chain
	for i := range events {
		var p consent.Personal
		fuzzUnmarshal(t, events[i], &evs[i])
		fuzzUnmarshal(t, personals[i], &p)
		if err := c.Check(&evs[i], &p); err != nil {
			return evs, err
		}
	}
	if got, want := c.Count(), uint64(len(events)); got != want {
		t.Fatalf("Chain.Count: got %d, want %d", got, want)
	}
	return evs, nil
}

func fuzzMarshal(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatalf("json.Marshal(%+v): got err %v, want nil", v, err)
	}
	return b
}

func fuzzUnmarshal(t *testing.T, b []byte, v any) {
	t.Helper()
	if err := json.Unmarshal(b, v); err != nil {
		t.Fatalf("json.Unmarshal(%q): got err %v, want nil", b, err)
	}
}
