package transfer

import (
	"encoding/csv"
	"encoding/json"
	"io"
	"slices"
	"sort"
	"strings"
	"time"

	"optin/internal/consent"
)

// exportColumns are the CSV export's columns: one row per subscription.
// The last four came with channels: the person's phone number and postal
// address, and the subscription's optional channels (space-separated;
// email is implied by a confirmed status) and frequency.
var exportColumns = []string{"id", "email", "name", "locale", "created", "lifecycle", "last_purchase_at",
	"topic", "status", "basis", "since", "phone", "postal_address", "channels", "frequency"}

// exportRecord is one NDJSON export line.
type exportRecord struct {
	ID             string                  `json:"id"`
	Email          string                  `json:"email"`
	Name           string                  `json:"name,omitempty"`
	Locale         string                  `json:"locale,omitempty"`
	Created        time.Time               `json:"created"`
	Lifecycle      consent.Lifecycle       `json:"lifecycle"`
	LastPurchaseAt time.Time               `json:"last_purchase_at,omitzero"`
	Phone          string                  `json:"phone,omitempty"`
	PostalAddress  string                  `json:"postal_address,omitempty"`
	Subscriptions  []*consent.Subscription `json:"subscriptions"`
}

// Exporter writes subscribers to a bulk export file: CSV with a header
// and one row per subscription (a subscriber without any gets one row with
// empty subscription cells), or NDJSON with one subscriber per line.
type Exporter struct {
	format       string
	now          time.Time
	dormantAfter time.Duration
	csv          *csv.Writer
	json         *json.Encoder
}

// NewExporter returns an exporter of format (FormatCSV or FormatNDJSON)
// to w; lifecycles are reported at now with dormantAfter. Another format
// is EInvalid.
func NewExporter(w io.Writer, format string, now time.Time, dormantAfter time.Duration) (*Exporter, error) {
	e := &Exporter{format: format, now: now, dormantAfter: dormantAfter}
	switch format {
	case FormatCSV:
		e.csv = csv.NewWriter(w)
	case FormatNDJSON:
		e.json = json.NewEncoder(w)
	default:
		return nil, consent.Errorf(consent.EInvalid, "format must be csv or ndjson")
	}
	return e, nil
}

// ContentType is the export's media type.
func (e *Exporter) ContentType() string {
	if e.csv != nil {
		return "text/csv; charset=utf-8"
	}
	return "application/x-ndjson"
}

// Begin writes what comes before the first subscriber: the CSV header.
func (e *Exporter) Begin() error {
	if e.csv == nil {
		return nil
	}
	return e.csv.Write(exportColumns)
}

// Write writes one subscriber.
func (e *Exporter) Write(sub *consent.Subscriber) error {
	subs := sortedSubscriptions(sub)
	if e.json != nil {
		return e.json.Encode(exportRecord{ID: sub.ID, Email: sub.Email, Name: sub.Name, Locale: sub.Locale,
			Created: sub.Created, Lifecycle: sub.Lifecycle(e.now, e.dormantAfter),
			LastPurchaseAt: sub.LastPurchase, Phone: sub.Phone, PostalAddress: sub.PostalAddress, Subscriptions: subs})
	}
	head := []string{sub.ID, cell(sub.Email), cell(sub.Name), sub.Locale, stamp(sub.Created),
		string(sub.Lifecycle(e.now, e.dormantAfter)), stamp(sub.LastPurchase)}
	// A phone number is E.164 (consent.ParsePhone): its "+" starts no
	// formula, and a spreadsheet tool must get it as it is.
	contact := []string{sub.Phone, cell(sub.PostalAddress)}
	if len(subs) == 0 {
		return e.csv.Write(slices.Concat(head, []string{"", "", "", ""}, contact, []string{"", ""}))
	}
	for _, ss := range subs {
		chs := make([]string, len(ss.Channels))
		for i, c := range ss.Channels {
			chs[i] = string(c)
		}
		row := slices.Concat(head, []string{ss.Topic, string(ss.Status), string(ss.Basis), stamp(ss.Since)}, contact,
			[]string{strings.Join(chs, " "), string(ss.Frequency)})
		if err := e.csv.Write(row); err != nil {
			return err
		}
	}
	return e.csv.Error()
}

// Flush writes what is buffered and reports an earlier write error.
func (e *Exporter) Flush() error {
	if e.csv == nil {
		return nil
	}
	e.csv.Flush()
	return e.csv.Error()
}

// sortedSubscriptions returns sub's subscriptions by topic id.
func sortedSubscriptions(sub *consent.Subscriber) []*consent.Subscription {
	out := make([]*consent.Subscription, 0, len(sub.Subscriptions))
	for t, ss := range sub.Subscriptions {
		cp := *ss
		cp.Topic = t
		out = append(out, &cp)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Topic < out[j].Topic })
	return out
}

// cell defuses spreadsheet formulas: a text cell starting with = + - @ or
// a tab or CR gets a leading apostrophe (OWASP CSV injection advice).
func cell(v string) string {
	if v != "" && strings.ContainsRune("=+-@\t\r", rune(v[0])) {
		return "'" + v
	}
	return v
}

// stamp formats a time for CSV: RFC 3339 in UTC with milliseconds, or ""
// for the zero time.
func stamp(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format("2006-01-02T15:04:05.000Z07:00")
}
