package postgres_test

import (
	"testing"
	"time"

	"optin/internal/consent"
	"optin/internal/postgres"
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
