package app

import (
	"context"
	"fmt"
	"html"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"

	"optin/internal/browsertest"
	"optin/internal/consent"
	"optin/internal/i18n"
	"optin/templates"
)

// artifactDir is where tests save screenshots: $OPTIN_ARTIFACTS, else a
// temporary directory.
func artifactDir(t *testing.T) string {
	t.Helper()
	if d := os.Getenv("OPTIN_ARTIFACTS"); d != "" {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
		return d
	}
	return t.TempDir()
}

// loadCatalog loads optin's message catalogs, as the service does.
func loadCatalog(t *testing.T) *i18n.Catalog {
	t.Helper()
	cat, err := i18n.Load(templates.FS, "locales")
	if err != nil {
		t.Fatal(err)
	}
	return cat
}

// logConsole copies the browser's console to the test log, for
// diagnosis, in a goroutine of wg that ends with the tab.
func logConsole(t *testing.T, tab context.Context, wg *sync.WaitGroup) {
	console := chromedp.Console(tab)
	wg.Go(func() {
		for m, err := range console {
			if err != nil {
				return
			}
			t.Logf("browser console: %s", m)
		}
	})
}

// shopPage is a page of another site that embeds the newsletter form;
// query ends the script's URL.
func shopPage(optinURL, query string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		fmt.Fprintf(w, `<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Shop</title>
<style>body{font:16px system-ui,sans-serif;max-width:40rem;margin:1rem auto}label{margin-right:.4rem}
.optin-field label{display:block}.optin-error{color:#a0161b}</style></head>
<body><h1>Our shop</h1><div data-optin-form="newsletter"></div>
<script src="%s/f/newsletter/embed.js?%s"></script></body></html>`, html.EscapeString(optinURL), html.EscapeString(query))
	})
}

// TestBrowserEmbed drives headless Chromium through the embedded form on
// another origin: the form renders with the wording, the controller and
// the privacy link before submit and no box ticked; the browser ticks the
// topic, solves the proof of work and submits; the confirmation mail
// arrives at the real SMTP server; the browser opens its link and presses
// Confirm; the subscription is confirmed. The hosted page with its proof
// of work works too, and a site that is not allowed gets the form refused
// (403) and shows an error. Markup in a topic name stays text.
func TestBrowserEmbed(t *testing.T) {
	browsertest.Chromium(t)
	start := time.Now()
	en := loadCatalog(t).For("en")
	s := startService(t, nil)
	shop := httptest.NewServer(shopPage(s.url, "locale=en"))
	defer shop.Close()
	// Both sites are on 127.0.0.1, so they share the browser's cache: the
	// other site's script URL differs, or step 5 would get the cached
	// script of a form that still asks for proof of work.
	evil := httptest.NewServer(shopPage(s.url, "locale=en&site=other"))
	defer evil.Close()
	if shop.URL == evil.URL || !strings.HasPrefix(shop.URL, "http://127.0.0.1:") {
		t.Fatalf("test sites: %s and %s", shop.URL, evil.URL)
	}
	const topicName = `Product news <img src=x onerror=alert(1)>`
	if _, err := s.app.DB.UpdateTopic(context.Background(), consent.Actor{Name: "test"}, consent.Topic{ID: "news", Name: topicName, Description: "Twice a month"}); err != nil {
		t.Fatal(err)
	}
	s.updateForm(func(f *consent.Form) {
		f.AllowedOrigins = []string{shop.URL}
		f.ProofOfWork = 10
	})

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	tab := browsertest.New(t, ctx)

	// No page may open a dialog: that would be script from the data.
	var dialogs atomic.Int32
	dialogEvents := chromedp.Events(tab, page.JavascriptDialogOpening)
	var wg sync.WaitGroup
	defer wg.Wait()
	defer cancel()
	wg.Go(func() {
		for _, err := range dialogEvents {
			if err != nil {
				return
			}
			dialogs.Add(1)
			chromedp.Call(tab, page.HandleJavaScriptDialog, page.HandleJavaScriptDialogParams{Accept: true})
		}
	})

	logConsole(t, tab, &wg)

	do := func(what string, actions ...chromedp.Action[chromedp.Void]) {
		t.Helper()
		if err := chromedp.Do(tab, actions...); err != nil {
			t.Fatalf("%s: %v", what, err)
		}
	}
	eval := func(js string) string {
		t.Helper()
		v, err := chromedp.Run(tab, chromedp.Evaluate[string](js))
		if err != nil {
			t.Fatalf("evaluating %s: %v", js, err)
		}
		return v
	}
	// waitText polls js until it gives want; a navigation in between
	// only makes it try again.
	waitText := func(what, js, want string) {
		t.Helper()
		var got string
		for deadline := time.Now().Add(patience); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
			v, err := chromedp.Run(tab, chromedp.Evaluate[string](js))
			if err == nil && v == want {
				return
			}
			got = v
		}
		t.Fatalf("%s: waiting for %q, page has %q", what, want, got)
	}

	// 1. The form on the shop's page, before anything is typed.
	do("open the shop page", chromedp.Navigate(shop.URL), chromedp.WaitVisible(chromedp.CSS("form.optin-form button")))
	checks := []struct{ what, js, want string }{
		{"ticked boxes", `String(document.querySelectorAll(".optin-form input[type=checkbox]:checked").length)`, "0"},
		{"boxes", `String(document.querySelectorAll(".optin-form input[type=checkbox]").length)`, "1"},
		{"topic label", `document.querySelector(".optin-topic label").firstChild.textContent`, topicName},
		{"images from data", `String(document.querySelectorAll(".optin-form img").length)`, "0"},
		{"wording", `document.querySelector(".optin-form legend").textContent`, en.T("form.default_wording")},
		{"notice", `document.querySelector(".optin-notice").textContent`, en.T("form.notice", "Example News")},
		{"privacy link", `document.querySelector(".optin-privacy a").href`, s.url + "/privacy"},
		{"email label", `document.querySelector("label[for='" + document.querySelector(".optin-form input[type=email]").id + "']").textContent`, en.T("form.email")},
		{"live region", `document.querySelector(".optin-status").getAttribute("aria-live")`, "polite"},
	}
	for _, c := range checks {
		if got := eval(c.js); got != c.want {
			t.Errorf("%s: got %q, want %q", c.what, got, c.want)
		}
	}

	// 2. Fill in, screenshot, submit.
	do("fill in the form",
		chromedp.SendKeys(chromedp.CSS(".optin-form input[type=email]"), "browser@example.com"),
		chromedp.SendKeys(chromedp.CSS(".optin-form input[name=name]"), "Bea"),
		chromedp.Click(chromedp.CSS(".optin-form input[type=checkbox]")))
	shot, err := chromedp.Run(tab, chromedp.Screenshot(chromedp.CSS("form.optin-form"), chromedp.NodeVisible))
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(artifactDir(t), "embed-form.png")
	if err := os.WriteFile(path, shot, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshot of the embedded form: %s", path)
	do("submit", chromedp.Click(chromedp.CSS(".optin-form button[type=submit]")))
	waitText("signup answer", `document.querySelector(".optin-status").textContent`, en.T("thanks.message"))

	// 3. The mail, and the confirm click in the browser.
	_, text, _ := mailParts(t, s.mailTo("browser@example.com").Data)
	confirm, _ := links(t, text)
	do("open the confirm link", chromedp.Navigate(confirm), chromedp.WaitVisible(chromedp.CSS("form button")))
	if sub, _ := s.subscriber("browser@example.com"); sub.Subscriptions["news"].Status != "pending" {
		t.Errorf("opening the confirm page changed the status to %q", sub.Subscriptions["news"].Status)
	}
	do("press Confirm", chromedp.Click(chromedp.CSS("form button[type=submit]")))
	waitText("confirmed page", `document.querySelector("h1") ? document.querySelector("h1").textContent : ""`, en.T("confirmed.title"))
	sub, ok := s.subscriber("browser@example.com")
	if !ok || sub.Subscriptions["news"].Status != "confirmed" {
		t.Fatalf("after the click: got %+v, want news confirmed", sub)
	}
	if evs := s.events(sub.ID); len(evs) != 2 || evs[0].Page != shop.URL+"/" {
		t.Errorf("ledger: got %+v, want requested (page %s/) and confirmed", evs, shop.URL)
	}

	// 4. optin's own hosted page solves its proof of work the same way.
	do("open the hosted form", chromedp.Navigate(s.url+"/f/newsletter"), chromedp.WaitVisible(chromedp.CSS("form button")),
		chromedp.SendKeys(chromedp.CSS("input[type=email]"), "hosted@example.com"),
		chromedp.Click(chromedp.CSS("input[type=checkbox]")),
		chromedp.Click(chromedp.CSS("button[type=submit]")))
	waitText("hosted thanks page", `document.querySelector("h1") ? document.querySelector("h1").textContent : ""`, en.T("thanks.title"))
	s.mailTo("hosted@example.com")

	// 5. A site that is not allowed: the preflight gets 403, the page
	// says the form is not allowed there and nothing is stored.
	s.updateForm(func(f *consent.Form) { f.ProofOfWork = 0 })
	failed := chromedp.Events(tab, network.LoadingFailed)
	do("use the form on another site", chromedp.Navigate(evil.URL), chromedp.WaitVisible(chromedp.CSS("form.optin-form button")),
		chromedp.SendKeys(chromedp.CSS(".optin-form input[type=email]"), "evil@example.com"),
		chromedp.Click(chromedp.CSS(".optin-form input[type=checkbox]")))
	if r := s.do("OPTIONS", "/f/newsletter", "", "", "Origin", evil.URL, "Access-Control-Request-Method", "POST"); r.status != http.StatusForbidden {
		t.Errorf("preflight from %s: got %d, want 403", evil.URL, r.status)
	}
	do("submit on the other site", chromedp.Click(chromedp.CSS(".optin-form button[type=submit]")))
	waitText("refusal", `document.querySelector(".optin-status").textContent`, en.T("error.forbidden"))
	if got := eval(`document.querySelector(".optin-status").className`); !strings.Contains(got, "optin-error") {
		t.Errorf("refusal shown as %q, want the optin-error class", got)
	}
	for ev, err := range failed {
		if err != nil {
			t.Fatalf("no failed request seen: %v", err)
		}
		if ev.CorsErrorStatus != nil {
			// Chrome names the missing header or the status: the
			// 403 refusal carries neither Access-Control-Allow-Origin
			// nor a 2xx status.
			if got := ev.CorsErrorStatus.CorsError; got != network.CorsErrorPreflightMissingAllowOriginHeader &&
				got != network.CorsErrorPreflightInvalidStatus {
				t.Errorf("CORS error: got %s, want the preflight refused", got)
			}
			break
		}
	}
	if _, ok := s.subscriber("evil@example.com"); ok {
		t.Error("the refused site's signup was stored")
	}
	if n := dialogs.Load(); n != 0 {
		t.Errorf("pages opened %d dialogs: script ran from the data", n)
	}
	t.Logf("browser test took %v", time.Since(start).Round(time.Millisecond))
}
