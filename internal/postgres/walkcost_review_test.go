package postgres_test

import (
	"os"
	"strconv"
	"testing"
	"time"

	"optin/internal/consent"
	"optin/internal/postgres"
)

// TestWalkStepCost (review of migration 0021, not committed to either
// tree as is): the time of one campaign walk step (rate 10, so a budget
// of 10) from the start of a topic's audience, on OPTIN_WALKCOST
// subscribers of fillSubscriptions at version 20 (then this optin's
// schema), after a counters rebuild; unset: skipped.
func TestWalkStepCost(t *testing.T) {
	n, _ := strconv.Atoi(os.Getenv("OPTIN_WALKCOST"))
	if n == 0 {
		t.Skip("OPTIN_WALKCOST unset")
	}
	ctx := t.Context()
	url := databaseAt(t, 20)
	pool, err := postgres.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	fillSubscriptions(t, pool, n)
	db := open(t, url, func() time.Time { return subscriptionsNow }, testHMACKey)
	if _, err := db.RebuildCounters(ctx); err != nil {
		t.Fatal(err)
	}
	// Every subscription's consent proven, in either layout.
	var old bool
	if err := pool.QueryRow(ctx, "SELECT to_regclass('subscriber_topics') IS NOT NULL").Scan(&old); err != nil {
		t.Fatal(err)
	}
	prove := `UPDATE subscribers s SET proven = (SELECT string_agg(int2send((e / 4)::smallint) || '\x01'::bytea, ''::bytea ORDER BY e) FROM unnest(s.subs) e)`
	if old {
		prove = "UPDATE subscriber_topics SET proven = 1"
	}
	if _, err := pool.Exec(ctx, prove); err != nil {
		t.Fatal(err)
	}
	if _, err := pool.Exec(ctx, "VACUUM ANALYZE"); err != nil {
		t.Fatal(err)
	}
	p := consent.CampaignPolicy{DormantAfter: 365 * consent.Day}
	for _, topic := range []string{"news", "offers", "events", "events", "events", "news", "offers"} {
		c, err := db.CreateCampaign(ctx, consent.CLIActor(), consent.CampaignInput{Name: topic, Topic: topic, Rate: 10,
			Templates: map[string]consent.CampaignTemplate{"en": {Subject: "s", Body: "b"}}})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := db.StartCampaign(ctx, consent.CLIActor(), c.ID); err != nil {
			t.Fatal(err)
		}
		start := time.Now()
		res, err := db.CampaignStep(ctx, p, time.Second, true)
		took := time.Since(start)
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("%s: one step %v (%+v)", topic, took, res)
	}
}
