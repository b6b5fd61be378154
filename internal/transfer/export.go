package transfer

import (
	"io"
	"slices"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"optin/internal/consent"
	"optin/internal/jsonenc"
)

// exportColumns are the CSV export's columns: one row per subscription.
// The last four came with channels: the person's phone number and postal
// address, and the subscription's optional channels (space-separated;
// email is implied by a confirmed status) and frequency.
var exportColumns = []string{"id", "email", "name", "locale", "created", "lifecycle", "last_purchase_at",
	"topic", "status", "basis", "since", "phone", "postal_address", "channels", "frequency"}

// Exporter writes subscribers to a bulk export file: CSV with a header
// and one row per subscription (a subscriber without any gets one row with
// empty subscription cells), or NDJSON with one subscriber per line:
//
//	{"id","email","name" (if any),"locale" (if any),"created","lifecycle",
//	 "last_purchase_at" (if any),"phone" (if any),"postal_address" (if any),
//	 "subscriptions":[{"topic","status","basis" (if any),"since",
//	 "assessment" (if any),"channels" (if any),"frequency" (if any)}, ...]}
//
// It writes each row itself into a buffer it reuses, with the bytes
// encoding/csv and encoding/json (escaping <, > and & as \u003c and so
// on) would write, and hands the buffer to w in blocks of about 64 KB.
type Exporter struct {
	w            io.Writer
	csv          bool
	now          time.Time
	dormantAfter time.Duration
	buf          []byte
	topics       []string // reused for the sorted topics of one subscriber
	err          error    // the first write error; later writes are skipped
}

// exportBlock is how much an Exporter gathers before writing to w.
const exportBlock = 64 << 10

// NewExporter returns an exporter of format (FormatCSV or FormatNDJSON)
// to w; lifecycles are reported at now with dormantAfter. Another format
// is EInvalid.
func NewExporter(w io.Writer, format string, now time.Time, dormantAfter time.Duration) (*Exporter, error) {
	if format != FormatCSV && format != FormatNDJSON {
		return nil, consent.Errorf(consent.EInvalid, "format must be csv or ndjson")
	}
	return &Exporter{w: w, csv: format == FormatCSV, now: now, dormantAfter: dormantAfter,
		buf: make([]byte, 0, exportBlock+4<<10)}, nil
}

// ContentType is the export's media type.
func (e *Exporter) ContentType() string {
	if e.csv {
		return "text/csv; charset=utf-8"
	}
	return "application/x-ndjson"
}

// Begin writes what comes before the first subscriber: the CSV header.
func (e *Exporter) Begin() error {
	if !e.csv {
		return nil
	}
	for i, c := range exportColumns {
		if i > 0 {
			e.buf = append(e.buf, ',')
		}
		e.buf = append(e.buf, c...)
	}
	e.buf = append(e.buf, '\n')
	return e.spill()
}

// Write writes one subscriber.
func (e *Exporter) Write(sub *consent.Subscriber) error {
	if e.err != nil {
		return e.err
	}
	e.topics = e.topics[:0]
	for t := range sub.Subscriptions {
		e.topics = append(e.topics, t)
	}
	slices.Sort(e.topics)
	lifecycle := sub.Lifecycle(e.now, e.dormantAfter)
	var err error
	if e.csv {
		e.buf = e.appendCSV(e.buf, sub, lifecycle)
	} else {
		e.buf, err = e.appendJSON(e.buf, sub, lifecycle)
	}
	if err != nil {
		return err
	}
	return e.spill()
}

// appendCSV appends sub's rows: its columns, then one row per
// subscription by topic, or one with empty subscription cells.
func (e *Exporter) appendCSV(b []byte, sub *consent.Subscriber, lifecycle consent.Lifecycle) []byte {
	head := len(b)
	b = appendCSVField(b, sub.ID)
	b = append(b, ',')
	b = appendCSVField(b, cell(sub.Email))
	b = append(b, ',')
	b = appendCSVField(b, cell(sub.Name))
	b = append(b, ',')
	b = appendCSVField(b, sub.Locale)
	b = append(b, ',')
	b = appendStamp(b, sub.Created)
	b = append(b, ',')
	b = appendCSVField(b, string(lifecycle))
	b = append(b, ',')
	b = appendStamp(b, sub.LastPurchase)
	b = append(b, ',')
	headEnd := len(b)
	if len(e.topics) == 0 {
		b = append(b, ",,,,"...)
		return appendCSVContact(b, sub, nil)
	}
	for i, t := range e.topics {
		if i > 0 {
			b = append(b, b[head:headEnd]...)
		}
		ss := sub.Subscriptions[t]
		b = appendCSVField(b, t)
		b = append(b, ',')
		b = appendCSVField(b, string(ss.Status))
		b = append(b, ',')
		b = appendCSVField(b, string(ss.Basis))
		b = append(b, ',')
		b = appendStamp(b, ss.Since)
		b = append(b, ',')
		b = appendCSVContact(b, sub, ss)
	}
	return b
}

// appendCSVContact appends the last four columns of a row and its line
// end: the phone number (E.164, whose "+" starts no formula: a
// spreadsheet tool must get it as it is), the postal address, and ss's
// channels and frequency (none without ss).
func appendCSVContact(b []byte, sub *consent.Subscriber, ss *consent.Subscription) []byte {
	b = appendCSVField(b, sub.Phone)
	b = append(b, ',')
	b = appendCSVField(b, cell(sub.PostalAddress))
	b = append(b, ',')
	if ss != nil {
		var chs strings.Builder
		for i, c := range ss.Channels {
			if i > 0 {
				chs.WriteByte(' ')
			}
			chs.WriteString(string(c))
		}
		b = appendCSVField(b, chs.String())
		b = append(b, ',')
		b = appendCSVField(b, string(ss.Frequency))
	} else {
		b = append(b, ',')
	}
	return append(b, '\n')
}

// appendJSON appends sub's NDJSON line.
func (e *Exporter) appendJSON(b []byte, sub *consent.Subscriber, lifecycle consent.Lifecycle) ([]byte, error) {
	var err error
	b = append(b, `{"id":`...)
	b = jsonenc.AppendString(b, sub.ID)
	b = append(b, `,"email":`...)
	b = jsonenc.AppendString(b, sub.Email)
	b = jsonenc.AppendOptional(b, `,"name":`, sub.Name)
	b = jsonenc.AppendOptional(b, `,"locale":`, sub.Locale)
	b = append(b, `,"created":`...)
	if b, err = jsonenc.AppendTime(b, sub.Created); err != nil {
		return b, err
	}
	b = append(b, `,"lifecycle":`...)
	b = jsonenc.AppendString(b, string(lifecycle))
	if !sub.LastPurchase.IsZero() {
		b = append(b, `,"last_purchase_at":`...)
		if b, err = jsonenc.AppendTime(b, sub.LastPurchase); err != nil {
			return b, err
		}
	}
	b = jsonenc.AppendOptional(b, `,"phone":`, sub.Phone)
	b = jsonenc.AppendOptional(b, `,"postal_address":`, sub.PostalAddress)
	b = append(b, `,"subscriptions":[`...)
	for i, t := range e.topics {
		ss := sub.Subscriptions[t]
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, `{"topic":`...)
		b = jsonenc.AppendString(b, t)
		b = append(b, `,"status":`...)
		b = jsonenc.AppendString(b, string(ss.Status))
		b = jsonenc.AppendOptional(b, `,"basis":`, string(ss.Basis))
		b = append(b, `,"since":`...)
		if b, err = jsonenc.AppendTime(b, ss.Since); err != nil {
			return b, err
		}
		b = jsonenc.AppendOptional(b, `,"assessment":`, ss.Assessment)
		if len(ss.Channels) > 0 {
			b = append(b, `,"channels":[`...)
			for i, c := range ss.Channels {
				if i > 0 {
					b = append(b, ',')
				}
				b = jsonenc.AppendString(b, string(c))
			}
			b = append(b, ']')
		}
		b = jsonenc.AppendOptional(b, `,"frequency":`, string(ss.Frequency))
		b = append(b, '}')
	}
	return append(b, "]}\n"...), nil
}

// spill writes the buffer to w once it holds a block.
func (e *Exporter) spill() error {
	if len(e.buf) < exportBlock {
		return nil
	}
	return e.writeOut()
}

func (e *Exporter) writeOut() error {
	if e.err == nil && len(e.buf) > 0 {
		_, e.err = e.w.Write(e.buf)
	}
	e.buf = e.buf[:0]
	return e.err
}

// Flush writes what is buffered and reports an earlier write error.
func (e *Exporter) Flush() error { return e.writeOut() }

// appendCSVField appends field as encoding/csv's Writer (comma, LF line
// ends) writes it: quoted, with quotes doubled, when it holds a comma, a
// quote, CR or LF, starts with white space or is \. .
func appendCSVField(b []byte, field string) []byte {
	if !csvNeedsQuotes(field) {
		return append(b, field...)
	}
	b = append(b, '"')
	for i := 0; i < len(field); i++ {
		if field[i] == '"' {
			b = append(b, '"')
		}
		b = append(b, field[i])
	}
	return append(b, '"')
}

func csvNeedsQuotes(field string) bool {
	if field == "" {
		return false
	}
	if field == `\.` {
		return true
	}
	for i := 0; i < len(field); i++ { // strings.ContainsAny builds its set on every call
		switch field[i] {
		case '\n', '\r', '"', ',':
			return true
		}
	}
	r, _ := utf8.DecodeRuneInString(field)
	return unicode.IsSpace(r)
}

// cell defuses spreadsheet formulas: a text cell starting with = + - @ or
// a tab or CR gets a leading apostrophe (OWASP CSV injection advice).
func cell(v string) string {
	if v != "" && strings.ContainsRune("=+-@\t\r", rune(v[0])) {
		return "'" + v
	}
	return v
}

// appendStamp appends a time for CSV: RFC 3339 in UTC with milliseconds,
// or nothing for the zero time.
func appendStamp(b []byte, t time.Time) []byte {
	if t.IsZero() {
		return b
	}
	if out, ok := jsonenc.AppendUTC(b, t, true); ok {
		return out
	}
	return t.UTC().AppendFormat(b, "2006-01-02T15:04:05.000Z07:00") // a year past 9999 or before 0
}
