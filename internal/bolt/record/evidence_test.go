package record

import (
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"go.etcd.io/bbolt"

	"optin/internal/consent"
)

// randomEvidence returns the evidence text of an import row as
// consent.ImportRow.Evidence writes it, with random parts, or (odd) a
// text that only looks like one: times with offsets or fractions, parts
// out of order, sources that hold "; " and keys, invalid UTF-8.
func randomEvidence(r *rand.Rand) string {
	t := func() time.Time {
		return time.Unix(r.Int64N(4e9)-1e9, 0).UTC()
	}
	if r.IntN(4) > 0 {
		row := consent.ImportRow{}
		if r.IntN(8) > 0 {
			row.Source = []string{"shop", "crm export 2024", "fair; stand 12", "a=b", "source=x; method=prefilled", "Laden München", "x"}[r.IntN(7)]
		}
		if r.IntN(8) > 0 {
			row.ConsentedAt = t()
		}
		if r.IntN(2) > 0 {
			row.Method = []consent.ConsentMethod{consent.MethodCheckboxUnticked, consent.MethodDoubleOptIn,
				consent.MethodPrefilled, consent.MethodContractClause, consent.MethodUnknown, "other"}[r.IntN(6)]
		}
		if r.IntN(3) == 0 {
			row.LastPurchaseAt = t()
		}
		return row.Evidence()
	}
	parts := []string{
		"source=shop", "source=", "consented_at=2025-03-04T05:06:07+02:00", "consented_at=2025-03-04T05:06:07.5Z",
		"consented_at=2025-03-04t05:06:07z", "consented_at=99999-01-01T00:00:00Z", "consented_at=", "consented_at=x",
		"method=", "method=double_opt_in", "last_purchase_at=2020-02-29T23:59:60Z", "last_purchase_at=1969-12-31T23:59:59Z",
		"source=a\xffb", "nothing", "", ";", "method=prefilled;", "consented_at=2025-03-04T05:06:07Z ",
	}
	var sb strings.Builder
	for i := range 1 + r.IntN(4) {
		if i > 0 {
			sb.WriteString([]string{"; ", ";", "; "}[r.IntN(3)])
		}
		sb.WriteString(parts[r.IntN(len(parts))])
	}
	return sb.String()
}

// TestEvidenceReadsBackExactly: the page of an imported event, its
// evidence text, reads back byte for byte (the event's JSON is hashed),
// with the table of strings and without, whether it takes the packed
// form or, when writing its parts again would not give the same text,
// the plain one.
func TestEvidenceReadsBackExactly(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	withStrings(t, func(_ *bbolt.Bucket, strs Strings) error {
		for range 5000 {
			checkEvidence(t, randomEvidence(r), strs)
		}
		return nil
	})
}

func checkEvidence(t *testing.T, page string, strs Strings) {
	t.Helper()
	ev := &consent.Event{Time: time.Unix(1e9, 0).UTC(), Type: consent.EventImported, Subscriber: "s", Page: page}
	want := validUTF8(page) // as JSON gives it (a shared string may keep invalid UTF-8 as it is)
	for _, table := range []Strings{nil, strs} {
		b, err := MarshalEvent(ev, "", table)
		if err != nil {
			t.Fatalf("%q: %v", page, err)
		}
		var back consent.Event
		if err := UnmarshalEvent(b, 1, nil, table, &back); err != nil {
			t.Fatalf("%q: %v", page, err)
		}
		if validUTF8(back.Page) != want {
			t.Fatalf("%q read back as %q (table %v)", page, back.Page, table != nil)
		}
		// A reader skips the page as a field it does not know.
		var none struct{}
		if err := UnmarshalWith(b, &none, table); err != nil {
			t.Fatalf("%q skipped: %v", page, err)
		}
	}
}

// FuzzEvidence: any page reads back as JSON would give it.
func FuzzEvidence(f *testing.F) {
	r := rand.New(rand.NewPCG(3, 4))
	for range 20 {
		f.Add(randomEvidence(r))
	}
	f.Fuzz(func(t *testing.T, page string) {
		withStrings(t, func(_ *bbolt.Bucket, strs Strings) error {
			checkEvidence(t, page, strs)
			return nil
		})
	})
}

// TestEvidenceNotShared: import rows' evidence texts, which differ in
// their times on almost every row, do not each add a string to the
// table: only their source does, once, and the times take a few bytes.
func TestEvidenceNotShared(t *testing.T) {
	withStrings(t, func(b *bbolt.Bucket, strs Strings) error {
		var size int
		for i := range 100 {
			row := consent.ImportRow{Source: "crm export 2024", Method: consent.MethodDoubleOptIn,
				ConsentedAt: time.Unix(1.6e9+int64(i)*7919, 0).UTC(), LastPurchaseAt: time.Unix(1.7e9+int64(i)*104729, 0).UTC()}
			v, err := MarshalWith(&consent.Event{Type: consent.EventImported, Page: row.Evidence()}, strs)
			if err != nil {
				return err
			}
			size = len(v)
		}
		n := 0
		_ = b.ForEach(func(_, _ []byte) error { n++; return nil })
		if n != 2 {
			return fmt.Errorf("%d keys in the table of strings, want 2 (the source both ways)", n)
		}
		// magic, type, the page's key, header, parts, source (its number),
		// method (its number) and two times
		if size > 1+2+1+1+1+1+1+5+5 {
			return fmt.Errorf("an event of %d bytes", size)
		}
		return nil
	})
}

// TestInternedPageStillReads: an event of schema version 5 and before,
// its page a number in the table of strings, reads as it was.
func TestInternedPageStillReads(t *testing.T) {
	withStrings(t, func(_ *bbolt.Bucket, strs Strings) error {
		page := "source=shop; consented_at=2025-01-01T00:00:00Z"
		n, err := strs.Intern(page)
		if err != nil {
			return err
		}
		b := []byte{Magic}
		b = binary.AppendUvarint(b, (fieldNumbers["page"]+1)<<2|wireString)
		b = binary.AppendUvarint(b, n<<3|stringInterned)
		var ev consent.Event
		if err := UnmarshalWith(b, &ev, strs); err != nil || ev.Page != page {
			return fmt.Errorf("read back %q, %v", ev.Page, err)
		}
		return nil
	})
}

// TestEvidenceWithoutTableWrittenOut: without a table of strings (the
// records PostgreSQL stores, which optins of two versions may share) an
// evidence text is written out as before.
func TestEvidenceWithoutTableWrittenOut(t *testing.T) {
	page := "source=shop; consented_at=2025-01-01T00:00:00Z; method=double_opt_in"
	b, err := Marshal(&consent.Event{Type: consent.EventImported, Page: page})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(b), page) {
		t.Errorf("page not written out: %x", b)
	}
}
