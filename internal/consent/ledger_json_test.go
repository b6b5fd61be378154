package consent

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"math/rand/v2"
	"reflect"
	"strings"
	"testing"
	"time"
)

// oddStrings are pieces of strings that take every escape encoding/json
// has: quote, backslash, control bytes, < > &, DEL, invalid UTF-8, U+2028
// and U+2029, multi-byte runes.
var oddStrings = []string{"", "news", "form:newsletter", `"\`, "\b\f\n\r\t\x00\x1f", "<a href='x'>&</a>", "\x7f",
	"\xff", "\xc3", "\xe2\x80", "\xed\xa0\x80", "\u2028\u2029", "Müller €😀", "\ufffd", "https://shop.example/p?a=1&b=<2>"}

// fill sets every field of the struct v points to at random, or leaves
// it zero, by its kind, recursively; a field of a kind it does not know
// fails the test, so a field added to Event, Personal or Wording cannot
// escape the comparison below.
func fill(t *testing.T, r *rand.Rand, v reflect.Value) {
	t.Helper()
	randString := func() string {
		var b []byte
		for range r.IntN(4) {
			if r.IntN(4) == 0 {
				b = append(b, byte(r.IntN(256)))
			} else {
				b = append(b, oddStrings[r.IntN(len(oddStrings))]...)
			}
		}
		return string(b)
	}
	for i := range v.NumField() {
		f := v.Field(i)
		if r.IntN(3) == 0 {
			continue // zero: the omitempty and omitzero cases
		}
		switch {
		case f.Type() == reflect.TypeFor[time.Time]():
			tm := time.Unix(r.Int64N(1<<33), r.Int64N(1e9))
			if r.IntN(2) == 0 {
				tm = tm.UTC().Truncate(time.Millisecond)
			} else {
				tm = tm.In(time.FixedZone("", (r.IntN(48)-24)*1800))
			}
			f.Set(reflect.ValueOf(tm))
		case f.Kind() == reflect.String:
			f.SetString(randString())
		case f.Kind() == reflect.Uint64:
			f.SetUint(r.Uint64() >> r.IntN(64))
		case f.Kind() == reflect.Int64 || f.Kind() == reflect.Int:
			n := r.Int64() >> r.IntN(64) // every magnitude
			if r.IntN(2) == 0 {
				n = -n
			}
			f.SetInt(n)
		case f.Kind() == reflect.Bool:
			f.SetBool(r.IntN(2) == 0)
		case f.Kind() == reflect.Slice && f.Type().Elem().Kind() == reflect.String:
			s := reflect.MakeSlice(f.Type(), r.IntN(4), 4) // sometimes empty, not nil
			for j := range s.Len() {
				s.Index(j).SetString(randString())
			}
			f.Set(s)
		case f.Kind() == reflect.Map && f.Type().Key().Kind() == reflect.String && f.Type().Elem().Kind() == reflect.String:
			m := reflect.MakeMap(f.Type()) // sometimes empty, not nil
			for range r.IntN(4) {
				m.SetMapIndex(reflect.ValueOf(randString()), reflect.ValueOf(randString()))
			}
			f.Set(m)
		case f.Kind() == reflect.Pointer && f.Type().Elem().Kind() == reflect.Struct:
			p := reflect.New(f.Type().Elem())
			fill(t, r, p.Elem())
			f.Set(p)
		default:
			t.Fatalf("fill: field %s of kind %s: teach fill and the hand-written encoder about it", v.Type().Field(i).Name, f.Type())
		}
	}
}

// TestLedgerJSON compares the hand-written encoders of events, personal
// records and wordings with encoding/json, which wrote every hash and leaf
// in ledgers and receipts before them: their bytes must stay identical.
func TestLedgerJSON(t *testing.T) {
	r := rand.New(rand.NewPCG(14, 6))
	sum := func(b []byte) string { s := sha256.Sum256(b); return hex.EncodeToString(s[:]) }
	for i := range 20000 {
		var e Event
		fill(t, r, reflect.ValueOf(&e).Elem())
		want, err := json.Marshal(&e)
		if err != nil {
			t.Fatal(err)
		}
		if got := e.LeafData(); !bytes.Equal(got, want) {
			t.Fatalf("event %d: LeafData\n got %s\nwant %s", i, got, want)
		}
		unhashed := e
		unhashed.Hash = ""
		want, _ = json.Marshal(unhashed)
		if got := e.ComputeHash(); got != sum(want) {
			t.Fatalf("event %d: ComputeHash differs from the hash of %s", i, want)
		}

		var p Personal
		fill(t, r, reflect.ValueOf(&p).Elem())
		want, _ = json.Marshal(p)
		if got, digest := p.Encode(); !bytes.Equal(got, want) || digest != sum(want) {
			t.Fatalf("personal %d: Encode\n got %s\nwant %s", i, got, want)
		}

		var w Wording
		fill(t, r, reflect.ValueOf(&w).Elem())
		want, _ = json.Marshal(w)
		if got := w.Hash(); got != sum(want) {
			t.Fatalf("wording %d: Hash differs from the hash of %s", i, want)
		}
	}
}

// BenchmarkSealSignup measures what every signup's ledger append encodes
// and hashes (the event's seal and leaf, the personal record's digest,
// the wording's hash), by hand and, for comparison, with encoding/json.
func BenchmarkSealSignup(b *testing.B) {
	at := time.Date(2026, 12, 3, 6, 30, 0, 123000000, time.UTC)
	e := Event{Seq: 1234567, Time: at, Type: EventRequested, Subscriber: "sub_2h7kq9x4m3", Topics: []string{"news"},
		Basis: BasisConsent, Source: "form:newsletter", Page: "https://shop.example/news", Request: "req_8f3k2m9q7x",
		Wording: strings.Repeat("ab", 32), PersonalDigest: strings.Repeat("cd", 32), Prev: strings.Repeat("ef", 32)}
	p := Personal{Salt: strings.Repeat("01", 16), Email: "s123@bench.example", IP: "127.0.0.1", UserAgent: "Go-http-client/1.1"}
	w := Wording{Form: "newsletter", Version: 1, Locale: "en", Text: "Yes, send me the newsletters I ticked.",
		Topics: map[string]string{"news": "Product news"}, Notice: "Example Ltd sends these mails. You can unsubscribe at any time."}
	b.Run("by_hand", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			p.Encode()
			e.Seal(e.Prev)
			e.LeafData()
			w.Hash()
		}
	})
	b.Run("encoding_json", func(b *testing.B) {
		b.ReportAllocs()
		sum := func(v any) { j, _ := json.Marshal(v); sha256.Sum256(j) }
		for b.Loop() {
			sum(p)
			e.Hash = ""
			sum(&e)
			json.Marshal(&e)
			sum(w)
		}
	})
}
