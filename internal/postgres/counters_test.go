package postgres_test

import (
	"maps"
	"strings"
	"testing"
	"time"

	"optin/internal/consent"
	"optin/internal/postgres"
	"optin/internal/transfer"
)

// TestCountersBuiltOnOpen: a database whose counters were never counted
// (migrated from before them: empty counters, no mark) gets them counted
// from its records at the next start, once.
func TestCountersBuiltOnOpen(t *testing.T) {
	url := pg.Database(t)
	first, err := postgres.Open(t.Context(), url, postgres.Options{HMACKey: testHMACKey})
	if err != nil {
		t.Fatal(err)
	}
	form := bootstrap(t, first)
	for _, a := range []string{"p1@example.com", "p2@example.com", "p3@example.com"} {
		signup(t, first, &form, a)
	}
	if err := first.Close(); err != nil {
		t.Fatal(err)
	}
	pool, err := postgres.Connect(t.Context(), url)
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	if _, err := pool.Exec(t.Context(), "DELETE FROM counters; DELETE FROM counters_built"); err != nil {
		t.Fatal(err)
	}

	db := open(t, url, time.Now, testHMACKey)
	if diff, err := db.CheckCounters(t.Context()); err != nil || len(diff) != 0 {
		t.Errorf("CheckCounters after the start: got %v, %v, want no difference", diff, err)
	}
	st, err := db.Stats(t.Context(), consent.Day, consent.StatsDays)
	if err != nil || st.Subscribers != 3 || st.ByTopic["news"][consent.StatusPending] != 3 || st.Daily[len(st.Daily)-1].Signups != 3 {
		t.Errorf("Stats after the start: got %+v, %v, want 3 pending subscribers and 3 signups today", st, err)
	}
}

// TestAudienceFactsBuiltOnStart: a database just migrated to the
// audience facts (migration 0010: no facts, hashes or evidence yet,
// counters to be counted; since migration 0021 the subscribers' subs and
// proven columns, and their last purchase, emptied here) gets them
// written from its records at the next start, the same as those written
// along with the records, and the preview (a suppressed address among
// them) answers as before.
func TestAudienceFactsBuiltOnStart(t *testing.T) {
	ctx := t.Context()
	url := pg.Database(t)
	first, err := postgres.Open(ctx, url, postgres.Options{HMACKey: testHMACKey})
	if err != nil {
		t.Fatal(err)
	}
	bootstrap(t, first)
	ir, err := transfer.NewReader(strings.NewReader(`email,topics,basis,consented_at,source,last_purchase_at
a@example.com,news,consent,2024-01-01,shop,
b@example.com,news,consent,2024-01-01,shop,2026-11-01
c@example.com,news,soft_opt_in,,,2025-06-01
d@example.com,news,consent,2024-01-01,shop,
`), transfer.FormatCSV)
	if err != nil {
		t.Fatal(err)
	}
	if rep, err := first.Import(ctx, consent.CLIActor(), ir, consent.ImportOptions{SkipNotice: true}); err != nil || rep.Imported != 4 {
		t.Fatalf("Import: got %+v, %v", rep, err)
	}
	d, err := consent.ParseAddress("d@example.com")
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := first.AddSuppression(ctx, consent.CLIActor(), d, "news", ""); err != nil {
		t.Fatal(err)
	}
	c, err := first.CreateCampaign(ctx, consent.CLIActor(), consent.CampaignInput{Name: "c", Topic: "news",
		Templates: map[string]consent.CampaignTemplate{"en": {Subject: "s", Body: "b"}}})
	if err != nil {
		t.Fatal(err)
	}
	p := consent.CampaignPolicy{DormantAfter: 365 * consent.Day}
	want, err := first.PreviewCampaign(ctx, c.ID, p)
	if err != nil || want.Audience != 2 || want.Excluded[consent.ExcludedSuppressed] != 1 || want.Excluded[consent.ExcludedNotDormant] != 1 {
		t.Fatalf("PreviewCampaign: got %+v, %v, want 2 in, 1 suppressed, 1 not dormant", want, err)
	}
	if err := first.Close(); err != nil {
		t.Fatal(err)
	}
	pool, err := postgres.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	const rows = `SELECT coalesce(string_agg(concat_ws('|', encode(id, 'hex'), subs, encode(proven, 'hex'), last_purchase), ',' ORDER BY id), '')
		FROM subscribers`
	var built string
	if err := pool.QueryRow(ctx, rows).Scan(&built); err != nil {
		t.Fatal(err)
	}
	if _, err := pool.Exec(ctx, "UPDATE subscribers SET subs = NULL, proven = NULL, last_purchase = NULL; DELETE FROM counters_built"); err != nil {
		t.Fatal(err)
	}

	db := open(t, url, time.Now, testHMACKey)
	var got string
	if err := pool.QueryRow(ctx, rows).Scan(&got); err != nil {
		t.Fatal(err)
	}
	if got != built {
		t.Errorf("indexed columns written at the start:\n got %s\nwant %s", got, built)
	}
	if pv, err := db.PreviewCampaign(ctx, c.ID, p); err != nil || pv.Audience != want.Audience || !maps.Equal(pv.Excluded, want.Excluded) {
		t.Errorf("PreviewCampaign after the start: got %+v, %v, want %+v", pv, err, want)
	}
}
