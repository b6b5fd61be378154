package app

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"optin/internal/config"
	"optin/internal/postgres/pgtest"
	"optin/internal/webhooktest"
)

// TestMigrateToPostgres copies a used bbolt store into PostgreSQL and
// runs the service on the copy: the same subscribers, stats and consent
// history, a confirmation link mailed before the move still confirms (the
// token key moved), an address unsubscribed before the move is still
// suppressed (the hash key moved), and a second copy into the now full
// database is refused.
func TestMigrateToPostgres(t *testing.T) {
	if !pgtest.Asked() {
		t.Skip("copies a bbolt store into PostgreSQL: run with OPTIN_TEST_STORE=postgres")
	}
	a := startService(t, func(c *config.Config) { c.Store, c.Postgres.URL = config.StoreBolt, "" })
	hook := a.hook(webhooktest.Start(t), "evidence")
	p1 := a.confirmed("p1@example.com")
	gone := a.confirmed("gone@example.com")
	if r := a.do("POST", a.unsubscribeURL(gone, ""), "", ""); r.status != http.StatusOK {
		t.Fatalf("unsubscribe: %d %s", r.status, r.body)
	}
	before := a.smtp.Count()
	if r := a.signupJSON("late@example.com", "news"); r.status != http.StatusAccepted {
		t.Fatalf("signup: %d", r.status)
	}
	confirmLate, _ := links(t, parseMail(t, a.waitMails(before + 1)[before].Data).text)
	a.newKey("reader", "viewer")
	a.waitOutboxEmpty()
	var stats map[string]any
	a.admin("/stats", &stats)
	history := a.events(p1)
	a.shutdown()

	cfg := a.app.cfg
	cfg.Store, cfg.Postgres.URL = config.StorePostgres, testPG.EmptyDatabase(t)
	rep, err := MigrateToPostgres(t.Context(), cfg)
	if err != nil {
		t.Fatalf("MigrateToPostgres: %v", err)
	}
	if rep.Counts["subscribers"] != 3 || !rep.Ledger.OK || rep.Ledger.Events == 0 || rep.Counts["ledger events"] != int(rep.Ledger.Events) {
		t.Errorf("report: got %+v, want 3 subscribers and every ledger event verified", rep)
	}
	if _, err := MigrateToPostgres(t.Context(), cfg); err == nil || !strings.Contains(err.Error(), "already holds data") {
		t.Errorf("a second copy into the same database: got %v, want it refused", err)
	}

	b := startService(t, func(c *config.Config) {
		c.Store, c.Postgres.URL, c.DataDir = config.StorePostgres, cfg.Postgres.URL, cfg.DataDir
		c.BaseURL = cfg.BaseURL // the same public address; tokens name it
	})
	b.url = "http://" + b.app.cfg.Listen
	var statsAfter map[string]any
	b.admin("/stats", &statsAfter)
	if got, want := mustJSON(t, statsAfter), mustJSON(t, stats); got != want {
		t.Errorf("stats after the move:\n got %s\nwant %s", got, want)
	}
	if got, want := mustJSON(t, b.events(p1)), mustJSON(t, history); got != want {
		t.Errorf("p1's consent history after the move:\n got %s\nwant %s", got, want)
	}
	if r := b.do("POST", strings.Replace(confirmLate, a.url, b.url, 1), "", ""); r.status != http.StatusOK {
		t.Errorf("a confirmation link mailed before the move: got %d %s, want 200", r.status, r.body)
	}
	if sub, ok := b.subscriber("late@example.com"); !ok || sub.Subscriptions["news"].Status != "confirmed" {
		t.Errorf("late@ after confirming on the copy: got %+v", sub)
	}
	if _, ok := b.hooks()[hook]; !ok {
		t.Error("the webhook endpoint did not move")
	}
	if !b.suppressed("gone@example.com", "news") {
		t.Error("an address unsubscribed before the move is no longer suppressed")
	}
}

func mustJSON(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
