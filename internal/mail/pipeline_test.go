package mail

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"io"
	"net/textproto"
	"strings"
	"testing"

	gomail "github.com/wneessen/go-mail"

	"optin/internal/smtptest"
)

// TestSMTPTransportBatch sends one batch with a refused DATA, a refused
// and a deferred recipient and two good mails, one of them with lines
// that start with a dot, in both session styles: each mail gets its own
// outcome and the good ones arrive intact.
func TestSMTPTransportBatch(t *testing.T) {
	for _, tt := range []struct {
		name         string
		noPipelining bool
	}{
		{"pipelined", false},
		{"one command at a time", true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			srv := smtptest.Start(t, smtptest.Options{})
			srv.FailNext(1, 554, "content refused") // the first DATA
			srv.RefuseRcpt("gone@example.com", 550)
			srv.RefuseRcpt("full@example.com", 452)
			tr := newTransport(t, SMTPConfig{Host: srv.Host(), Port: srv.Port(), TLS: "none", Conns: 1,
				noPipelining: tt.noPipelining})

			dotted := "Hello,\n.\n..two dots\n.leading dot\nend.\n"
			cases := []struct {
				to, text      string
				wantSent      bool
				wantPermanent bool
			}{
				{to: "first@example.com", wantPermanent: true},
				{to: "gone@example.com", wantPermanent: true},
				{to: "full@example.com"},
				{to: "dots@example.com", text: dotted, wantSent: true},
				{to: "last@example.com", wantSent: true},
			}
			var msgs []*gomail.Msg
			var ms []Message
			for i, c := range cases {
				m := testMessage()
				m.To = c.to
				m.MessageID = strings.Repeat(string(rune('a'+i)), 26) + "@optin.test"
				if c.text != "" {
					m.Text = c.text
				}
				msg, err := Build(testFrom, m, testDate)
				if err != nil {
					t.Fatalf("Build: %v", err)
				}
				msgs, ms = append(msgs, msg), append(ms, m)
			}
			ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
			defer cancel()
			errs := tr.SendBatch(ctx, msgs, ms)

			var wantIDs []string
			for i, c := range cases {
				err := errs[i]
				switch {
				case c.wantSent && err != nil:
					t.Errorf("mail to %s: got %v, want it sent", c.to, err)
				case !c.wantSent && err == nil:
					t.Errorf("mail to %s: sent, want an error", c.to)
				case !c.wantSent && errors.Is(err, ErrPermanent) != c.wantPermanent:
					t.Errorf("mail to %s: got %v, want permanent=%v", c.to, err, c.wantPermanent)
				}
				if c.wantSent {
					wantIDs = append(wantIDs, ms[i].MessageID)
				}
			}
			got := srv.Messages()
			if len(got) != len(wantIDs) {
				t.Fatalf("received %d mails, want %d", len(got), len(wantIDs))
			}
			for i, id := range wantIDs {
				if !bytes.Contains(got[i].Data, []byte("Message-ID: <"+id+">")) {
					t.Errorf("received mail %d lacks Message-ID %s", i, id)
				}
			}
			// The part boundary is random, so compare the text part's lines.
			if want := "\r\n\r\nHello,\r\n.\r\n..two dots\r\n.leading dot\r\nend.\r\n\r\n--"; !bytes.Contains(got[0].Data, []byte(want)) {
				t.Errorf("the mail with dotted lines arrived changed:\n%s", got[0].Data)
			}
		})
	}
}

// TestSMTPTransportPipelinedSession checks that a batch shares one
// session and that mails sent later reuse it.
func TestSMTPTransportPipelinedSession(t *testing.T) {
	srv := smtptest.Start(t, smtptest.Options{})
	tr := newTransport(t, SMTPConfig{Host: srv.Host(), Port: srv.Port(), TLS: "none", Conns: 1})
	for round := range 3 {
		var msgs []*gomail.Msg
		var ms []Message
		for i := range 20 {
			m := testMessage()
			m.MessageID = strings.Repeat(string(rune('a'+round)), 20) + strings.Repeat(string(rune('a'+i)), 6) + "@optin.test"
			msg, err := Build(testFrom, m, testDate)
			if err != nil {
				t.Fatal(err)
			}
			msgs, ms = append(msgs, msg), append(ms, m)
		}
		ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
		for i, err := range tr.SendBatch(ctx, msgs, ms) {
			if err != nil {
				t.Errorf("round %d, mail %d: %v", round, i, err)
			}
		}
		cancel()
	}
	if got, want := srv.Count(), 60; got != want {
		t.Errorf("received mails: got %d, want %d", got, want)
	}
	if got := srv.Sessions(); got != 1 {
		t.Errorf("SMTP sessions: got %d, want 1", got)
	}
}

// dotRoundTrip stuffs msg and reads it back the way an SMTP server does.
func dotRoundTrip(t *testing.T, msg []byte) {
	t.Helper()
	stuffed := appendDotStuffed(nil, msg)
	r := textproto.NewReader(bufio.NewReader(io.MultiReader(bytes.NewReader(stuffed), strings.NewReader("NEXT\r\n"))))
	got, err := io.ReadAll(r.DotReader())
	if err != nil {
		t.Fatalf("reading back %q: %v", stuffed, err)
	}
	// The reader turns CRLF into LF; a message ends with a line break.
	want := bytes.ReplaceAll(msg, []byte("\r\n"), []byte("\n"))
	if len(want) > 0 && want[len(want)-1] != '\n' {
		want = append(want, '\n')
	}
	if !bytes.Equal(got, want) {
		t.Errorf("round trip of %q through %q: got %q", msg, stuffed, got)
	}
	if rest, _ := r.ReadLine(); rest != "NEXT" {
		t.Errorf("after the content of %q the next line is %q, want NEXT", msg, rest)
	}
}

func TestAppendDotStuffed(t *testing.T) {
	for _, msg := range []string{
		"", "a", "a\r\nb\r\n", "a\nb", ".", ".\r\n", "..\n", ".a\r\n.\r\n", "a\r\n.\r\nb", "end\r\n.",
	} {
		dotRoundTrip(t, []byte(msg))
	}
}

func FuzzAppendDotStuffed(f *testing.F) {
	for _, s := range []string{"Subject: x\r\n\r\nbody\r\n", ".\r\n", "a\n.b\n..\n"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, msg []byte) {
		if bytes.Contains(bytes.ReplaceAll(msg, []byte("\r\n"), nil), []byte("\r")) {
			t.Skip("a lone CR is no line break, and go-mail never writes one")
		}
		dotRoundTrip(t, msg)
	})
}
