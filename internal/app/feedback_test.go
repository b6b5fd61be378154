package app

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-msgauth/dkim"

	"optin/internal/config"
	"optin/internal/consent"
	optmail "optin/internal/mail"
	"optin/internal/smtptest"
	"optin/internal/webhooktest"
)

const returnPathDomain = "bounces.example.com"

// startFeedbackService runs optin with DKIM signing (an RSA and an
// Ed25519 key), VERP under returnPathDomain and the inbound listener on a
// loopback port, and returns the DNS TXT records of its keys.
func startFeedbackService(t *testing.T) (*service, map[string]string) {
	t.Helper()
	dir := t.TempDir()
	records := map[string]string{}
	var files []string
	for _, kind := range []string{"rsa", "ed25519"} {
		pemKey, rec, err := optmail.NewDKIMKey(kind, "example.com", kind)
		if err != nil {
			t.Fatal(err)
		}
		f := filepath.Join(dir, kind+".pem")
		if err := os.WriteFile(f, pemKey, 0o600); err != nil {
			t.Fatal(err)
		}
		files, records[kind+"._domainkey.example.com"] = append(files, f), rec
	}
	s := startService(t, func(c *config.Config) {
		c.Mail.DKIM = config.DKIM{Domain: "example.com", Selector: "rsa", PrivateKeyFile: files[0],
			MoreKeys: []config.DKIMKey{{Selector: "ed25519", PrivateKeyFile: files[1]}}}
		c.Mail.ReturnPathDomain = returnPathDomain
		c.Mail.Inbound.Listen = "127.0.0.1:0"
		c.Mail.Inbound.SoftBounces = config.Rate{N: 2, Per: 24 * time.Hour}
	})
	return s, records
}

// mailOf returns the last mail the relay took for addr.
func (s *service) mailOf(addr string) (envelopeFrom string, raw []byte) {
	s.t.Helper()
	msgs := s.smtp.Messages()
	for i := len(msgs) - 1; i >= 0; i-- {
		if len(msgs[i].To) == 1 && msgs[i].To[0] == addr {
			return msgs[i].From, msgs[i].Data
		}
	}
	s.t.Fatalf("no mail to %s", addr)
	return "", nil
}

// sendInbound hands a mail to optin's inbound listener over SMTP.
func (s *service) sendInbound(from, to, data string) error {
	s.t.Helper()
	return smtptest.Deliver(s.app.Inbound.Addr().String(), from, to, []byte(strings.ReplaceAll(data, "\n", "\r\n")))
}

// dsn is a delivery status notification (RFC 3464) about the mail with
// messageID to rcpt, with status.
func dsn(rcpt, status, messageID string) string {
	action := "failed"
	if strings.HasPrefix(status, "4.") {
		action = "delayed"
	}
	return fmt.Sprintf(`From: Mail Delivery System <MAILER-DAEMON@mx.example.net>
Subject: Undelivered Mail Returned to Sender
MIME-Version: 1.0
Content-Type: multipart/report; report-type=delivery-status; boundary="BOUNDARY"

--BOUNDARY
Content-Type: text/plain

The mail could not be delivered.

--BOUNDARY
Content-Type: message/delivery-status

Reporting-MTA: dns; mx.example.net

Final-Recipient: rfc822; %s
Action: %s
Status: %s
Diagnostic-Code: smtp; 550 5.1.1 no such user

--BOUNDARY
Content-Type: text/rfc822-headers

From: Example News <news@example.com>
To: %s
Message-ID: <%s>
Subject: Please confirm

--BOUNDARY--
`, rcpt, action, status, rcpt, messageID)
}

// arf is an abuse report (RFC 5965) about the mail with messageID to rcpt
// whose envelope sender was returnPath.
func arf(rcpt, returnPath, messageID string) string {
	return fmt.Sprintf(`From: Feedback Loop <fbl@isp.example.net>
Subject: Abuse report
MIME-Version: 1.0
Content-Type: multipart/report; report-type=feedback-report; boundary="B2"

--B2
Content-Type: text/plain

This is an email abuse report.

--B2
Content-Type: message/feedback-report

Feedback-Type: abuse
User-Agent: isp-fbl/1.0
Version: 1
Original-Rcpt-To: <%s>

--B2
Content-Type: message/rfc822

Return-Path: <%s>
From: Example News <news@example.com>
To: %s
Message-ID: <%s>
Subject: Your preferences

Hello.

--B2--
`, rcpt, returnPath, rcpt, messageID)
}

func (s *service) suppressionCount() int {
	s.t.Helper()
	page, err := s.app.DB.Suppressions(context.Background(), nil, "", 1000)
	if err != nil {
		s.t.Fatal(err)
	}
	return len(page.Items)
}

var verpRE = regexp.MustCompile(`^<?b-[0-9a-v]+-[0-9a-v]{16}@` + regexp.QuoteMeta(returnPathDomain) + `>?$`)

// TestMailIsSignedAndCarriesVERP: the mail optin sends, as the relay
// received it, carries a DKIM signature per key that an independent
// verifier accepts, covering List-Unsubscribe, and a VERP envelope sender.
func TestMailIsSignedAndCarriesVERP(t *testing.T) {
	s, records := startFeedbackService(t)
	s.confirmed("signed@example.com")
	s.manageLink("signed@example.com")
	from, raw := s.mailOf("signed@example.com")
	if !verpRE.MatchString(from) {
		t.Errorf("envelope sender %q is no VERP address at %s", from, returnPathDomain)
	}
	vs, err := dkim.VerifyWithOptions(bytes.NewReader(raw), &dkim.VerifyOptions{LookupTXT: func(name string) ([]string, error) {
		return []string{records[name]}, nil
	}})
	if err != nil || len(vs) != 2 {
		t.Fatalf("verify: %d signatures, %v; want 2", len(vs), err)
	}
	for _, v := range vs {
		if v.Err != nil {
			t.Errorf("signature: %v", v.Err)
		}
		if !strings.Contains(strings.ToLower(strings.Join(v.HeaderKeys, ":")), "list-unsubscribe:list-unsubscribe-post") {
			t.Errorf("h= %v does not cover the List-Unsubscribe fields", v.HeaderKeys)
		}
	}
}

// TestBouncesAndComplaintsOverSMTP: a DSN to a mail's VERP address and an
// ARF report to abuse@ suppress exactly the address they are about, with a
// ledger event citing the mail's Message-ID; forged reports and mail for
// other domains change nothing.
func TestBouncesAndComplaintsOverSMTP(t *testing.T) {
	s, _ := startFeedbackService(t)
	ann, bob := s.confirmed("ann@example.com"), s.confirmed("bob@example.com")
	carl := s.confirmed("carl@example.com")
	annVERP, _ := s.mailOf("ann@example.com")
	bobVERP, _ := s.mailOf("bob@example.com")
	carlVERP, _ := s.mailOf("carl@example.com")
	annMsgID := s.events(ann)[0].MessageID
	bobMsgID := s.events(bob)[0].MessageID
	annVERP, bobVERP, carlVERP = strings.Trim(annVERP, "<>"), strings.Trim(bobVERP, "<>"), strings.Trim(carlVERP, "<>")

	// Forged: a report to a VERP address about an address optin never
	// mailed with it, one with a made-up MAC, and one that is no report.
	before := s.suppressionCount()
	for _, forged := range []struct{ to, data string }{
		{carlVERP, dsn("dave@example.com", "5.1.1", "x@example.com")},
		{"b-" + strings.Repeat("0", 36) + "-" + strings.Repeat("a", 16) + "@" + returnPathDomain, dsn("carl@example.com", "5.1.1", "x@example.com")},
		{carlVERP, "Subject: hello\n\nnot a report\n"},
		{"abuse@" + returnPathDomain, arf("carl@example.com", "b-1-2@"+returnPathDomain, "x@example.com")},
	} {
		if err := s.sendInbound("", forged.to, forged.data); err != nil {
			t.Fatalf("forged report: the listener refused it: %v", err)
		}
	}
	if got := s.suppressionCount(); got != before || s.suppressed("carl@example.com", "") || s.suppressed("dave@example.com", "") {
		t.Errorf("forged reports changed the suppression list: %d entries, want %d", got, before)
	}
	if n := strings.Count(s.logs.String(), "inbound: ignored a mail"); n != 4 {
		t.Errorf("%d forged reports logged, want 4", n)
	}

	// Not an open relay: other domains and unknown mailboxes are refused.
	for _, to := range []string{"someone@example.org", "nobody@" + returnPathDomain} {
		if err := s.sendInbound("x@example.org", to, "Subject: relay?\n\nhi\n"); err == nil {
			t.Errorf("the listener took mail for %s", to)
		}
	}

	if err := s.sendInbound("", annVERP, dsn("ann@example.com", "5.1.1", annMsgID)); err != nil {
		t.Fatal(err)
	}
	if !s.suppressed("ann@example.com", "") || s.suppressed("bob@example.com", "") || s.suppressed("carl@example.com", "") {
		t.Error("after ann's bounce: want ann suppressed, bob and carl not")
	}
	evs := s.events(ann)
	if last := evs[len(evs)-1]; last.Type != "suppressed" || last.Source != consent.ReasonBounce || last.MessageID != annMsgID {
		t.Errorf("ann's last event: %+v, want suppressed, bounce, %s", last, annMsgID)
	}

	if err := s.sendInbound("fbl@isp.example.net", "abuse@"+returnPathDomain, arf("bob@example.com", bobVERP, bobMsgID)); err != nil {
		t.Fatal(err)
	}
	if !s.suppressed("bob@example.com", "") || s.suppressed("carl@example.com", "") {
		t.Error("after bob's complaint: want bob suppressed, carl not")
	}
	if sub, _ := s.subscriber("bob@example.com"); sub.Subscriptions["news"].Status != "unsubscribed" {
		t.Errorf("bob after a complaint: news is %q, want unsubscribed", sub.Subscriptions["news"].Status)
	}
	evs = s.events(bob)
	if last := evs[len(evs)-1]; last.Type != "suppressed" || last.Source != consent.ReasonComplaint || last.MessageID != bobMsgID {
		t.Errorf("bob's last event: %+v, want suppressed, complaint, %s", last, bobMsgID)
	}
	// Soft bounces suppress at mail.inbound.soft_bounces (2 a day here).
	carlMsgID := s.events(carl)[0].MessageID
	if err := s.sendInbound("", carlVERP, dsn("carl@example.com", "4.2.2", carlMsgID)); err != nil {
		t.Fatal(err)
	}
	if s.suppressed("carl@example.com", "") {
		t.Error("one soft bounce suppressed carl")
	}
	if got := s.suppressionCount(); got != before+2 {
		t.Errorf("suppressions: %d, want %d (ann and bob)", got, before+2)
	}
	if err := s.sendInbound("", carlVERP, dsn("carl@example.com", "4.2.2", carlMsgID)); err != nil {
		t.Fatal(err)
	}
	if !s.suppressed("carl@example.com", "") {
		t.Error("the second soft bounce in a day did not suppress carl")
	}
	var verify struct {
		OK bool `json:"ok"`
	}
	s.adminJSON("GET", "/ledger/verify", "", 200, &verify)
	if !verify.OK {
		t.Error("the ledger chain does not verify")
	}
}

var mailtoRE = regexp.MustCompile(`<mailto:([^?>]+)\?subject=([^>]+)>`)

// TestMailtoUnsubscribe: the preference mail's List-Unsubscribe carries
// the https and the mailto: form; mailing the mailto: address with its
// subject unsubscribes the person, and a mail with a bad token does not.
func TestMailtoUnsubscribe(t *testing.T) {
	s, _ := startFeedbackService(t)
	id := s.confirmed("mailto@example.com")
	s.confirmed("other@example.com")
	_, m := s.manageLink("mailto@example.com")
	lu := m.header.Get("List-Unsubscribe")
	if !strings.HasPrefix(lu, "<http://127.0.0.1:") {
		t.Errorf("List-Unsubscribe %q does not start with the https form", lu)
	}
	match := mailtoRE.FindStringSubmatch(lu)
	if match == nil || match[1] != "unsubscribe@"+returnPathDomain {
		t.Fatalf("List-Unsubscribe %q has no mailto: unsubscribe@%s", lu, returnPathDomain)
	}
	if err := s.sendInbound("mailto@example.com", match[1], "Subject: "+match[2]+"x\n\n"); err != nil {
		t.Fatal(err)
	}
	if sub, _ := s.subscriber("mailto@example.com"); sub.Subscriptions["news"].Status != "confirmed" {
		t.Error("a bad token unsubscribed the person")
	}
	if err := s.sendInbound("mailto@example.com", match[1], "Subject: "+match[2]+"\n\n"); err != nil {
		t.Fatal(err)
	}
	if sub, _ := s.subscriber("mailto@example.com"); sub.Subscriptions["news"].Status != "unsubscribed" {
		t.Errorf("after the mailto: unsubscribe news is %q, want unsubscribed", sub.Subscriptions["news"].Status)
	}
	evs := s.events(id)
	if last := evs[len(evs)-1]; last.Type != "unsubscribed" || last.Source != consent.ChannelEmail {
		t.Errorf("last event %+v, want unsubscribed by email", last)
	}
	if sub, _ := s.subscriber("other@example.com"); sub.Subscriptions["news"].Status != "confirmed" || s.suppressed("other@example.com", "") {
		t.Error("another subscriber changed")
	}
}

// TestRelayFeedbackWebhook: a relay's bounce and complaint reports through
// POST /api/v1/feedback suppress the right address with a ledger event
// citing the Message-ID and an audit entry; soft bounces are counted; bad
// input and a key without the admin role change nothing.
func TestRelayFeedbackWebhook(t *testing.T) {
	s := startService(t, nil)
	ann := s.confirmed("ann@example.com")
	s.confirmed("bob@example.com")
	msgID := s.events(ann)[0].MessageID
	before := s.suppressionCount()
	rcv := webhooktest.Start(t)
	s.hook(rcv, "evidence")

	marketer := s.newKey("marketer", consent.RoleMarketer)
	if r := s.adminAs(marketer, "POST", "/feedback", "application/json", `{"type":"bounce","email":"ann@example.com"}`); r.status != 403 {
		t.Errorf("marketer: got %d, want 403", r.status)
	}
	for _, bad := range []string{`{"type":"bogus","email":"ann@example.com"}`, `{"type":"bounce","email":"not an address"}`,
		`{"type":"bounce","email":"ann@example.com","message_id":"<x@y>"}`, `{"type":"bounce","email":"ann@example.com","extra":1}`} {
		s.adminJSON("POST", "/feedback", bad, 400, nil)
	}
	if s.suppressionCount() != before {
		t.Fatal("refused reports changed the suppression list")
	}

	var res struct {
		Suppressed  bool `json:"suppressed"`
		SoftBounces int  `json:"soft_bounces"`
	}
	s.adminJSON("POST", "/feedback", `{"type":"soft_bounce","email":"bob@example.com","status":"4.2.2"}`, 200, &res)
	if res.Suppressed || res.SoftBounces != 1 || s.suppressed("bob@example.com", "") {
		t.Errorf("soft bounce: got %+v, want counted, not suppressed", res)
	}
	s.adminJSON("POST", "/feedback", `{"type":"bounce","email":"ann@example.com","message_id":"`+msgID+`","status":"5.1.1"}`, 200, &res)
	if !res.Suppressed || !s.suppressed("ann@example.com", "") || s.suppressed("bob@example.com", "") {
		t.Errorf("bounce: got %+v; want ann suppressed and bob not", res)
	}
	evs := s.events(ann)
	if last := evs[len(evs)-1]; last.Type != "suppressed" || last.Source != consent.ReasonBounce || last.MessageID != msgID {
		t.Errorf("ann's last event %+v, want suppressed, bounce, %s", last, msgID)
	}
	page, err := s.app.DB.Suppressions(context.Background(), nil, "", 1000)
	if err != nil {
		t.Fatal(err)
	}
	var relay int
	for _, sup := range page.Items {
		if sup.Source == consent.ChannelRelay && sup.Reason == consent.ReasonBounce {
			relay++
		}
	}
	if relay != 1 {
		t.Errorf("suppressions from the relay: %d, want 1", relay)
	}
	var audit struct{ Items []consent.AuditEntry }
	s.adminJSON("GET", "/audit", "", 200, &audit)
	if len(audit.Items) == 0 || !strings.HasPrefix(audit.Items[0].Action, "feedback.") {
		t.Errorf("audit: %+v, want the feedback first", audit.Items)
	}
	// The shop's other tools learn of the bounce: a suppressed webhook
	// about ann, with the reason.
	for deadline := time.Now().Add(patience); ; time.Sleep(20 * time.Millisecond) {
		i := slices.IndexFunc(rcv.Messages(), func(m webhooktest.Message) bool { return m.Type == "suppressed" })
		if i >= 0 {
			if m := rcv.Messages()[i]; m.Data.Subscriber != ann || !strings.Contains(m.Body, `"bounce"`) {
				t.Errorf("suppressed webhook: got %s, want ann's bounce", m.Body)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no suppressed webhook after the bounce; got %d messages", len(rcv.Messages()))
		}
	}
}
