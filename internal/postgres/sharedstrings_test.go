package postgres_test

import (
	"bytes"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"optin/internal/bolt/record"
	"optin/internal/consent"
	"optin/internal/postgres"
)

// tableCopy is the table of shared strings as it was read, for tests
// that decode rows themselves.
type tableCopy map[uint64]string

// readStrings returns a copy of the database's table of shared strings.
func readStrings(t *testing.T, pool *pgxpool.Pool) tableCopy {
	t.Helper()
	m := tableCopy{}
	rows, err := pool.Query(t.Context(), "SELECT n, s FROM strings")
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	for rows.Next() {
		var n int64
		var s []byte
		if err := rows.Scan(&n, &s); err != nil {
			t.Fatal(err)
		}
		m[uint64(n)] = string(s)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return m
}

func (m tableCopy) Intern(string) (uint64, error) {
	return 0, errors.New("a copy of the table numbers nothing")
}

func (m tableCopy) Lookup(n uint64) (string, error) {
	s, ok := m[n]
	if !ok {
		return "", fmt.Errorf("string %d missing", n)
	}
	return s, nil
}

var _ record.Strings = tableCopy(nil)

// signupWith signs email up on db from page with user agent ua and
// returns the subscriber.
func signupWith(t *testing.T, db *postgres.DB, form *consent.Form, email, page, ua string) *consent.Subscriber {
	t.Helper()
	a, err := consent.ParseAddress(email)
	if err != nil {
		t.Fatal(err)
	}
	in := consent.SignupInput{Form: form, Address: a, Locale: "en", Topics: []string{"news"}, IP: "192.0.2.1", Page: page, UserAgent: ua}
	if res, err := db.Signup(t.Context(), in, form.WordingFor("en", nil, "Yes", "")); err != nil || !res.Queued {
		t.Fatalf("Signup(%s): got %+v, %v, want a queued mail", email, res, err)
	}
	sub, err := db.SubscriberByAddress(t.Context(), a)
	if err != nil || sub == nil {
		t.Fatalf("SubscriberByAddress(%s): got %+v, %v", email, sub, err)
	}
	return sub
}

// TestSharedStringsAcrossInstances: two stores on one database, as two
// optin instances. The strings many records share (the form's id and
// source, the page, the wording's hash, the user agent, the domain of the
// Message-ID) are stored once, in the table of shared strings, not in
// the rows; each store reads back what the other wrote, numbers it met
// only there (the second store was opened before the first wrote any).
func TestSharedStringsAcrossInstances(t *testing.T) {
	url := pg.EmptyDatabase(t)
	one := open(t, url, nil, testHMACKey)
	form := bootstrap(t, one)
	two := open(t, url, nil, testHMACKey)
	type person struct {
		sub      *consent.Subscriber
		page, ua string
	}
	people := []person{
		{signupWith(t, one, &form, "ann@example.com", "https://example.com/join", "Mozilla/5.0 (X11; Linux x86_64) Ann/1"), "https://example.com/join", "Mozilla/5.0 (X11; Linux x86_64) Ann/1"},
		{signupWith(t, two, &form, "bob@example.com", "https://example.com/other", "Mozilla/5.0 (Macintosh) Bob/2"), "https://example.com/other", "Mozilla/5.0 (Macintosh) Bob/2"},
	}
	ctx := t.Context()
	for _, p := range people {
		for i, db := range []*postgres.DB{one, two} {
			recs, err := db.Events(ctx, p.sub.ID)
			if err != nil || len(recs) != 1 || recs[0].Personal == nil {
				t.Fatalf("store %d: Events(%s): got %+v, %v, want one with its personal record", i+1, p.sub.Email, recs, err)
			}
			ev, per := recs[0].Event, recs[0].Personal
			if ev.Source != "form:newsletter" || ev.Page != p.page || ev.Wording == "" || ev.Subscriber != p.sub.ID ||
				!strings.HasSuffix(ev.MessageID, "@localhost") || per.UserAgent != p.ua || per.Email != p.sub.Email {
				t.Errorf("store %d: the event of %s: got %+v with %+v", i+1, p.sub.Email, ev, per)
			}
			req, err := db.Request(ctx, p.sub.PendingRequest)
			if err != nil || req == nil || req.Form != "newsletter" || req.Source != "form:newsletter" || req.Page != p.page ||
				req.Wording != ev.Wording || req.MessageID != ev.MessageID {
				t.Errorf("store %d: Request of %s: got %+v, %v, want the event's form, source, page, wording and Message-ID", i+1, p.sub.Email, req, err)
			}
		}
	}
	for i, db := range []*postgres.DB{one, two} {
		if rep, err := db.VerifyLedger(ctx); err != nil || !rep.OK || rep.Events != 2 {
			t.Errorf("store %d: VerifyLedger: got %+v, %v, want OK over 2 events", i+1, rep, err)
		}
	}

	pool, err := postgres.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	var rows [][]byte
	var b []byte
	for _, sql := range []string{"SELECT event FROM ledger", "SELECT personal FROM ledger", "SELECT data FROM requests"} {
		r, err := pool.Query(ctx, sql)
		if err != nil {
			t.Fatal(err)
		}
		for r.Next() {
			if err := r.Scan(&b); err != nil {
				t.Fatal(err)
			}
			rows = append(rows, bytes.Clone(b))
		}
		r.Close()
	}
	table := readStrings(t, pool)
	for _, s := range []string{"newsletter", "form:newsletter", "https://example.com/join", "https://example.com/other", "@localhost", people[0].ua, people[1].ua} {
		n := 0
		for _, v := range table {
			if v == s {
				n++
			}
		}
		if n != 1 {
			t.Errorf("the table of strings holds %q %d times, want once", s, n)
		}
		for _, row := range rows {
			if bytes.Contains(row, []byte(s)) {
				t.Errorf("a row holds %q: %x", s, row)
			}
		}
	}
}

// TestSharedStringsRolledBack: a batch of writes whose transaction rolls
// back after its calls numbered strings (one call fails, so the others
// run again without it) leaves no number the table lacks or gives to
// another string: neither the store that wrote nor a store opened after
// reads a string other than the one written.
func TestSharedStringsRolledBack(t *testing.T) {
	url := pg.EmptyDatabase(t)
	one := open(t, url, nil, testHMACKey)
	at := time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
	request := func(id string) *consent.Request {
		return &consent.Request{ID: id, Subscriber: "s", Form: "form-" + id, Source: "import:" + id, Topics: []string{"news"}, Locale: "en",
			Created: at, Expires: at.Add(48 * time.Hour), MessageID: "m-" + id + "@mail.example.com"}
	}
	reqs := []*consent.Request{request("r0"), request("r1"), request("r2"), request("r3")}
	errs := one.StoreRequestsInOneBatch(reqs, 2)
	for i, err := range errs {
		if (err != nil) != (i == 2) {
			t.Fatalf("call %d: got %v, want an error for call 2 alone", i, err)
		}
	}
	// Strings numbered after: the numbers the rolled back transaction
	// gave are free again.
	later := []*consent.Request{request("r4"), request("r5")}
	if errs := one.StoreRequestsInOneBatch(later, -1); errs[0] != nil || errs[1] != nil {
		t.Fatalf("the later batch: got %v", errs)
	}
	two := open(t, url, nil, testHMACKey)
	for i, db := range []*postgres.DB{one, two} {
		for _, want := range append(reqs, later...) {
			got, err := db.StoredRequest(t.Context(), want.ID)
			if want.ID == "r2" {
				if err != nil || got != nil {
					t.Errorf("store %d: Request(r2), whose call failed: got %+v, %v, want none", i+1, got, err)
				}
				continue
			}
			if err != nil || !reflect.DeepEqual(got, want) {
				t.Errorf("store %d: Request(%s): got %+v, %v, want %+v", i+1, want.ID, got, err, want)
			}
		}
	}
}

// TestStringsFromVersion16: a database at schema version 16, its rows
// written as version 16 wrote them (every string in the record, an
// event's time too, a personal record without the address its
// subscriber holds), opens on this optin (migration 0019) and reads as
// before, with nothing rewritten; the records written after it number
// their strings, and the chain over both verifies. A personal record of
// before that gets its address back (the subscriber's address changes)
// is written again with its user agent, new to the table, numbered.
func TestStringsFromVersion16(t *testing.T) {
	url := databaseAt(t, 16)
	at := time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
	rnd := bytes.NewReader(bytes.Repeat([]byte{0x5a}, 64))
	ann, reqID := consent.NewID(at, rnd), consent.NewID(at, rnd)
	const page, ua = "https://example.com/old-page", "Mozilla/5.0 (Old) Ann/16"
	wording := strings.Repeat("ab", 32)
	sub := consent.Subscriber{ID: ann, Email: "ann@example.com", Locale: "en", Created: at, PendingRequest: reqID,
		Subscriptions: map[string]*consent.Subscription{"news": {Topic: "news", Status: consent.StatusPending, Basis: consent.BasisConsent, Since: at}}}
	req := consent.Request{ID: reqID, Subscriber: ann, Form: "newsletter", Source: "form:newsletter", Topics: []string{"news"}, Locale: "en",
		Created: at, Expires: at.Add(48 * time.Hour), MessageID: reqID + "@news.example.com", Page: page, Wording: wording}
	personal := consent.Personal{Salt: "s", Email: "ann@example.com", IP: "192.0.2.1", UserAgent: ua}
	_, digest := personal.Encode()
	ev := consent.Event{Seq: 1, Time: at, Type: consent.EventRequested, Subscriber: ann, Topics: []string{"news"}, Basis: consent.BasisConsent,
		Source: "form:newsletter", Page: page, Wording: wording, Request: reqID, MessageID: req.MessageID, PersonalDigest: digest}
	ev.Seal("")

	// The rows as version 16 wrote them: the records without what the
	// row's columns hold, and no table of strings.
	s, r, p := sub, req, personal
	s.ID, s.Email, r.ID, r.Subscriber, p.Email = "", "", "", "", ""
	evb, err := record.MarshalEventApart(&ev, "", nil)
	if err != nil {
		t.Fatal(err)
	}
	pb := compact(t, &p)
	pb[0] = record.RefMagic
	pool, exec := connectExec(t, url)
	exec("INSERT INTO subscribers (id, email_key, data) VALUES ($1, $2, $3)", record.ID(ann), "ann@example.com", compact(t, &s))
	exec("INSERT INTO requests (id, subscriber, data) VALUES ($1, $2, $3)", record.ID(reqID), record.ID(ann), compact(t, &r))
	exec("INSERT INTO ledger (seq, subscriber, type, event, personal) VALUES (1, $1, 'requested', $2, $3)", record.ID(ann), evb, pb)
	exec("UPDATE ledger_head SET seq = 1, hash = $1, tree_size = 0", ev.Hash)
	// The counters and subscriptions are left for the open to rebuild,
	// which reads every request and event.

	now := at.Add(time.Hour)
	db := open(t, url, func() time.Time { return now }, testHMACKey)
	ctx := t.Context()
	if got, err := db.Request(ctx, reqID); err != nil || !reflect.DeepEqual(got, &req) {
		t.Errorf("Request of before: got %+v, %v, want %+v", got, err, req)
	}
	wantEvents := func(db *postgres.DB, n int) []consent.EventRecord {
		t.Helper()
		recs, err := db.Events(ctx, ann)
		if err != nil || len(recs) != n {
			t.Fatalf("Events: got %d, %v, want %d", len(recs), err, n)
		}
		if !reflect.DeepEqual(recs[0].Event, ev) || !reflect.DeepEqual(recs[0].Personal, &personal) {
			t.Errorf("the event of before: got %+v with %+v, want %+v with %+v", recs[0].Event, recs[0].Personal, ev, personal)
		}
		if rep, err := db.VerifyLedger(ctx); err != nil || !rep.OK {
			t.Errorf("VerifyLedger: got %+v, %v, want OK", rep, err)
		}
		return recs
	}
	wantEvents(db, 1)
	var stored []byte
	if err := pool.QueryRow(ctx, "SELECT event FROM ledger WHERE seq = 1").Scan(&stored); err != nil || !bytes.Equal(stored, evb) {
		t.Errorf("the event of before was rewritten: %x, %v", stored, err)
	}

	// Written after: ann's confirmation, from another browser, and bob's
	// signup.
	form := bootstrap(t, db)
	if res, err := db.Confirm(ctx, reqID, consent.ConfirmInput{IP: "192.0.2.2", UserAgent: "Mozilla/5.0 (New) Ann/19"}); err != nil || res.Already {
		t.Fatalf("Confirm of a request of before: got %+v, %v", res, err)
	}
	signupWith(t, db, &form, "bob@example.com", page, "Mozilla/5.0 (New) Bob/19")
	if got := wantEvents(db, 2)[1]; got.Event.Source != "form:newsletter" || got.Personal == nil || got.Personal.UserAgent != "Mozilla/5.0 (New) Ann/19" {
		t.Errorf("the confirmation: got %+v with %+v", got.Event, got.Personal)
	}

	// ann's address changes: her record of before gets it back, and its
	// user agent a number.
	to, _ := consent.ParseAddress("ann@example.org")
	if res, err := db.Rectify(ctx, nil, ann, consent.Rectification{Email: &to}, consent.ChannelPreferences); err != nil || !res.AddressPending {
		t.Fatalf("Rectify(email): got %+v, %v, want the address pending", res, err)
	}
	jobs, err := db.DueJobs(ctx, now, 10, nil)
	if err != nil {
		t.Fatal(err)
	}
	change := ""
	for _, j := range jobs {
		if j.Kind == consent.JobAddressChange {
			change = j.Request
		}
	}
	if res, err := db.Confirm(ctx, change, consent.ConfirmInput{IP: "192.0.2.3"}); err != nil || res.Already {
		t.Fatalf("Confirm(address change): got %+v, %v", res, err)
	}
	recs := wantEvents(db, 3)
	if err := pool.QueryRow(ctx, "SELECT personal FROM ledger WHERE seq = 1").Scan(&stored); err != nil || stored[0] == record.RefMagic || bytes.Contains(stored, []byte(ua)) {
		t.Errorf("the personal record of before, its address back: got %x, %v, want it whole, its user agent numbered", stored, err)
	}
	other := open(t, url, func() time.Time { return now }, testHMACKey)
	if got := wantEvents(other, 3); !reflect.DeepEqual(got, recs) {
		t.Errorf("another store's Events: got %+v, want %+v", got, recs)
	}
}
