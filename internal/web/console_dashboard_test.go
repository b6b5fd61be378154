package web

import (
	"context"
	"errors"
	"fmt"
	"html"
	"net/http"
	"regexp"
	"strings"
	"testing"

	"optin/internal/consent"
)

func TestRoundUp(t *testing.T) {
	for _, tt := range []struct{ n, want int }{{0, 1}, {1, 1}, {2, 2}, {3, 5}, {5, 5}, {6, 10}, {11, 20}, {21, 50}, {99, 100}, {1234, 2000}} {
		if got := roundUp(tt.n); got != tt.want {
			t.Errorf("roundUp(%d): got %d, want %d", tt.n, got, tt.want)
		}
	}
}

// TestDailyChart lays out 30 days: bars in proportion to the counts on a
// value axis that ends at a round number, zero days flat on the axis,
// every bar inside the drawing, a day label every week and on the last
// day, and an empty month drawn on a 0-1 axis.
func TestDailyChart(t *testing.T) {
	var days []consent.DayStats
	for i := range 30 {
		days = append(days, consent.DayStats{Date: fmt.Sprintf("2030-03-%02d", i+1)})
	}
	days[3] = consent.DayStats{Date: days[3].Date, Signups: 7, Confirmations: 3}
	days[29] = consent.DayStats{Date: days[29].Date, Signups: 2, Confirmations: 2}
	c := newDailyChart(days, func(d consent.DayStats) string { return d.Date })

	if got := fmt.Sprint(c.Ticks); got != "[{212 0} {111 5} {10 10}]" {
		t.Errorf("ticks: got %s, want 0, 5 and 10", got)
	}
	full := float64(chartBottom - chartTop)
	for _, tt := range []struct {
		day, bar int
		want     float64
	}{{3, 0, full * 7 / 10}, {3, 1, full * 3 / 10}, {29, 0, full * 2 / 10}, {0, 0, 0}, {15, 1, 0}} {
		b := c.Days[tt.day].Bars[tt.bar]
		if b.H != tenth(tt.want) || tenth(b.Y+b.H) != chartBottom {
			t.Errorf("day %d bar %d: got y %v h %v, want h %v standing on %d", tt.day, tt.bar, b.Y, b.H, tenth(tt.want), chartBottom)
		}
	}
	for i, d := range c.Days {
		if d.Title != days[i].Date {
			t.Errorf("day %d: title %q", i, d.Title)
		}
		for _, b := range d.Bars {
			if b.X < chartLeft || b.X+b.W > chartWidth || b.Y < chartTop {
				t.Errorf("day %d: bar %+v outside the drawing", i, b)
			}
		}
		if d.Bars[1].X < d.Bars[0].X+d.Bars[0].W-1e-9 {
			t.Errorf("day %d: the bars overlap", i)
		}
	}
	var labels []string
	for _, l := range c.Labels {
		labels = append(labels, l.Text)
	}
	if got := strings.Join(labels, " "); got != "03-01 03-08 03-15 03-22 03-30" {
		t.Errorf("labels: got %s", got)
	}
	if l := c.Labels[len(c.Labels)-1]; !l.End || l.X != chartWidth || c.Labels[0].End {
		t.Errorf("labels: got %+v, want only the last one ending at the right edge", c.Labels)
	}

	empty := newDailyChart(days[:0], nil)
	if got := fmt.Sprint(empty.Ticks); got != "[{212 0} {10 1}]" || len(empty.Days) != 0 {
		t.Errorf("no days: got ticks %s and %d days", got, len(empty.Days))
	}
}

// TestConsoleDashboard shows the counts, the confirmation rate, the
// outbox and the chart as inline SVG, with no script and no inline style
// (the console's CSP allows neither).
func TestConsoleDashboard(t *testing.T) {
	e := newConsoleEnv(t, nil)
	e.importPeople("ann@example.com,Ann,news,consent,2024-01-01,shop,\n" +
		"bo@example.com,Bo,news,legitimate_interest,,,2030-01-01\n" + // an information notice (GDPR Art. 14)
		"cy@example.com,Cy,news,consent,,,\n") // no evidence: pending, a request and a mail
	r := e.signIn(consent.RoleViewer).do("GET", "/admin", nil)
	if r.status != http.StatusOK {
		t.Fatalf("dashboard: %d\n%s", r.status, r.body)
	}
	for _, want := range []string{
		`<span class="num">3</span> ` + e.en.T("console.dash.subscribers"),
		`<span class="num">0 %</span> ` + e.en.T("console.dash.rate"),
		e.en.T("console.dash.rate_detail", 0, 1),
		`<span class="num">2</span> ` + e.en.T("console.dash.queued"),
		`<svg viewBox="0 0 600 240" role="img"`,
		`<title>` + e.clock.Now().Format("2006-01-02") + `: 1 signups, 0 confirmations, 0 unsubscribes</title>`,
		`<a href="/admin?days=90">90 days</a>`,
		`<a href="/admin/subscribers?status=confirmed">` + e.en.T("console.status.confirmed") + `</a></td><td data-label="Count">2</td>`,
		`<a href="/admin/subscribers?lifecycle=customer">` + e.en.T("console.lifecycle.customer") + `</a></td><td data-label="Count">1</td>`,
		`<span class="num">0</span> ` + e.en.T("console.dash.parked"),
		// Subscriptions by topic, one column per status.
		`<td data-label="` + e.en.T("console.filter.topic") + `">Product news</td><td data-label="` + e.en.T("console.status.pending") +
			`">1</td><td data-label="` + e.en.T("console.status.confirmed") + `">2</td><td data-label="` +
			e.en.T("console.status.unsubscribed") + `">0</td>`,
	} {
		if !strings.Contains(r.body, want) {
			t.Errorf("dashboard lacks %q", want)
		}
	}
	if n := strings.Count(r.body, "<g><title>"); n != 30 {
		t.Errorf("chart days: got %d, want 30", n)
	}
	// 90 days on request, with today's unsubscribe on its bar.
	if _, err := e.db.Unsubscribe(t.Context(), e.subscriberID("ann@example.com"), "", consent.ChannelOneClick, consent.ConfirmInput{}); err != nil {
		t.Fatal(err)
	}
	r = e.signIn(consent.RoleViewer).do("GET", "/admin?days=90", nil)
	for _, want := range []string{
		`<title>` + e.clock.Now().Format("2006-01-02") + `: 1 signups, 0 confirmations, 1 unsubscribes</title>`,
		`<strong aria-current="page">90 days</strong>`, `<a href="/admin?days=30">30 days</a>`,
		e.en.T("console.dash.chart", 90),
	} {
		if !strings.Contains(r.body, want) {
			t.Errorf("dashboard of 90 days lacks %q", want)
		}
	}
	if n := strings.Count(r.body, "<g><title>"); n != 90 {
		t.Errorf("chart days with ?days=90: got %d, want 90", n)
	}
	if regexp.MustCompile(`<script>|<script [^s]|style=|<style`).MatchString(r.body) {
		t.Error("the dashboard has inline script or style")
	}
}

// TestConsoleDashboardMailHealth: while the relay refuses optin's
// settings the overview says so with the reason /readyz gives; while it
// fails otherwise (down, say), with its last error; it lists the startup
// warnings; with none of these, it shows none.
func TestConsoleDashboardMailHealth(t *testing.T) {
	refusal := errors.New("the relay does not offer STARTTLS; set mail.smtp.tls")
	e := newConsoleEnv(t, func(c *Config) {
		c.Ready = func(context.Context) error { return refusal }
		c.Warnings = []string{"mail.postal_address is empty: set it"}
	})
	body := e.signIn(consent.RoleViewer).do("GET", "/admin", nil).body
	for _, want := range []string{html.EscapeString(e.en.T("console.dash.relay_refuses") + " " + refusal.Error()), e.en.T("console.dash.warnings"),
		"<li>mail.postal_address is empty: set it</li>"} {
		if !strings.Contains(body, want) {
			t.Errorf("overview lacks %q", want)
		}
	}
	if strings.Contains(body, html.EscapeString(e.en.T("console.dash.relay_fails"))) {
		t.Error("overview says the relay fails besides its refusal")
	}
	// A relay that is down (not refusing optin's settings): the overview
	// says so with its last error.
	failure := errors.New("dial tcp 192.0.2.25:587: connect: connection refused")
	down := newConsoleEnv(t, func(c *Config) { c.RelayError = func() error { return failure } })
	body = down.signIn(consent.RoleViewer).do("GET", "/admin", nil).body
	if want := html.EscapeString(down.en.T("console.dash.relay_fails") + " " + failure.Error()); !strings.Contains(body, want) {
		t.Errorf("overview lacks %q", want)
	}
	calm := newConsoleEnv(t, func(c *Config) { c.RelayError = func() error { return nil } })
	body = calm.signIn(consent.RoleViewer).do("GET", "/admin", nil).body
	if strings.Contains(body, html.EscapeString(calm.en.T("console.dash.relay_refuses"))) || strings.Contains(body, calm.en.T("console.dash.warnings")) ||
		strings.Contains(body, html.EscapeString(calm.en.T("console.dash.relay_fails"))) {
		t.Error("overview warns without a refusal, a failure or a warning")
	}
}
