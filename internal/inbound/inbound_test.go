package inbound

import (
	"bytes"
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-smtp"

	"optin/internal/bolt"
	"optin/internal/consent"
	optmail "optin/internal/mail"
	"optin/internal/smtptest"
	"optin/internal/token"
)

func TestParseReport(t *testing.T) {
	const dsnHead = "MIME-Version: 1.0\r\nContent-Type: multipart/report; report-type=delivery-status; boundary=b\r\n\r\n"
	tests := []struct {
		name string
		data string
		want Report
		err  bool
	}{
		{name: "dsn", data: dsnHead + "--b\r\nContent-Type: text/plain\r\n\r\nsorry\r\n--b\r\nContent-Type: message/delivery-status\r\n\r\n" +
			"Reporting-MTA: dns; mx\r\n\r\nOriginal-Recipient: rfc822;Ann@Example.com\r\nFinal-Recipient: RFC822; <ann@example.com>\r\nAction: Failed\r\nStatus: 5.1.1 (no such user)\r\n\r\n" +
			"Final-Recipient: rfc822; bob@example.com\r\nAction: delayed\r\nStatus: 4.4.7\r\n--b--\r\n",
			want: Report{Type: "delivery-status", Recipients: []Recipient{
				{Addresses: []string{"ann@example.com", "Ann@Example.com"}, Action: "failed", Status: "5.1.1"},
				{Addresses: []string{"bob@example.com"}, Action: "delayed", Status: "4.4.7"}}}},
		{name: "base64 status part, global", data: dsnHead + "--b\r\nContent-Type: message/global-delivery-status\r\nContent-Transfer-Encoding: base64\r\n\r\n" +
			"UmVwb3J0aW5nLU1UQTogZG5zOyBteAoKRmluYWwtUmVjaXBpZW50OiByZmM4MjI7IGFubkBleGFtcGxlLmNvbQpBY3Rpb246IGZhaWxlZApTdGF0dXM6IDUuMi4xCg==\r\n--b--\r\n",
			want: Report{Type: "delivery-status", Recipients: []Recipient{{Addresses: []string{"ann@example.com"}, Action: "failed", Status: "5.2.1"}}}},
		{name: "malformed status", data: dsnHead + "--b\r\nContent-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; mx\r\n\r\nFinal-Recipient: rfc822; a@b.example\r\nAction: failed\r\nStatus: 5.1\r\n--b--\r\n",
			want: Report{Type: "delivery-status", Recipients: []Recipient{{Addresses: []string{"a@b.example"}, Action: "failed"}}}},
		{name: "arf", data: "Content-Type: multipart/report; report-type=feedback-report; boundary=b\r\n\r\n--b\r\nContent-Type: message/feedback-report\r\n\r\n" +
			"Feedback-Type: Abuse\r\nVersion: 1\r\nOriginal-Rcpt-To: <ann@example.com>\r\n\r\n--b\r\nContent-Type: text/rfc822-headers\r\n\r\nTo: ann@example.com\r\nReturn-Path: <b-1-2@r.example>\r\n--b--\r\n",
			want: Report{Type: "feedback-report", FeedbackType: "abuse", OriginalRcptTo: []string{"ann@example.com"}}},
		{name: "plain mail", data: "Subject: hi\r\n\r\nhello\r\n", err: true},
		{name: "other report type", data: "Content-Type: multipart/report; report-type=disposition-notification; boundary=b\r\n\r\n--b--\r\n", err: true},
		{name: "dsn without status part", data: dsnHead + "--b\r\nContent-Type: text/plain\r\n\r\nsorry\r\n--b--\r\n", err: true},
		{name: "broken multipart", data: dsnHead + "--b\r\nContent-Type: message/delivery-status\r\n\r\nAction: failed", err: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseReport([]byte(tt.data))
			if tt.err {
				if !errors.Is(err, ErrNotReport) {
					t.Errorf("got %+v, %v; want ErrNotReport", got, err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			got.Original = nil
			if !equalReports(got, tt.want) {
				t.Errorf("got  %+v\nwant %+v", got, tt.want)
			}
		})
	}
}

func equalReports(a, b Report) bool {
	if a.Type != b.Type || a.FeedbackType != b.FeedbackType || strings.Join(a.OriginalRcptTo, ",") != strings.Join(b.OriginalRcptTo, ",") ||
		len(a.Recipients) != len(b.Recipients) {
		return false
	}
	for i := range a.Recipients {
		x, y := a.Recipients[i], b.Recipients[i]
		if x.Action != y.Action || x.Status != y.Status || strings.Join(x.Addresses, ",") != strings.Join(y.Addresses, ",") {
			return false
		}
	}
	return true
}

// startListener runs a listener over a real bbolt store on loopback.
func startListener(t *testing.T, perMinute int) *Server {
	t.Helper()
	db, err := bolt.Open(filepath.Join(t.TempDir(), "optin.db"), bolt.Options{MessageIDDomain: "example.com",
		Policy: consent.DefaultPolicy(), HMACKey: bytes.Repeat([]byte{'h'}, 32)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	rp, err := optmail.NewReturnPath("bounces.example.com", "example.com", [][]byte{bytes.Repeat([]byte{'k'}, 32)})
	if err != nil {
		t.Fatal(err)
	}
	tokens, err := token.NewIssuer("http://127.0.0.1", []token.Key{{ID: "k1", Secret: bytes.Repeat([]byte{'t'}, 32)}}, time.Now)
	if err != nil {
		t.Fatal(err)
	}
	s, err := Listen(Config{Addr: "127.0.0.1:0", ReturnPath: rp, Store: db, Tokens: tokens, PerMinute: perMinute})
	if err != nil {
		t.Fatal(err)
	}
	go s.Serve()
	t.Cleanup(func() { s.Close() })
	return s
}

// send hands one mail to s and returns the first refusal.
func send(t *testing.T, s *Server, to string, data []byte) error {
	t.Helper()
	return smtptest.Deliver(s.Addr().String(), "", to, data)
}

func code(err error) int {
	var se *smtp.SMTPError
	if errors.As(err, &se) {
		return se.Code
	}
	return 0
}

// TestListenerLimits: the listener refuses other domains (no open
// relay), unknown mailboxes, mail over MaxMessageBytes and mail beyond its
// rate.
func TestListenerLimits(t *testing.T) {
	s := startListener(t, 4)
	junk := []byte("Subject: hi\r\n\r\nhello\r\n")
	for to, want := range map[string]int{"x@example.org": 550, "x@bounces.example.com.evil": 550, "nobody@bounces.example.com": 550} {
		if got := code(send(t, s, to, junk)); got != want {
			t.Errorf("RCPT %s: got %d, want %d", to, got, want)
		}
	}
	big := append([]byte("Subject: big\r\n\r\n"), bytes.Repeat([]byte("0123456789012345678901234567890123456789\r\n"), MaxMessageBytes/40)...)
	if got := code(send(t, s, "postmaster@bounces.example.com", big)); got != 552 {
		t.Errorf("a mail over the size limit: got %d, want 552", got)
	}
	// The three above that reached MAIL and the big one used up the rate.
	if got := code(send(t, s, "postmaster@Bounces.Example.com", junk)); got != 451 {
		t.Errorf("a mail beyond the rate: got %d, want 451", got)
	}
}
