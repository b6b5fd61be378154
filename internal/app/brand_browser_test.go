package app

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"optin/internal/token"
)

// pageShots returns the folder the public pages' screenshots go to,
// $OPTIN_ARTIFACTS/pages, and a function that saves what ct's screen
// shows there as name.png.
func pageShots(t *testing.T, ct *consoleTab) (string, func(name string)) {
	t.Helper()
	shots := filepath.Join(artifactDir(t), "pages")
	if err := os.MkdirAll(shots, 0o755); err != nil {
		t.Fatal(err)
	}
	return shots, func(name string) {
		t.Helper()
		png, err := chromedp.Run(ct.tab, chromedp.CaptureScreenshot())
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(shots, name+".png"), png, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// TestBrowserBrandedPages opens every public page in headless Chromium in
// English, Italian and Swedish, as a person does from a mail: each names
// the site and shows its logo (loaded: the CSP lets it in), its header
// links back to the shop, it speaks the person's language, nothing is
// wider than a 390 px phone screen or a 1280 px desktop, and axe-core
// finds no serious or critical problem. The pages a person lands on from
// a mail (thanks, confirmed, unsubscribed, invalid link) link to the shop
// and to /manage. The confirmation mail's HTML part fits the phone too.
// Screenshots go to $OPTIN_ARTIFACTS/pages.
func TestBrowserBrandedPages(t *testing.T) {
	needChromium(t)
	cat := loadCatalog(t)
	s := startService(t, brandTweak(t))
	s.adminJSON("PUT", "/topics/news", `{"name":"Product news","description":"News about our products, at most twice a month",
		"translations":{"it":{"name":"Novità sui prodotti","description":"Al massimo due volte al mese"},
		"sv":{"name":"Produktnyheter","description":"Högst två gånger i månaden"}}}`, http.StatusOK, nil)
	ct := newConsoleTab(t, s)
	shots, saveShot := pageShots(t, ct)
	// check checks the page the tab shows, at both widths.
	check := func(name, loc string, landing bool) {
		t.Helper()
		ct.waitEval(name+": loaded", `document.readyState`, "complete")
		ct.expect(name+": language", `document.documentElement.lang`, loc)
		ct.expect(name+": site name", `document.querySelector("header.brand .site").textContent`, "Bottega Rossi")
		ct.expect(name+": title", `document.title.endsWith(" · Bottega Rossi") ? "yes" : document.title`, "yes")
		ct.waitEval(name+": logo loaded", `(() => { const i = document.querySelector("header.brand img");
			return i && i.complete && i.naturalWidth > 0 ? i.src : "" })()`, s.url+"/brand/logo")
		ct.expect(name+": header links back", `document.querySelector("header.brand a").href`, "https://shop.example/")
		if landing {
			ct.expect(name+": onward links", `Array.from(document.querySelectorAll("nav.onward a")).map(a => a.href).join(" ")`,
				"https://shop.example/ "+s.url+"/manage?locale="+loc)
			ct.expect(name+": back link text", `document.querySelector("nav.onward a").textContent`,
				cat.For(loc).T("page.back", "Bottega Rossi"))
		}
		if got := ct.eval(`JSON.stringify(window.cspBlocked)`); got != "[]" {
			t.Errorf("%s: the CSP blocked %s", name, got)
		}
		ct.axe(name)
		ct.fits(name, saveShot)
	}
	open := func(name, loc, url string, landing bool) {
		t.Helper()
		ct.do("open "+name, chromedp.Navigate(url))
		check(name, loc, landing)
	}
	// press presses the page's first button and checks the page it leads to.
	press := func(name, loc string) {
		t.Helper()
		before := ct.eval(`String(performance.timeOrigin)`)
		ct.do("press on "+name, chromedp.Click(chromedp.CSS("main form button[type=submit]")))
		for deadline := time.Now().Add(20 * time.Second); ct.eval(`String(performance.timeOrigin)`) == before; time.Sleep(50 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("%s: the button led nowhere", name)
			}
		}
		check(name, loc, true)
	}

	for _, loc := range []string{"en", "it", "sv"} {
		ct.lang(loc)
		addr := "brand-" + loc + "@example.com"
		b, _ := json.Marshal(map[string]any{"email": addr, "topics": []string{"news"}, "locale": loc})
		if r := s.do("POST", "/f/newsletter", "application/json", string(b), "Accept", "application/json"); r.status != http.StatusAccepted {
			t.Fatalf("signup %s: %d %s", addr, r.status, r.body)
		}
		_, text, html := mailParts(t, s.mailTo(addr).Data)
		confirm, notMe := links(t, text)

		open("form-"+loc, loc, s.url+"/f/newsletter?locale="+loc, false)
		open("thanks-"+loc, loc, s.url+"/f/newsletter/thanks?locale="+loc, true)
		open("not-me-"+loc, loc, notMe, false)
		open("confirm-"+loc, loc, confirm, false)
		press("confirmed-"+loc, loc)

		sub, _ := s.subscriber(addr)
		prefs, err := s.app.Tokens.Issue(token.Preferences, token.Claims{Subject: sub.ID, ExpiresAt: time.Now().Add(time.Hour)})
		if err != nil {
			t.Fatal(err)
		}
		open("preferences-"+loc, loc, s.url+"/preferences/"+prefs, false)
		open("erase-"+loc, loc, s.url+"/preferences/"+prefs+"/erase", false)
		open("unsubscribe-"+loc, loc, s.unsubscribeURL(sub.ID, ""), false)
		press("unsubscribed-"+loc, loc)
		open("manage-"+loc, loc, s.url+"/manage?locale="+loc, false)
		open("privacy-"+loc, loc, s.url+"/privacy?locale="+loc, false)
		open("invalid-link-"+loc, loc, s.url+"/confirm/not-a-token", true)

		// The confirmation mail's HTML part, as a mail client shows it.
		// A mail client on this machine: from a data: URL, Chromium would
		// keep the logo on the loopback address from loading.
		reader := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
			w.Header().Set("Content-Type", "text/html; charset=utf-8")
			io.WriteString(w, html)
		}))
		ct.do("open the mail", chromedp.Navigate(reader.URL))
		ct.waitEval("mail: loaded", `document.readyState`, "complete")
		ct.waitEval("mail "+loc+": logo", `(() => { const i = document.querySelector("img");
			return i && i.complete && i.naturalWidth > 0 ? i.src : "" })()`, s.url+"/brand/logo")
		ct.do("phone", chromedp.EmulateViewport(390, 844))
		ct.expect("mail "+loc+": fits the phone", `String(document.documentElement.scrollWidth <= window.innerWidth)`, "true")
		ct.expect("mail "+loc+": language", `document.documentElement.lang`, loc)
		ct.expect("mail "+loc+": names the site", `String(document.body.textContent.includes("Bottega Rossi"))`, "true")
		saveShot("mail-confirm-" + loc + "-phone")
		reader.Close()
		ct.do("reset viewport", chromedp.EmulateViewport(900, 1000))
	}
	if !strings.HasPrefix(shots, os.TempDir()) {
		t.Logf("screenshots: %s", shots)
	}
}
