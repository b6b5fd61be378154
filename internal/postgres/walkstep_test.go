package postgres_test

import (
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"optin/internal/consent"
	"optin/internal/postgres"
)

// TestWalkStepCost (review of migration 0021): the time of one campaign walk step (rate 10, so a budget
// of 10) from the start of a topic's audience, on OPTIN_WALKCOST
// subscribers of fillSubscriptions at version 20 (then this optin's
// schema), after a counters rebuild; unset: skipped.
func TestWalkStepCost(t *testing.T) {
	ctx := t.Context()
	db, pool := walkFixture(t, "OPTIN_WALKCOST")
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
		startCampaign(t, db, topic, 10)
		start := time.Now()
		res, err := db.CampaignStep(ctx, p, time.Second, true)
		took := time.Since(start)
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("%s: one step %v (%+v)", topic, took, res)
	}
}

// TestWalkStepExcluded (review of 27658a5): one campaign step over a
// topic whose confirmed subscribers are all excluded (no proven basis),
// with a rate of 1 a tick: the transactions it commits and its time.
// Skipped unless OPTIN_WALKEXCL is the number of subscribers.
func TestWalkStepExcluded(t *testing.T) {
	ctx := t.Context()
	db, pool := walkFixture(t, "OPTIN_WALKEXCL")
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
	startCampaign(t, db, "news", 1)
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

// walkFixture returns a store and a pool on a database of as many
// subscribers of fillSubscriptions as environment variable env says
// (unset: t is skipped), at version 20 then this optin's schema, after
// a counters rebuild.
func walkFixture(t *testing.T, env string) (*postgres.DB, *pgxpool.Pool) {
	t.Helper()
	url, pool := filledDatabase(t, env, 20)
	db := open(t, url, func() time.Time { return subscriptionsNow }, testHMACKey)
	if _, err := db.RebuildCounters(t.Context()); err != nil {
		t.Fatal(err)
	}
	return db, pool
}

// filledDatabase returns a database at schema version, filled with as
// many subscribers of fillSubscriptions as environment variable env
// says (unset: t is skipped), and a pool on it.
func filledDatabase(t *testing.T, env string, version int) (string, *pgxpool.Pool) {
	t.Helper()
	n, _ := strconv.Atoi(os.Getenv(env))
	if n == 0 {
		t.Skip(env + " unset")
	}
	url := databaseAt(t, version)
	pool, err := postgres.Connect(t.Context(), url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	fillSubscriptions(t, pool, n)
	return url, pool
}

// startCampaign creates and starts a campaign on topic at rate mails a
// tick.
func startCampaign(t *testing.T, db *postgres.DB, topic string, rate int) {
	t.Helper()
	c, err := db.CreateCampaign(t.Context(), consent.CLIActor(), consent.CampaignInput{Name: topic, Topic: topic, Rate: rate,
		Templates: map[string]consent.CampaignTemplate{"en": {Subject: "s", Body: "b"}}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.StartCampaign(t.Context(), consent.CLIActor(), c.ID); err != nil {
		t.Fatal(err)
	}
}
