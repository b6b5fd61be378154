package postgres_test

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"optin/internal/bolt/record"
	"optin/internal/consent"
	"optin/internal/transfer"
)

// TestPersonalLeavesAddress: a personal record whose subscriber holds its
// address as email_key is stored without it (record.RefMagic) and reads
// back whole; an address change gives the subscriber's records their old
// address back first; the chain verifies throughout, and after an
// erasure.
func TestPersonalLeavesAddress(t *testing.T) {
	ctx := t.Context()
	db, form, pool := newStore(t)
	byAddress := func(email string) *consent.Subscriber { return subscriberAt(t, db, email) }
	// stored checks the personal records of id's events: the first ones
	// short (without the address) or not as short says, and each read
	// back with the address of want, in order.
	stored := func(id string, short []bool, want []string) {
		t.Helper()
		rows, err := pool.Query(ctx, "SELECT personal FROM ledger WHERE subscriber = $1 ORDER BY seq", record.ID(id))
		if err != nil {
			t.Fatal(err)
		}
		var got []bool
		for rows.Next() {
			var b []byte
			if err := rows.Scan(&b); err != nil {
				t.Fatal(err)
			}
			got = append(got, b[0] == record.RefMagic && !bytes.Contains(b, []byte("@example.")))
		}
		if rows.Err() != nil || len(got) != len(want) {
			t.Fatalf("personal records of %s: got %v, %v, want %d", id, got, rows.Err(), len(want))
		}
		for i := range short {
			if got[i] != short[i] {
				t.Errorf("personal record %d of %s: short %v, want %v", i, id, got[i], short[i])
			}
		}
		recs, err := db.Events(ctx, id)
		if err != nil || len(recs) != len(want) {
			t.Fatalf("Events(%s): got %d, %v, want %d", id, len(recs), err, len(want))
		}
		for i, r := range recs {
			if r.Personal == nil || r.Personal.Email != want[i] {
				t.Errorf("Events(%s)[%d] (%s): personal %+v, want the address %s", id, i, r.Type, r.Personal, want[i])
			}
		}
		if rep, err := db.VerifyLedger(ctx); err != nil || !rep.OK {
			t.Errorf("VerifyLedger: got %+v, %v, want OK", rep, err)
		}
	}
	in := consent.ConfirmInput{IP: "192.0.2.1"}

	// A signup and its confirmation: the subscriber is stored first.
	signup(t, db, &form, "ann@example.com")
	ann := byAddress("ann@example.com")
	if _, err := db.Confirm(ctx, ann.PendingRequest, in); err != nil {
		t.Fatal(err)
	}
	stored(ann.ID, []bool{true, true}, []string{"ann@example.com", "ann@example.com"})
	// An address whose key is not itself keeps it.
	signup(t, db, &form, "Cy@Example.com")
	stored(byAddress("cy@example.com").ID, []bool{false}, []string{"Cy@example.com"})
	// An import.
	ir, err := transfer.NewReader(strings.NewReader("email,topics,basis,consented_at,source,last_purchase_at\nimp@example.com,news,consent,2024-01-01,shop,\n"), transfer.FormatCSV)
	if err != nil {
		t.Fatal(err)
	}
	if rep, err := db.Import(ctx, consent.CLIActor(), ir, consent.ImportOptions{SkipNotice: true}); err != nil || rep.Imported != 1 {
		t.Fatalf("Import: got %+v, %v", rep, err)
	}
	imp := byAddress("imp@example.com")
	stored(imp.ID, []bool{true}, []string{"imp@example.com"})

	// Ann's address changes: her records get the old one back before.
	newAddr, err := consent.ParseAddress("ann.smith@example.org")
	if err != nil {
		t.Fatal(err)
	}
	if res, err := db.Rectify(ctx, nil, ann.ID, consent.Rectification{Email: &newAddr}, consent.ChannelPreferences); err != nil || !res.AddressPending {
		t.Fatalf("Rectify(email): got %+v, %v", res, err)
	}
	jobs, err := db.DueJobs(ctx, time.Now().Add(time.Hour), 100, func(uint64) bool { return false })
	if err != nil {
		t.Fatal(err)
	}
	var req string
	for _, j := range jobs {
		if j.Kind == consent.JobAddressChange {
			req = j.Request
		}
	}
	if cr, err := db.Confirm(ctx, req, in); err != nil || cr.NewEmail != newAddr.Addr {
		t.Fatalf("Confirm(address change %q): got %+v, %v", req, cr, err)
	}
	recs, err := db.Events(ctx, ann.ID)
	if err != nil || len(recs) < 3 {
		t.Fatalf("Events(ann): got %d, %v", len(recs), err)
	}
	want := []string{"ann@example.com", "ann@example.com"}
	for _, r := range recs[2:] {
		want = append(want, r.Personal.Email) // the change's own events
	}
	if want[len(want)-1] != newAddr.Addr {
		t.Errorf("the address change's last event: personal address %s, want %s", want[len(want)-1], newAddr.Addr)
	}
	stored(ann.ID, []bool{false, false}, want)

	// Erasure: the chain still verifies.
	if err := db.Erase(ctx, imp.ID, "test"); err != nil {
		t.Fatal(err)
	}
	if rep, err := db.VerifyLedger(ctx); err != nil || !rep.OK {
		t.Errorf("VerifyLedger after the erasure: got %+v, %v, want OK", rep, err)
	}
}
