package app

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"optin/internal/consent"
)

// TestNameOnlyToConfirmedAddresses: a mail to an address nobody has
// confirmed yet never echoes the name typed next to it (a stranger's text,
// such as a link, in a mail to a stranger); once the address is confirmed
// mails greet by name.
func TestNameOnlyToConfirmedAddresses(t *testing.T) {
	s := startService(t, nil)
	const evil = "http://evil.test/confirm/x"
	signup := func(addr string) {
		b, _ := json.Marshal(map[string]any{"email": addr, "topics": []string{"news"}, "name": evil})
		if r := s.do("POST", "/f/newsletter", "application/json", string(b), "Accept", "application/json"); r.status != http.StatusAccepted {
			t.Fatalf("signup %s: got %d %s", addr, r.status, r.body)
		}
	}
	noName := func(what string, raw []byte) {
		t.Helper()
		h, text, html := mailParts(t, raw)
		for part, body := range map[string]string{"text": text, "HTML": html, "To": h.Get("To"), "Subject": h.Get("Subject")} {
			if strings.Contains(body, "evil.test") {
				t.Errorf("%s: %s echoes the typed name:\n%s", what, part, body)
			}
		}
		if !strings.Contains(text, "Hello there,") {
			t.Errorf("%s: text part does not greet anonymously:\n%s", what, text)
		}
	}

	signup("victim@example.com")
	noName("confirmation mail", s.mailTo("victim@example.com").Data)

	// The address is still unconfirmed: a preference link mailed to it
	// leaves the name out too.
	_, m := s.manageLink("victim@example.com")
	if strings.Contains(m.text, "evil.test") || !strings.Contains(m.text, "Hello there,") {
		t.Errorf("preference mail to an unconfirmed address echoes the name:\n%s", m.text)
	}

	// Confirmed: the person has seen the mail and acted on it.
	confirm, _ := links(t, parseMail(t, s.mailTo("victim@example.com").Data).text)
	if r := s.do("POST", confirm, "", ""); r.status != http.StatusOK {
		t.Fatalf("confirm: got %d", r.status)
	}
	s.clock.Advance(consent.ManageMailGap) // past the gap between preference mails
	_, m = s.manageLink("victim@example.com")
	if !strings.Contains(m.text, "Hello "+evil+",") {
		t.Errorf("preference mail to a confirmed address does not greet by name:\n%s", m.text)
	}
}
