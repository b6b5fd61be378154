package app

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"optin/internal/browsertest"
	"optin/internal/config"
	"optin/internal/token"
)

// TestBrowserChannels opens, in headless Chromium, the hosted form that
// offers channels and the preference page of a person who chose some, in
// English, Italian and Swedish: the channels, the number, the address and
// the frequency show in the page's language (from the catalogs), each
// channel's box is a comfortable touch target, nothing is wider than a
// 390 px phone, and axe-core finds no serious or critical problem. On the
// phone, the person then ticks a channel and picks a frequency, and Save
// keeps both. Screenshots go to $OPTIN_ARTIFACTS/pages.
func TestBrowserChannels(t *testing.T) {
	browsertest.Chromium(t)
	cat := loadCatalog(t)
	s := startService(t, func(c *config.Config) { c.Preferences.Channels = []string{"sms", "phone", "post"} })
	s.adminJSON("POST", "/topics", `{"id":"offers","name":"Offers","description":"Seasonal discounts",
		"translations":{"it":{"name":"Offerte"},"sv":{"name":"Erbjudanden"}},"frequencies":["weekly","monthly"]}`, http.StatusCreated, nil)
	shop := httptest.NewServer(shopPage(s.url, "locale=en&channels=1"))
	defer shop.Close()
	s.adminJSON("PUT", "/forms/newsletter", `{"topics":["news","offers"],"channels":["sms","post"],"allowed_origins":["`+shop.URL+`"]}`, http.StatusOK, nil)
	ct := newConsoleTab(t, s)
	shots, saveShot := pageShots(t, ct)
	// touch checks that every channel box's label is at least 44 px
	// high, a comfortable target for a finger (WCAG 2.5.5).
	touch := func(name string) {
		t.Helper()
		ct.do("phone", chromedp.EmulateViewport(390, 844))
		ct.expect(name+": channel labels are touch targets", `String(Array.from(document.querySelectorAll(".channels label")).every(l => l.getBoundingClientRect().height >= 44))`, "true")
		ct.do("reset viewport", chromedp.EmulateViewport(900, 1000))
	}

	for _, loc := range []string{"en", "it", "sv"} {
		l := cat.For(loc)
		ct.lang(loc)
		ct.do("open form "+loc, chromedp.Navigate(s.url+"/f/newsletter?locale="+loc))
		ct.waitEval("form: loaded", `document.readyState`, "complete")
		ct.expect("form "+loc+": sms label", `document.querySelector('input[value="news:sms"]').parentElement.textContent.trim()`, l.T("channel.sms"))
		ct.expect("form "+loc+": phone field", `document.querySelector('input[name=phone]').closest("label").textContent.trim()`, l.T("channels.phone_label_sms"))
		touch("form-channels-" + loc)
		ct.axe("form-channels-" + loc)
		ct.fits("form-channels-"+loc, saveShot)

		addr := "chan-" + loc + "@example.com"
		b, _ := json.Marshal(map[string]any{"email": addr, "topics": []string{"news", "offers"}, "locale": loc,
			"channels": []string{"news:sms", "offers:post"}, "phone": "+46 70 123 45 67", "postal_address": "Storgatan 1\n111 22 Stockholm"})
		if r := s.do("POST", "/f/newsletter", "application/json", string(b), "Accept", "application/json"); r.status != http.StatusAccepted {
			t.Fatalf("signup %s: %d %s", addr, r.status, r.body)
		}
		_, text, _ := mailParts(t, s.mailTo(addr).Data)
		confirm, _ := links(t, text)
		if r := s.do("POST", confirm, "", ""); r.status != http.StatusOK {
			t.Fatalf("confirm %s: %d", addr, r.status)
		}
		sub, _ := s.subscriber(addr)
		prefs, err := s.app.Tokens.Issue(token.Preferences, token.Claims{Subject: sub.ID, ExpiresAt: time.Now().Add(time.Hour)})
		if err != nil {
			t.Fatal(err)
		}
		name := "preferences-channels-" + loc
		ct.do("open "+name, chromedp.Navigate(s.url+"/preferences/"+prefs))
		ct.waitEval(name+": loaded", `document.readyState`, "complete")
		ct.expect(name+": language", `document.documentElement.lang`, loc)
		ct.expect(name+": sms on news", `String(document.querySelector('input[value="news:sms"]').checked)`, "true")
		ct.expect(name+": post on offers", `String(document.querySelector('input[value="offers:post"]').checked)`, "true")
		ct.expect(name+": call on offers offered, not ticked", `String(document.querySelector('input[value="offers:phone"]').checked)`, "false")
		ct.expect(name+": channel label", `document.querySelector('input[value="news:phone"]').parentElement.textContent.trim()`, l.T("channel.phone"))
		ct.expect(name+": number", `document.querySelector('input[name=phone]').value`, "+46701234567")
		ct.expect(name+": address", `document.querySelector('textarea[name=postal_address]').value`, "Storgatan 1\n111 22 Stockholm")
		ct.expect(name+": frequencies", `Array.from(document.querySelectorAll('select[name="frequency.offers"] option')).map(o => o.textContent).join("|")`,
			strings.Join([]string{l.T("frequency.any"), l.T("frequency.weekly"), l.T("frequency.monthly")}, "|"))
		ct.expect(name+": note", `String(document.body.textContent.includes(`+jsString(l.T("channels.note"))+`))`, "true")
		touch(name)
		ct.axe(name)
		ct.fits(name, saveShot)

		if loc != "en" {
			continue
		}
		// On the phone: tick a call for offers, choose monthly, save.
		ct.do("phone", chromedp.EmulateViewport(390, 844))
		ct.do("tick a call", chromedp.Click(chromedp.CSS(`input[value="offers:phone"]`)))
		ct.do("monthly", chromedp.SetValue(chromedp.CSS(`select[name="frequency.offers"]`), "monthly"))
		before := ct.eval(`String(performance.timeOrigin)`)
		ct.do("save", chromedp.Click(chromedp.CSS("main form button[type=submit]")))
		for deadline := time.Now().Add(patience); ct.eval(`String(performance.timeOrigin)`) == before; time.Sleep(50 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatal("Save led nowhere")
			}
		}
		ct.waitEval("saved: loaded", `document.readyState`, "complete")
		ct.expect("saved: message", `document.querySelector('[role=status]').textContent`, l.T("preferences.saved"))
		ct.expect("saved: call on offers", `String(document.querySelector('input[value="offers:phone"]').checked)`, "true")
		ct.expect("saved: monthly", `document.querySelector('select[name="frequency.offers"]').value`, "monthly")
		ct.expect("saved: fits the phone", `String(document.documentElement.scrollWidth <= window.innerWidth)`, "true")
		saveShot("preferences-channels-saved-en-phone")
		ct.do("reset viewport", chromedp.EmulateViewport(900, 1000))
		var types []string
		for _, e := range s.channelEvents(sub.ID, "channel_consented", "frequency_chosen") {
			types = append(types, e.Type+" "+e.Channel+e.Frequency+" "+e.Source)
		}
		if want := "channel_consented sms form:newsletter,channel_consented post form:newsletter,channel_consented phone preferences,frequency_chosen monthly preferences"; strings.Join(types, ",") != want {
			t.Errorf("events: got %q, want %q", strings.Join(types, ","), want)
		}
	}

	// The embedded form on the shop's page offers the channels too, and
	// a signup from it carries them to the confirmation.
	ct.lang("en")
	ct.do("open the shop", chromedp.Navigate(shop.URL))
	ct.waitEval("embed: rendered", `String(document.querySelectorAll('.optin-channels input[value="offers:sms"]').length)`, "1")
	ct.expect("embed: phone field", `String(!!document.querySelector('.optin-form input[name=phone]'))`, "true")
	ct.expect("embed: postal field", `String(!!document.querySelector('.optin-form textarea[name=postal_address]'))`, "true")
	ct.do("phone", chromedp.EmulateViewport(390, 844))
	ct.expect("embed: fits the phone", `String(document.documentElement.scrollWidth <= window.innerWidth)`, "true")
	ct.expect("embed: channel labels are touch targets", `String(Array.from(document.querySelectorAll(".optin-channels label")).every(l => l.getBoundingClientRect().height >= 44))`, "true")
	saveShot("embed-channels-en-phone")
	ct.do("fill the embedded form",
		chromedp.SendKeys(chromedp.CSS(`.optin-form input[name=email]`), "embed-chan@example.com"),
		chromedp.Click(chromedp.CSS(`.optin-form input[value="offers"]`)),
		chromedp.Click(chromedp.CSS(`.optin-form input[value="offers:sms"]`)),
		chromedp.SendKeys(chromedp.CSS(`.optin-form input[name=phone]`), "+39 312 345 6789"),
		chromedp.Click(chromedp.CSS(`.optin-form button[type=submit]`)))
	ct.waitEval("embed: thanks", `document.querySelector('.optin-status').textContent`, cat.For("en").T("thanks.message"))
	ct.do("reset viewport", chromedp.EmulateViewport(900, 1000))
	_, text, _ := mailParts(t, s.mailTo("embed-chan@example.com").Data)
	confirm, _ := links(t, text)
	if r := s.do("POST", confirm, "", ""); r.status != http.StatusOK {
		t.Fatalf("confirm the embedded signup: %d", r.status)
	}
	sub, _ := s.subscriber("embed-chan@example.com")
	evs := s.channelEvents(sub.ID, "channel_consented")
	if len(evs) != 1 || evs[0].Channel != "sms" || strings.Join(evs[0].Topics, ",") != "offers" || evs[0].Page != shop.URL+"/" ||
		evs[0].Personal == nil || evs[0].Personal.Phone != "+393123456789" {
		t.Errorf("embedded signup's channel consent: got %+v", evs)
	}
	if !strings.HasPrefix(shots, os.TempDir()) {
		t.Logf("screenshots: %s", shots)
	}
}

// jsString quotes s as a JavaScript string literal.
func jsString(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}
