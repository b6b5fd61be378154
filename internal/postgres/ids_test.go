package postgres_test

import (
	"bytes"
	"reflect"
	"testing"
	"time"

	"optin/internal/bolt/record"
	"optin/internal/consent"
	"optin/internal/postgres"
)

// compact returns v in the compact record encoding, as the store of an
// earlier version wrote it.
func compact(t *testing.T, v any) []byte {
	t.Helper()
	b, err := record.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestIDsFromVersion13: a database at schema version 13, its subscriber
// and request ids in text columns, opens on this optin (migration 0014
// stores them as the 22 bytes of record.ID): every id column holds the
// bytes record.ID gives, an id NewID did not make keeps its text's
// bytes, and the records, listings (in id order, through the index of
// subscriptions), ledger and outbox read back as they were written.
func TestIDsFromVersion13(t *testing.T) {
	url := databaseAt(t, 13)
	at := time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
	ann := consent.NewID(at, bytes.NewReader(bytes.Repeat([]byte{0xa5}, 16)))
	bob := consent.NewID(at.Add(time.Hour), bytes.NewReader(bytes.Repeat([]byte{0x5a}, 16)))
	const legacy = "legacy-subscriber"
	reqID := consent.NewID(at.Add(time.Hour), bytes.NewReader(bytes.Repeat([]byte{0xff}, 16)))
	news := map[string]*consent.Subscription{"news": {Topic: "news", Status: consent.StatusConfirmed, Basis: consent.BasisConsent, Since: at}}
	subs := []consent.Subscriber{
		{ID: ann, Email: "ann@example.com", Locale: "en", Created: at, Subscriptions: news},
		{ID: bob, Email: "bob@example.com", Locale: "en", Created: at.Add(time.Hour), PendingRequest: reqID,
			Subscriptions: map[string]*consent.Subscription{"news": {Topic: "news", Status: consent.StatusPending, Since: at.Add(time.Hour)}}},
		{ID: legacy, Email: "carol@example.com", Locale: "en", Created: at, Subscriptions: map[string]*consent.Subscription{}},
	}
	req := consent.Request{ID: reqID, Subscriber: bob, Form: "newsletter", Source: "form:newsletter", Topics: []string{"news"},
		Locale: "en", Created: at.Add(time.Hour), Expires: at.Add(73 * time.Hour), MessageID: reqID + "@news.example.com"}
	personal := consent.Personal{Salt: "s", Email: "ann@example.com", IP: "192.0.2.1"}
	_, digest := personal.Encode()
	evs := []*consent.Event{
		{Seq: 1, Time: at, Type: consent.EventConfirmed, Subscriber: ann, Topics: []string{"news"}, Basis: consent.BasisConsent,
			Source: "form:newsletter", PersonalDigest: digest},
		{Seq: 2, Time: at.Add(time.Hour), Type: consent.EventRequested, Subscriber: bob, Topics: []string{"news"},
			Source: "form:newsletter", Request: reqID, MessageID: req.MessageID, PersonalDigest: digest},
	}
	prev := ""
	for _, ev := range evs {
		ev.Seal(prev)
		prev = ev.Hash
	}
	job := consent.Job{Kind: consent.JobConfirm, To: "bob@example.com", Locale: "en", Subscriber: bob, Request: reqID,
		Topics: []string{"news"}, MessageID: req.MessageID, Created: at, NextAt: at}
	rec := func(v any) []byte { return compact(t, v) }
	reqb := req
	reqb.ID, reqb.Subscriber = "", ""
	// The rows as the store of version 13 wrote them, ids as text; the
	// counters count as built, so the first start derives no index row
	// again and those below are the ones read.
	pool, err := postgres.Connect(t.Context(), url)
	if err != nil {
		t.Fatal(err)
	}
	stmts := []struct {
		sql  string
		args []any
	}{
		{"INSERT INTO topics (id, data) VALUES ('news', $1)", []any{[]byte(`{"id":"news","name":"News"}`)}},
		{"INSERT INTO requests (id, subscriber, data) VALUES ($1, $2, $3)", []any{reqID, bob, rec(&reqb)}},
		{"INSERT INTO ledger (seq, subscriber, type, event, personal) VALUES (1, $1, 'confirmed', $2, $3)", []any{ann, rec(evs[0]), rec(&personal)}},
		{"INSERT INTO ledger (seq, subscriber, type, event, personal) VALUES (2, $1, 'requested', $2, $3)", []any{bob, rec(evs[1]), rec(&personal)}},
		{"UPDATE ledger_head SET seq = 2, hash = $1", []any{evs[1].Hash}},
		{"INSERT INTO subscriber_topics (topic, status, subscriber) VALUES ('news', 'confirmed', $1), ('news', 'pending', $2)", []any{ann, bob}},
		{"INSERT INTO evidence (topic, subscriber, basis) VALUES ('news', $1, 'consent')", []any{ann}},
		{"INSERT INTO outbox (id, next_at, subscriber, job) VALUES (nextval('outbox_ids'), $1, $2, $3)", []any{at, bob, rec(&job)}},
		{"INSERT INTO outbox_parked (id, subscriber, job) VALUES (1000, $1, $2)", []any{bob, rec(&job)}},
		{"INSERT INTO campaign_recipients (campaign, subscriber, data) VALUES ('c', $1, '{}')", []any{ann}},
		{"INSERT INTO campaign_queued (campaign, job, subscriber) VALUES ('c', 1000, $1)", []any{ann}},
		{"INSERT INTO campaign_due (due, kind, campaign, subscriber) VALUES ($1, 'r', 'c', $2)", []any{at, ann}},
		{"INSERT INTO webhook_queue (id, webhook, subscriber, delivery) VALUES (1, 'w', $1, '{}')", []any{ann}},
		{"INSERT INTO counters_built (built) VALUES (now())", nil},
	}
	for _, s := range subs {
		stmts = append(stmts, struct {
			sql  string
			args []any
		}{"INSERT INTO subscribers (id, email_key, data) VALUES ($1, $2, $3)", []any{s.ID, consent.AddressKey(s.Email), rec(&s)}})
	}
	for _, s := range stmts {
		if _, err := pool.Exec(t.Context(), s.sql, s.args...); err != nil {
			t.Fatalf("%s: %v", s.sql, err)
		}
	}
	pool.Close()

	db, err := postgres.Open(t.Context(), url, postgres.Options{HMACKey: testHMACKey, MessageIDDomain: "news.example.com",
		Policy: consent.DefaultPolicy(), Now: func() time.Time { return at.Add(2 * time.Hour) }})
	if err != nil {
		t.Fatalf("Open on a database at version 13: %v", err)
	}
	defer db.Close()
	pool, err = postgres.Connect(t.Context(), url)
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()

	// Each id column holds record.ID of the id it held.
	for _, c := range []struct {
		table, column, id string
		rows              int
	}{
		{"subscribers", "id", ann, 1}, {"subscribers", "id", legacy, 1}, {"requests", "id", reqID, 1}, {"requests", "subscriber", bob, 1},
		{"ledger", "subscriber", ann, 1}, {"ledger", "subscriber", bob, 1}, {"outbox", "subscriber", bob, 1},
		{"outbox_parked", "subscriber", bob, 1}, {"campaign_recipients", "subscriber", ann, 1}, {"campaign_queued", "subscriber", ann, 1},
		{"campaign_due", "subscriber", ann, 1}, {"webhook_queue", "subscriber", ann, 1},
	} {
		var typ string
		var n int
		err := pool.QueryRow(t.Context(), "SELECT pg_typeof("+c.column+")::text, count(*) FROM "+c.table+" WHERE "+c.column+" = $1 GROUP BY 1",
			record.ID(c.id)).Scan(&typ, &n)
		if err != nil || typ != "bytea" || n != c.rows {
			t.Errorf("%s.%s = record.ID(%s): got %s, %d rows, %v; want bytea, %d", c.table, c.column, c.id, typ, n, err, c.rows)
		}
	}
	// Ann's evidence row became the consent bit of her row (migration
	// 0016).
	var proven int16
	if err := pool.QueryRow(t.Context(), "SELECT proven FROM "+subscriptionRows+" WHERE subscriber = $1", record.ID(ann)).Scan(&proven); err != nil || proven != 1 {
		t.Errorf("ann's subscription: proven %d, %v; want 1", proven, err)
	}
	if len(record.ID(ann)) != 22 || string(record.ID(legacy)) != legacy {
		t.Fatalf("record.ID: got %d bytes for a NewID id and %q for another, want 22 and the text", len(record.ID(ann)), record.ID(legacy))
	}

	for _, want := range subs {
		if got, err := db.Subscriber(t.Context(), want.ID); err != nil || !reflect.DeepEqual(got, &want) {
			t.Errorf("Subscriber(%s): got %+v, %v, want %+v", want.ID, got, err, want)
		}
	}
	if got, err := db.Request(t.Context(), reqID); err != nil || !reflect.DeepEqual(got, &req) {
		t.Errorf("Request: got %+v, %v, want %+v", got, err, req)
	}
	for i, id := range []string{ann, bob} {
		recs, err := db.Events(t.Context(), id)
		if err != nil || len(recs) != 1 || !reflect.DeepEqual(recs[0].Event, *evs[i]) {
			t.Errorf("Events(%s): got %+v, %v, want event %d", id, recs, err, i+1)
		}
	}
	// In id order, through subscriber_topics.
	list, _, err := db.FindSubscribers(t.Context(), consent.SubscriberFilter{Topic: "news", Limit: 10})
	if err != nil || len(list) != 2 || list[0].ID != ann || list[1].ID != bob {
		t.Errorf("FindSubscribers(news): got %v, %v, want ann then bob", list, err)
	}
	list, _, err = db.FindSubscribers(t.Context(), consent.SubscriberFilter{CreatedSince: at.Add(time.Minute), CreatedBefore: at.Add(2 * time.Hour), Limit: 10})
	if err != nil || len(list) != 1 || list[0].ID != bob {
		t.Errorf("FindSubscribers(created since): got %v, %v, want bob", list, err)
	}
	jobs, err := db.DueJobs(t.Context(), at.Add(time.Hour), 10, func(uint64) bool { return false })
	if err != nil || len(jobs) != 1 || jobs[0].Subscriber != bob || jobs[0].Request != reqID {
		t.Errorf("DueJobs: got %+v, %v, want bob's job", jobs, err)
	}

	// New rows continue: a signup, an erasure through every table.
	form := bootstrap(t, db)
	signup(t, db, &form, "dan@example.com")
	if err := db.Erase(t.Context(), ann, "admin:test"); err != nil {
		t.Fatalf("Erase: %v", err)
	}
	if rep, err := db.VerifyLedger(t.Context()); err != nil || !rep.OK || rep.Events < 4 {
		t.Errorf("VerifyLedger: got %+v, %v, want OK over the old events and the new", rep, err)
	}
	var left int
	for _, q := range []string{"SELECT count(*) FROM subscribers WHERE id = $1", "SELECT count(*) FROM campaign_recipients WHERE subscriber = $1",
		"SELECT count(*) FROM ledger WHERE subscriber = $1 AND personal IS NOT NULL AND seq < (SELECT max(seq) FROM ledger WHERE subscriber = $1)"} {
		if err := pool.QueryRow(t.Context(), q, record.ID(ann)).Scan(&left); err != nil || left != 0 {
			t.Errorf("after the erasure, %s: got %d, %v, want 0", q, left, err)
		}
	}
}
