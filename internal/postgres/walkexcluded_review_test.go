package postgres_test

import (
	"os"
	"strconv"
	"testing"
	"time"

	"optin/internal/consent"
	"optin/internal/postgres"
)

// TestWalkStepExcluded (review of 27658a5): one campaign step over a
// topic whose confirmed subscribers are all excluded (no proven basis),
// with a rate of 1 a tick: the transactions it commits and its time.
// Skipped unless OPTIN_WALKEXCL is the number of subscribers.
func TestWalkStepExcluded(t *testing.T) {
	n, _ := strconv.Atoi(os.Getenv("OPTIN_WALKEXCL"))
	if n == 0 {
		t.Skip("OPTIN_WALKEXCL unset")
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
	if _, err := pool.Exec(ctx, "VACUUM ANALYZE"); err != nil {
		t.Fatal(err)
	}
	commits := func() int64 {
		var c int64
		if _, err := pool.Exec(ctx, "SELECT pg_stat_clear_snapshot()"); err != nil {
			t.Fatal(err)
		}
		if err := pool.QueryRow(ctx, "SELECT xact_commit FROM pg_stat_database WHERE datname = current_database()").Scan(&c); err != nil {
			t.Fatal(err)
		}
		return c
	}
	p := consent.CampaignPolicy{DormantAfter: 365 * consent.Day}
	c, err := db.CreateCampaign(ctx, consent.CLIActor(), consent.CampaignInput{Name: "news", Topic: "news", Rate: 1,
		Templates: map[string]consent.CampaignTemplate{"en": {Subject: "s", Body: "b"}}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.StartCampaign(ctx, consent.CLIActor(), c.ID); err != nil {
		t.Fatal(err)
	}
	for step := range 3 {
		before := commits()
		start := time.Now()
		res, err := db.CampaignStep(ctx, p, time.Second, true)
		took := time.Since(start)
		if err != nil {
			t.Fatal(err)
		}
		time.Sleep(700 * time.Millisecond) // the statistics reach the view a moment later
		t.Logf("step %d: %v, about %d commits (%+v)", step, took, commits()-before, res)
	}
}
