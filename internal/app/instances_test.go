package app

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"optin/internal/config"
	"optin/internal/postgres"
	"optin/internal/postgres/pgtest"
)

// TestInstancesShareOneDatabase runs two services on one PostgreSQL
// database, as behind a load balancer: signups through either are mailed
// once each, and a link one instance mailed works on the other, which
// signs with the same generated token key.
func TestInstancesShareOneDatabase(t *testing.T) {
	if !pgtest.Asked() {
		t.Skip("several instances share a PostgreSQL database: run with OPTIN_TEST_STORE=postgres")
	}
	a := startService(t, nil)
	b := startService(t, func(c *config.Config) {
		c.BaseURL = a.app.cfg.BaseURL // one public URL in front of both
		c.Postgres.URL = a.app.cfg.Postgres.URL
		c.Mail.SMTP = a.app.cfg.Mail.SMTP // one relay: a counts every mail
	})
	b.url = "http://" + b.app.cfg.Listen // its own port behind the one base_url
	const n = 10
	for i := range n {
		s := []*service{a, b}[i%2]
		if r := s.signupJSON(fmt.Sprintf("p%d@example.com", i), "news"); r.status != http.StatusAccepted {
			t.Fatalf("signup %d: got %d %s", i, r.status, r.body)
		}
	}
	a.waitMails(n)
	a.waitOutboxEmpty()
	b.waitOutboxEmpty()
	for addr, got := range a.mailsTo() {
		if got != 1 {
			t.Errorf("mails to %s: got %d, want 1", addr, got)
		}
	}
	if got := a.smtp.Count(); got != n {
		t.Errorf("mails: got %d, want %d", got, n)
	}

	// p0 signed up through a; its link, opened on b, confirms.
	confirm, _ := links(t, parseMail(t, a.mailTo("p0@example.com").Data).text)
	onB := strings.Replace(confirm, a.url, b.url, 1)
	if onB == confirm {
		t.Fatalf("link %s is not on %s", confirm, a.url)
	}
	if r := b.do("POST", onB, "", ""); r.status != http.StatusOK {
		t.Fatalf("confirm on the other instance: got %d %s", r.status, r.body)
	}
	if sub, ok := a.subscriber("p0@example.com"); !ok || sub.Subscriptions["news"].Status != "confirmed" {
		t.Errorf("subscriber after confirming on b, read on a: got %+v, want news confirmed", sub)
	}
}

// TestCampaignContinuesOnOtherInstance: the instance running a campaign
// (the only one at first, so the campaign runner's leader) stops
// mid-campaign; another instance on the same database takes the lead and
// finishes it: every recipient gets exactly one mail.
//
// The campaign runs on real time (a tick a second), and starting the
// second instance takes seconds on a loaded machine: long enough for the
// first to finish the campaign alone. So the first pauses it once it is
// under way, and the second resumes it after the first stopped: the
// campaign is mid-way at the takeover however slow the machine is.
func TestCampaignContinuesOnOtherInstance(t *testing.T) {
	if !pgtest.Asked() {
		t.Skip("several instances share a PostgreSQL database: run with OPTIN_TEST_STORE=postgres")
	}
	a := startService(t, withPostal)
	var addrs []string
	for i := range 12 {
		addrs = append(addrs, fmt.Sprintf("r%02d@example.com", i))
	}
	a.importConsented(addrs...)
	id := a.newCampaign(`"rate":3`)
	a.adminJSON("POST", "/campaigns/"+id+"/start", "", http.StatusOK, nil)
	a.waitCampaign(id, "mail queued", func(c campaignOut) bool { return c.Counts.Targeted > 0 })
	a.adminJSON("POST", "/campaigns/"+id+"/pause", "", http.StatusOK, nil)
	// The mail queued before the pause still goes out, through a.
	mid := a.waitCampaign(id, "its queued mail sent", func(c campaignOut) bool { return c.Counts.Sent == c.Counts.Targeted })
	if mid.State != "paused" || mid.Counts.Targeted >= len(addrs) {
		t.Fatalf("paused too late to test a takeover: %s %+v", mid.State, mid.Counts)
	}

	b := startService(t, func(c *config.Config) {
		withPostal(c)
		c.BaseURL = a.app.cfg.BaseURL
		c.Postgres.URL = a.app.cfg.Postgres.URL
		c.Mail.SMTP = a.app.cfg.Mail.SMTP
	})
	b.url = "http://" + b.app.cfg.Listen // its own port behind the one base_url
	a.shutdown()
	b.adminJSON("POST", "/campaigns/"+id+"/start", "", http.StatusOK, nil)
	done := b.waitCampaign(id, "done on the other instance", func(c campaignOut) bool { return c.State == "done" })
	if done.Counts.Targeted != len(addrs) || done.Counts.Sent != len(addrs) {
		t.Errorf("counts after the takeover: %+v", done.Counts)
	}
	got := a.mailsTo()
	for _, addr := range addrs {
		if got[addr] != 1 {
			t.Errorf("mails to %s: got %d, want exactly 1", addr, got[addr])
		}
	}
}

// TestInstancesShareLimits: the per-address signup limit is one budget
// for every instance: signups spread over two instances are refused once
// the address has spent it, on either.
func TestInstancesShareLimits(t *testing.T) {
	if !pgtest.Asked() {
		t.Skip("several instances share a PostgreSQL database: run with OPTIN_TEST_STORE=postgres")
	}
	limit := func(c *config.Config) { c.Limits.SignupPerIP = config.Rate{N: 3, Per: 10 * time.Minute} }
	a := startService(t, limit)
	b := startService(t, func(c *config.Config) {
		limit(c)
		c.BaseURL = a.app.cfg.BaseURL
		c.Postgres.URL = a.app.cfg.Postgres.URL
		c.Mail.SMTP = a.app.cfg.Mail.SMTP
	})
	b.url = "http://" + b.app.cfg.Listen
	for i, want := range []int{http.StatusAccepted, http.StatusAccepted, http.StatusAccepted, http.StatusTooManyRequests, http.StatusTooManyRequests} {
		s := []*service{a, b}[i%2]
		if r := s.signupJSON(fmt.Sprintf("l%d@example.com", i), "news"); r.status != want {
			t.Errorf("signup %d (instance %c): got %d %s, want %d", i+1, 'a'+i%2, r.status, r.body, want)
		}
	}
}

// TestOlderInstanceAfterMigration: once a newer optin's migration has
// committed (here its record and notification, sent by another
// connection), a running instance of this version says so once in its
// log and on /readyz (503, so a load balancer stops sending it traffic)
// and answers writes with 503 unavailable instead of writing.
func TestOlderInstanceAfterMigration(t *testing.T) {
	if !pgtest.Asked() {
		t.Skip("a newer optin migrating a shared PostgreSQL database: run with OPTIN_TEST_STORE=postgres")
	}
	a := startService(t, nil)
	if r := a.do("GET", "/readyz", "", ""); r.status != http.StatusOK {
		t.Fatalf("/readyz before: got %d %s", r.status, r.body)
	}
	pool, err := postgres.Connect(t.Context(), a.app.cfg.Postgres.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	if _, err := pool.Exec(t.Context(), `WITH i AS (INSERT INTO schema_migrations (version, name) VALUES (9999, 'newer.sql') RETURNING version)
		SELECT pg_notify('optin_schema', version::text) FROM i`); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		r := a.do("GET", "/readyz", "", "")
		if r.status == http.StatusServiceUnavailable && strings.Contains(r.body, "does not know") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("/readyz 10 s after the migration: got %d %s, want 503 naming the unknown version", r.status, r.body)
		}
		time.Sleep(20 * time.Millisecond)
	}
	for i := range 5 {
		if r := a.signupJSON(fmt.Sprintf("late%d@example.com", i), "news"); r.status != http.StatusServiceUnavailable || !strings.Contains(r.body, `"unavailable"`) {
			t.Errorf("signup %d after the migration: got %d %s, want 503 unavailable", i, r.status, r.body)
		}
	}
	if n := strings.Count(a.logs.String(), "request refused: the store is unavailable"); n != 1 {
		t.Errorf("logs: %d lines for 5 requests refused, want 1 (internal/faillog)", n)
	}
	var n int
	if err := pool.QueryRow(t.Context(), "SELECT count(*) FROM subscribers").Scan(&n); err != nil || n != 0 {
		t.Errorf("subscribers: got %d, %v, want none", n, err)
	}
	for strings.Count(a.logs.String(), "a newer optin migrated the database") != 1 {
		if time.Now().After(deadline) {
			t.Fatalf("logs: want one line saying a newer optin migrated the database, got:\n%s", a.logs.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	// The workers' reads fail at every poll from now on: each says so
	// once (internal/faillog), not at every poll.
	for _, msg := range []string{`msg="outbox: reading due jobs"`, `msg="webhooks: reading due deliveries"`} {
		for !strings.Contains(a.logs.String(), msg) {
			if time.Now().After(deadline) {
				t.Fatalf("logs: want a line %s, got:\n%s", msg, a.logs.String())
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	time.Sleep(20 * a.app.Worker.Poll)
	for _, msg := range []string{`msg="outbox: reading due jobs"`, `msg="webhooks: reading due deliveries"`} {
		if n := strings.Count(a.logs.String(), msg); n != 1 {
			t.Errorf("logs: %d lines %s over 20 polls, want 1", n, msg)
		}
	}
}
