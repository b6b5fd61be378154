package mail

import (
	"bytes"
	"io"
	"mime"
	"mime/multipart"
	"mime/quotedprintable"
	netmail "net/mail"
	"net/textproto"
	"strings"
	"testing"
	"unicode/utf8"

	"optin/internal/consent"
)

func TestAppendQuotedPrintable(t *testing.T) {
	tests := []struct{ name, in, want string }{
		{"plain", "Hello Ada", "Hello Ada"},
		{"line breaks become CRLF", "a\nb\r\nc\n", "a\r\nb\r\nc\r\n"},
		{"equals sign", "a=b", "a=3Db"},
		{"UTF-8", "café", "caf=C3=A9"},
		{"space before a line break", "a \nb\t\n", "a=20\r\nb=09\r\n"},
		{"space at the end", "a ", "a=20"},
		{"space inside", "a b\tc", "a b\tc"},
		{"lone CR", "a\rb", "a=0Db"},
		{"leading dot", ".\n.a\nb.", "=2E\r\n=2Ea\r\nb."},
		{"control character", "a\x00\x7fb", "a=00=7Fb"},
		{"long line", strings.Repeat("x", 80), strings.Repeat("x", 75) + "=\r\n" + strings.Repeat("x", 5)},
		{"escape kept whole at the wrap", strings.Repeat("x", 73) + "é", strings.Repeat("x", 73) + "=\r\n=C3=A9"},
		{"dot after a soft break", strings.Repeat("x", 75) + ".", strings.Repeat("x", 75) + "=\r\n=2E"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := string(appendQuotedPrintable(nil, tt.in)); got != tt.want {
				t.Errorf("appendQuotedPrintable(%q):\ngot  %q\nwant %q", tt.in, got, tt.want)
			}
		})
	}
}

func TestBuildFoldsLongHeaders(t *testing.T) {
	for _, subject := range []string{
		strings.Repeat("word ", 40) + "end",
		strings.Repeat("Grüße ", 30),
		strings.Repeat("x", 150),            // no space to fold at: one long line, well below 998
		strings.Repeat("x", 69) + " ",       // a trailing space just past the fold point
		"a" + strings.Repeat(" ", 97) + "b", // a run of spaces across the fold point
		strings.Repeat("x", 1200),           // too long for one line: encoded words
		"\t" + strings.Repeat("y", 1200),
		strings.Repeat("word ", 300),
	} {
		m := testMessage()
		m.Subject = subject
		raw := serialize(t, m)
		checkWire(t, raw)
		got, err := new(mime.WordDecoder).DecodeHeader(parse(t, raw).Header.Get("Subject"))
		if want := strings.Join(strings.Fields(subject), " "); err != nil || strings.Join(strings.Fields(got), " ") != want {
			t.Errorf("Subject: got %q (%v), want %q", got, err, want)
		}
	}
}

func TestBuildTextOnly(t *testing.T) {
	m := testMessage()
	m.HTML = ""
	parts := decodeParts(t, parse(t, serialize(t, m)))
	if got, want := strings.ReplaceAll(string(parts["text/plain"]), "\r\n", "\n"), m.Text; len(parts) != 1 || got != want {
		t.Errorf("parts: got %q, want one text/plain part %q", parts, want)
	}
}

func TestBuildRefusesUnsafeValues(t *testing.T) {
	for name, modify := range map[string]func(*Message){
		"message id with CRLF": func(m *Message) { m.MessageID = "a@b\r\nBcc: x@evil.test" },
		"message id with >":    func(m *Message) { m.MessageID = "a@b>" },
		"empty message id":     func(m *Message) { m.MessageID = "" },
		"long message id":      func(m *Message) { m.MessageID = strings.Repeat("a", 1000) + "@b" },
		"to with a name":       func(m *Message) { m.To = "Ada <ada@example.com>, x@evil.test" },
	} {
		m := testMessage()
		modify(&m)
		if _, err := Build(testFrom, m, testDate); err == nil {
			t.Errorf("%s: Build succeeded, want an error", name)
		}
	}
}

// checkWire checks what every built message must be on the wire: lines
// end in CRLF, none is longer than 998 octets, none starts with a dot, no
// header line holds white space alone, and the body is 7-bit
// quoted-printable text in lines of at most 76 characters that do not end
// in white space: the transport can send it as it is.
func checkWire(t *testing.T, raw []byte) {
	t.Helper()
	if !bytes.HasSuffix(raw, []byte("\r\n")) {
		t.Errorf("message does not end in CRLF")
	}
	head, body, _ := bytes.Cut(raw, []byte("\r\n\r\n"))
	for i, line := range bytes.Split(bytes.TrimSuffix(raw, []byte("\r\n")), []byte("\r\n")) {
		switch {
		case bytes.ContainsAny(line, "\r\n"):
			t.Errorf("line %d holds a bare CR or LF: %q", i, line)
		case len(line) > 998:
			t.Errorf("line %d is %d octets long", i, len(line))
		case bytes.HasPrefix(line, []byte(".")):
			t.Errorf("line %d starts with a dot: %q", i, line)
		}
	}
	for _, line := range bytes.Split(head, []byte("\r\n")) {
		if len(bytes.Trim(line, " \t")) == 0 {
			t.Errorf("header line of white space alone: %q", line)
		}
	}
	for _, line := range bytes.Split(body, []byte("\r\n")) {
		if len(line) > 76 || bytes.HasSuffix(line, []byte(" ")) || bytes.HasSuffix(line, []byte("\t")) {
			t.Errorf("body line breaks quoted-printable's rules: %q", line)
		}
		for _, c := range line {
			if c > '~' || c < ' ' && c != '\t' {
				t.Fatalf("body holds octet %#x", c)
			}
		}
	}
	if !wireReady(raw) {
		t.Errorf("the transport would have to dot-stuff the message")
	}
}

// FuzzBuild builds mails from fuzzed subjects and bodies and reads them
// back as a receiver would: the headers stay the headers, and both parts
// decode to what went in.
func FuzzBuild(f *testing.F) {
	f.Add("Please confirm", "Hello,\n.\nbye\n", "<p>Hi</p>")
	f.Add("Hi\r\nBcc: x@evil.test", "a \r\n\tb\r.c=", "")
	f.Add(strings.Repeat("Grüße ", 30), strings.Repeat("é", 100), strings.Repeat(" ", 200))
	f.Fuzz(func(t *testing.T, subject, text, html string) {
		m := testMessage()
		m.Subject, m.Text, m.HTML = subject, text, html
		msg, err := Build(testFrom, m, testDate)
		if err != nil {
			t.Fatalf("Build: %v", err)
		}
		checkWire(t, msg.Data)
		pm := parse(t, msg.Data)
		if got := len(header(pm, "Subject")); got != 1 {
			t.Fatalf("Subject headers: got %d, want 1", got)
		}
		if len(header(pm, "Bcc")) != 0 {
			t.Fatalf("a Bcc header appeared")
		}
		if utf8.ValidString(subject) {
			got, err := new(mime.WordDecoder).DecodeHeader(pm.Header.Get("Subject"))
			// A receiver's unfolding may merge the white space around a
			// fold, and trims the value's ends.
			if want := strings.Join(strings.Fields(subject), " "); err != nil || strings.Join(strings.Fields(got), " ") != want {
				t.Errorf("Subject: got %q (%v), want %q", got, err, want)
			}
		}
		parts := decodeParts(t, pm)
		want := map[string]string{"text/plain": text}
		if html != "" {
			want["text/html"] = html
		}
		if len(parts) != len(want) {
			t.Fatalf("got parts %q, want %d", parts, len(want))
		}
		for ct, w := range want {
			got := parts[ct]
			// Line breaks go out as CRLF; a lone CR is kept.
			w = strings.ReplaceAll(strings.ReplaceAll(w, "\r\n", "\n"), "\n", "\r\n")
			if html == "" { // a single part gains a final line break
				w = strings.TrimSuffix(w, "\r\n") + "\r\n"
				got = append(bytes.TrimSuffix(got, []byte("\r\n")), "\r\n"...)
			}
			if string(got) != w {
				t.Errorf("%s part:\ngot  %q\nwant %q", ct, got, w)
			}
		}
	})
}

// decodeParts returns the decoded body of each part of pm by content
// type: the one part of a single-part mail, or those of a
// multipart/alternative one. Every part must be quoted-printable.
func decodeParts(t *testing.T, pm *netmail.Message) map[string][]byte {
	t.Helper()
	parts := map[string][]byte{}
	decode := func(h textproto.MIMEHeader, body io.Reader) {
		if got := h.Get("Content-Transfer-Encoding"); got != "quoted-printable" {
			t.Errorf("part encoding: got %q, want quoted-printable", got)
		}
		b, err := io.ReadAll(quotedprintable.NewReader(body))
		if err != nil {
			t.Fatalf("decoding part: %v", err)
		}
		ct, _, _ := mime.ParseMediaType(h.Get("Content-Type"))
		parts[ct] = b
	}
	mt, params, err := mime.ParseMediaType(pm.Header.Get("Content-Type"))
	if err != nil {
		t.Fatalf("Content-Type: %v", err)
	}
	if mt != "multipart/alternative" {
		decode(textproto.MIMEHeader(pm.Header), pm.Body)
		return parts
	}
	mr := multipart.NewReader(pm.Body, params["boundary"])
	for {
		p, err := mr.NextRawPart()
		if err == io.EOF {
			return parts
		}
		if err != nil {
			t.Fatalf("reading part: %v", err)
		}
		decode(p.Header, p)
	}
}

func BenchmarkBuild(b *testing.B) {
	r, _ := newTestRenderer(b)
	m, err := r.Render(testJob(), testTopics, consent.Brand{})
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Build(testFrom, m, testDate); err != nil {
			b.Fatal(err)
		}
	}
}

func TestEncodeWords(t *testing.T) {
	for _, s := range []string{"", "a", "Grüße aus Köln", strings.Repeat("é", 100), "a_b=c?d \t\x00\xff", strings.Repeat("x", 300)} {
		enc := encodeWords(s, 20)
		for i, w := range strings.Split(enc, " ") {
			limit := 75
			if i == 0 {
				limit = 20
			}
			if len(w) > limit {
				t.Errorf("encodeWords(%q): word %d is %d long, want at most %d", s, i, len(w), limit)
			}
		}
		got, err := new(mime.WordDecoder).DecodeHeader(enc)
		if err != nil || got != s {
			t.Errorf("encodeWords(%q) = %q decodes to %q (%v)", s, enc, got, err)
		}
	}
}

// TestBuildIDNEnvelope: an address with an ASCII local part goes out with
// its domain in A-labels, so a relay without SMTPUTF8 takes it; a UTF-8
// local part can only go out as it is.
func TestBuildIDNEnvelope(t *testing.T) {
	tests := []struct{ from, to, wantFrom, wantTo string }{
		{"News <news@bücher.example>", "ann@bücher.example", "<news@xn--bcher-kva.example>", "<ann@xn--bcher-kva.example>"},
		{"news@example.com", "jösé@bücher.example", "<news@example.com>", "<jösé@bücher.example>"},
	}
	for _, tt := range tests {
		m := testMessage()
		m.To = tt.to
		o, err := Build(tt.from, m, testDate)
		if err != nil {
			t.Fatalf("Build(%q, to %q): %v", tt.from, tt.to, err)
		}
		if o.From != tt.wantFrom || o.To != tt.wantTo {
			t.Errorf("envelope of %q to %q: got %s %s, want %s %s", tt.from, tt.to, o.From, o.To, tt.wantFrom, tt.wantTo)
		}
		if h := parse(t, o.Data).Header; h.Get("To") != tt.wantTo {
			t.Errorf("To header: got %q, want %q", h.Get("To"), tt.wantTo)
		}
	}
}

// TestBuildListUnsubscribeMailto: the mailto: form follows the https one
// in List-Unsubscribe (RFC 2369 2, RFC 8058 3.1), and a mailto: URL that
// could break out of its brackets is refused.
func TestBuildListUnsubscribeMailto(t *testing.T) {
	m := testMessage()
	m.Unsubscribe = "https://optin.test/unsubscribe/tok"
	m.UnsubscribeMailto = "mailto:unsubscribe@bounces.optin.test?subject=tok"
	got := parse(t, serialize(t, m)).Header.Get("List-Unsubscribe")
	if want := "<https://optin.test/unsubscribe/tok>, <mailto:unsubscribe@bounces.optin.test?subject=tok>"; got != want {
		t.Errorf("List-Unsubscribe: got %q, want %q", got, want)
	}
	for _, bad := range []string{"mailto:a@b?subject=x>, <https://evil.test/", "mailto:a@b\r\nBcc: c@d", "https://x.test/", "mailto:a@b c"} {
		m.UnsubscribeMailto = bad
		if _, err := Build(testFrom, m, testDate); err == nil {
			t.Errorf("Build took the mailto: URL %q", bad)
		}
	}
}
