package bolt_test

import (
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/tlog"

	"optin/internal/bolt/bolttest"
	"optin/internal/consent"
)

// ledgerFixture writes a few events: two signups, a confirmation.
func ledgerFixture(t *testing.T) (*testDB, consent.Form, *consent.Subscriber) {
	db := mustOpen(t)
	form := mustBootstrap(t, db)
	mustSignup(t, db, form, "ann@example.com")
	db.clock.Advance(time.Minute)
	mustSignup(t, db, form, "bob@example.com")
	ann := mustSubscriber(t, db, "ann@example.com")
	if _, err := db.Confirm(t.Context(), ann.PendingRequest, consent.ConfirmInput{}); err != nil {
		t.Fatalf("Confirm: %v", err)
	}
	return db, form, ann
}

func mustTree(t *testing.T, db *testDB) tlog.Tree {
	t.Helper()
	tree, err := db.LedgerTree(t.Context())
	if err != nil {
		t.Fatalf("LedgerTree: %v", err)
	}
	return tree
}

// TestConvertChainOnlyDatabase: a database written before the ledger was
// a Merkle tree gets its tree at the first read-write open, with every
// event kept in its order, and the tree it gets is the one a store that
// always had it holds.
func TestConvertChainOnlyDatabase(t *testing.T) {
	db, form, ann := ledgerFixture(t)
	want := mustTree(t, db)
	before := mustEvents(t, db, ann.ID)
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	bolttest.DropTree(t, db.path)

	db.DB = mustOpenAt(t, db.path, db.clock)
	if got := mustTree(t, db); got != want {
		t.Errorf("LedgerTree after conversion: got %+v, want %+v", got, want)
	}
	after := mustEvents(t, db, ann.ID)
	if !slices.EqualFunc(before, after, func(a, b consent.EventRecord) bool { return string(a.LeafData()) == string(b.LeafData()) }) {
		t.Errorf("ann's events after conversion: got %+v, want %+v", after, before)
	}
	rep, err := db.VerifyLedger(t.Context(), want)
	if err != nil || !rep.OK || rep.Events != 3 {
		t.Errorf("VerifyLedger after conversion: got %+v, %v, want OK with 3 events", rep, err)
	}
	mustSignup(t, db, form, "cy@example.com")
	if tree := mustTree(t, db); tree.N != 4 {
		t.Errorf("LedgerTree after one more signup: got %d events, want 4", tree.N)
	}
	wantLedgerOK(t, db, 4)
}

// TestRewriteCaughtByEarlierHead is the operator's own forgery: event 1,
// a requested event, is turned into a confirmed one in the file, the
// chain after it recomputed and the tree rebuilt. The forged file
// verifies in itself; a head saved before the rewrite exposes it, and
// names where the change lies.
func TestRewriteCaughtByEarlierHead(t *testing.T) {
	db, form, _ := ledgerFixture(t)
	early := mustTree(t, db)
	mustSignup(t, db, form, "cy@example.com")
	late := mustTree(t, db)
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	bolttest.Rewrite(t, db.path, 1, `"type":"requested"`, `"type":"confirmed"`)

	db.DB = mustOpenAt(t, db.path, db.clock)
	wantLedgerOK(t, db, 4) // consistent in itself
	rep, err := db.VerifyLedger(t.Context(), early, late)
	if err != nil {
		t.Fatal(err)
	}
	if rep.OK || len(rep.Heads) != 2 || rep.Heads[0].OK || rep.Heads[1].OK {
		t.Fatalf("VerifyLedger(heads before the rewrite): got %+v, want both heads failing", rep)
	}
	if r := rep.Heads[0].Reason; !strings.Contains(r, "events 1 to 3") {
		t.Errorf("verdict on the early head: got %q, want the change placed in events 1 to 3", r)
	}
}

// TestTruncationCaughtByEarlierHead: the operator deletes the last events
// from the file, points the chain's head at the last one kept and drops
// the tree, so the next open rebuilds it from what is left. The truncated
// file verifies in itself; a head saved before the truncation reports
// events removed, and a head of the part kept still passes.
func TestTruncationCaughtByEarlierHead(t *testing.T) {
	db, form, _ := ledgerFixture(t)
	kept := mustTree(t, db)
	mustSignup(t, db, form, "cy@example.com")
	full := mustTree(t, db)
	if kept.N != 3 || full.N != 4 {
		t.Fatalf("trees: got %d and %d events, want 3 and 4", kept.N, full.N)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	bolttest.Truncate(t, db.path, 3)

	db.DB = mustOpenAt(t, db.path, db.clock)
	wantLedgerOK(t, db, 3) // consistent in itself
	rep, err := db.VerifyLedger(t.Context(), kept, full)
	if err != nil {
		t.Fatal(err)
	}
	if rep.OK || len(rep.Heads) != 2 || !rep.Heads[0].OK || rep.Heads[1].OK || !strings.Contains(rep.Heads[1].Reason, "removed") {
		t.Errorf("VerifyLedger(head of the part kept, head before the truncation): got %+v, want the first passing and the second reporting events removed", rep)
	}
}
