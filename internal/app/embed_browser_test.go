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
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"optin/internal/browsertest"
	"optin/internal/consent"
)

// plainShop serves pages of a site without styles of its own that embed
// the newsletter form: /plain as it is, /custom with the site's accent
// and font in custom properties, /own with optin's stylesheet off.
func plainShop(optinURL string) http.Handler {
	divs := map[string]string{
		"/plain":  `<div data-optin-form="newsletter"></div>`,
		"/custom": `<div data-optin-form="newsletter" style="--optin-accent:#7a1fa2;--optin-font:Georgia,serif"></div>`,
		"/own":    `<div data-optin-form="newsletter" data-optin-style="none"></div>`,
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		div, ok := divs[r.URL.Path]
		if !ok {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		fmt.Fprintf(w, `<!doctype html><html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1"><title>Shop</title></head>
<body><main><h1>Our shop</h1>%s<script src="%s/f/newsletter/embed.js?locale=en"></script></main></body></html>`,
			div, html.EscapeString(optinURL))
	})
}

// TestBrowserEmbedFinished: on a page with no styles of its own, the
// embedded form gets optin's stylesheet, in the form's accent colour, and
// fits a 390 px screen with no serious axe-core problem; a site sets its
// own colour and font through custom properties, or turns the sheet off.
// No text sits loose in the form. The answer appears next to the button,
// in a live region. On a site that may not use the form, the browser
// console says so, naming the form and the origin, and optin logs it.
func TestBrowserEmbedFinished(t *testing.T) {
	browsertest.Chromium(t)
	en := loadCatalog(t).For("en")
	s := startService(t, brandTweak(t))
	shop := httptest.NewServer(plainShop(s.url))
	defer shop.Close()
	evil := httptest.NewServer(plainShop(s.url))
	defer evil.Close()
	s.updateForm(func(f *consent.Form) { f.AllowedOrigins = []string{shop.URL} })
	ct := newConsoleTab(t, s)

	var mu sync.Mutex
	var errs []string
	ctx, cancel := context.WithCancel(ct.tab)
	defer cancel()
	console := chromedp.Console(ctx)
	var wg sync.WaitGroup
	defer wg.Wait()
	defer cancel()
	wg.Go(func() {
		for m, err := range console {
			if err != nil {
				return
			}
			if m.Type == "error" && strings.HasPrefix(m.Text, "optin:") { // not axe-core's or the favicon's
				mu.Lock()
				errs = append(errs, m.Text)
				mu.Unlock()
			}
		}
	})

	open := func(url string) {
		t.Helper()
		ct.do("open "+url, chromedp.Navigate(url), chromedp.WaitVisible(chromedp.CSS("form.optin-form button")))
	}
	buttonColour := `getComputedStyle(document.querySelector(".optin-form button")).backgroundColor`

	open(shop.URL + "/plain")
	ct.waitEval("optin's stylesheet", buttonColour, "rgb(10, 110, 60)") // the brand's #0a6e3c
	ct.expect("one stylesheet", `String(document.querySelectorAll('link[rel=stylesheet][href="`+s.url+`/f/newsletter/embed.css"]').length)`, "1")
	ct.expect("loose text", `(() => { const f = document.querySelector(".optin-form"), w = document.createTreeWalker(f, NodeFilter.SHOW_TEXT), bad = [];
		while (w.nextNode()) { const n = w.currentNode; if (!n.textContent.trim() || n.parentElement === f) bad.push(JSON.stringify(n.textContent)); }
		return bad.join(" ") })()`, "")
	ct.expect("live region next to the button", `(() => { const b = document.querySelector(".optin-form button"), st = b.nextElementSibling;
		return st.className + " " + st.getAttribute("role") + " " + st.getAttribute("aria-live") })()`, "optin-status status polite")
	ct.expect("notice before the button", `String(!!(document.querySelector(".optin-notice").compareDocumentPosition(
		document.querySelector(".optin-form button")) & Node.DOCUMENT_POSITION_FOLLOWING))`, "true")
	ct.axe("embedded form")
	shots := artifactDir(t)
	ct.fits("embedded form", func(name string) {
		png, err := chromedp.Run(ct.tab, chromedp.CaptureScreenshot())
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(shots, strings.ReplaceAll(name, " ", "-")+".png"), png, 0o644); err != nil {
			t.Fatal(err)
		}
	})
	ct.do("fill in and send",
		chromedp.SendKeys(chromedp.CSS(".optin-form input[type=email]"), "styled@example.com"),
		chromedp.Click(chromedp.CSS(".optin-form input[type=checkbox]")),
		chromedp.Click(chromedp.CSS(".optin-form button[type=submit]")))
	ct.waitEval("the answer next to the button", `document.querySelector(".optin-form button").nextElementSibling.textContent`,
		en.T("thanks.message"))
	s.mailTo("styled@example.com")

	open(shop.URL + "/custom")
	ct.waitEval("the site's accent", buttonColour, "rgb(122, 31, 162)")
	ct.expect("the site's font", `getComputedStyle(document.querySelector(".optin-form")).fontFamily`, "Georgia, serif")

	open(shop.URL + "/own")
	ct.expect("no stylesheet when the site says none", `String(document.querySelectorAll('link[href$="embed.css"]').length)`, "0")
	if got := ct.eval(buttonColour); got == "rgb(10, 110, 60)" {
		t.Errorf("the button wears optin's accent without optin's stylesheet")
	}
	mu.Lock()
	if len(errs) != 0 {
		t.Errorf("optin's console errors on an allowed site: %q", errs)
	}
	mu.Unlock()

	// A site that may not use the form: the console and optin's log say so.
	open(evil.URL + "/plain")
	want := `optin: form "newsletter" does not take signups from ` + evil.URL
	for deadline := time.Now().Add(patience); ; time.Sleep(50 * time.Millisecond) {
		mu.Lock()
		found := len(errs) > 0 && strings.HasPrefix(errs[0], want)
		got := errs
		mu.Unlock()
		if found {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("browser console: got %q, want an error starting %q", got, want)
		}
	}
	ct.do("send on the refused site",
		chromedp.SendKeys(chromedp.CSS(".optin-form input[type=email]"), "evil@example.com"),
		chromedp.Click(chromedp.CSS(".optin-form input[type=checkbox]")),
		chromedp.Click(chromedp.CSS(".optin-form button[type=submit]")))
	ct.waitEval("refusal next to the button", `document.querySelector(".optin-status").textContent`, en.T("error.forbidden"))
	if logs := s.logs.String(); !strings.Contains(logs, `msg="origin refused" form=newsletter origin=`+evil.URL) {
		t.Errorf("optin's log does not name the refused origin:\n%s", logs)
	}
}
