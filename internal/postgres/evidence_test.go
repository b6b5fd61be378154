package postgres_test

import (
	"encoding/hex"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"optin/internal/bolt/record"
	"optin/internal/consent"
	"optin/internal/postgres"
	"optin/internal/transfer"
)

// Migration 0016: the bases the ledger proves for a subscriber's topic
// (consent.IsEvidence) are bits on the topic's subscriber_topics row
// (proven), whatever order the events and the rows are written in; from
// migration 0021 bits of the topic in the subscriber's row
// (subscriptionRows reads them as the rows held them).

// provenBits are the bits of proven, by basis.
var provenBits = map[consent.Basis]int16{consent.BasisConsent: 1, consent.BasisSoftOptIn: 2, consent.BasisLegitimateInterest: 4}

// checkProven checks that each subscription (subscriptionRows) of the subscribers
// with ids holds in proven the bases their ledger events prove for its
// topic, and that these are all the rows of those subscribers but gone
// ones (wantRows).
func checkProven(t *testing.T, db *postgres.DB, pool *pgxpool.Pool, ids []string, wantRows int) {
	t.Helper()
	ctx := t.Context()
	rows := 0
	for _, id := range ids {
		recs, err := db.Events(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		got := map[string]int16{}
		q, err := pool.Query(ctx, "SELECT topic, coalesce(proven, 0) FROM "+subscriptionRows+" WHERE subscriber = $1", record.ID(id))
		if err != nil {
			t.Fatal(err)
		}
		for q.Next() {
			var topic string
			var bits int16
			if err := q.Scan(&topic, &bits); err != nil {
				t.Fatal(err)
			}
			got[topic] = bits
			rows++
		}
		if q.Err() != nil {
			t.Fatal(q.Err())
		}
		for topic, bits := range got {
			var want int16
			for i := range recs {
				for basis, bit := range provenBits {
					if consent.IsEvidence(&recs[i].Event, topic, basis) {
						want |= bit
					}
				}
			}
			if bits != want {
				t.Errorf("subscriber %s, topic %s: proven %b, want %b (the bases its %d events prove)", id, topic, bits, want, len(recs))
			}
		}
	}
	if rows != wantRows {
		t.Errorf("subscriptions: %d, want %d", rows, wantRows)
	}
}

// newStore opens a store on an empty database with the news topic and
// newsletter form, and a pool on its database.
// connectExec connects to the database at url, closing the pool when
// the test ends (or before, when the test closes it), and returns it
// with a function that runs one statement and fails the test on an error.
func connectExec(t *testing.T, url string) (*pgxpool.Pool, func(sql string, args ...any)) {
	t.Helper()
	pool, err := postgres.Connect(t.Context(), url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	return pool, func(sql string, args ...any) {
		t.Helper()
		if _, err := pool.Exec(t.Context(), sql, args...); err != nil {
			t.Fatalf("%s: %v", sql, err)
		}
	}
}

func newStore(t *testing.T) (*postgres.DB, consent.Form, *pgxpool.Pool) {
	t.Helper()
	return newStoreAt(t, pg.EmptyDatabase(t))
}

// newStoreAt is newStore on the database at url.
func newStoreAt(t *testing.T, url string) (*postgres.DB, consent.Form, *pgxpool.Pool) {
	t.Helper()
	db := open(t, url, nil, testHMACKey)
	form := bootstrap(t, db)
	pool, err := postgres.Connect(t.Context(), url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	return db, form, pool
}

// subscriberAt returns the subscriber of email, which must exist.
func subscriberAt(t *testing.T, db *postgres.DB, email string) *consent.Subscriber {
	t.Helper()
	a, err := consent.ParseAddress(email)
	if err != nil {
		t.Fatal(err)
	}
	sub, err := db.SubscriberByAddress(t.Context(), a)
	if err != nil || sub == nil {
		t.Fatalf("SubscriberByAddress(%s): got %v, %v", email, sub, err)
	}
	return sub
}

// TestEvidenceOrders: the evidence bits are right when an import appends
// its event before its new subscriber's rows exist, when a confirmation
// stores the subscription before its event, across status changes, when
// a subscriber stored before gets a topic with an import's event first,
// after a counters rebuild, and after erasure.
func TestEvidenceOrders(t *testing.T) {
	ctx := t.Context()
	db, form, pool := newStore(t)
	byAddress := func(email string) *consent.Subscriber { return subscriberAt(t, db, email) }
	importCSV := func(csv string) {
		t.Helper()
		ir, err := transfer.NewReader(strings.NewReader("email,topics,basis,consented_at,source,last_purchase_at\n"+csv), transfer.FormatCSV)
		if err != nil {
			t.Fatal(err)
		}
		if rep, err := db.Import(ctx, consent.CLIActor(), ir, consent.ImportOptions{SkipNotice: true}); err != nil || rep.Imported+rep.Updated != 1 {
			t.Fatalf("Import of %q: got %+v, %v, want one row stored", csv, rep, err)
		}
	}
	in := consent.ConfirmInput{IP: "192.0.2.1"}

	// An import: its new subscriber stored, then its event.
	importCSV("imp@example.com,news,consent,2024-01-01,shop,\n")
	imp := byAddress("imp@example.com")
	// An event that proves a basis before its new subscriber's rows, in
	// one transaction.
	now := time.Now().UTC().Truncate(time.Millisecond)
	early := &consent.Subscriber{ID: consent.NewID(now, strings.NewReader(strings.Repeat("e", 16))), Email: "early@example.com", Locale: "en", Created: now,
		Subscriptions: map[string]*consent.Subscription{"news": {Topic: "news", Status: consent.StatusConfirmed, Basis: consent.BasisSoftOptIn, Since: now}}}
	ev := &consent.Event{Time: now, Type: consent.EventImported, Subscriber: early.ID, Topics: []string{"news"}, Basis: consent.BasisSoftOptIn, Source: "import:t"}
	if err := db.EventThenSubscriber(ev, consent.Personal{Salt: "s", Email: early.Email}, early); err != nil {
		t.Fatal(err)
	}
	// A confirmation: the subscription before its event.
	signup(t, db, &form, "ann@example.com")
	ann := byAddress("ann@example.com")
	if _, err := db.Confirm(ctx, ann.PendingRequest, in); err != nil {
		t.Fatal(err)
	}
	ids := []string{imp.ID, ann.ID, early.ID}
	checkProven(t, db, pool, ids, 3)

	// Status changes keep the bits: unsubscribed, then pending again.
	if _, err := db.Unsubscribe(ctx, ann.ID, "news", consent.ChannelOneClick, in); err != nil {
		t.Fatal(err)
	}
	checkProven(t, db, pool, ids, 3)
	// A topic new to a subscriber stored before, with an import's event
	// before its row; the confirmed topic stays as it is.
	if _, err := pool.Exec(ctx, `INSERT INTO topics (id, data) VALUES ('offers', '{"id": "offers", "name": "Offers"}')`); err != nil {
		t.Fatal(err)
	}
	importCSV("imp@example.com,news;offers,soft_opt_in,,,2026-11-01\n")
	checkProven(t, db, pool, ids, 4)
	var bits int16
	if err := pool.QueryRow(ctx, "SELECT proven FROM "+subscriptionRows+" WHERE subscriber = $1 AND topic = 'offers'", record.ID(imp.ID)).Scan(&bits); err != nil || bits != 2 {
		t.Errorf("imp's offers row: proven %b, %v, want 10 (soft opt-in)", bits, err)
	}

	// A campaign's audience reads the bits, the same after a rebuild.
	c, err := db.CreateCampaign(ctx, consent.CLIActor(), consent.CampaignInput{Name: "c", Topic: "news",
		Templates: map[string]consent.CampaignTemplate{"en": {Subject: "s", Body: "b"}}})
	if err != nil {
		t.Fatal(err)
	}
	p := consent.CampaignPolicy{DormantAfter: time.Hour}
	want, err := db.PreviewCampaign(ctx, c.ID, p)
	if err != nil || want.Audience != 1 {
		t.Errorf("PreviewCampaign: got %+v, %v, want imp in", want, err)
	}
	if diff, err := db.RebuildCounters(ctx); err != nil || len(diff) != 0 {
		t.Errorf("RebuildCounters: got %v, %v, want no difference", diff, err)
	}
	checkProven(t, db, pool, ids, 4)
	if pv, err := db.PreviewCampaign(ctx, c.ID, p); err != nil || pv.Audience != want.Audience {
		t.Errorf("PreviewCampaign after the rebuild: got %+v, %v, want %+v", pv, err, want)
	}

	// Erasure leaves no row.
	if err := db.Erase(ctx, ann.ID, "test"); err != nil {
		t.Fatal(err)
	}
	checkProven(t, db, pool, ids, 3)
}

// TestEvidenceFromVersion15: a database at schema version 15 opens on
// this optin (migration 0016): each evidence row of a basis that can
// qualify becomes its bit on the subscriber's row of the topic, the
// basis column and the evidence table go, the statuses become their
// one-byte codes, and a campaign's audience is the one version 15 gave.
func TestEvidenceFromVersion15(t *testing.T) {
	ctx := t.Context()
	url := databaseAt(t, 15)
	at := time.Date(2024, 1, 1, 10, 0, 0, 0, time.UTC)
	hasher := consent.NewHasher(testHMACKey)
	pool, exec := connectExec(t, url)
	exec(`INSERT INTO topics (id, data) VALUES ('news', '{"id":"news","name":"News"}'), ('offers', '{"id":"offers","name":"Offers"}')`)
	// ann: news on consent with its evidence, and evidence of offers,
	// which she no longer holds; bob: news on consent without evidence;
	// cy: news and offers, evidence of both bases on news, and of no
	// basis on offers.
	people := []struct {
		email    string
		topics   map[string]consent.Basis
		evidence [][2]string
		proven   map[string]int16
	}{
		{"ann@example.com", map[string]consent.Basis{"news": consent.BasisConsent}, [][2]string{{"news", "consent"}, {"offers", "consent"}}, map[string]int16{"news": 1}},
		{"bob@example.com", map[string]consent.Basis{"news": consent.BasisConsent}, nil, map[string]int16{"news": 0}},
		{"cy@example.com", map[string]consent.Basis{"news": consent.BasisSoftOptIn, "offers": ""},
			[][2]string{{"news", "soft_opt_in"}, {"news", "consent"}, {"offers", ""}}, map[string]int16{"news": 3, "offers": 0}},
	}
	ids := make([]string, len(people))
	for i, p := range people {
		ids[i] = consent.NewID(at, strings.NewReader(strings.Repeat(string(rune('a'+i)), 16)))
		sub := consent.Subscriber{ID: ids[i], Email: p.email, Locale: "en", Created: at, Subscriptions: map[string]*consent.Subscription{}}
		if p.email == "cy@example.com" {
			sub.LastPurchase = at.Add(180 * consent.Day)
		}
		for topic, basis := range p.topics {
			sub.Subscriptions[topic] = &consent.Subscription{Topic: topic, Status: consent.StatusConfirmed, Basis: basis, Since: at}
		}
		exec("INSERT INTO subscribers (id, email_key, data) VALUES ($1, $2, $3)", record.ID(ids[i]), p.email, compact(t, &sub))
		h, err := hex.DecodeString(hasher.Hash(p.email))
		if err != nil {
			t.Fatal(err)
		}
		for topic, basis := range p.topics {
			f, _ := consent.FactsOf(&sub, topic)
			exec("INSERT INTO subscriber_topics (topic, status, subscriber, basis, facts, address_hash) VALUES ($1, 'confirmed', $2, $3, $4, $5)",
				topic, record.ID(ids[i]), string(basis), f.Encode(), h)
		}
		for _, e := range p.evidence {
			exec("INSERT INTO evidence (topic, subscriber, basis) VALUES ($1, $2, $3)", e[0], record.ID(ids[i]), e[1])
		}
	}
	exec("INSERT INTO counters (name, n) VALUES ($1, 3)", consent.CounterSubscribers)
	exec("INSERT INTO counters_built (built) VALUES (now())")

	db, err := postgres.Open(ctx, url, postgres.Options{HMACKey: testHMACKey, Policy: consent.DefaultPolicy(),
		Now: func() time.Time { return at.Add(2 * 365 * consent.Day) }})
	if err != nil {
		t.Fatalf("Open on a database at version 15: %v", err)
	}
	defer db.Close()
	for i, p := range people {
		for topic, want := range p.proven {
			var got int16
			if err := pool.QueryRow(ctx, "SELECT coalesce(proven, 0) FROM "+subscriptionRows+" WHERE subscriber = $1 AND topic = $2",
				record.ID(ids[i]), topic).Scan(&got); err != nil || got != want {
				t.Errorf("%s, %s: proven %b, %v; want %b", p.email, topic, got, err, want)
			}
		}
	}
	var left int
	if err := pool.QueryRow(ctx, `SELECT (SELECT count(*) FROM pg_tables WHERE tablename = 'evidence')
		+ (SELECT count(*) FROM information_schema.columns WHERE table_name = 'subscriber_topics' AND column_name = 'basis')`).Scan(&left); err != nil || left != 0 {
		t.Errorf("evidence table and basis column: got %d, %v; want both gone", left, err)
	}
	// The statuses are their codes, a "char" each.
	var codes string
	if err := pool.QueryRow(ctx, `SELECT string_agg(status::text, '' ORDER BY status) || ' ' || min(pg_typeof(status)::text) FROM `+subscriptionRows).Scan(&codes); err != nil || codes != `cccc "char"` {
		t.Errorf("statuses: got %q, %v; want %q", codes, err, `cccc "char"`)
	}
	c, err := db.CreateCampaign(ctx, consent.CLIActor(), consent.CampaignInput{Name: "c", Topic: "news",
		Templates: map[string]consent.CampaignTemplate{"en": {Subject: "s", Body: "b"}}})
	if err != nil {
		t.Fatal(err)
	}
	// ann and cy (a purchase a year and a half ago) are in; bob has no
	// evidence.
	pv, err := db.PreviewCampaign(ctx, c.ID, consent.CampaignPolicy{DormantAfter: 365 * consent.Day})
	if err != nil || pv.Audience != 2 || pv.Excluded[consent.ExcludedNoBasis] != 1 {
		t.Errorf("PreviewCampaign: got %+v, %v, want ann and cy in, bob without basis", pv, err)
	}
}
