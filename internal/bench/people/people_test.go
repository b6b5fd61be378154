package people

import (
	"bytes"
	"io"
	"testing"
	"time"

	"optin/internal/consent"
	"optin/internal/transfer"
)

// genNow is the moment the tests generate for.
var genNow = time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)

// readRows reads a generated file with the import's own reader, failing
// on any row it refuses.
func readRows(t *testing.T, data []byte, format string) []consent.ImportRow {
	t.Helper()
	ir, err := transfer.NewReader(bytes.NewReader(data), format)
	if err != nil {
		t.Fatalf("%s: %v", format, err)
	}
	var rows []consent.ImportRow
	for {
		row, problem, err := ir.Next(genNow)
		if err == io.EOF {
			return rows
		}
		if err != nil || problem != "" {
			t.Fatalf("%s line %d: problem %q, err %v", format, row.Line, problem, err)
		}
		rows = append(rows, row)
	}
}

func generate(t *testing.T, o Options) []byte {
	t.Helper()
	var buf bytes.Buffer
	if err := Generate(&buf, o); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// TestGenerate: every generated row passes the import's checks, both
// formats carry the same people, each address once, and the mix holds
// every basis, a double opt-in, customers, names and all three topics.
func TestGenerate(t *testing.T) {
	const n = 5000
	csvData := generate(t, Options{Subscribers: n, Format: "csv", Seed: 7, Now: genNow})
	ndjson := generate(t, Options{Subscribers: n, Format: "ndjson", Seed: 7, Now: genNow})
	rc, rn := readRows(t, csvData, "csv"), readRows(t, ndjson, "ndjson")
	if len(rc) != n || len(rn) != n {
		t.Fatalf("rows: csv %d, ndjson %d, want %d each", len(rc), len(rn), n)
	}
	seen := map[string]bool{}
	count := map[string]int{}
	for i := range rc {
		c, j := rc[i], rn[i]
		c.Line, j.Line = 0, 0
		if c.Address != j.Address || c.Name != j.Name || c.Basis != j.Basis || !c.ConsentedAt.Equal(j.ConsentedAt) ||
			c.Source != j.Source || !c.LastPurchaseAt.Equal(j.LastPurchaseAt) || c.Method != j.Method ||
			len(c.Topics) != len(j.Topics) {
			t.Fatalf("row %d: csv %+v, ndjson %+v", i, c, j)
		}
		if seen[c.Address.Key] {
			t.Fatalf("row %d: address %s twice", i, c.Address.Key)
		}
		seen[c.Address.Key] = true
		count[string(c.Basis)]++
		if c.Basis == consent.BasisConsent && (c.ConsentedAt.IsZero() || c.Method == consent.MethodPrefilled) {
			count["double opt-in"]++
		}
		if !c.LastPurchaseAt.IsZero() {
			count["customer"]++
		}
		if c.Name != "" {
			count["named"]++
		}
		for _, tp := range c.Topics {
			count[tp]++
		}
	}
	for key, want := range map[string][2]int{ // share of n in percent, low and high
		"consent": {60, 70}, "soft_opt_in": {22, 28}, "legitimate_interest": {7, 11}, "double opt-in": {1, 4},
		"customer": {35, 50}, "named": {55, 65}, "news": {100, 100}, "offers": {17, 23}, "events": {8, 12},
	} {
		if pct := count[key] * 100 / n; pct < want[0] || pct > want[1] {
			t.Errorf("%s: %d%% of rows, want %d-%d%%", key, pct, want[0], want[1])
		}
	}
	if again := generate(t, Options{Subscribers: n, Format: "csv", Seed: 7, Now: genNow}); !bytes.Equal(again, csvData) {
		t.Error("the same seed gave different bytes")
	}
	if other := generate(t, Options{Subscribers: n, Format: "csv", Seed: 8, Now: genNow}); bytes.Equal(other, csvData) {
		t.Error("another seed gave the same bytes")
	}
	if err := Generate(io.Discard, Options{Subscribers: 1, Format: "xml"}); err == nil {
		t.Error("format xml: got nil error, want one")
	}
}

// TestGenerateFlatMemory: ten times the rows cost no more allocations
// (under one per hundred rows).
func TestGenerateFlatMemory(t *testing.T) {
	for _, format := range []string{"csv", "ndjson"} {
		allocs := func(n int) float64 {
			return testing.AllocsPerRun(2, func() {
				if err := Generate(io.Discard, Options{Subscribers: n, Format: format, Seed: 1, Now: genNow}); err != nil {
					t.Fatal(err)
				}
			})
		}
		// A row that allocated would add 18,000; the race detector's
		// pools add a few dozen.
		if small, big := allocs(2000), allocs(20000); big > small+180 {
			t.Errorf("%s: %v allocations for 2,000 rows, %v for 20,000: memory grows with the rows", format, small, big)
		}
	}
}
