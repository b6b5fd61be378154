package app

import (
	"context"
	_ "embed"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/emulation"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"

	"optin/internal/browsertest"
	"optin/internal/config"
)

// axeSource is axe-core, vendored with its licence under testdata/axe.
//
//go:embed testdata/axe/axe.min.js
var axeSource string

// consoleStep bounds each step of a console test in the browser: an
// action, an evaluation (axe-core's run among them) or a wait for a page.
// On a quiet machine none takes more than a second or two; the margin is
// for a machine shared with heavy work, which slows every step alike. The
// test as a whole has no deadline of its own besides go test's: one for
// the sum of its steps failed whichever step it ran out in, most often
// axe-core's, the longest.
const consoleStep = time.Minute

// consoleTab is a browser tab on the console of a running service.
type consoleTab struct {
	t   *testing.T
	s   *service
	tab context.Context
	// shots, when set, is where screenshots for the README go.
	shots string
}

func newConsoleTab(t *testing.T, s *service) *consoleTab {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	tab := browsertest.New(t, ctx)
	ct := &consoleTab{t: t, s: s, tab: tab, shots: os.Getenv("OPTIN_CONSOLE_SHOTS")}
	var wg sync.WaitGroup
	t.Cleanup(wg.Wait)
	t.Cleanup(cancel) // runs first: ends the tab, so the log copy stops
	logConsole(t, tab, &wg)
	// Every page records what its CSP blocked, for check. (The browser
	// starts with the tab's first call, and lives as long as that call's
	// context: it must be the tab's own, not a step's.)
	_, err := chromedp.Call(tab, page.AddScriptToEvaluateOnNewDocument, page.AddScriptToEvaluateOnNewDocumentParams{
		Source: `window.cspBlocked = []; document.addEventListener("securitypolicyviolation",
			e => window.cspBlocked.push(e.violatedDirective + " " + e.blockedURI));`})
	if err != nil {
		t.Fatal(err)
	}
	return ct
}

// step returns the context of one step on the tab: consoleStep long.
func (ct *consoleTab) step() (context.Context, context.CancelFunc) {
	return context.WithTimeout(ct.tab, consoleStep)
}

func (ct *consoleTab) do(what string, actions ...chromedp.Action[chromedp.Void]) {
	ct.t.Helper()
	step, cancel := ct.step()
	defer cancel()
	if err := chromedp.Do(step, actions...); err != nil {
		ct.t.Fatalf("%s: %v", what, err)
	}
}

func (ct *consoleTab) eval(js string) string {
	ct.t.Helper()
	step, cancel := ct.step()
	defer cancel()
	v, err := chromedp.Run(step, chromedp.Evaluate[string](js))
	if err != nil {
		ct.t.Fatalf("evaluating %s: %v", js, err)
	}
	return v
}

// lang makes the browser ask for pages in loc.
func (ct *consoleTab) lang(loc string) {
	ct.t.Helper()
	step, cancel := ct.step()
	defer cancel()
	_, err := chromedp.Call(step, network.SetExtraHTTPHeaders,
		network.SetExtraHTTPHeadersParams{Headers: network.Headers{"Accept-Language": loc}})
	if err != nil {
		ct.t.Fatalf("Accept-Language %s: %v", loc, err)
	}
}

// expect checks that js gives want on the page.
func (ct *consoleTab) expect(what, js, want string) {
	ct.t.Helper()
	if got := ct.eval(js); got != want {
		ct.t.Errorf("%s: got %q, want %q", what, got, want)
	}
}

// media makes the tab render for CSS media type m ("print"; "" for
// the screen again).
func (ct *consoleTab) media(m string) {
	ct.t.Helper()
	step, cancel := ct.step()
	defer cancel()
	if _, err := chromedp.Call(step, emulation.SetEmulatedMedia, emulation.SetEmulatedMediaParams{Media: m}); err != nil {
		ct.t.Fatalf("media %q: %v", m, err)
	}
}

// path is the path and query the tab shows.
func (ct *consoleTab) path() string {
	return ct.eval(`location.pathname + location.search`)
}

// h1 is the page's heading.
func (ct *consoleTab) h1() string {
	return ct.eval(`document.querySelector("h1") ? document.querySelector("h1").textContent : ""`)
}

// waitPage waits until the tab shows a loaded page at path (with its
// query).
func (ct *consoleTab) waitPage(what, path string) {
	ct.t.Helper()
	var got string
	step, cancel := ct.step()
	defer cancel()
	for ; step.Err() == nil; time.Sleep(50 * time.Millisecond) {
		v, err := chromedp.Run(step, chromedp.Evaluate[string](`document.readyState === "complete" ? location.pathname + location.search : ""`))
		if err == nil && v == path {
			return
		}
		got = v
	}
	ct.t.Fatalf("%s: waiting for %s, the tab shows %q", what, path, got)
}

// axeViolations runs axe-core in the page and returns its serious and
// critical violations by rule id. Only the violations are gathered node by
// node (resultTypes), which spares axe-core most of its work on a page
// that passes.
func (ct *consoleTab) axeViolations(name string) map[string]any {
	ct.t.Helper()
	step, cancel := ct.step()
	defer cancel()
	if _, err := chromedp.Run(step, chromedp.Evaluate[bool](axeSource+";true")); err != nil {
		ct.t.Fatalf("injecting axe-core on %s: %v", name, err)
	}
	out, err := chromedp.Run(step, chromedp.Evaluate[string](`axe.run(document, {resultTypes: ["violations"]}).then(r => JSON.stringify({
		passes: r.passes.length,
		violations: Object.fromEntries(r.violations.filter(v => v.impact === "serious" || v.impact === "critical").map(v =>
			[v.id, {impact: v.impact, help: v.help, nodes: v.nodes.map(n => n.target.join(" ")).slice(0, 5)}]))}))`,
		chromedp.EvalAwaitPromise))
	if err != nil {
		ct.t.Fatalf("running axe-core on %s: %v", name, err)
	}
	var res struct {
		Passes     int
		Violations map[string]any
	}
	if err := json.Unmarshal([]byte(out), &res); err != nil {
		ct.t.Fatalf("axe-core result on %s: %v", name, err)
	}
	if res.Passes == 0 {
		ct.t.Fatalf("axe-core on %s checked nothing", name)
	}
	return res.Violations
}

// axe fails the test on any serious or critical axe-core violation.
func (ct *consoleTab) axe(name string) {
	ct.t.Helper()
	for id, v := range ct.axeViolations(name) {
		ct.t.Errorf("axe-core on %s: %s %v", name, id, v)
	}
}

// check makes sure the page's CSP blocked nothing (no inline script or
// style slipped in) and that no URL of the page (its own, its links,
// forms, frames, images, scripts and styles) holds an address, runs
// axe-core on it and, at 390 px and 1280 px wide, checks that nothing
// overflows sideways, saving screenshots when asked to.
func (ct *consoleTab) check(name string) {
	ct.t.Helper()
	if got := ct.eval(`JSON.stringify(window.cspBlocked)`); got != "[]" {
		ct.t.Errorf("%s: the CSP blocked %s", name, got)
	}
	if got := ct.addressURLs(); got != "[]" {
		ct.t.Errorf("%s: URLs with an address: %s", name, got)
	}
	ct.axe(name)
	ct.fits(name, ct.shot)
}

// addressURLs lists, as JSON, the URLs of the page that hold an address
// (an @, plain or escaped): its own, its links, forms, frames, images,
// scripts and styles.
func (ct *consoleTab) addressURLs() string {
	ct.t.Helper()
	return ct.eval(`JSON.stringify([location.href].concat(
		Array.from(document.querySelectorAll("a[href], link[href]"), e => e.href),
		Array.from(document.querySelectorAll("form[action]"), e => e.action),
		Array.from(document.querySelectorAll("iframe[src], img[src], script[src]"), e => e.src)
	).filter(u => /@|%40/i.test(u)))`)
}

// fits checks, at 390 px and 1280 px wide, that nothing on the page
// overflows sideways, calling shot with name-phone and name-desktop at
// each width.
func (ct *consoleTab) fits(name string, shot func(name string)) {
	ct.t.Helper()
	for _, w := range []struct {
		name          string
		width, height int64
	}{{"phone", 390, 844}, {"desktop", 1280, 900}} {
		ct.do("viewport "+w.name, chromedp.EmulateViewport(w.width, w.height))
		if got := ct.eval(`String(document.documentElement.scrollWidth <= window.innerWidth)`); got != "true" {
			ct.t.Errorf("%s at %d px: the page is wider than the screen (%s px)", name, w.width,
				ct.eval(`String(document.documentElement.scrollWidth)`))
		}
		shot(name + "-" + w.name)
	}
	ct.do("reset viewport", chromedp.EmulateViewport(900, 1000))
}

// shot saves what the screen shows as name.png when $OPTIN_CONSOLE_SHOTS
// names a directory and name is one of the README's pictures
// (docs/console).
func (ct *consoleTab) shot(name string) {
	ct.t.Helper()
	switch name {
	case "dashboard-desktop", "subscribers-phone", "person-desktop", "receipt-print", "import-report-desktop", "form-desktop":
	default:
		return
	}
	if ct.shots == "" {
		return
	}
	step, cancel := ct.step()
	defer cancel()
	png, err := chromedp.Run(step, chromedp.CaptureScreenshot())
	if err != nil {
		ct.t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(ct.shots, name+".png"), png, 0o644); err != nil {
		ct.t.Fatal(err)
	}
}

// tabTo presses Tab until the element with id has the focus, as a person
// using only the keyboard would.
func (ct *consoleTab) tabTo(id string) {
	ct.t.Helper()
	for range 20 {
		if ct.eval(`document.activeElement ? document.activeElement.id : ""`) == id {
			return
		}
		ct.do("Tab", chromedp.KeyEvent(kb.Tab))
	}
	ct.t.Fatalf("#%s cannot be reached with Tab", id)
}

// frameText returns the text of the first element matching sel in the
// frame of the page that shows url (its path and query). The preview's
// frame is sandboxed, so Chromium runs it apart, as a target of its own.
func (ct *consoleTab) frameText(url, sel string) string {
	ct.t.Helper()
	step, cancel := ct.step()
	defer cancel()
	for ; step.Err() == nil; time.Sleep(50 * time.Millisecond) {
		infos, err := chromedp.Targets(step)
		if err != nil {
			ct.t.Fatal(err)
		}
		for _, info := range infos {
			if info.Type != "iframe" || !strings.HasSuffix(info.URL, url) {
				continue
			}
			frame, cancelFrame := chromedp.NewContext(step, chromedp.WithTargetID(info.TargetID), chromedp.WithDetachOnCancel())
			text, err := chromedp.Run(frame, chromedp.TextContent(chromedp.CSS(sel)))
			cancelFrame()
			if err != nil {
				ct.t.Fatalf("reading %s in the frame of %s: %v", sel, url, err)
			}
			return text
		}
	}
	ct.t.Fatalf("no frame shows %s", url)
	return ""
}

// waitEval polls js until it gives want.
func (ct *consoleTab) waitEval(what, js, want string) {
	ct.t.Helper()
	var got string
	step, cancel := ct.step()
	defer cancel()
	for ; step.Err() == nil; time.Sleep(50 * time.Millisecond) {
		v, err := chromedp.Run(step, chromedp.Evaluate[string](js))
		if err == nil && v == want {
			return
		}
		got = v
	}
	ct.t.Fatalf("%s: waiting for %q, the page gives %q", what, want, got)
}

// TestBrowserConsole drives the console in headless Chromium against the
// real service: an unauthenticated visit lands on the sign-in page; the
// pages follow the browser's language; sign-in and search work with the
// keyboard alone and the search stays out of the URL; a mixed file is
// imported and its report read; a new form shows its hosted page in the
// preview; an address is blocked, the audit log read and an API key made;
// a person's page shows their consent timeline with the wording and the
// mail; the receipt prints without the console around it; an operator
// records an activity, unsubscribes a person on their word and shows
// their preference link; a campaign's audience is counted and the
// campaign started, its counts moving on the open page; an erasure needs
// the typed address; a form whose CSRF token was tampered with is refused
// and changes nothing; an idle session ends. On every page axe-core finds
// no serious or critical problem and nothing is wider than the screen,
// at phone and desktop width.
func TestBrowserConsole(t *testing.T) {
	browsertest.Chromium(t)
	cat := loadCatalog(t)
	en := cat.For("en")
	s := startService(t, func(c *config.Config) {
		// Campaign mail must carry a postal address, or no campaign starts.
		c.Mail.PostalAddress = "1 Main Street, Springfield"
		// The fortnight of signups below moves the clock 14 days, and the
		// sweep runs a minute after start in real time, which a loaded
		// machine reaches mid-test: with the default retention it would
		// delete the oldest unconfirmed request (expired for more than 7
		// days by then) at a moment the test cannot know. Kept longer,
		// every request stays and the list shows them all.
		c.Pending.Retention = config.Duration(30 * 24 * time.Hour)
	})
	batch := s.importCSV("email,name,topics,basis,consented_at,source,last_purchase_at\n" +
		"ann@example.com,Ann Lee,news,consent,2024-03-01,shop checkout,2025-11-02\n" +
		"bo@example.com,Bo Ek,news,consent,2023-05-12,summer fair,\n" +
		"carla@example.it,Carla Rossi,news,legitimate_interest,,,2024-01-20\n").Batch
	// A fortnight of signups, most of them confirmed, for the chart.
	for day := range 14 {
		s.clock.Advance(24 * time.Hour)
		for i := range day % 3 {
			if addr := fmt.Sprintf("reader%d.%d@example.com", day, i); i == 0 {
				s.confirmed(addr)
			} else {
				s.signupJSON(addr, "news")
			}
		}
	}
	danID := s.confirmed("dan@example.com")
	ann, _ := s.subscriber("ann@example.com")
	annID := ann.ID
	danEvents := s.events(danID)
	ct := newConsoleTab(t, s)

	// 1. Signed out, any console page leads to the sign-in page.
	ct.do("open a console page signed out", chromedp.Navigate(s.url+"/admin/subscribers"))
	ct.waitPage("redirect to sign-in", "/admin/login")
	if got := ct.h1(); got != en.T("console.login.title") {
		t.Errorf("sign-in page heading: got %q", got)
	}
	ct.check("login")
	// The harness sees problems: an image without a text alternative.
	ct.eval(`document.querySelector("main").appendChild(document.createElement("img")), ""`)
	if _, ok := ct.axeViolations("login with a bad image")["image-alt"]; !ok {
		t.Error("axe-core missed an image without alt text: the accessibility checks prove nothing")
	}
	// And the URL check sees an address in a link.
	ct.eval(`document.querySelector("main").insertAdjacentHTML("beforeend", "<a href='/admin/subscribers?q=ann%40example.com'>x</a>"), ""`)
	if got := ct.addressURLs(); !strings.Contains(got, "ann%40example.com") {
		t.Errorf("the URL check missed an address in a link: %s", got)
	}
	// And the CSP check sees an inline style.
	ct.waitEval("an inline style blocked", `document.body.insertAdjacentHTML("beforeend", "<p style='color:red'>x</p>"),
		String(window.cspBlocked.length > 0)`, "true")

	// 2. In Italian and Swedish when the browser asks for them.
	for _, loc := range []string{"it", "sv"} {
		ct.lang(loc)
		ct.do("open the sign-in page", chromedp.Navigate(s.url+"/admin/login"))
		ct.waitPage("sign-in page in "+loc, "/admin/login")
		if got, want := ct.h1(), cat.For(loc).T("console.login.title"); got != want {
			t.Errorf("sign-in page in %s: got %q, want %q", loc, got, want)
		}
		if got := ct.eval(`document.documentElement.lang`); got != loc {
			t.Errorf("lang in %s: got %q", loc, got)
		}
	}
	ct.lang("en")
	ct.do("open the sign-in page", chromedp.Navigate(s.url+"/admin/login"))
	ct.waitPage("sign-in page", "/admin/login")

	// 3. Keyboard-only sign-in: Tab to the key field, type, Enter.
	ct.tabTo("key")
	ct.do("type the key and press Enter", chromedp.KeyEvent(testAdminKey), chromedp.KeyEvent(kb.Enter))
	ct.waitPage("after sign-in", "/admin")
	if got := ct.h1(); got != en.T("console.home.title") {
		t.Errorf("after sign-in: heading %q", got)
	}
	ct.check("dashboard")

	// 4. Import a mixed file: the report lists what went where and why,
	// and offers itself as JSON.
	mixed := filepath.Join(t.TempDir(), "mixed.csv")
	if err := os.WriteFile(mixed, []byte("email,name,topics,basis,consented_at,source,last_purchase_at\n"+
		"eva@example.com,Eva,news,consent,2024-04-01,spring fair,\n"+
		"fred@example.com,Fred,news,consent,,,\n"+
		"not-an-address,,news,consent,2024-04-01,spring fair,\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	ct.do("open the import", chromedp.Navigate(s.url+"/admin/imports"))
	ct.waitPage("import page", "/admin/imports")
	ct.check("import")
	ct.do("choose the file and import", chromedp.SetUploadFiles(chromedp.CSS("#file"), []string{mixed}),
		chromedp.Click(chromedp.CSS(`form[action="/admin/imports"] button[type=submit]`)))
	ct.waitEval("the report", `document.readyState + " " + (document.querySelector("#report-title") || {}).textContent`,
		"complete "+en.T("console.import.report"))
	// The file went up by script, its progress shown to the end.
	ct.expect("the upload's progress", `String(Number(document.documentElement.dataset.uploaded) > 0 &&
		document.documentElement.dataset.uploaded === document.documentElement.dataset.uploadTotal)`, "true")
	ct.expect("the counts", `Array.from(document.querySelectorAll("ul.cards .num")).map(n => n.textContent).join(" ")`, "2 0 0 1 0 0 1")
	ct.expect("the refused line", `document.querySelector("table.list tbody td").textContent`, "4")
	ct.expect("the report to download", `String(document.querySelector("a[download]").href.startsWith("data:application/json;base64,"))`, "true")
	ct.check("import-report")
	if _, ok := s.subscriber("fred@example.com"); !ok {
		t.Error("Fred, imported without proof, is missing")
	}

	// 4b. Topics and forms: a new form, saved, shows its hosted page in
	// the preview and its embed code.
	ct.do("open the topics", chromedp.Navigate(s.url+"/admin/topics"))
	ct.waitPage("topics", "/admin/topics")
	ct.check("topics")
	ct.do("open the forms", chromedp.Navigate(s.url+"/admin/forms"))
	ct.waitPage("forms", "/admin/forms")
	ct.check("forms")
	ct.do("start a new form", chromedp.Click(chromedp.CSS(`a[href="/admin/forms/new"]`)))
	ct.waitPage("new form", "/admin/forms/new")
	ct.check("form-new")
	ct.do("fill it in", chromedp.SendKeys(chromedp.CSS("#id"), "spring"), chromedp.Click(chromedp.CSS("#topic-news")),
		chromedp.SendKeys(chromedp.CSS("#wording-en"), "Yes, tell me about the spring fair."),
		chromedp.SendKeys(chromedp.CSS("#allowed_origins"), "https://shop.example"),
		chromedp.Click(chromedp.CSS(`form[action="/admin/forms"] button[type=submit]`)))
	ct.waitPage("the saved form", "/admin/forms/spring?done=saved")
	if preview := ct.frameText("/f/spring?locale=en", "form"); !strings.Contains(preview, "Yes, tell me about the spring fair.") {
		t.Errorf("the preview shows %q; want the new wording", preview)
	}
	ct.expect("the script snippet", `String(document.querySelector("#snippet-script").value.includes('data-optin-form="spring"'))`, "true")
	ct.check("form")

	// 4c. For admins: blocked addresses, the audit log and API keys, a
	// new key's secret shown once.
	ct.do("open the blocked addresses", chromedp.Navigate(s.url+"/admin/suppressions"))
	ct.waitPage("blocked addresses", "/admin/suppressions")
	ct.do("block an address", chromedp.SendKeys(chromedp.CSS("#email"), "complaint@example.com"),
		chromedp.SendKeys(chromedp.CSS("#note"), "Complained by phone"),
		chromedp.Click(chromedp.CSS(`form[action="/admin/suppressions"] button`)))
	ct.waitPage("after blocking", "/admin/suppressions?done=added")
	if !s.suppressed("complaint@example.com", "") {
		t.Error("complaint@example.com is not blocked")
	}
	ct.check("suppressions")
	ct.do("open the audit log", chromedp.Navigate(s.url+"/admin/audit"))
	ct.waitPage("audit log", "/admin/audit")
	ct.expect("the newest entry", `document.querySelector("table.list tbody td.mono").textContent`, "suppression.add")
	ct.check("audit")
	ct.do("open the assessments", chromedp.Navigate(s.url+"/admin/assessments"))
	ct.waitPage("assessments", "/admin/assessments")
	ct.check("assessments")
	ct.do("open the API keys", chromedp.Navigate(s.url+"/admin/keys"))
	ct.waitPage("API keys", "/admin/keys")
	ct.do("make a key", chromedp.SendKeys(chromedp.CSS("#name"), "ann"),
		chromedp.Click(chromedp.CSS(`form[action="/admin/keys"] button`)))
	ct.waitEval("the new key", `document.readyState + " " + String((document.querySelector("#secret") || {}).value || "").startsWith("optin_")`, "complete true")
	ct.check("keys")

	// 5. The subscriber list, and a keyboard-only search whose address
	// stays out of the URL.
	ct.do("open the subscribers", chromedp.Navigate(s.url+"/admin/subscribers"))
	ct.waitPage("subscribers", "/admin/subscribers")
	if got := ct.eval(`String(document.querySelectorAll("table.list tbody tr").length)`); got != "19" {
		t.Errorf("subscriber rows: got %s, want 19", got)
	}
	ct.check("subscribers")
	ct.tabTo("q")
	ct.do("search", chromedp.KeyEvent("ann@example.com"), chromedp.KeyEvent(kb.Enter))
	ct.waitEval("search result", `document.readyState + " " + document.querySelectorAll("table.list tbody tr").length + " " +
		location.href.includes("ann")`, "complete 1 false")
	ct.check("search")

	// 6. One person: the consent timeline with the wording they saw, the
	// printable receipt, and an erasure that needs the typed address.
	ct.do("open Ann", chromedp.Click(chromedp.CSS(`table.list a`)))
	ct.waitEval("Ann's page", `document.readyState + " " + document.querySelector("h1").textContent`, "complete ann@example.com")
	ct.expect("Ann's event", `document.querySelector(".timeline .event").textContent`, en.T("console.event.imported"))
	ct.expect("Ann's source", `String(document.querySelector(".timeline").textContent.includes("import:`+batch+`"))`, "true")
	ct.expect("Ann's subscription", `document.querySelector("table.list td").textContent`, "Product news")
	ct.do("open Dan, who signed up on a form", chromedp.Navigate(s.url+"/admin/subscribers/"+danID))
	ct.waitPage("Dan's page", "/admin/subscribers/"+danID)
	requested := danEvents[0]
	ct.expect("Dan's events", `Array.from(document.querySelectorAll(".timeline .event")).map(e => e.textContent).join(" | ")`,
		en.T("console.event.requested")+" | "+en.T("console.event.confirmed"))
	ct.expect("the wording he saw", `document.querySelector(".timeline blockquote p").textContent`, requested.WordingText.Text)
	ct.expect("the mail's Message-ID", `String(document.querySelector(".timeline").textContent.includes("<`+requested.MessageID+`>"))`, "true")
	ct.expect("his user agent", `String(document.querySelector(".timeline").textContent.includes("e2e-test/1"))`, "true")
	ct.check("person")
	ct.do("open the receipt", chromedp.Click(chromedp.CSS(`a[href$="/receipt"]`)))
	ct.waitPage("receipt", "/admin/subscribers/"+danID+"/receipt")
	if got := ct.eval(`String(document.querySelector("button[data-print]").hidden)`); got != "false" {
		t.Error("the receipt's print button stays hidden: console.js did not run")
	}
	ct.check("receipt")
	ct.media("print")
	for _, sel := range []string{"header.top", "button[data-print]", ".noprint"} {
		if got := ct.eval(`getComputedStyle(document.querySelector("` + sel + `")).display`); got != "none" {
			t.Errorf("printed receipt shows %s (display %s)", sel, got)
		}
	}
	if got := ct.eval(`getComputedStyle(document.querySelector(".timeline")).display`); got == "none" {
		t.Error("printed receipt hides the timeline")
	}
	ct.shot("receipt-print")
	ct.media("")

	// 7. Acting for Dan: a reservation with its reason, an unsubscribe
	// on his word, and his preference link to copy.
	ct.do("back to Dan", chromedp.Navigate(s.url+"/admin/subscribers/"+danID))
	ct.waitPage("Dan's page", "/admin/subscribers/"+danID)
	ct.do("record a reservation", chromedp.SetValue(chromedp.CSS("#kind"), "reservation"),
		chromedp.SendKeys(chromedp.CSS("#reason"), "Table for two, booked by phone"),
		chromedp.Click(chromedp.CSS(`form[action$="/activity"] button`)))
	ct.waitPage("after the reservation", "/admin/subscribers/"+danID+"?done=activity")
	ct.expect("the reservation in the timeline", `String(document.querySelector(".timeline").textContent.includes("Table for two, booked by phone"))`, "true")
	ct.do("unsubscribe him on his word", chromedp.SendKeys(chromedp.CSS("#withdraw-reason"), "Asked at the counter"),
		chromedp.Click(chromedp.CSS(`form[action$="/unsubscribe"] button`)))
	ct.waitPage("after the unsubscribe", "/admin/subscribers/"+danID+"?done=withdrawn")
	ct.expect("his subscription", `document.querySelector("table.list .tag").textContent`, en.T("console.status.unsubscribed"))
	if !s.suppressed("dan@example.com", "") {
		t.Error("Dan is not suppressed after the unsubscribe on his word")
	}
	ct.do("show his preference link", chromedp.Click(chromedp.CSS(`form[action$="/preference-link"] button[value=show]`)))
	ct.waitPage("the link", "/admin/subscribers/"+danID+"/preference-link")
	ct.expect("the link", `String(document.querySelector("#preflink").value.startsWith("`+s.url+`/preferences/"))`, "true")
	ct.expect("the copy button", `String(document.querySelector("button[data-copy]").hidden)`, "false")
	ct.check("person-actions")

	ct.do("back to Ann", chromedp.Navigate(s.url+"/admin/subscribers/"+annID))
	ct.waitPage("Ann's page", "/admin/subscribers/"+annID)
	ct.do("type a wrong address and erase", chromedp.SendKeys(chromedp.CSS("#confirm"), "bo@example.com"),
		chromedp.Click(chromedp.CSS("button.danger")))
	ct.waitEval("refused erasure", `document.readyState + " " + (document.querySelector("[role=alert]") || {}).textContent`,
		"complete "+en.T("console.person.erase_mismatch"))
	ct.do("type her address and erase", chromedp.SendKeys(chromedp.CSS("#confirm"), "ann@example.com"),
		chromedp.Click(chromedp.CSS("button.danger")))
	ct.waitPage("after the erasure", "/admin/subscribers?done=erased")
	if got := ct.eval(`document.querySelector("[role=status]").textContent`); got != en.T("console.person.done_erased") {
		t.Errorf("erasure notice: got %q", got)
	}
	if _, ok := s.subscriber("ann@example.com"); ok {
		t.Error("Ann is still there after the erasure")
	}

	// 7b. A reawaken campaign: made with the wizard, its audience counted
	// with the exclusions by reason, started; its counts move on the open
	// page as mails go out.
	ct.do("open the campaigns", chromedp.Navigate(s.url+"/admin/campaigns"))
	ct.waitPage("campaigns", "/admin/campaigns")
	ct.check("campaigns")
	ct.do("start a new campaign", chromedp.Click(chromedp.CSS(`a[href="/admin/campaigns/new"]`)))
	ct.waitPage("new campaign", "/admin/campaigns/new")
	ct.check("campaign-new")
	ct.do("write it", chromedp.SendKeys(chromedp.CSS("#name"), "Autumn wake-up"),
		chromedp.SendKeys(chromedp.CSS("#subject-en"), "Still with us?"),
		chromedp.SendKeys(chromedp.CSS("#body-en"), "Hello {{name}}, do you still want {{topic}}?"),
		chromedp.Click(chromedp.CSS(`form[action="/admin/campaigns"] button[type=submit]`)))
	ct.waitEval("the campaign's page", `document.readyState + " " + document.querySelector("h1").textContent`, "complete Autumn wake-up")
	ct.do("count the audience", chromedp.Click(chromedp.CSS(`form[action$="/preview"] button`)))
	ct.waitEval("the preview", `document.readyState + " " + Boolean(document.querySelector("#preview-title"))`, "complete true")
	ct.expect("the pending are left out", `String(Array.from(document.querySelectorAll("section[aria-labelledby=preview-title] td")).some(td =>
		td.textContent === "`+en.T("console.campaign.excluded_pending")+`" && td.nextElementSibling.textContent !== "0"))`, "true")
	ct.check("campaign-preview")
	ct.do("start it", chromedp.Click(chromedp.CSS(`form[action$="/start"] button`)))
	ct.waitEval("started", `document.readyState + " " + location.search`, "complete ?done=started")
	ct.check("campaign")
	ct.waitEval("mails sent, on the open page", `String(document.querySelectorAll("#counts .num")[1].textContent !== "0")`, "true")
	campaignPage := ct.path()
	campaignPage = campaignPage[:strings.Index(campaignPage, "?")]

	// 7c. The audience person by person, the mail as a sample person gets
	// it in Italian, and a test send to a typed address.
	ct.do("list the audience", chromedp.Navigate(s.url+campaignPage+"/audience?only=pending"))
	ct.waitPage("audience list", campaignPage+"/audience?only=pending")
	ct.expect("only the pending listed", `String(Array.from(document.querySelectorAll("tbody tr")).every(tr =>
		tr.textContent.includes("`+en.T("console.campaign.excluded_pending")+`")) && document.querySelectorAll("tbody tr").length > 0)`, "true")
	ct.check("campaign-audience")
	ct.do("open the mail preview", chromedp.Navigate(s.url+campaignPage+"/mail"))
	ct.waitPage("mail preview", campaignPage+"/mail")
	ct.do("choose Italian", chromedp.SetValue(chromedp.CSS("#locale"), "it"),
		chromedp.Click(chromedp.CSS(`form.filters button[type=submit]`)))
	ct.waitPage("Italian preview", campaignPage+"/mail?locale=it&basis=consent")
	ct.expect("the mail as written, the sample person named", `String(document.querySelector("#mail-subject").textContent === "Still with us?" &&
		document.querySelector(".mailbody").textContent.includes("Hello Giulia"))`, "true")
	ct.check("campaign-mail")
	before := s.smtp.Count()
	ct.do("send a test", chromedp.SendKeys(chromedp.CSS("#to"), "marketer@shop.example"),
		chromedp.Click(chromedp.CSS(`form[action$="/test"] button[type=submit]`)))
	ct.waitEval("the test sent", `document.readyState + " " + new URLSearchParams(location.search).get("done")`, "complete test_sent")
	msgs, err := s.smtp.Wait(context.Background(), before+1)
	if err != nil {
		t.Fatalf("waiting for the test mail: %v", err)
	}
	// The mail falls back to its English text, and so does its test mark.
	if last := msgs[len(msgs)-1]; last.To[0] != "marketer@shop.example" || !strings.Contains(string(last.Data), "Subject: [TEST] Still with us?") {
		t.Errorf("test mail: to %v\n%s", last.To, last.Data)
	}

	// 8. A tampered CSRF token: refused, still signed in.
	ct.do("tamper with the token", chromedp.SetValue(chromedp.CSS(`form[action="/admin/logout"] input[name=csrf]`), "forged"),
		chromedp.Click(chromedp.CSS(`form[action="/admin/logout"] button`)))
	ct.waitPage("refusal", "/admin/logout")
	if got := ct.eval(`document.querySelector("[role=alert]").textContent`); got != en.T("console.error.csrf") {
		t.Errorf("CSRF refusal: got %q", got)
	}
	ct.check("error")
	ct.do("reload the console", chromedp.Navigate(s.url+"/admin"))
	ct.waitPage("still signed in", "/admin")
	if got := ct.path(); got != "/admin" {
		t.Fatalf("after the refused sign-out: at %s, want still signed in", got)
	}

	// 9. Idle for 31 minutes: the next page is the sign-in page.
	s.clock.Advance(31 * time.Minute)
	ct.do("come back after 31 minutes", chromedp.Navigate(s.url+"/admin"))
	ct.waitPage("session ended", "/admin/login?ended=1")
	if got := ct.eval(`document.querySelector("[role=status]").textContent`); got != en.T("console.login.ended") {
		t.Errorf("ended notice: got %q", got)
	}
}
