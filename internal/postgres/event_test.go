package postgres_test

import (
	"testing"

	"optin/internal/bolt/record"
	"optin/internal/consent"
	"optin/internal/postgres"
)

// TestEventRecordWithoutRowFields: a ledger event's record leaves out
// what its row and the chain hold (its sequence number and subscriber,
// which are columns, and the previous event's hash) and its time, an
// offset from its subscriber's id (migration 0019), and every reader
// puts them back: the events of a subscriber, the chain's verification
// and the counters' walk of the ledger.
func TestEventRecordWithoutRowFields(t *testing.T) {
	url := pg.EmptyDatabase(t)
	db := open(t, url, nil, testHMACKey)
	form := bootstrap(t, db)
	signup(t, db, &form, "ann@example.com")
	signup(t, db, &form, "bob@example.com")

	pool, err := postgres.Connect(t.Context(), url)
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	strs := readStrings(t, pool)
	rows, err := pool.Query(t.Context(), "SELECT seq, event FROM ledger ORDER BY seq")
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	n := 0
	for rows.Next() {
		var seq int64
		var b []byte
		if err := rows.Scan(&seq, &b); err != nil {
			t.Fatal(err)
		}
		var stored consent.Event
		if err := record.UnmarshalWith(b, &stored, strs); err != nil || b[0] != record.EventAtIDMagic || stored.Seq != 0 || stored.Subscriber != "" ||
			stored.Prev != "" || !stored.Time.IsZero() || stored.Hash == "" {
			t.Errorf("stored event %d: got %+v, %v, want no seq, subscriber, prev nor time, its hash", seq, stored, err)
		}
		n++
	}
	if rows.Err() != nil || n != 2 {
		t.Fatalf("ledger rows: got %d, %v, want 2", n, rows.Err())
	}

	var prev string
	for i, email := range []string{"ann@example.com", "bob@example.com"} {
		a, _ := consent.ParseAddress(email)
		sub, err := db.SubscriberByAddress(t.Context(), a)
		if err != nil {
			t.Fatal(err)
		}
		recs, err := db.Events(t.Context(), sub.ID)
		if err != nil || len(recs) != 1 {
			t.Fatalf("Events(%s): got %d, %v, want 1", email, len(recs), err)
		}
		ev := recs[0].Event
		if ev.Seq != uint64(i+1) || ev.Subscriber != sub.ID || ev.Prev != prev {
			t.Errorf("Events(%s): got seq %d, subscriber %q, prev %q; want %d, %q, %q", email, ev.Seq, ev.Subscriber, ev.Prev, i+1, sub.ID, prev)
		}
		sealed := ev
		sealed.Seal(prev)
		if sealed.Hash != ev.Hash {
			t.Errorf("Events(%s): the event read does not hash to its hash", email)
		}
		prev = ev.Hash
	}
	if rep, err := db.VerifyLedger(t.Context()); err != nil || !rep.OK || rep.Events != 2 {
		t.Errorf("VerifyLedger: got %+v, %v, want OK over 2 events", rep, err)
	}
	if diff, err := db.RebuildCounters(t.Context()); err != nil || len(diff) != 0 {
		t.Errorf("RebuildCounters: got %v, %v, want no difference", diff, err)
	}
}
