package jsonenc

import (
	"encoding/json"
	"math/rand/v2"
	"testing"
	"time"
	"unicode/utf8"
)

// unusual are strings whose encoding takes every escape encoding/json
// has: quote and backslash, the short control escapes, other control
// bytes, the HTML-special < > &, DEL, invalid UTF-8, U+2028 and U+2029,
// and multi-byte runes around them.
var unusual = []string{"", "plain", `a"b\c`, "\b\f\n\r\t", "\x00\x01\x1f", "<script>&amp;</script>", "\x7f",
	"\xff", "a\xc3", "\xe2\x80", "\xed\xa0\x80", "\u2028\u2029", "ü€😀", "\ufffd", "e\u0301", "x\u2027\u202a",
	"mixed \xfe\u2028<\x00>\"ü"}

// randomString draws a string from pieces of unusual and random bytes.
func randomString(r *rand.Rand) string {
	var b []byte
	for range r.IntN(6) {
		switch r.IntN(3) {
		case 0:
			b = append(b, unusual[r.IntN(len(unusual))]...)
		case 1:
			b = append(b, byte(r.IntN(256)))
		default:
			b = utf8.AppendRune(b, rune(r.IntN(0x30000)))
		}
	}
	return string(b)
}

func TestAppendStringMatchesEncodingJSON(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	strs := append([]string{}, unusual...)
	for range 20000 {
		strs = append(strs, randomString(r))
	}
	for c := range 256 { // every single byte
		strs = append(strs, string([]byte{byte(c)}))
	}
	for _, s := range strs {
		want, err := json.Marshal(s)
		if err != nil {
			t.Fatal(err)
		}
		if got := AppendString([]byte("x"), s); string(got) != "x"+string(want) {
			t.Fatalf("AppendString(%q) = %s, want %s", s, got[1:], want)
		}
	}
}

func TestAppendTimeMatchesEncodingJSON(t *testing.T) {
	berlin, err := time.LoadLocation("Europe/Berlin")
	if err != nil {
		berlin = time.FixedZone("CET", 3600)
	}
	times := []time.Time{{}, time.Unix(0, 0).UTC(), time.Date(2026, 12, 3, 6, 9, 38, 120000000, time.UTC),
		time.Date(2026, 12, 3, 6, 9, 38, 123456789, berlin), time.Date(9999, 12, 31, 23, 59, 59, 999999999, time.UTC),
		time.Date(1, 1, 1, 0, 0, 0, 1, time.FixedZone("", -(23*3600+59*60))),
		time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC), time.Date(-1, 1, 1, 0, 0, 0, 0, time.UTC),
		time.Date(2026, 1, 1, 0, 0, 0, 0, time.FixedZone("", 30)), time.Date(2026, 1, 1, 0, 0, 0, 0, time.FixedZone("", 24*3600))}
	r := rand.New(rand.NewPCG(3, 4))
	for range 2000 {
		tm := time.Unix(r.Int64N(400000000000)-200000000000, r.Int64N(1e9))
		// In UTC (AppendUTC's digits) and in another zone (package time's).
		times = append(times, tm.UTC(), tm.In(time.FixedZone("", (r.IntN(48)-24)*1800)))
		// Whole seconds and milliseconds, whose fractions are cut short.
		times = append(times, tm.Truncate(time.Second).UTC(), tm.Truncate(time.Millisecond).UTC())
	}
	for _, tm := range times {
		want, werr := json.Marshal(tm)
		if werr != nil {
			want = nil // on an error the bytes are left as they were
		}
		got, gerr := AppendTime([]byte("x"), tm)
		if (werr != nil) != (gerr != nil) || string(got) != "x"+string(want) {
			t.Fatalf("AppendTime(%v) = %s, %v; want x%s, %v", tm, got, gerr, want, werr)
		}
		// AppendUTC with milliseconds is the layout the CSV export used.
		if y := tm.UTC().Year(); y >= 0 && y <= 9999 {
			got, ok := AppendUTC([]byte("x"), tm, true)
			if want := tm.UTC().Format("2006-01-02T15:04:05.000Z07:00"); !ok || string(got) != "x"+want {
				t.Fatalf("AppendUTC(%v, true) = %s, %v; want x%s", tm, got, ok, want)
			}
		} else if got, ok := AppendUTC([]byte("x"), tm, true); ok || string(got) != "x" {
			t.Fatalf("AppendUTC(%v, true) = %s, %v; want x, false", tm, got, ok)
		}
	}
}

func TestAppendOptional(t *testing.T) {
	if got := string(AppendOptional([]byte("{"), `"a":`, "")); got != "{" {
		t.Errorf("empty: got %s", got)
	}
	if got := string(AppendOptional([]byte("{"), `"a":`, "<")); got != `{"a":"\u003c"` {
		t.Errorf("set: got %s", got)
	}
}
