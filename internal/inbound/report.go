package inbound

import (
	"bufio"
	"bytes"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"net/mail"
	"net/textproto"
	"regexp"
	"strings"
)

// Report is what optin reads from a delivery status notification (RFC
// 3464) or an abuse report (RFC 5965).
type Report struct {
	// Type is the report-type of the multipart/report (RFC 6522):
	// "delivery-status" or "feedback-report".
	Type string
	// Recipients are a DSN's per-recipient fields.
	Recipients []Recipient
	// FeedbackType is an abuse report's Feedback-Type ("abuse", "fraud",
	// "not-spam", ...), in lower case.
	FeedbackType string
	// OriginalRcptTo are an abuse report's Original-Rcpt-To addresses.
	OriginalRcptTo []string
	// Original is the header of the mail the report is about, as the
	// report returns it (message/rfc822 or text/rfc822-headers); nil when
	// it returns none.
	Original mail.Header
}

// Recipient is one recipient a DSN reports on.
type Recipient struct {
	// Addresses are the Final-Recipient and Original-Recipient
	// addresses, without their address type.
	Addresses []string
	Action    string // failed, delayed, delivered, relayed or expanded, in lower case
	Status    string // "5.1.1"; "" when the field is missing or malformed
}

// ErrNotReport marks a mail that is no multipart/report of a kind optin
// reads.
var ErrNotReport = errors.New("inbound: not a delivery status notification or abuse report")

// statusRE is a DSN status code (RFC 3463 2): class.subject.detail.
var statusRE = regexp.MustCompile(`^[245]\.[0-9]{1,3}\.[0-9]{1,3}$`)

// maxReportParts bounds the parts read from one report.
const maxReportParts = 8

// ParseReport reads a multipart/report mail (RFC 6522) of type
// delivery-status (RFC 3464, and RFC 6533's message/global-delivery-status)
// or feedback-report (RFC 5965). Anything else is ErrNotReport.
func ParseReport(data []byte) (Report, error) {
	msg, err := mail.ReadMessage(bytes.NewReader(data))
	if err != nil {
		return Report{}, fmt.Errorf("%w: %w", ErrNotReport, err)
	}
	mt, params, err := mime.ParseMediaType(msg.Header.Get("Content-Type"))
	if err != nil || mt != "multipart/report" || params["boundary"] == "" {
		return Report{}, ErrNotReport
	}
	r := Report{Type: strings.ToLower(params["report-type"])}
	if r.Type != "delivery-status" && r.Type != "feedback-report" {
		return Report{}, ErrNotReport
	}
	mr := multipart.NewReader(msg.Body, params["boundary"])
	found := false
	for range maxReportParts {
		p, err := mr.NextPart()
		if err == io.EOF {
			break
		}
		if err != nil {
			return Report{}, fmt.Errorf("%w: %w", ErrNotReport, err)
		}
		body, err := partBody(p)
		if err != nil {
			return Report{}, fmt.Errorf("%w: %w", ErrNotReport, err)
		}
		pt, _, _ := mime.ParseMediaType(p.Header.Get("Content-Type"))
		switch pt {
		case "message/delivery-status", "message/global-delivery-status":
			r.Recipients, found = deliveryStatus(body), r.Type == "delivery-status"
		case "message/feedback-report":
			fields := fieldBlocks(body)
			if len(fields) > 0 {
				r.FeedbackType = strings.ToLower(strings.TrimSpace(fields[0].Get("Feedback-Type")))
				for _, v := range fields[0].Values("Original-Rcpt-To") {
					r.OriginalRcptTo = append(r.OriginalRcptTo, stripAddressType(v))
				}
			}
			found = r.Type == "feedback-report" && r.FeedbackType != ""
		case "message/rfc822", "message/global", "text/rfc822-headers", "message/global-headers":
			if !bytes.Contains(body, []byte("\n\n")) && !bytes.Contains(body, []byte("\r\n\r\n")) {
				body = append(body, "\r\n\r\n"...) // headers alone
			}
			if m, err := mail.ReadMessage(bytes.NewReader(body)); err == nil {
				r.Original = m.Header
			}
		}
	}
	if !found {
		return Report{}, ErrNotReport
	}
	return r, nil
}

// partBody reads a part, decoding base64 (multipart.Reader decodes
// quoted-printable itself).
func partBody(p *multipart.Part) ([]byte, error) {
	var r io.Reader = p
	if strings.EqualFold(strings.TrimSpace(p.Header.Get("Content-Transfer-Encoding")), "base64") {
		r = base64.NewDecoder(base64.StdEncoding, p)
	}
	return io.ReadAll(r)
}

// fieldBlocks reads body as header-like blocks separated by empty lines,
// as message/delivery-status and message/feedback-report are written.
func fieldBlocks(body []byte) []textproto.MIMEHeader {
	tr := textproto.NewReader(bufio.NewReader(bytes.NewReader(body)))
	var blocks []textproto.MIMEHeader
	for range 1000 {
		h, err := tr.ReadMIMEHeader()
		if len(h) > 0 {
			blocks = append(blocks, h)
		}
		if err != nil {
			break
		}
	}
	return blocks
}

// deliveryStatus reads the per-recipient blocks of a
// message/delivery-status body (RFC 3464 2.3); the first block is the
// per-message one.
func deliveryStatus(body []byte) []Recipient {
	blocks := fieldBlocks(body)
	var rs []Recipient
	for i, b := range blocks {
		if i == 0 && b.Get("Final-Recipient") == "" {
			continue
		}
		var rc Recipient
		for _, f := range []string{"Final-Recipient", "Original-Recipient"} {
			if v := stripAddressType(b.Get(f)); v != "" {
				rc.Addresses = append(rc.Addresses, v)
			}
		}
		rc.Action = strings.ToLower(strings.TrimSpace(b.Get("Action")))
		if st := strings.Fields(b.Get("Status")); len(st) > 0 && statusRE.MatchString(st[0]) {
			rc.Status = st[0]
		}
		rs = append(rs, rc)
	}
	return rs
}

// stripAddressType returns the address of a field "rfc822; a@b.example"
// (RFC 3464 2.3.1, RFC 5965 3.5): what follows the first ";", trimmed
// and without angle brackets.
func stripAddressType(v string) string {
	if _, a, ok := strings.Cut(v, ";"); ok {
		v = a
	}
	return strings.Trim(strings.TrimSpace(v), "<>")
}
