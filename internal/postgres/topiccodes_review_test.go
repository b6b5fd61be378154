package postgres_test

import (
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"optin/internal/consent"
	"optin/internal/postgres"
	"optin/internal/transfer"
)

// importRows imports csv (a header and rows of email,topics,...) into db.
func importRows(t *testing.T, db *postgres.DB, csv string) (consent.ImportReport, error) {
	t.Helper()
	ir, err := transfer.NewReader(strings.NewReader(csv), transfer.FormatCSV)
	if err != nil {
		t.Fatal(err)
	}
	return db.Import(t.Context(), consent.CLIActor(), ir, consent.ImportOptions{SkipNotice: true})
}

// TestTopicCodesTwoInstances: two stores on one database, each with its
// own cache of topic codes, import people on topics new to topic_codes at
// once; every topic gets one code, and each store's filtered listing of
// each topic finds exactly the people imported on it, whichever store
// gave the code.
func TestTopicCodesTwoInstances(t *testing.T) {
	ctx := t.Context()
	url := pg.EmptyDatabase(t)
	now := func() time.Time { return subscriptionsNow }
	stores := []*postgres.DB{open(t, url, now, testHMACKey), open(t, url, now, testHMACKey)}
	const topics = 12
	for i := range topics {
		if _, err := stores[0].CreateTopic(ctx, consent.CLIActor(), consent.Topic{ID: fmt.Sprintf("t%d", i), Name: "T"}); err != nil {
			t.Fatal(err)
		}
	}
	var wg sync.WaitGroup
	for s, db := range stores {
		for i := range topics {
			wg.Add(1)
			go func() {
				defer wg.Done()
				csv := fmt.Sprintf("email,topics,basis,consented_at,source\nu%d-%d@example.com,t%d,consent,2020-01-01,shop\n", s, i, i)
				if rep, err := importRows(t, db, csv); err != nil || rep.Imported != 1 {
					t.Errorf("Import on store %d, topic t%d: got %+v, %v", s, i, rep, err)
				}
			}()
		}
	}
	wg.Wait()
	pool, err := postgres.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	var n, distinct int
	if err := pool.QueryRow(ctx, "SELECT count(*), count(DISTINCT code) FROM topic_codes").Scan(&n, &distinct); err != nil || n != topics || distinct != topics {
		t.Errorf("topic_codes: got %d rows, %d codes, %v; want %d", n, distinct, err, topics)
	}
	for s, db := range stores {
		for i := range topics {
			got, _, err := db.FindSubscribers(ctx, consent.SubscriberFilter{Topic: fmt.Sprintf("t%d", i), Status: consent.StatusConfirmed, Limit: 10})
			var emails []string
			for _, sub := range got {
				emails = append(emails, sub.Email)
			}
			if err != nil || len(got) != 2 || !strings.Contains(strings.Join(emails, ","), fmt.Sprintf("u0-%d@", i)) ||
				!strings.Contains(strings.Join(emails, ","), fmt.Sprintf("u1-%d@", i)) {
				t.Errorf("store %d: FindSubscribers(t%d, confirmed): got %v, %v; want u0-%d and u1-%d", s, i, emails, err, i, i)
			}
		}
	}
}

// TestTopicCodeLimit: once 8,191 topics have codes, a subscription to
// one more topic cannot be stored. The operator gets an error that says
// why, as a consent error (EConflict), not an internal error whose cause
// only the log shows.
func TestTopicCodeLimit(t *testing.T) {
	ctx := t.Context()
	url := pg.EmptyDatabase(t)
	db := open(t, url, func() time.Time { return subscriptionsNow }, testHMACKey)
	pool, err := postgres.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	if _, err := pool.Exec(ctx, "INSERT INTO topic_codes (code, topic) SELECT g, 'old' || g FROM generate_series(1, 8191) g"); err != nil {
		t.Fatal(err)
	}
	if _, err := db.CreateTopic(ctx, consent.CLIActor(), consent.Topic{ID: "late", Name: "Late"}); err != nil {
		t.Fatal(err)
	}
	rep, err := importRows(t, db, "email,topics,basis,consented_at,source\nlate@example.com,late,consent,2020-01-01,shop\n")
	t.Logf("Import on the 8,192nd topic: %+v, %v", rep, err)
	var ce *consent.Error
	if err == nil || !errors.As(err, &ce) || ce.Code != consent.EConflict {
		t.Errorf("Import on the 8,192nd topic: got %+v, %v (%T); want an EConflict *consent.Error", rep, err, err)
	}
}

// subsAndProven reads every subscriber's subs and proven columns, by id.
func subsAndProven(t *testing.T, url string) map[string]string {
	t.Helper()
	pool, err := postgres.Connect(t.Context(), url)
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	out := map[string]string{}
	rows, err := pool.Query(t.Context(), `SELECT encode(s.id, 'hex'), coalesce(s.email_key, ''),
		coalesce((SELECT string_agg(c.topic || '/' || (e % 4)::text, ' ' ORDER BY c.topic) FROM unnest(s.subs) e JOIN topic_codes c ON c.code = e / 4), ''),
		coalesce((SELECT string_agg(c.topic || '=' || get_byte(s.proven, i + 2)::text, ' ' ORDER BY c.topic) FROM generate_series(0, length(s.proven) - 3, 3) i
			JOIN topic_codes c ON c.code = get_byte(s.proven, i) * 256 + get_byte(s.proven, i + 1)), '')
		FROM subscribers s`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	for rows.Next() {
		var id, key, subs, proven string
		if err := rows.Scan(&id, &key, &subs, &proven); err != nil {
			t.Fatal(err)
		}
		out[key] = "subs [" + subs + "] proven [" + proven + "]"
	}
	return out
}

// TestSubsAndProvenAsRebuilt: after signups, confirmations, a
// cancellation ("not me"), unsubscribing and signing up again, imports
// adding topics to people stored before, and an erasure, every
// subscriber's subs and proven columns are those the counters rebuild
// writes from the records and the ledger: what the writes keep up as
// they go is what a walk of everything gives.
func TestSubsAndProvenAsRebuilt(t *testing.T) {
	ctx := t.Context()
	url := pg.EmptyDatabase(t)
	clock := subscriptionsNow
	db := open(t, url, func() time.Time { return clock }, testHMACKey)
	form := bootstrap(t, db)
	for _, id := range []string{"offers", "extra"} {
		if _, err := db.CreateTopic(ctx, consent.CLIActor(), consent.Topic{ID: id, Name: id}); err != nil {
			t.Fatal(err)
		}
	}
	form.Topics = []string{"news", "offers"}
	signupOn := func(email string, topics ...string) *consent.Subscriber {
		t.Helper()
		a, err := consent.ParseAddress(email)
		if err != nil {
			t.Fatal(err)
		}
		in := consent.SignupInput{Form: &form, Address: a, Locale: "en", Topics: topics, IP: "192.0.2.1"}
		if _, err := db.Signup(ctx, in, form.WordingFor("en", nil, "Yes", "")); err != nil {
			t.Fatalf("Signup(%s): %v", email, err)
		}
		sub, err := db.SubscriberByAddress(ctx, a)
		if err != nil || sub == nil {
			t.Fatalf("SubscriberByAddress(%s): %v, %v", email, sub, err)
		}
		return sub
	}
	confirm := func(sub *consent.Subscriber) {
		t.Helper()
		if _, err := db.Confirm(ctx, sub.PendingRequest, consent.ConfirmInput{IP: "192.0.2.1"}); err != nil {
			t.Fatalf("Confirm(%s): %v", sub.Email, err)
		}
	}
	tick := func() { clock = clock.Add(time.Minute) }
	imp := func(csv string) {
		t.Helper()
		if rep, err := importRows(t, db, "email,topics,basis,consented_at,source,last_purchase_at\n"+csv); err != nil || rep.InvalidCount != 0 {
			t.Fatalf("Import(%q): got %+v, %v", csv, rep, err)
		}
	}

	a := signupOn("a@example.com", "news", "offers")
	confirm(a)
	tick()
	imp("b@example.com,news,consent,2020-01-01,shop,\n")
	tick()
	imp("b@example.com,extra,soft_opt_in,,,2020-01-01\n")
	tick()
	c := signupOn("c@example.com", "news")
	if err := db.NotMe(ctx, c.PendingRequest, consent.ConfirmInput{IP: "192.0.2.1"}); err != nil {
		t.Fatal(err)
	}
	tick()
	imp("c@example.com,offers,consent,2020-01-01,shop,\n")
	tick()
	if _, err := db.Unsubscribe(ctx, a.ID, "news", consent.ChannelOneClick, consent.ConfirmInput{IP: "192.0.2.1"}); err != nil {
		t.Fatal(err)
	}
	tick()
	imp("d@example.com,news;offers,soft_opt_in,,,2020-01-01\nf@example.com,extra,legitimate_interest,,,\n")
	tick()
	e := signupOn("e@example.com", "offers")
	confirm(e)
	tick()
	imp("e@example.com,news,consent,2020-01-01,shop,\n")
	tick()
	if err := db.Erase(ctx, signupOn("g@example.com", "news").ID, "test"); err != nil {
		t.Fatal(err)
	}

	kept := subsAndProven(t, url)
	diff, err := db.RebuildCounters(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(diff) != 0 {
		t.Errorf("RebuildCounters: counters differed: %+v", diff)
	}
	rebuilt := subsAndProven(t, url)
	for key, want := range rebuilt {
		if kept[key] != want {
			t.Errorf("%s: kept %s; the rebuild writes %s", key, kept[key], want)
		}
	}
	if len(kept) != len(rebuilt) {
		t.Errorf("kept %d subscribers, rebuilt %d", len(kept), len(rebuilt))
	}
	t.Logf("%v", rebuilt)
}

// TestAudienceSuppressionFollowsAddress: since migration 0021 the
// audience hashes the address of the record it reads; after an address
// change, the suppression of the new address leaves its subscriber out
// of a campaign's preview, list and run, and that of the old address no
// longer does.
func TestAudienceSuppressionFollowsAddress(t *testing.T) {
	ctx := t.Context()
	url := pg.EmptyDatabase(t)
	db := open(t, url, func() time.Time { return subscriptionsNow }, testHMACKey)
	bootstrap(t, db)
	if rep, err := importRows(t, db, "email,topics,basis,consented_at,source\nann@example.com,news,consent,2020-01-01,shop\nbob@example.com,news,consent,2020-01-01,shop\n"); err != nil || rep.Imported != 2 {
		t.Fatalf("Import: got %+v, %v", rep, err)
	}
	addr := func(s string) consent.Address {
		a, err := consent.ParseAddress(s)
		if err != nil {
			t.Fatal(err)
		}
		return a
	}
	move := func(from, to string) {
		t.Helper()
		sub, err := db.SubscriberByAddress(ctx, addr(from))
		if err != nil || sub == nil {
			t.Fatalf("SubscriberByAddress(%s): %v, %v", from, sub, err)
		}
		na := addr(to)
		if res, err := db.Rectify(ctx, nil, sub.ID, consent.Rectification{Email: &na}, consent.ChannelPreferences); err != nil || !res.AddressPending {
			t.Fatalf("Rectify(%s): got %+v, %v", from, res, err)
		}
		after, err := db.Subscriber(ctx, sub.ID)
		if err != nil {
			t.Fatal(err)
		}
		jobs, err := db.DueJobs(ctx, subscriptionsNow.Add(time.Hour), 100, func(uint64) bool { return false })
		if err != nil {
			t.Fatal(err)
		}
		for _, j := range jobs {
			if j.Kind == consent.JobAddressChange && j.Subscriber == sub.ID {
				if cr, err := db.Confirm(ctx, j.Request, consent.ConfirmInput{IP: "192.0.2.1"}); err != nil || cr.NewEmail != na.Addr {
					t.Fatalf("Confirm(address change of %s): got %+v, %v", from, cr, err)
				}
			}
		}
		if moved, err := db.Subscriber(ctx, sub.ID); err != nil || moved.Email != na.Addr {
			t.Fatalf("after the change %s (was %s): got %+v, %v", to, after.Email, moved, err)
		}
	}
	for _, s := range []string{"ann.new@example.org", "bob@example.com"} {
		if _, _, err := db.AddSuppression(ctx, consent.CLIActor(), addr(s), "news", "complaint"); err != nil {
			t.Fatal(err)
		}
	}
	move("ann@example.com", "ann.new@example.org")
	move("bob@example.com", "bob.new@example.org")
	camp, err := db.CreateCampaign(ctx, consent.CLIActor(), consent.CampaignInput{Name: "c", Topic: "news",
		Templates: map[string]consent.CampaignTemplate{"en": {Subject: "s", Body: "b"}}})
	if err != nil {
		t.Fatal(err)
	}
	p := consent.CampaignPolicy{DormantAfter: 365 * consent.Day}
	pv, err := db.PreviewCampaign(ctx, camp.ID, p)
	if err != nil || pv.Audience != 1 || pv.Excluded[consent.ExcludedSuppressed] != 1 {
		t.Errorf("PreviewCampaign: got %d in, excluded %v, %v; want bob in, ann suppressed", pv.Audience, pv.Excluded, err)
	}
	page, err := db.CampaignAudience(ctx, camp.ID, p, consent.AudienceQuery{Limit: 10})
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range page.Items {
		if in := e.Email == "bob.new@example.org"; e.In != in {
			t.Errorf("CampaignAudience: %s in %v (%s), want in %v", e.Email, e.In, e.Reason, in)
		}
	}
}
