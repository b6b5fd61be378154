package postgres_test

import (
	"strings"
	"testing"

	"github.com/jackc/pgx/v5/pgxpool"

	"optin/internal/bolt/record"
	"optin/internal/consent"
	"optin/internal/postgres"
)

// forge runs sql (unless ""), edits the events with edit (unless nil),
// then reseals the hash chain from its first event on and drops the
// Merkle tree, as an operator with the database would after editing the
// ledger, so that the next instance rebuilds the tree from what the
// table holds. (The events are records in the compact encoding, which
// SQL cannot edit in place, hence edit.)
func forge(t *testing.T, url, sql string, edit func(ev *consent.Event)) {
	t.Helper()
	pool, err := postgres.Connect(t.Context(), url)
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	if sql != "" {
		if _, err := pool.Exec(t.Context(), sql); err != nil {
			t.Fatalf("%s: %v", sql, err)
		}
	}
	reseal(t, pool, edit)
}

// reseal applies edit (when not nil) to every event, recomputes every
// event's hash from the first, stores the events (as JSON, which the
// store still reads) and the chain's head, and clears the tree.
func reseal(t *testing.T, pool *pgxpool.Pool, edit func(ev *consent.Event)) {
	t.Helper()
	ctx := t.Context()
	strs := readStrings(t, pool)
	rows, err := pool.Query(ctx, "SELECT seq, subscriber, event FROM ledger ORDER BY seq")
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var events []consent.Event
	for rows.Next() {
		var seq int64
		var sub, raw []byte
		var ev consent.Event
		if err := rows.Scan(&seq, &sub, &raw); err != nil {
			t.Fatalf("reading the ledger: %v", err)
		}
		// The record leaves out what the row holds (and Prev, resealed
		// below).
		noPrev := func() (string, error) { return "", nil }
		if err := record.UnmarshalEventApart(raw, uint64(seq), record.IDString(sub), noPrev, strs, &ev); err != nil {
			t.Fatalf("reading the ledger: %v", err)
		}
		events = append(events, ev)
	}
	if rows.Err() != nil {
		t.Fatal(rows.Err())
	}
	prev := ""
	for i := range events {
		ev := &events[i]
		if edit != nil {
			edit(ev)
		}
		ev.Seal(prev)
		prev = ev.Hash
		if _, err := pool.Exec(ctx, "UPDATE ledger SET event = $2, tree = NULL WHERE seq = $1", ev.Seq, ev.LeafData()); err != nil {
			t.Fatal(err)
		}
	}
	last := events[len(events)-1]
	if _, err := pool.Exec(ctx, "UPDATE ledger_head SET seq = $1, hash = $2, tree_size = 0", last.Seq, last.Hash); err != nil {
		t.Fatal(err)
	}
}

// TestForgeriesCaughtByEarlierHeads is the operator's own forgery on
// PostgreSQL, as TestRewriteCaughtByEarlierHead and
// TestTruncationCaughtByEarlierHead are on bbolt: event 1 turned from
// requested into confirmed with the chain resealed and the tree rebuilt,
// then the last event deleted. Each time the ledger verifies in itself,
// and a head saved before reports the change or the removal.
func TestForgeriesCaughtByEarlierHeads(t *testing.T) {
	url := pg.Database(t)
	db, err := postgres.Open(t.Context(), url, postgres.Options{HMACKey: testHMACKey})
	if err != nil {
		t.Fatal(err)
	}
	form := bootstrap(t, db)
	for _, addr := range []string{"ann@example.com", "bob@example.com", "cy@example.com"} {
		signup(t, db, &form, addr)
	}
	head, err := db.LedgerTree(t.Context())
	if err != nil || head.N != 3 {
		t.Fatalf("LedgerTree: got %+v, %v, want 3 events", head, err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}

	// verify opens an instance on the forged database, which must verify
	// in itself, and returns its verdict on head.
	verify := func(what string, events uint64) consent.HeadCheck {
		t.Helper()
		db, err := postgres.Open(t.Context(), url, postgres.Options{HMACKey: testHMACKey})
		if err != nil {
			t.Fatal(err)
		}
		defer db.Close()
		if rep, err := db.VerifyLedger(t.Context()); err != nil || !rep.OK || rep.Events != events {
			t.Fatalf("%s: VerifyLedger alone: got %+v, %v, want OK with %d events (the forgery is consistent in itself)", what, rep, err, events)
		}
		rep, err := db.VerifyLedger(t.Context(), head)
		if err != nil || len(rep.Heads) != 1 {
			t.Fatalf("%s: VerifyLedger(head): got %+v, %v", what, rep, err)
		}
		if rep.OK {
			t.Errorf("%s: VerifyLedger(head saved before): got OK, want the forgery caught", what)
		}
		return rep.Heads[0]
	}

	forge(t, url, "", func(ev *consent.Event) {
		if ev.Seq == 1 {
			ev.Type = consent.EventConfirmed
		}
	})
	if c := verify("rewrite", 3); !strings.Contains(c.Reason, "changed") || !strings.Contains(c.Reason, "events 1 to 3") {
		t.Errorf("rewrite: got %q, want a change in events 1 to 3", c.Reason)
	}
	forge(t, url, `DELETE FROM ledger WHERE seq = 3`, nil)
	if c := verify("truncation", 2); !strings.Contains(c.Reason, "removed") {
		t.Errorf("truncation: got %q, want events removed", c.Reason)
	}
}

// TestTreeEdgeOfAnotherLedger: an instance hashes the events it appends
// from the tree's right edge as its last transaction left it, not read
// again. When the ledger changed behind it to another of the same length
// (an operator's rewrite, resealed, its tree rebuilt by another
// instance), the next event it appends is hashed into the ledger the
// database holds: the edge it remembered is of another tree.
func TestTreeEdgeOfAnotherLedger(t *testing.T) {
	url := pg.Database(t)
	db := open(t, url, nil, testHMACKey)
	form := bootstrap(t, db)
	for _, addr := range []string{"ann@example.com", "bob@example.com", "cy@example.com"} {
		signup(t, db, &form, addr)
	}
	forge(t, url, "", func(ev *consent.Event) {
		if ev.Seq == 1 {
			ev.Type = consent.EventConfirmed
		}
	})
	other, err := postgres.Open(t.Context(), url, postgres.Options{HMACKey: testHMACKey}) // rebuilds the tree
	if err != nil {
		t.Fatal(err)
	}
	if err := other.Close(); err != nil {
		t.Fatal(err)
	}
	signup(t, db, &form, "dee@example.com")
	signup(t, db, &form, "eve@example.com")
	if rep, err := db.VerifyLedger(t.Context()); err != nil || !rep.OK || rep.Events != 5 {
		t.Errorf("VerifyLedger: got %+v, %v, want OK with 5 events", rep, err)
	}
}
