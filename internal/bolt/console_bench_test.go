//go:build unix

package bolt

import (
	"bytes"
	"context"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"optin/internal/consent"
	"optin/internal/i18n"
	"optin/internal/token"
	"optin/internal/web"
	"optin/templates"
)

// BenchmarkMillionConsole measures the console's pages on the store of
// BenchmarkMillion (a million subscribers): each operation is one request
// to the real HTTP handler (gin, the session and CSRF checks, the store,
// html/template), answered into a recorder, so it is the server's time
// without the network. Issue 15 asks for a page in under 100 ms. Like
// BenchmarkMillion it reports the CPU time per page (cpu-ns/op) besides
// the wall time. Generating the store takes minutes; run it alone:
//
//	go test -run '^$' -bench MillionConsole -benchtime 20x -timeout 60m ./internal/bolt
func BenchmarkMillionConsole(b *testing.B) {
	now := time.Date(2030, 1, 1, 12, 0, 0, 0, time.UTC)
	db := millionDB(b, now)
	ctx := context.Background()
	secret, _, err := db.NewAPIKey(ctx, consent.CLIActor(), "bench", consent.RoleMarketer)
	if err != nil {
		b.Fatal(err)
	}
	cat, err := i18n.Load(templates.FS, "locales")
	if err != nil {
		b.Fatal(err)
	}
	const base = "http://127.0.0.1:8080"
	tokens, err := token.NewIssuer(base, []token.Key{{ID: "k1", Secret: bytes.Repeat([]byte{'t'}, 32)}}, db.Now)
	if err != nil {
		b.Fatal(err)
	}
	srv, err := web.New(web.Config{Store: db, Tokens: tokens, Catalog: cat, Templates: templates.FS, BaseURL: base,
		Sender: "Example Ltd", Log: slog.New(slog.DiscardHandler), DormantAfter: 365 * consent.Day})
	if err != nil {
		b.Fatal(err)
	}
	h := srv.Handler()

	// serve sends one request as the signed-in browser and checks its
	// status.
	var cookie string
	serve := func(method, target string, form url.Values) *httptest.ResponseRecorder {
		var req *http.Request
		if form == nil {
			req = httptest.NewRequest(method, target, nil)
		} else {
			req = httptest.NewRequest(method, target, strings.NewReader(form.Encode()))
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		}
		req.Header.Set("Accept-Language", "en")
		if cookie != "" {
			req.Header.Set("Cookie", cookie)
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		return rec
	}
	rec := serve("POST", "/admin/login", url.Values{"key": {secret}})
	if rec.Code != http.StatusSeeOther {
		b.Fatalf("sign-in: %d\n%s", rec.Code, rec.Body)
	}
	cookie = strings.SplitN(rec.Header().Get("Set-Cookie"), ";", 2)[0]
	m := regexp.MustCompile(`name="csrf" value="([^"]+)"`).FindStringSubmatch(serve("GET", "/admin", nil).Body.String())
	if m == nil {
		b.Fatal("no CSRF token on the overview")
	}
	csrf := m[1]

	row := regexp.MustCompile(`<a href="/admin/subscribers/[0-9a-z]+">u\d{7}@example\.com</a>`)
	for _, tt := range []struct {
		name, method, target string
		form                 url.Values // the search form, posted with the CSRF token
		rows                 int        // how many subscribers the page lists
	}{
		{name: "Dashboard30", method: "GET", target: "/admin"},
		{name: "Dashboard90", method: "GET", target: "/admin?days=90"},
		{name: "Subscribers", method: "GET", target: "/admin/subscribers", rows: 50},
		{name: "SubscribersConfirmedNews", method: "GET", target: "/admin/subscribers?status=confirmed&topic=news", rows: 50},
		{name: "SubscribersUnsubscribedOffers", method: "GET", target: "/admin/subscribers?status=unsubscribed&topic=offers", rows: 50},
		{name: "SubscribersDormant", method: "GET", target: "/admin/subscribers?lifecycle=dormant", rows: 50},
		{name: "SubscribersCreatedSince", method: "GET", target: "/admin/subscribers?created_since=2029-12-25", rows: 50},
		{name: "SubscribersCreatedOneDay", method: "GET", target: "/admin/subscribers?created_since=2029-07-05&created_until=2029-07-05", rows: 50},
		{name: "SearchAddress", method: "POST", target: "/admin/subscribers", form: url.Values{"q": {"u0500000@example.com"}}, rows: 1},
		// A part of an address reads records from the newest until a page
		// is full or 20,000 were read (maxScan): a part found nowhere
		// costs the most. u09999 is in the newest 100 addresses.
		{name: "SearchPart", method: "POST", target: "/admin/subscribers", form: url.Values{"q": {"u09999"}}, rows: 50},
		{name: "SearchPartNotFound", method: "POST", target: "/admin/subscribers", form: url.Values{"q": {"nobody"}}, rows: 0},
	} {
		if tt.form != nil {
			tt.form.Set("csrf", csrf)
		}
		b.Run(tt.name, func(b *testing.B) {
			defer reportCPU(b)()
			for range b.N {
				rec := serve(tt.method, tt.target, tt.form)
				if rec.Code != http.StatusOK {
					b.Fatalf("%s %s: %d\n%s", tt.method, tt.target, rec.Code, rec.Body)
				}
				if n := len(row.FindAllIndex(rec.Body.Bytes(), -1)); n != tt.rows {
					b.Fatalf("%s %s: %d subscribers listed, want %d", tt.method, tt.target, n, tt.rows)
				}
			}
		})
	}
}
