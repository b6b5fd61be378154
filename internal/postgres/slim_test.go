package postgres_test

import (
	"bytes"
	"math/bits"
	"reflect"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"golang.org/x/mod/sumdb/tlog"

	"optin/internal/bolt/record"
	"optin/internal/consent"
	"optin/internal/postgres"
)

// Migration 0015: the rows a subscriber takes hold less (the tree hashes
// of levels 2 and up only, the address hash in bytes, a subscriber's
// record without its id and, when email_key holds it, its address).

// wantTree returns the tree column of record n, of the tree hashes
// tlog.StoredHashes gave it: those of levels 2 and up.
func wantTree(hashes []tlog.Hash) []byte {
	col := []byte{}
	for _, h := range hashes[min(2, len(hashes)):] {
		col = append(col, h[:]...)
	}
	return col
}

// checkTree checks that every event's tree column holds the hashes of
// levels 2 and up of its record (from stored, by record, when given;
// else only their number), and that every event's inclusion proof and
// the chain verify.
func checkTree(t *testing.T, db *postgres.DB, pool *pgxpool.Pool, stored map[int64][]tlog.Hash) {
	t.Helper()
	ctx := t.Context()
	rows, err := pool.Query(ctx, "SELECT seq, tree FROM ledger ORDER BY seq")
	if err != nil {
		t.Fatal(err)
	}
	cols := map[int64][]byte{}
	for rows.Next() {
		var seq int64
		var col []byte
		if err := rows.Scan(&seq, &col); err != nil {
			t.Fatal(err)
		}
		cols[seq] = col
	}
	if rows.Err() != nil {
		t.Fatal(rows.Err())
	}
	tree, err := db.LedgerTree(ctx)
	if err != nil || tree.N != int64(len(cols)) || tree.N < 6 {
		t.Fatalf("LedgerTree: got %+v, %v, want all %d events (at least 6)", tree, err, len(cols))
	}
	hashes := tlog.HashReaderFunc(func(idx []int64) ([]tlog.Hash, error) { return db.LedgerHashes(ctx, idx) })
	for seq, col := range cols {
		n := consent.Record(uint64(seq))
		levels := bits.TrailingZeros64(^uint64(n)) // the levels it completes above its leaf
		if col == nil || len(col) != max(0, levels-1)*32 {
			t.Errorf("tree column of event %d: got %d bytes (nil %v), want %d", seq, len(col), col == nil, max(0, levels-1)*32)
		}
		if want, ok := stored[n]; ok && !bytes.Equal(col, wantTree(want)) {
			t.Errorf("tree column of event %d: got %x, want the hashes of levels 2 and up %x", seq, col, wantTree(want))
		}
		p, err := tlog.ProveRecord(tree.N, n, hashes)
		if err != nil {
			t.Fatalf("ProveRecord(%d, %d): %v", tree.N, n, err)
		}
		leaf, err := db.LedgerHashes(ctx, []int64{tlog.StoredHashIndex(0, n)})
		if err != nil {
			t.Fatal(err)
		}
		if err := tlog.CheckRecord(p, tree.N, tree.Hash, n, leaf[0]); err != nil {
			t.Errorf("inclusion proof of event %d: %v", seq, err)
		}
	}
	if rep, err := db.VerifyLedger(ctx, tree); err != nil || !rep.OK || rep.Root != tree.Hash {
		t.Errorf("VerifyLedger: got %+v, %v, want OK with root %v", rep, err, tree.Hash)
	}
}

// TestSlimRows: the rows a store writes take the short forms, and read
// back whole.
func TestSlimRows(t *testing.T) {
	url := pg.EmptyDatabase(t)
	db := open(t, url, nil, testHMACKey)
	form := bootstrap(t, db)
	emails := []string{"ann@example.com", "bob@example.com", "Cy@Example.com", "di@example.com", "ed@example.com", "flo@example.com", "gus@example.com"}
	for _, e := range emails {
		signup(t, db, &form, e)
	}
	pool, err := postgres.Connect(t.Context(), url)
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()

	var ann *consent.Subscriber
	for _, e := range emails {
		a, err := consent.ParseAddress(e)
		if err != nil {
			t.Fatal(err)
		}
		sub, err := db.SubscriberByAddress(t.Context(), a)
		if err != nil || sub == nil || sub.ID == "" || sub.Email != a.Addr {
			t.Fatalf("SubscriberByAddress(%s): got %+v, %v, want the subscriber with its id and address", e, sub, err)
		}
		if byID, err := db.Subscriber(t.Context(), sub.ID); err != nil || !reflect.DeepEqual(byID, sub) {
			t.Errorf("Subscriber(%s): got %+v, %v, want %+v", sub.ID, byID, err, sub)
		}
		var b []byte
		if err := pool.QueryRow(t.Context(), "SELECT data FROM subscribers WHERE id = $1", record.ID(sub.ID)).Scan(&b); err != nil {
			t.Fatal(err)
		}
		var stored consent.Subscriber
		wantEmail := ""
		if consent.AddressKey(sub.Email) != sub.Email {
			wantEmail = sub.Email // email_key holds it case-folded only
		}
		if err := record.Unmarshal(b, &stored); err != nil || stored.ID != "" || stored.Email != wantEmail || stored.PendingRequest != sub.PendingRequest {
			t.Errorf("stored subscriber %s: got %+v, %v, want no id, address %q, the rest as read", e, stored, err, wantEmail)
		}
		if ann == nil {
			ann = sub
		}
	}

	// A confirmed subscription is in the subscriber's row, with the
	// consent its event proves; no address hash is stored (migration
	// 0021: the audience computes it).
	if _, err := db.Confirm(t.Context(), ann.PendingRequest, consent.ConfirmInput{IP: "192.0.2.1", Now: time.Now()}); err != nil {
		t.Fatalf("Confirm: %v", err)
	}
	var proven int16
	if err := pool.QueryRow(t.Context(), "SELECT proven FROM "+subscriptionRows+" WHERE subscriber = $1 AND status = 'c'",
		record.ID(ann.ID)).Scan(&proven); err != nil || proven != 1 {
		t.Errorf("ann's confirmed subscription: proven %d, %v; want 1", proven, err)
	}
	if diff, err := db.RebuildCounters(t.Context()); err != nil || len(diff) != 0 {
		t.Errorf("RebuildCounters: got %v, %v, want no difference", diff, err)
	}
	checkTree(t, db, pool, nil)
}

// TestSlimFromVersion14: a database at schema version 14 opens on this
// optin (migration 0015): each event's tree column keeps the hashes of
// levels 2 and up, the proofs and the chain verify as before, the address
// hashes become bytes, and the subscribers written with their id and
// address read back as they were.
func TestSlimFromVersion14(t *testing.T) {
	url := databaseAt(t, 14)
	at := time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
	ann := consent.NewID(at, bytes.NewReader(bytes.Repeat([]byte{0xa5}, 16)))
	news := map[string]*consent.Subscription{"news": {Topic: "news", Status: consent.StatusConfirmed, Basis: consent.BasisConsent, Since: at}}
	sub := consent.Subscriber{ID: ann, Email: "ann@example.com", Locale: "en", Created: at, Subscriptions: news}
	personal := consent.Personal{Salt: "s", Email: "ann@example.com", IP: "192.0.2.1"}
	_, digest := personal.Encode()
	rec := func(v any) []byte { return compact(t, v) }
	pool, exec := connectExec(t, url)
	// Seven events with the tree hashes version 14 stored, every level.
	mem := map[int64]tlog.Hash{}
	reader := tlog.HashReaderFunc(func(idx []int64) ([]tlog.Hash, error) {
		out := make([]tlog.Hash, len(idx))
		for i, x := range idx {
			out[i] = mem[x]
		}
		return out, nil
	})
	stored := map[int64][]tlog.Hash{}
	prev := ""
	const events = 7
	for seq := uint64(1); seq <= events; seq++ {
		ev := consent.Event{Seq: seq, Time: at.Add(time.Duration(seq) * time.Minute), Type: consent.EventConfirmed, Subscriber: ann,
			Topics: []string{"news"}, Basis: consent.BasisConsent, Source: "form:newsletter", PersonalDigest: digest}
		leaf := ev.Seal(prev)
		prev = ev.Hash
		n := consent.Record(seq)
		hs, err := tlog.StoredHashes(n, leaf, reader)
		if err != nil {
			t.Fatal(err)
		}
		var col []byte
		for i, h := range hs {
			mem[tlog.StoredHashIndex(0, n)+int64(i)] = h
			col = append(col, h[:]...)
		}
		stored[n] = hs
		exec("INSERT INTO ledger (seq, subscriber, type, event, personal, tree) VALUES ($1, $2, 'confirmed', $3, $4, $5)",
			int64(seq), record.ID(ann), rec(&ev), rec(&personal), col)
	}
	hasher := consent.NewHasher(testHMACKey)
	exec("UPDATE ledger_head SET seq = $1, hash = $2, tree_size = $1", events, prev)
	exec("INSERT INTO topics (id, data) VALUES ('news', $1)", []byte(`{"id":"news","name":"News"}`))
	exec("INSERT INTO subscribers (id, email_key, data) VALUES ($1, $2, $3)", record.ID(ann), "ann@example.com", rec(&sub))
	exec("INSERT INTO subscriber_topics (topic, status, subscriber, basis, facts, address_hash) VALUES ('news', 'confirmed', $1, 'consent', $2, $3)",
		record.ID(ann), []byte{}, hasher.Hash("ann@example.com"))
	exec("INSERT INTO evidence (topic, subscriber, basis) VALUES ('news', $1, 'consent')", record.ID(ann))
	exec("INSERT INTO counters_built (built) VALUES (now())")
	pool.Close()

	db, err := postgres.Open(t.Context(), url, postgres.Options{HMACKey: testHMACKey, Policy: consent.DefaultPolicy(),
		Now: func() time.Time { return at.Add(time.Hour) }})
	if err != nil {
		t.Fatalf("Open on a database at version 14: %v", err)
	}
	defer db.Close()
	pool, err = postgres.Connect(t.Context(), url)
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()

	checkTree(t, db, pool, stored)
	root, err := tlog.TreeHash(events, reader)
	if err != nil {
		t.Fatal(err)
	}
	if tree, err := db.LedgerTree(t.Context()); err != nil || tree.Hash != root {
		t.Errorf("LedgerTree: got %+v, %v, want the root %v version 14 had", tree, err, root)
	}
	var topic, status string
	var proven int16
	if err := pool.QueryRow(t.Context(), "SELECT topic, status::text, proven FROM "+subscriptionRows+" WHERE subscriber = $1", record.ID(ann)).
		Scan(&topic, &status, &proven); err != nil || topic != "news" || status != "c" || proven != 1 {
		t.Errorf("ann's subscription: got %s %s proven %d, %v; want news c proven 1", topic, status, proven, err)
	}
	if got, err := db.Subscriber(t.Context(), ann); err != nil || !reflect.DeepEqual(got, &sub) {
		t.Errorf("Subscriber: got %+v, %v, want %+v", got, err, sub)
	}
	a, _ := consent.ParseAddress("ann@example.com")
	if got, err := db.SubscriberByAddress(t.Context(), a); err != nil || !reflect.DeepEqual(got, &sub) {
		t.Errorf("SubscriberByAddress: got %+v, %v, want %+v", got, err, sub)
	}

	// New events continue the tree: eight in all, two levels above a
	// leaf more (record 7 completes levels 1 to 3).
	form := bootstrap(t, db)
	signup(t, db, &form, "bob@example.com")
	checkTree(t, db, pool, stored)
}
