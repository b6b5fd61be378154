package postgres_test

import (
	"testing"
	"time"

	"optin/internal/bolt/record"
	"optin/internal/consent"
	"optin/internal/postgres"
)

// TestRequestSentFromVersion12: a database at schema version 12 with
// requests in the compact encoding opens on this optin (migration 0013
// keeps the sent time in a column of its own). A request marked sent
// before keeps its time; finishing the mail of an open request records
// the time once; a request closed before its mail was finished (the
// worker dropped the mail) records none, as Request.MarkSent decides.
func TestRequestSentFromVersion12(t *testing.T) {
	url := databaseAt(t, 12)
	at := time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
	reqs := map[string]consent.Request{
		"marked": {Sent: at},
		"open":   {},
		"closed": {Confirmed: at.Add(time.Minute)},
	}
	pool, err := postgres.Connect(t.Context(), url)
	if err != nil {
		t.Fatal(err)
	}
	var jobs []consent.Job
	for name, req := range reqs {
		subID, reqID := "sub-"+name, "req-"+name
		sub := consent.Subscriber{ID: subID, Email: name + "@example.com", Locale: "en", Created: at, PendingRequest: reqID}
		req.ID, req.Subscriber, req.Form, req.Topics, req.Locale = reqID, subID, "newsletter", []string{"news"}, "en"
		req.Created, req.Expires, req.MessageID = at, at.Add(72*time.Hour), reqID+"@news.example.com"
		sb, err := record.Marshal(&sub)
		if err != nil {
			t.Fatal(err)
		}
		rb, err := record.Marshal(&req)
		if err != nil {
			t.Fatal(err)
		}
		// The rows as the store of version 12 wrote them.
		if _, err := pool.Exec(t.Context(), "INSERT INTO subscribers (id, email_key, data) VALUES ($1, $2, $3)", subID, consent.AddressKey(sub.Email), sb); err != nil {
			t.Fatal(err)
		}
		if _, err := pool.Exec(t.Context(), "INSERT INTO requests (id, subscriber, data) VALUES ($1, $2, $3)", reqID, subID, rb); err != nil {
			t.Fatal(err)
		}
		jobs = append(jobs, consent.Job{Kind: consent.JobConfirm, To: sub.Email, Subscriber: subID, Request: reqID})
	}
	pool.Close()

	now := at.Add(2 * time.Minute)
	db, err := postgres.Open(t.Context(), url, postgres.Options{HMACKey: testHMACKey, Now: func() time.Time { return now }})
	if err != nil {
		t.Fatalf("Open on a database at version 12: %v", err)
	}
	defer db.Close()
	sent := now
	for range 2 { // a repeat (at least once) changes nothing
		if err := db.FinishJobs(t.Context(), jobs); err != nil {
			t.Fatalf("FinishJobs: %v", err)
		}
		now = now.Add(time.Minute)
	}
	for name, want := range map[string]time.Time{"marked": at, "open": sent, "closed": {}} {
		req, err := db.Request(t.Context(), "req-"+name)
		if err != nil || !req.Sent.Equal(want) {
			t.Errorf("Request(%s): got %+v, %v, want Sent %v", name, req, err, want)
		}
	}
}

// TestRequestRecordWithoutIDs: a request's record leaves out its id and
// its subscriber's, which the row's columns hold, and reads back whole.
func TestRequestRecordWithoutIDs(t *testing.T) {
	url := pg.EmptyDatabase(t)
	db := open(t, url, nil, testHMACKey)
	form := bootstrap(t, db)
	signup(t, db, &form, "ann@example.com")
	a, err := consent.ParseAddress("ann@example.com")
	if err != nil {
		t.Fatal(err)
	}
	sub, err := db.SubscriberByAddress(t.Context(), a)
	if err != nil {
		t.Fatal(err)
	}
	req, err := db.Request(t.Context(), sub.PendingRequest)
	if err != nil || req.ID != sub.PendingRequest || req.Subscriber != sub.ID || req.Form != form.ID {
		t.Fatalf("Request: got %+v, %v, want the request of %s", req, err, sub.ID)
	}
	pool, err := postgres.Connect(t.Context(), url)
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	var b []byte
	if err := pool.QueryRow(t.Context(), "SELECT data FROM requests WHERE id = $1", record.ID(req.ID)).Scan(&b); err != nil {
		t.Fatal(err)
	}
	var stored consent.Request
	if err := record.UnmarshalWith(b, &stored, readStrings(t, pool)); err != nil || stored.ID != "" || stored.Subscriber != "" || stored.MessageID != req.MessageID {
		t.Errorf("stored request: got %+v, %v, want no id and no subscriber, the rest as read", stored, err)
	}
}
