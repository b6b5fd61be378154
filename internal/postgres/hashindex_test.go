package postgres_test

import (
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"

	"optin/internal/bolt/record"
	"optin/internal/consent"
)

// TestHashIndexesFromVersion19: migration 0020 turns the unique index on
// a subscriber's address into a hash index, leaves seq out of the index
// of a subscriber's events and drops the ledger's type column. Events
// written before it keep their type in their record, where the store now
// reads it; an address stays unique.
func TestHashIndexesFromVersion19(t *testing.T) {
	ctx := t.Context()
	url := databaseAt(t, 19)
	at := time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
	pool, exec := connectExec(t, url)
	exec(`INSERT INTO topics (id, data) VALUES ('news', '{"id":"news","name":"News"}')`)
	ids := map[string]string{}
	for i, email := range []string{"ann@example.com", "bob@example.com"} {
		id := consent.NewID(at, strings.NewReader(strings.Repeat(string(rune('a'+i)), 16)))
		ids[email] = id
		sub := consent.Subscriber{Locale: "en", Created: at, Subscriptions: map[string]*consent.Subscription{
			"news": {Topic: "news", Status: consent.StatusConfirmed, Basis: consent.BasisConsent, Since: at}}}
		exec("INSERT INTO subscribers (id, email_key, data) VALUES ($1, $2, $3)", record.ID(id), email, compact(t, &sub))
	}
	// Three events as version 19 wrote them, the type in a column too:
	// ann requested and confirmed, bob was imported.
	evs := []consent.Event{
		{Time: at, Type: consent.EventRequested, Subscriber: ids["ann@example.com"], Topics: []string{"news"}, Basis: consent.BasisConsent, Source: "form:newsletter"},
		{Time: at.Add(time.Minute), Type: consent.EventConfirmed, Subscriber: ids["ann@example.com"], Topics: []string{"news"}, Basis: consent.BasisConsent, Source: "form:newsletter"},
		{Time: at, Type: consent.EventImported, Subscriber: ids["bob@example.com"], Topics: []string{"news"}, Basis: consent.BasisConsent, Source: "import:1"},
	}
	prev := ""
	for i := range evs {
		ev := &evs[i]
		ev.Seq = uint64(i + 1)
		ev.Seal(prev)
		b, err := record.MarshalEventApart(ev, prev, nil)
		if err != nil {
			t.Fatal(err)
		}
		exec("INSERT INTO ledger (seq, subscriber, type, event) VALUES ($1, $2, $3, $4)", int64(ev.Seq), record.ID(ev.Subscriber), string(ev.Type), b)
		prev = ev.Hash
	}
	exec("UPDATE ledger_head SET seq = 3, hash = $1, tree_size = 0", prev)

	db := open(t, url, func() time.Time { return at.Add(time.Hour) }, testHMACKey)
	counts, last, err := db.LedgerCounts(ctx, 1)
	want := map[consent.EventType]uint64{consent.EventConfirmed: 1, consent.EventImported: 1}
	if err != nil || last != 3 || !reflect.DeepEqual(counts, want) {
		t.Errorf("LedgerCounts(1): got %v, %d, %v, want %v, 3", counts, last, err, want)
	}
	recs, err := db.Events(ctx, ids["ann@example.com"])
	if err != nil || len(recs) != 2 || recs[0].Event.Type != consent.EventRequested || recs[1].Event.Type != consent.EventConfirmed {
		t.Errorf("ann's events: got %+v, %v, want her request then her confirmation", recs, err)
	}
	if rep, err := db.VerifyLedger(ctx); err != nil || !rep.OK || rep.Events != 3 {
		t.Errorf("VerifyLedger: got %+v, %v, want OK over 3 events", rep, err)
	}

	// An address another subscriber holds is refused by the database as
	// before (exclusion_violation now), and skipped by ON CONFLICT DO
	// NOTHING.
	other := record.ID(consent.NewID(at, strings.NewReader(strings.Repeat("c", 16))))
	_, err = pool.Exec(ctx, "INSERT INTO subscribers (id, email_key, data) VALUES ($1, 'bob@example.com', '\\x00')", other)
	var pe *pgconn.PgError
	if !errors.As(err, &pe) || pe.Code != "23P01" {
		t.Errorf("a second subscriber with bob's address: got %v, want exclusion_violation (23P01)", err)
	}
	tag, err := pool.Exec(ctx, "INSERT INTO subscribers (id, email_key, data) VALUES ($1, 'bob@example.com', '\\x00') ON CONFLICT DO NOTHING", other)
	if err != nil || tag.RowsAffected() != 0 {
		t.Errorf("the same ON CONFLICT DO NOTHING: got %v rows, %v, want 0 rows", tag.RowsAffected(), err)
	}
	for idx, want := range map[string]string{"subscribers_email_key_excl": "USING hash (email_key)", "ledger_subscriber": "USING btree (subscriber)"} {
		var def string
		if err := pool.QueryRow(ctx, "SELECT indexdef FROM pg_indexes WHERE indexname = $1", idx).Scan(&def); err != nil || !strings.HasSuffix(def, want) {
			t.Errorf("index %s: got %q, %v, want one %s", idx, def, err, want)
		}
	}
}
