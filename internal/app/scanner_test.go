package app

import (
	"context"
	"flag"
	"fmt"
	"html"
	"io"
	"net"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/emulation"
	"github.com/chromedp/chromedp"

	"optin/internal/browsertest"
	"optin/internal/config"
	"optin/internal/consent"
)

// scannerMails is how many mails of each kind the scanner simulation
// runs; docs/performance.md reports a run with 200.
var scannerMails = flag.Int("scanner.mails", 12, "mails of each kind in TestScannerSimulation (at least 200 for the figures in docs/performance.md)")

// The clients of the simulation: the person signs up and confirms from
// 127.0.0.1; scanners come from 127.0.0.2, configured as a scanner
// network (as a gateway's published range is), and from 127.0.0.3, which
// is on no list.
const (
	listedScanner   = "127.0.0.2"
	unlistedScanner = "127.0.0.3"
	headlessUA      = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) HeadlessChrome/131.0.0.0 Safari/537.36"
)

// relayFrom forwards connections to the service so that they reach it
// from the loopback address src, as a client on another network would:
// it returns the base URL to use instead of the service's.
func relayFrom(t *testing.T, s *service, src string) string {
	t.Helper()
	ln, err := net.Listen("tcp", src+":0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	target := strings.TrimPrefix(s.url, "http://")
	dialer := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}, Timeout: 5 * time.Second}
	go func() {
		for {
			in, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer in.Close()
				out, err := dialer.Dial("tcp", target)
				if err != nil {
					return
				}
				defer out.Close()
				go func() { io.Copy(out, in); out.(*net.TCPConn).CloseWrite() }()
				io.Copy(in, out)
			}()
		}
	}()
	return "http://" + ln.Addr().String()
}

// httpFrom is an HTTP client whose connections come from the loopback
// address src.
func httpFrom(src string) *http.Client {
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}, Timeout: 5 * time.Second}
	return &http.Client{Timeout: patience, Transport: &http.Transport{DialContext: d.DialContext},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
}

var hrefRE = regexp.MustCompile(`https?://[^\s"'<>]+`)

// mailLinks returns every distinct link in the mail's text and HTML parts,
// as a scanner finds them.
func mailLinks(t *testing.T, raw []byte) []string {
	t.Helper()
	_, text, body := mailParts(t, raw)
	seen := map[string]bool{}
	var out []string
	for _, l := range hrefRE.FindAllString(text+"\n"+html.UnescapeString(body), -1) {
		if !seen[l] {
			seen[l] = true
			out = append(out, l)
		}
	}
	return out
}

// tab is one browser tab with its own user agent.
type tab struct {
	t   *testing.T
	ctx context.Context
}

func newTab(t *testing.T, browser context.Context, ua string) *tab {
	t.Helper()
	ctx, cancel := chromedp.NewContext(browser)
	t.Cleanup(cancel)
	if _, err := chromedp.Call(ctx, emulation.SetUserAgentOverride, emulation.SetUserAgentOverrideParams{UserAgent: ua}); err != nil {
		t.Fatalf("user agent: %v", err)
	}
	return &tab{t: t, ctx: ctx}
}

func (b *tab) eval(js string) (string, error) {
	return chromedp.Run(b.ctx, chromedp.Evaluate[string](js))
}

// waitNewPage waits until the page marked by mark() has been replaced by
// a loaded one.
func (b *tab) waitNewPage() error {
	for deadline := time.Now().Add(patience); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		if v, err := b.eval(`(window.__old ? "old" : document.readyState)`); err == nil && v == "complete" {
			return nil
		}
	}
	return fmt.Errorf("no new page after submitting")
}

// mark marks the current page, so waitNewPage sees it go.
func (b *tab) mark() error {
	_, err := b.eval(`window.__old = true, ""`)
	return err
}

// scan does what a link-checking gateway does with one mail: it opens
// every link, lets the page's scripts run and submits every form it
// finds, by script (trusted is false) or, as a gateway driving a browser
// may, with a synthetic mouse click (isTrusted true).
func (b *tab) scan(links []string, click bool) error {
	for _, link := range links {
		if err := chromedp.Do(b.ctx, chromedp.Navigate(link)); err != nil {
			return fmt.Errorf("open %s: %w", link, err)
		}
		n, err := chromedp.Run(b.ctx, chromedp.Evaluate[int](`document.forms.length`))
		if err != nil {
			return err
		}
		for i := range n {
			if i > 0 {
				if err := chromedp.Do(b.ctx, chromedp.Navigate(link)); err != nil {
					return err
				}
			}
			if err := b.mark(); err != nil {
				return err
			}
			if click {
				err = chromedp.Do(b.ctx, chromedp.Click(chromedp.CSS(fmt.Sprintf(`form:nth-of-type(%d) [type=submit]`, i+1))))
			} else {
				_, err = b.eval(fmt.Sprintf(`document.forms[%d].submit(), ""`, i))
			}
			if err != nil {
				return fmt.Errorf("submit form %d of %s: %w", i, link, err)
			}
			if err := b.waitNewPage(); err != nil {
				return fmt.Errorf("%s: %w", link, err)
			}
		}
	}
	return nil
}

// confirm is the person: the confirm page opened from the mail, a real
// mouse click on its button, the confirmation page.
func (b *tab) confirm(link, want string) error {
	ctx, cancel := context.WithTimeout(b.ctx, patience)
	defer cancel()
	if err := chromedp.Do(ctx, chromedp.Navigate(link), chromedp.WaitVisible(chromedp.CSS(`form button`))); err != nil {
		return fmt.Errorf("the confirm page with its button: %w", err)
	}
	if err := b.mark(); err != nil {
		return err
	}
	if err := chromedp.Do(b.ctx, chromedp.Click(chromedp.CSS(`form button`))); err != nil {
		return err
	}
	if err := b.waitNewPage(); err != nil {
		return err
	}
	if h1, err := b.eval(`document.querySelector("h1").textContent`); err != nil || h1 != want {
		return fmt.Errorf("after the click: %q, %v, want %q", h1, err, want)
	}
	return nil
}

// scannerService starts optin with 127.0.0.2 as a configured scanner
// network, no per-IP signup limit (every signup comes from 127.0.0.1)
// and a one-second window after delivery.
func scannerService(t *testing.T) *service {
	t.Helper()
	return startService(t, func(c *config.Config) {
		c.Limits.SignupPerIP = config.Rate{}
		c.Limits.Confirmations = config.Rate{}
		c.Scanners.Networks = []string{listedScanner}
		c.Scanners.Window = config.Duration(time.Second)
	})
}

// outcome is what became of one simulated mail.
type outcome struct {
	confirmed      bool
	class          consent.ConfirmClass
	scannerConsent bool // a confirmed event from a scanner's address
	open           bool // the request still open
}

func (s *service) outcome(addr string) (outcome, error) {
	a, err := consent.ParseAddress(addr)
	if err != nil {
		return outcome{}, err
	}
	ctx := context.Background()
	sub, err := s.app.DB.SubscriberByAddress(ctx, a)
	if err != nil {
		return outcome{}, fmt.Errorf("%s: %w", addr, err)
	}
	var o outcome
	o.confirmed = sub.Subscriptions["news"].Status == consent.StatusConfirmed
	if sub.PendingRequest != "" {
		req, err := s.app.DB.Request(ctx, sub.PendingRequest)
		o.open = err == nil && req.Open(s.app.DB.Now())
	}
	evs, err := s.app.DB.Events(ctx, sub.ID)
	if err != nil {
		return outcome{}, err
	}
	for _, e := range evs {
		if e.Type != consent.EventConfirmed {
			continue
		}
		if e.Check != nil {
			o.class = e.Check.Class
		}
		if e.Personal == nil || e.Personal.IP != "127.0.0.1" {
			o.scannerConsent = true
		}
	}
	return o, nil
}

// mustOutcome is outcome for the test's own goroutine.
func (s *service) mustOutcome(addr string) outcome {
	s.t.Helper()
	o, err := s.outcome(addr)
	if err != nil {
		s.t.Fatal(err)
	}
	return o
}

// TestScannerSimulation runs the mail scanners of the big gateways
// against optin's confirmation mails: for each mail, headless Chromium
// opens every link within seconds of delivery from another address,
// runs the pages' scripts and submits every form (confirm and "not me");
// three kinds of scanner take turns (a listed network with a headless
// user agent; a listed network passing as a desktop Chrome and clicking
// with synthetic mouse events; an unlisted network with a headless user
// agent). Then the person opens the confirm link from the signup's
// address and clicks with real input events. Goal: no consent recorded
// from a scanner, every person confirmed. -scanner.mails sets the number
// of mails (docs/performance.md: 200).
func TestScannerSimulation(t *testing.T) {
	browsertest.Chromium(t)
	n := *scannerMails
	s := scannerService(t)
	bases := map[string]string{listedScanner: relayFrom(t, s, listedScanner), unlistedScanner: relayFrom(t, s, unlistedScanner)}

	// Room for a slow, shared machine: a few seconds a mail.
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute+time.Duration(n)*5*time.Second)
	defer cancel()
	browser := browsertest.New(t, ctx)
	if err := chromedp.Do(browser, chromedp.Navigate("about:blank")); err != nil {
		t.Fatal(err)
	}
	kinds := []struct {
		name  string
		src   string
		tab   *tab
		click bool
	}{
		{"listed network, headless", listedScanner, newTab(t, browser, headlessUA), false},
		{"listed network, desktop Chrome, synthetic clicks", listedScanner, newTab(t, browser, personUA), true},
		{"unlisted network, headless", unlistedScanner, newTab(t, browser, headlessUA), false},
	}
	person := newTab(t, browser, personUA)
	confirmedTitle := "Subscription confirmed"

	start := time.Now()
	addrs := make([]string, n)
	for i := range n {
		addrs[i] = fmt.Sprintf("reader%03d@example.com", i)
		if r := s.signupJSON(addrs[i], "news"); r.status != http.StatusAccepted {
			t.Fatalf("signup %d: %d %s", i, r.status, r.body)
		}
	}
	mails := map[string][]string{}
	for _, m := range s.waitMails(n) {
		mails[m.To[0]] = mailLinks(t, m.Data)
	}

	// Each scanner kind takes every third mail as it arrives; the person
	// opens each mail once its scanner is done with it.
	var (
		mu                        sync.Mutex
		scannerConsents, stillOpn int
		scanTime                  time.Duration
	)
	scanned := make(chan int, n)
	var wg sync.WaitGroup
	for k, kind := range kinds {
		wg.Go(func() {
			for i := k; i < n; i += len(kinds) {
				var links []string
				for _, l := range mails[addrs[i]] {
					links = append(links, strings.Replace(l, s.url, bases[kind.src], 1))
				}
				t0 := time.Now()
				err := kind.tab.scan(links, kind.click)
				o, oerr := s.outcome(addrs[i])
				mu.Lock()
				scanTime += time.Since(t0)
				if o.confirmed || o.scannerConsent {
					scannerConsents++
				}
				if o.open {
					stillOpn++
				}
				mu.Unlock()
				if err != nil || oerr != nil {
					t.Errorf("scanner (%s) on mail %d: %v %v", kind.name, i, err, oerr)
				}
				scanned <- i
			}
		})
	}
	var personTime time.Duration
	for range n {
		i := <-scanned
		confirm := ""
		for _, l := range mails[addrs[i]] {
			if strings.Contains(l, "/confirm/") {
				confirm = l
			}
		}
		t0 := time.Now()
		if err := person.confirm(confirm, confirmedTitle); err != nil {
			t.Fatalf("person %s: %v", addrs[i], err)
		}
		personTime += time.Since(t0)
	}
	wg.Wait()

	classes := map[consent.ConfirmClass]int{}
	var people int
	for _, addr := range addrs {
		o := s.mustOutcome(addr)
		if o.scannerConsent {
			scannerConsents++
		}
		if o.confirmed && !o.scannerConsent {
			people++
		}
		classes[o.class]++
	}
	t.Logf("%d mails in %v (scanner time %v, person time %v): consents recorded from a scanner: %d (goal 0); requests still open after their scanner: %d/%d; people confirmed: %d/%d (goal all); people's classes: %v",
		n, time.Since(start).Round(time.Millisecond), scanTime.Round(time.Millisecond), personTime.Round(time.Millisecond),
		scannerConsents, stillOpn, n, people, n, classes)
	if scannerConsents != 0 || stillOpn != n || people != n || classes[consent.ClassSuspectedAutomated] != 0 {
		t.Errorf("consents from scanners %d (want 0), open after scanning %d (want %d), people confirmed %d (want %d), people suspected %d (want 0)",
			scannerConsents, stillOpn, n, people, n, classes[consent.ClassSuspectedAutomated])
	}
}

// TestScannerFetchOnlyAndHead: scanners that only fetch the links (GET)
// or only ask for their headers (HEAD) change nothing, and the person's
// click afterwards confirms; -scanner.mails mails each.
func TestScannerFetchOnlyAndHead(t *testing.T) {
	s := scannerService(t)
	scannerClient := httpFrom(listedScanner)
	for _, method := range []string{"GET", "HEAD"} {
		var changed, people int
		for i := range *scannerMails {
			addr := fmt.Sprintf("%s%03d@example.com", strings.ToLower(method), i)
			s.signupJSON(addr, "news")
			for _, l := range mailLinks(t, s.mailTo(addr).Data) {
				req, err := http.NewRequest(method, l, nil)
				if err != nil {
					t.Fatal(err)
				}
				req.Header.Set("User-Agent", personUA)
				res, err := scannerClient.Do(req)
				if err != nil {
					t.Fatal(err)
				}
				res.Body.Close()
			}
			if o := s.mustOutcome(addr); o.confirmed || !o.open {
				changed++
			}
			confirm, _ := links(t, plainText(t, s, addr))
			if r := s.do("POST", confirm, "application/x-www-form-urlencoded", ""); r.status != http.StatusOK {
				t.Fatalf("person after a %s-only scanner: %d", method, r.status)
			}
			if o := s.mustOutcome(addr); o.confirmed && !o.scannerConsent {
				people++
			}
		}
		t.Logf("%s-only scanner, %d mails: requests changed by the scanner: %d (goal 0); people confirmed: %d/%d",
			method, *scannerMails, changed, people, *scannerMails)
		if changed != 0 || people != *scannerMails {
			t.Errorf("%s-only scanner: %d requests changed (want 0), %d of %d people confirmed", method, changed, people, *scannerMails)
		}
	}
}

// plainText returns the text part of the mail to addr.
func plainText(t *testing.T, s *service, addr string) string {
	t.Helper()
	_, text, _ := mailParts(t, s.mailTo(addr).Data)
	return text
}

// TestScannerAtTheMomentThePersonClicks: the scanner submits the confirm
// and the not-me form at the very moment the person presses Confirm;
// whatever the order the server sees them in, the person is confirmed,
// once, and nothing is cancelled.
func TestScannerAtTheMomentThePersonClicks(t *testing.T) {
	s := scannerService(t)
	scannerClient := httpFrom(listedScanner)
	post := func(c *http.Client, u, ua string) (int, error) {
		req, err := http.NewRequest("POST", u, strings.NewReader(url.Values{}.Encode()))
		if err != nil {
			return 0, err
		}
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.Header.Set("User-Agent", ua)
		res, err := c.Do(req)
		if err != nil {
			return 0, err
		}
		defer res.Body.Close()
		return res.StatusCode, nil
	}
	n := *scannerMails
	var people int
	for i := range n {
		addr := fmt.Sprintf("race%03d@example.com", i)
		s.signupJSON(addr, "news")
		confirm, notMe := links(t, plainText(t, s, addr))
		var wg sync.WaitGroup
		startGun := make(chan struct{})
		codes := make([]int, 3)
		errs := make([]error, 3)
		for j, c := range []struct {
			client *http.Client
			url    string
			ua     string
		}{{client, confirm, personUA}, {scannerClient, confirm, headlessUA}, {scannerClient, notMe, headlessUA}} {
			wg.Go(func() {
				<-startGun
				codes[j], errs[j] = post(c.client, c.url, c.ua)
			})
		}
		close(startGun)
		wg.Wait()
		for j, err := range errs {
			if err != nil || codes[j] != http.StatusOK {
				t.Fatalf("mail %d, request %d: %d %v", i, j, codes[j], err)
			}
		}
		if o := s.mustOutcome(addr); !o.confirmed || o.scannerConsent || o.class == consent.ClassSuspectedAutomated {
			t.Errorf("mail %d: %+v, want confirmed by the person", i, o)
		} else {
			people++
		}
		sub, _ := s.subscriber(addr)
		var confirmed, cancelled int
		for _, e := range s.events(sub.ID) {
			switch e.Type {
			case "confirmed":
				confirmed++
			case "canceled":
				cancelled++
			}
		}
		if confirmed != 1 || cancelled != 0 {
			t.Errorf("mail %d: %d confirmed and %d canceled events, want 1 and 0", i, confirmed, cancelled)
		}
	}
	t.Logf("scanner at the moment of the click, %d mails: people confirmed once and nothing cancelled: %d/%d", n, people, n)
}
