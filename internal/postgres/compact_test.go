package postgres_test

import (
	"encoding/json"
	"reflect"
	"testing"
	"time"

	"optin/internal/bolt/record"
	"optin/internal/consent"
	"optin/internal/postgres"
)

// TestRecordsFromVersion11: a database that optin left at schema version
// 11, its records in jsonb, opens on this optin (migration 0012 turns the
// record columns into bytea in the compact encoding): the old rows read
// back as they were, the ledger verifies across the old events and new
// ones, the indexes and counters are derived again from the old rows,
// and the old outbox job goes out.
func TestRecordsFromVersion11(t *testing.T) {
	url := databaseAt(t, 11)
	at := time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
	const subID, reqID = "06h5l2p3s0f8a7tbb1q9ihvd0mfhq7k2c1u4", "06h5l2p3s0f8a7tbb1q9ihvd0mfhq7k2c1u5"
	sub := consent.Subscriber{ID: subID, Email: "Ann@example.com", Locale: "en", Created: at, LastPurchase: at.Add(time.Hour),
		Subscriptions: map[string]*consent.Subscription{"news": {Topic: "news", Status: consent.StatusConfirmed, Basis: consent.BasisConsent, Since: at}}}
	req := consent.Request{ID: reqID, Subscriber: subID, Form: "newsletter", Source: "form:newsletter", Topics: []string{"news"},
		Locale: "en", Created: at, Expires: at.Add(72 * time.Hour), MessageID: reqID + "@news.example.com", Sent: at}
	wording := consent.Wording{Text: "Yes, send me news", Locale: "en"}
	wordingHash := "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
	personal := consent.Personal{Salt: "s", Email: "Ann@example.com", IP: "192.0.2.1", UserAgent: "Mozilla/5.0"}
	pdata, digest := personal.Encode()
	evs := []*consent.Event{
		{Seq: 1, Time: at, Type: consent.EventRequested, Subscriber: subID, Topics: []string{"news"}, Source: "form:newsletter",
			Page: "https://shop.example/", Wording: wordingHash, Request: reqID, PersonalDigest: digest},
		{Seq: 2, Time: at.Add(time.Minute), Type: consent.EventConfirmed, Subscriber: subID, Topics: []string{"news"},
			Basis: consent.BasisConsent, Source: "form:newsletter", Wording: wordingHash, Request: reqID, PersonalDigest: digest},
	}
	prev := ""
	for _, ev := range evs {
		ev.Seal(prev)
		prev = ev.Hash
	}
	job := consent.Job{Kind: consent.JobConfirm, To: "Ann@example.com", Locale: "en", Subscriber: subID, Request: reqID,
		Topics: []string{"news"}, MessageID: reqID + "@news.example.com", Created: at, NextAt: at}
	js := func(v any) []byte {
		b, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	// The rows as the store of version 11 wrote them.
	pool, err := postgres.Connect(t.Context(), url)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range []struct {
		sql  string
		args []any
	}{
		{"INSERT INTO topics (id, data) VALUES ('news', $1)", []any{js(consent.Topic{ID: "news", Name: "News"})}},
		{"INSERT INTO wordings (hash, data) VALUES ($1, $2)", []any{wordingHash, js(wording)}},
		{"INSERT INTO subscribers (id, email_key, data) VALUES ($1, $2, $3)", []any{subID, consent.AddressKey(sub.Email), js(sub)}},
		{"INSERT INTO requests (id, subscriber, data) VALUES ($1, $2, $3)", []any{reqID, subID, js(req)}},
		{"INSERT INTO ledger (seq, subscriber, type, event, personal) VALUES (1, $1, $2, $3, $4)", []any{subID, "requested", evs[0].LeafData(), pdata}},
		{"INSERT INTO ledger (seq, subscriber, type, event, personal) VALUES (2, $1, $2, $3, $4)", []any{subID, "confirmed", evs[1].LeafData(), pdata}},
		{"UPDATE ledger_head SET seq = 2, hash = $1", []any{evs[1].Hash}},
		{"INSERT INTO outbox (id, next_at, subscriber, job) VALUES (nextval('outbox_ids'), $1, $2, $3)", []any{at, subID, js(job)}},
	} {
		if _, err := pool.Exec(t.Context(), s.sql, s.args...); err != nil {
			t.Fatalf("%s: %v", s.sql, err)
		}
	}
	pool.Close()

	db, err := postgres.Open(t.Context(), url, postgres.Options{HMACKey: testHMACKey, MessageIDDomain: "news.example.com",
		Policy: consent.DefaultPolicy(), Now: func() time.Time { return at.Add(2 * time.Minute) }})
	if err != nil {
		t.Fatalf("Open on a database at version 11: %v", err)
	}
	defer db.Close()
	pool, err = postgres.Connect(t.Context(), url)
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	var types []string
	rows, _ := pool.Query(t.Context(), `SELECT table_name || '.' || column_name || ' ' || data_type FROM information_schema.columns
		WHERE (table_name, column_name) IN (('subscribers', 'data'), ('requests', 'data'), ('ledger', 'event'), ('ledger', 'personal'), ('outbox', 'job'), ('outbox_parked', 'job'))
		ORDER BY 1`)
	for rows.Next() {
		var s string
		if err := rows.Scan(&s); err != nil {
			t.Fatal(err)
		}
		types = append(types, s)
	}
	want := []string{"ledger.event bytea", "ledger.personal bytea", "outbox.job bytea", "outbox_parked.job bytea", "requests.data bytea", "subscribers.data bytea"}
	if rows.Err() != nil || !reflect.DeepEqual(types, want) {
		t.Errorf("record columns: got %v, %v, want %v", types, rows.Err(), want)
	}

	if got, err := db.Subscriber(t.Context(), subID); err != nil || !reflect.DeepEqual(js(got), js(sub)) {
		t.Errorf("Subscriber: got %s, %v, want %s", js(got), err, js(sub))
	}
	recs, err := db.Events(t.Context(), subID)
	if err != nil || len(recs) != 2 {
		t.Fatalf("Events: got %d, %v, want 2", len(recs), err)
	}
	for i, r := range recs {
		if !reflect.DeepEqual(js(r.Event), js(evs[i])) || r.Personal == nil || *r.Personal != personal ||
			r.WordingText == nil || r.WordingText.Text != wording.Text {
			t.Errorf("Events[%d]: got %s with %+v and %+v", i, js(r), r.Personal, r.WordingText)
		}
	}
	jobs, err := db.DueJobs(t.Context(), at.Add(time.Hour), 10, func(uint64) bool { return false })
	if err != nil || len(jobs) != 1 || jobs[0].Request != reqID || jobs[0].MessageID != job.MessageID {
		t.Errorf("DueJobs: got %+v, %v, want the old job", jobs, err)
	}
	// The indexes and counters a first start derives from the records.
	var topics, evidence int
	var lastPurchase *time.Time
	if err := pool.QueryRow(t.Context(), `SELECT (SELECT count(*) FROM `+subscriptionRows+` WHERE topic = 'news' AND status = 'c' AND subscriber = $1),
		(SELECT count(*) FROM `+subscriptionRows+` WHERE topic = 'news' AND subscriber = $1 AND proven = 1), (SELECT last_purchase FROM subscribers WHERE id = $1)`, record.ID(subID)).
		Scan(&topics, &evidence, &lastPurchase); err != nil || topics != 1 || evidence != 1 || lastPurchase == nil || !lastPurchase.Equal(sub.LastPurchase) {
		t.Errorf("index rows: got %d subscriptions, %d evidence, last purchase %v, %v; want 1, 1, %v", topics, evidence, lastPurchase, err, sub.LastPurchase)
	}
	st, err := db.Stats(t.Context(), 0, 1)
	if err != nil || st.Subscribers != 1 {
		t.Errorf("Stats: got %+v, %v, want 1 subscriber", st, err)
	}

	// New events, in the compact encoding, continue the chain.
	form := bootstrap(t, db)
	signup(t, db, &form, "bob@example.com")
	rep, err := db.VerifyLedger(t.Context())
	if err != nil || !rep.OK || rep.Events < 3 {
		t.Errorf("VerifyLedger: got %+v, %v, want OK over the old events and the new", rep, err)
	}
	// The old JSON event's type is read from its record (migration
	// 0020 dropped the type column): the confirmation, then bob's
	// request.
	counts, last, err := db.LedgerCounts(t.Context(), 1)
	if want := map[consent.EventType]uint64{consent.EventConfirmed: 1, consent.EventRequested: 1}; err != nil || last != 3 || !reflect.DeepEqual(counts, want) {
		t.Errorf("LedgerCounts(1): got %v, %d, %v, want %v, 3", counts, last, err, want)
	}
}
