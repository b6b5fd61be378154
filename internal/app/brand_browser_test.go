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

	"optin/internal/browsertest"
	"optin/internal/consent"
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
// and to /manage. The form's heading names the site, its checkboxes are
// comfortable touch targets on a phone; the preference page's save,
// unsubscribe-all and erase controls look different. The confirmation
// mail's HTML part, and every other mail's, fits the phone too, names the
// site and speaks the person's language.
// Screenshots go to $OPTIN_ARTIFACTS/pages.
func TestBrowserBrandedPages(t *testing.T) {
	browsertest.Chromium(t)
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
		for deadline := time.Now().Add(patience); ct.eval(`String(performance.timeOrigin)`) == before; time.Sleep(50 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("%s: the button led nowhere", name)
			}
		}
		check(name, loc, true)
	}

	// openMail opens a mail's HTML part as a mail client shows it. A
	// mail client on this machine: from a data: URL, Chromium would keep
	// the logo on the loopback address from loading.
	openMail := func(kind, loc, html string) {
		t.Helper()
		reader := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
			w.Header().Set("Content-Type", "text/html; charset=utf-8")
			io.WriteString(w, html)
		}))
		defer reader.Close()
		name := "mail " + kind + " " + loc
		ct.do("open the mail", chromedp.Navigate(reader.URL))
		ct.waitEval(name+": loaded", `document.readyState`, "complete")
		ct.waitEval(name+": logo", `(() => { const i = document.querySelector("img");
			return i && i.complete && i.naturalWidth > 0 ? i.src : "" })()`, s.url+"/brand/logo")
		ct.do("phone", chromedp.EmulateViewport(390, 844))
		ct.expect(name+": fits the phone", `String(document.documentElement.scrollWidth <= window.innerWidth)`, "true")
		ct.expect(name+": language", `document.documentElement.lang`, loc)
		ct.expect(name+": names the site", `String(document.body.textContent.includes("Bottega Rossi"))`, "true")
		saveShot("mail-" + kind + "-" + loc + "-phone")
		ct.do("reset viewport", chromedp.EmulateViewport(900, 1000))
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
		ct.expect("form "+loc+": the heading names the site", `String(document.querySelector("h1").textContent.includes("Bottega Rossi"))`, "true")
		ct.expect("form "+loc+": the notice keeps its lines", `getComputedStyle(document.querySelector("p.notice")).whiteSpace`, "pre-line")
		// The notice and the privacy link are read before the button: first
		// in the DOM, and above it on the screen.
		ct.expect("form "+loc+": notice, privacy link, then the button", `(() => {
			const n = document.querySelector("p.notice"), p = document.querySelector("a[href$='/privacy']"),
				b = document.querySelector("main form button[type=submit]");
			const before = (x, y) => (x.compareDocumentPosition(y) & Node.DOCUMENT_POSITION_FOLLOWING) &&
				x.getBoundingClientRect().bottom <= y.getBoundingClientRect().top;
			return String(before(n, p) && before(p, b)) })()`, "true")
		ct.do("phone", chromedp.EmulateViewport(390, 844))
		// A checkbox and its label are one target at least 44 px high
		// (WCAG 2.5.5), the box itself at least 24 px (WCAG 2.5.8).
		ct.expect("form "+loc+": touch targets at 390 px", `Array.from(document.querySelectorAll("fieldset label")).map(l => {
			const b = l.querySelector("input").getBoundingClientRect(), r = l.getBoundingClientRect();
			return r.height >= 44 && b.width >= 24 && b.height >= 24 ? "ok" : r.height + "/" + b.width + "x" + b.height }).join(" ")`, "ok")
		ct.do("reset viewport", chromedp.EmulateViewport(900, 1000))
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
		// Save, unsubscribe from everything and erase look different.
		ct.expect("preferences "+loc+": three looks", `(() => {
			const look = e => { const c = getComputedStyle(e); return c.backgroundColor + "|" + c.color + "|" + c.borderTopStyle };
			const save = document.querySelector("main form button[type=submit]"), off = document.querySelector("button.secondary"),
				erase = document.querySelector("a.danger");
			return String(new Set([look(save), look(off), look(erase)]).size) })()`, "3")
		open("erase-"+loc, loc, s.url+"/preferences/"+prefs+"/erase", false)
		open("unsubscribe-"+loc, loc, s.unsubscribeURL(sub.ID, ""), false)
		press("unsubscribed-"+loc, loc)
		open("manage-"+loc, loc, s.url+"/manage?locale="+loc, false)
		open("privacy-"+loc, loc, s.url+"/privacy?locale="+loc, false)
		open("invalid-link-"+loc, loc, s.url+"/confirm/not-a-token", true)

		openMail("confirm", loc, html)
		// Every other mail's HTML part, rendered as the outbox does.
		for _, job := range otherMails(sub.ID, loc) {
			m, err := s.app.Worker.Renderer.Render(job, []consent.Topic{{ID: "news", Name: "Product news",
				Translations: map[string]consent.TopicText{"it": {Name: "Novità sui prodotti"}, "sv": {Name: "Produktnyheter"}}}}, consent.Brand{})
			if err != nil {
				t.Fatalf("render %s: %v", job.Kind, err)
			}
			openMail(string(job.Kind), loc, m.HTML)
		}
	}
	if !strings.HasPrefix(shots, os.TempDir()) {
		t.Logf("screenshots: %s", shots)
	}
}

// otherMails returns a mail of every kind but the confirmation request
// for subscriber sub in locale loc, as the outbox holds them.
func otherMails(sub, loc string) []consent.Job {
	base := consent.Job{To: "brand-" + loc + "@example.com", Locale: loc, Subscriber: sub, Topics: []string{"news"},
		MessageID: "brand-mail@optin.test", Created: time.Now(), TokenExpires: time.Now().Add(72 * time.Hour)}
	jobs := []consent.Job{base, base, base, base, base, base}
	jobs[0].Kind = consent.JobPreferences
	jobs[1].Kind, jobs[1].Basis, jobs[1].Origin = consent.JobNotice, consent.BasisSoftOptIn, "the Milan shop's till receipts"
	jobs[2].Kind, jobs[2].Campaign, jobs[2].Topic, jobs[2].Subject, jobs[2].Body = consent.JobReawaken, "c1", "news", "Still with us?", "Hello {{name}}"
	jobs[3].Kind, jobs[3].Request = consent.JobAddressChange, "request-of-"+sub
	jobs[4].Kind, jobs[4].NewEmail = consent.JobAddressChanged, "new-"+loc+"@example.com"
	jobs[5].Kind, jobs[5].Body = consent.JobIncidentNotice, "A laptop with a copy of the list was stolen on 1 March."
	return jobs
}
