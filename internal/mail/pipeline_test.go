package mail

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/textproto"
	"strings"
	"testing"
	"time"

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

			// Build never writes a line that starts with a dot; the
			// transport must still stuff one in whatever it is handed.
			// A lone CR counts as a line break on both paths, so it
			// cannot hide a dot line from a relay that reads it as one.
			dotted := "Subject: dots\r\n\r\nHello,\r\n.\r\n..two dots\r\n.leading dot\r\nlone\r.CR\r\nend.\r\n"
			arrived := strings.Replace(dotted, "lone\r.CR", "lone\r\n.CR", 1)
			cases := []struct {
				to, data      string
				wantSent      bool
				wantPermanent bool
			}{
				{to: "first@example.com", wantPermanent: true},
				{to: "gone@example.com", wantPermanent: true},
				{to: "full@example.com"},
				{to: "dots@example.com", data: dotted, wantSent: true},
				{to: "last@example.com", wantSent: true},
			}
			var msgs []*Outgoing
			var ms []Message
			for i, c := range cases {
				m := testMessage()
				m.To = c.to
				m.MessageID = strings.Repeat(string(rune('a'+i)), 26) + "@optin.test"
				msg, err := Build(testFrom, m, testDate)
				if err != nil {
					t.Fatalf("Build: %v", err)
				}
				if c.data != "" {
					msg.Data = []byte(c.data)
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
			// Refusals, permanent or not, leave the session usable: the
			// next batch goes out on it.
			more, moreMs := testBatch(t, "more", 1, func(int) string { return "ada@example.com" })
			if err := tr.SendBatch(ctx, more, moreMs)[0]; err != nil {
				t.Errorf("the next batch: %v", err)
			}
			if got := srv.Sessions(); got != 1 {
				t.Errorf("SMTP sessions: got %d, want 1", got)
			}
			if string(got[0].Data) != arrived {
				t.Errorf("the mail with dotted lines arrived changed:\ngot  %q\nwant %q", got[0].Data, arrived)
			}
			if id := wantIDs[1]; !bytes.Contains(got[1].Data, []byte("Message-ID: <"+id+">")) {
				t.Errorf("received mail 1 lacks Message-ID %s", id)
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
		msgs, ms := testBatch(t, fmt.Sprintf("round%d-", round), 20, func(int) string { return "ada@example.com" })
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
	// The reader turns CRLF into LF; a lone CR is a line break too; a
	// message ends with a line break.
	want := bytes.ReplaceAll(bytes.ReplaceAll(msg, []byte("\r\n"), []byte("\n")), []byte("\r"), []byte("\n"))
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

// checkWireReady compares wireReady with its definition: msg ends in
// CRLF, every CR and LF is part of a CRLF, no line starts with a dot.
func checkWireReady(t *testing.T, msg []byte) {
	t.Helper()
	n := bytes.Count(msg, []byte("\n"))
	want := bytes.HasSuffix(msg, []byte("\r\n")) && msg[0] != '.' && !bytes.Contains(msg, []byte("\n.")) &&
		bytes.Count(msg, []byte("\r")) == n && bytes.Count(msg, []byte("\r\n")) == n
	if got := wireReady(msg); got != want {
		t.Errorf("wireReady(%q) = %v, want %v", msg, got, want)
	}
}

func TestAppendDotStuffed(t *testing.T) {
	for _, msg := range []string{
		"", "a", "a\r\nb\r\n", "a\nb", ".", ".\r\n", "..\n", ".a\r\n.\r\n", "a\r\n.\r\nb", "end\r\n.",
		"a\r.\r\n", "a\r\r\n", "\r", "x\r.\rQUIT\r\n", "\r\n", "\n", "a\nb\r\n", "a\r\nb\r\r\n", "a\r\n\r\n",
		"a\r\n.b\r\n", "a\rb\r\n",
	} {
		dotRoundTrip(t, []byte(msg))
		checkWireReady(t, []byte(msg))
	}
}

func FuzzAppendDotStuffed(f *testing.F) {
	for _, s := range []string{"Subject: x\r\n\r\nbody\r\n", ".\r\n", "a\n.b\n..\n"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, msg []byte) {
		dotRoundTrip(t, msg)
		checkWireReady(t, msg)
	})
}

// testBatch builds n test messages to to(i) with distinct Message-IDs.
func testBatch(t *testing.T, tag string, n int, to func(i int) string) ([]*Outgoing, []Message) {
	t.Helper()
	var msgs []*Outgoing
	var ms []Message
	for i := range n {
		m := testMessage()
		m.To = to(i)
		m.MessageID = fmt.Sprintf("%s%020d@optin.test", tag, i)
		msg, err := Build(testFrom, m, testDate)
		if err != nil {
			t.Fatalf("Build: %v", err)
		}
		msgs, ms = append(msgs, msg), append(ms, m)
	}
	return msgs, ms
}

// TestSMTPTransportFailedLastMailResets: a batch whose last mail is
// refused leaves no transaction open on the pooled session (the test
// server refuses a nested MAIL, as Postfix does), so the next batch on it
// goes through.
func TestSMTPTransportFailedLastMailResets(t *testing.T) {
	for _, noPipelining := range []bool{false, true} {
		srv := smtptest.Start(t, smtptest.Options{})
		srv.RefuseRcpt("gone@example.com", 550)
		tr := newTransport(t, SMTPConfig{Host: srv.Host(), Port: srv.Port(), TLS: "none", Conns: 1, noPipelining: noPipelining})
		ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
		defer cancel()
		msgs, ms := testBatch(t, "first", 2, func(i int) string { return []string{"ada@example.com", "gone@example.com"}[i] })
		errs := tr.SendBatch(ctx, msgs, ms)
		if errs[0] != nil || !errors.Is(errs[1], ErrPermanent) {
			t.Fatalf("noPipelining=%v: first batch: got %v, want sent and a permanent refusal", noPipelining, errs)
		}
		msgs, ms = testBatch(t, "second", 1, func(int) string { return "bob@example.com" })
		if err := tr.SendBatch(ctx, msgs, ms)[0]; err != nil {
			t.Errorf("noPipelining=%v: the batch after a refused last mail: %v", noPipelining, err)
		}
		if got := srv.Count(); got != 2 {
			t.Errorf("noPipelining=%v: received %d mails, want 2", noPipelining, got)
		}
		if got := srv.Sessions(); got != 1 {
			t.Errorf("noPipelining=%v: %d SMTP sessions, want 1", noPipelining, got)
		}
	}
}

// TestSMTPTransportSessionDropsMidBatch: when the relay closes the
// session between two mails, the mails it did not answer are sent again
// on a new session, and every mail arrives once.
func TestSMTPTransportSessionDropsMidBatch(t *testing.T) {
	srv := smtptest.Start(t, smtptest.Options{})
	srv.DropOnMail(4)
	tr := newTransport(t, SMTPConfig{Host: srv.Host(), Port: srv.Port(), TLS: "none", Conns: 1})
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	msgs, ms := testBatch(t, "drop", 6, func(i int) string { return fmt.Sprintf("p%d@example.com", i) })
	for i, err := range tr.SendBatch(ctx, msgs, ms) {
		if err != nil {
			t.Errorf("mail %d: %v", i, err)
		}
	}
	got := srv.Messages()
	if len(got) != 6 {
		t.Fatalf("received %d mails, want 6", len(got))
	}
	for i, m := range got {
		if want := fmt.Sprintf("p%d@example.com", i); len(m.To) != 1 || m.To[0] != want {
			t.Errorf("mail %d went to %v, want %s", i, m.To, want)
		}
	}
	if got := srv.Sessions(); got != 2 {
		t.Errorf("%d SMTP sessions, want 2", got)
	}
}

// TestSMTPTransportSlowRelayStopsAtDeadline: with a relay that does not
// answer a mail before the batch's time limit, the transport stops at the
// limit, and what it did not send is a temporary failure. The relay holds
// the fourth mail until the test lets it go, so the batch can only end by
// its deadline, however loaded the machine.
func TestSMTPTransportSlowRelayStopsAtDeadline(t *testing.T) {
	for _, noPipelining := range []bool{false, true} {
		srv := smtptest.Start(t, smtptest.Options{})
		hold := srv.HoldData("s3@example.com")
		tr := newTransport(t, SMTPConfig{Host: srv.Host(), Port: srv.Port(), TLS: "none", Conns: 1, noPipelining: noPipelining})
		msgs, ms := testBatch(t, "slow", 10, func(i int) string { return fmt.Sprintf("s%d@example.com", i) })
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		done := make(chan []error, 1)
		go func() { done <- tr.SendBatch(ctx, msgs, ms) }()
		var errs []error
		select {
		case errs = <-done:
		case <-time.After(waitTimeout):
			t.Fatalf("noPipelining=%v: SendBatch did not stop at its deadline while the relay held a mail", noPipelining)
		}
		cancel()
		sent := 0
		for i, err := range errs {
			switch {
			case err == nil:
				sent++
				if i >= 3 {
					t.Errorf("noPipelining=%v: mail %d reported sent after the held one", noPipelining, i)
				}
			case errors.Is(err, ErrPermanent):
				t.Errorf("noPipelining=%v: mail %d: got a permanent failure %v, want a temporary one", noPipelining, i, err)
			}
		}
		if sent != 3 {
			t.Errorf("noPipelining=%v: %d of %d sent before the held mail, want 3", noPipelining, sent, len(msgs))
		}
		// The held mail may still arrive once released (at least once
		// delivery); nothing after it was sent.
		hold.Release()
		if got := srv.Count(); got < sent || got > sent+1 {
			t.Errorf("noPipelining=%v: the relay has %d mails, the transport reported %d sent", noPipelining, got, sent)
		}
	}
}

// TestSMTPTransportIdleSessionKeepsWorking: a pooled session idle for
// longer than the command timeout, and a batch that takes longer than
// it, still go out on the one session: each exchange gets the timeout
// anew. Each exchange takes 120 ms of the relay's 1 s timeout, leaving
// room for a loaded machine.
func TestSMTPTransportIdleSessionKeepsWorking(t *testing.T) {
	for _, noPipelining := range []bool{false, true} {
		t.Run(fmt.Sprintf("noPipelining=%v", noPipelining), func(t *testing.T) {
			t.Parallel()
			srv := smtptest.Start(t, smtptest.Options{})
			srv.SlowData(120 * time.Millisecond)
			tr := newTransport(t, SMTPConfig{Host: srv.Host(), Port: srv.Port(), TLS: "none", Conns: 1,
				Timeout: time.Second, noPipelining: noPipelining})
			ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
			defer cancel()
			for round := range 2 {
				if round > 0 {
					time.Sleep(1200 * time.Millisecond) // idle past the timeout
				}
				msgs, ms := testBatch(t, fmt.Sprintf("idle%d-", round), 10, func(int) string { return "ada@example.com" })
				for i, err := range tr.SendBatch(ctx, msgs, ms) { // 10 x 120 ms: longer than the timeout
					if err != nil {
						t.Errorf("round %d, mail %d: %v", round, i, err)
					}
				}
			}
			if got := srv.Sessions(); got != 1 {
				t.Errorf("SMTP sessions: got %d, want 1", got)
			}
		})
	}
}

// BenchmarkSendBatch sends batches of 64 confirmation-sized mails to the
// in-process SMTP server, pipelined and one command at a time.
func BenchmarkSendBatch(b *testing.B) {
	for _, bb := range []struct {
		name         string
		noPipelining bool
	}{{"pipelined", false}, {"one-command-at-a-time", true}} {
		b.Run(bb.name, func(b *testing.B) {
			srv, err := smtptest.New("127.0.0.1:0", smtptest.Options{})
			if err != nil {
				b.Fatal(err)
			}
			defer srv.Close()
			srv.Discard(true)
			tr, err := NewSMTPTransport(SMTPConfig{Host: srv.Host(), Port: srv.Port(), TLS: "none", Conns: 1, noPipelining: bb.noPipelining})
			if err != nil {
				b.Fatal(err)
			}
			defer tr.Close()
			m := testMessage()
			m.Text = strings.Repeat("A line of a confirmation mail, about as long as the real ones.\n", 30)
			m.HTML = strings.Repeat("<p>A line of a confirmation mail, about as long as the real ones.</p>\n", 30)
			ctx := context.Background()
			b.ResetTimer()
			for b.Loop() {
				msgs := make([]*Outgoing, 64)
				ms := make([]Message, 64)
				for i := range msgs {
					if msgs[i], err = Build(testFrom, m, testDate); err != nil {
						b.Fatal(err)
					}
					ms[i] = m
				}
				for _, err := range tr.SendBatch(ctx, msgs, ms) {
					if err != nil {
						b.Fatal(err)
					}
				}
			}
			b.ReportMetric(float64(b.N*64)/b.Elapsed().Seconds(), "mails/s")
		})
	}
}

// TestSMTPTransportCancelledContext: a batch handed over with its context
// already done sends nothing and reports every mail unsent.
func TestSMTPTransportCancelledContext(t *testing.T) {
	srv := smtptest.Start(t, smtptest.Options{})
	tr := newTransport(t, SMTPConfig{Host: srv.Host(), Port: srv.Port(), TLS: "none", Conns: 1})
	msgs, ms := testBatch(t, "cancel", 3, func(i int) string { return fmt.Sprintf("c%d@example.com", i) })
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	for i, err := range tr.SendBatch(ctx, msgs, ms) {
		if !errors.Is(err, context.Canceled) {
			t.Errorf("mail %d: got %v, want context.Canceled", i, err)
		}
	}
	if got := srv.Count(); got != 0 {
		t.Errorf("the relay got %d mails", got)
	}
}
