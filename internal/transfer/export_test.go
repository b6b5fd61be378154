package transfer

import (
	"bytes"
	"encoding/csv"
	"encoding/json"
	"io"
	"math/rand/v2"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"optin/internal/consent"
)

// TestExportSameBytes: the hand-written encoders write, for a varied set
// of subscribers (quotes, commas, newlines, leading spaces, formulas,
// HTML characters, control bytes, invalid UTF-8, U+2028, times in other
// zones and with nanoseconds, no subscriptions), exactly what the
// encoding/csv and encoding/json exporter before them wrote.
func TestExportSameBytes(t *testing.T) {
	now := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	subs := variedSubscribers(3000)
	for _, format := range []string{FormatCSV, FormatNDJSON} {
		var got, want bytes.Buffer
		ex, err := NewExporter(&got, format, now, 365*consent.Day)
		if err != nil {
			t.Fatal(err)
		}
		ref := newRefExporter(&want, format, now, 365*consent.Day)
		if err := ex.Begin(); err != nil {
			t.Fatal(err)
		}
		if err := ref.begin(); err != nil {
			t.Fatal(err)
		}
		for _, sub := range subs {
			if err := ex.Write(sub); err != nil {
				t.Fatal(err)
			}
			if err := ref.write(sub); err != nil {
				t.Fatal(err)
			}
		}
		if err := ex.Flush(); err != nil {
			t.Fatal(err)
		}
		ref.flush()
		if got.Len() < 100_000 {
			t.Fatalf("%s: only %d bytes written", format, got.Len())
		}
		if !bytes.Equal(got.Bytes(), want.Bytes()) {
			g, w := strings.Split(got.String(), "\n"), strings.Split(want.String(), "\n")
			for i := range min(len(g), len(w)) {
				if g[i] != w[i] {
					t.Fatalf("%s line %d:\n got %q\nwant %q", format, i+1, g[i], w[i])
				}
			}
			t.Fatalf("%s: %d lines, want %d", format, len(g), len(w))
		}
	}
}

// TestExportWriteError: a failing writer's error comes back and stops
// the export.
func TestExportWriteError(t *testing.T) {
	ex, err := NewExporter(failWriter{}, FormatNDJSON, time.Now(), consent.Day)
	if err != nil {
		t.Fatal(err)
	}
	var werr error
	for _, sub := range variedSubscribers(2000) {
		if werr = ex.Write(sub); werr != nil {
			break
		}
	}
	if werr == nil {
		werr = ex.Flush()
	}
	if werr != io.ErrClosedPipe {
		t.Errorf("got %v, want %v", werr, io.ErrClosedPipe)
	}
}

type failWriter struct{}

func (failWriter) Write([]byte) (int, error) { return 0, io.ErrClosedPipe }

// variedSubscribers returns n subscribers whose strings and times try the
// corners of both formats.
func variedSubscribers(n int) []*consent.Subscriber {
	src := rand.NewChaCha8([32]byte{9})
	r := rand.New(src)
	pieces := []string{"", "ann", "Zoë Müller", "O'Brien", "a,b", `say "hi"`, "line\nbreak", "cr\rhere", " lead", "\tTab",
		"=SUM(A1)", "+1", "-2", "@x", `\.`, "<b>&amp;</b>", "\u2028\u2029", "\x00\x01\x1f\x7f", "bad\xffutf8", "\xe2\x82",
		"日本語", "emoji 🎉", "back\\slash", "\u00a0nbsp", "x@example.com"}
	pick := func() string {
		s := pieces[r.IntN(len(pieces))]
		if r.IntN(3) == 0 {
			s += pieces[r.IntN(len(pieces))]
		}
		return s
	}
	zones := []*time.Location{time.UTC, time.FixedZone("", 3600), time.FixedZone("", -5*3600-1800)}
	edges := []time.Time{time.Date(0, 1, 1, 0, 0, 0, 0, time.UTC), time.Date(9999, 12, 31, 23, 59, 59, 999999999, time.UTC),
		time.Date(9999, 12, 31, 23, 59, 59, 0, time.FixedZone("", -3600)), time.Date(1, 1, 1, 0, 0, 0, 1000, time.UTC)}
	when := func() time.Time {
		switch r.IntN(7) {
		case 0:
			return time.Time{}
		case 1:
			return time.Unix(r.Int64N(2e9), r.Int64N(1e9)).In(zones[r.IntN(len(zones))])
		case 2:
			return edges[r.IntN(len(edges))]
		default:
			return time.UnixMilli(r.Int64N(2e12)).UTC()
		}
	}
	statuses := []consent.Status{consent.StatusConfirmed, consent.StatusPending, consent.StatusUnsubscribed, consent.StatusLapsed}
	bases := []consent.Basis{"", consent.BasisConsent, consent.BasisSoftOptIn, consent.BasisLegitimateInterest}
	out := make([]*consent.Subscriber, n)
	for i := range out {
		sub := &consent.Subscriber{ID: consent.NewID(time.UnixMilli(int64(i)), src), Email: pick(), Name: pick(), Locale: pick(),
			Created: when(), LastPurchase: when()}
		if r.IntN(3) == 0 {
			sub.Phone, sub.PostalAddress = "+4670123456"+strconv.Itoa(i%10), pick()
		}
		if r.IntN(8) > 0 {
			sub.Subscriptions = map[string]*consent.Subscription{}
			for range r.IntN(4) {
				ss := &consent.Subscription{Topic: "ignored", Status: statuses[r.IntN(len(statuses))],
					Basis: bases[r.IntN(len(bases))], Since: when()}
				if r.IntN(4) == 0 {
					ss.Assessment = pick()
				}
				if r.IntN(3) == 0 {
					ss.Channels = []consent.Channel{consent.Channel(pick()), consent.Channel(pick())}[:1+r.IntN(2)]
					ss.Frequency = consent.Frequency(pick())
				}
				sub.Subscriptions[pick()] = ss
			}
		}
		out[i] = sub
	}
	return out
}

// refExporter is the exporter before the hand-written encoders, kept to
// compare against: encoding/csv, and encoding/json on exportRecord.
type refExporter struct {
	now          time.Time
	dormantAfter time.Duration
	csv          *csv.Writer
	json         *json.Encoder
}

type refRecord struct {
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

func newRefExporter(w io.Writer, format string, now time.Time, dormantAfter time.Duration) *refExporter {
	e := &refExporter{now: now, dormantAfter: dormantAfter}
	if format == FormatCSV {
		e.csv = csv.NewWriter(w)
	} else {
		e.json = json.NewEncoder(w)
	}
	return e
}

func (e *refExporter) begin() error {
	if e.csv == nil {
		return nil
	}
	return e.csv.Write(exportColumns)
}

func (e *refExporter) write(sub *consent.Subscriber) error {
	subs := make([]*consent.Subscription, 0, len(sub.Subscriptions))
	for t, ss := range sub.Subscriptions {
		cp := *ss
		cp.Topic = t
		subs = append(subs, &cp)
	}
	sort.Slice(subs, func(i, j int) bool { return subs[i].Topic < subs[j].Topic })
	if e.json != nil {
		return e.json.Encode(refRecord{ID: sub.ID, Email: sub.Email, Name: sub.Name, Locale: sub.Locale,
			Created: sub.Created, Lifecycle: sub.Lifecycle(e.now, e.dormantAfter),
			LastPurchaseAt: sub.LastPurchase, Phone: sub.Phone, PostalAddress: sub.PostalAddress, Subscriptions: subs})
	}
	stamp := func(t time.Time) string {
		if t.IsZero() {
			return ""
		}
		return t.UTC().Format("2006-01-02T15:04:05.000Z07:00")
	}
	head := []string{sub.ID, cell(sub.Email), cell(sub.Name), sub.Locale, stamp(sub.Created),
		string(sub.Lifecycle(e.now, e.dormantAfter)), stamp(sub.LastPurchase)}
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

func (e *refExporter) flush() {
	if e.csv != nil {
		e.csv.Flush()
	}
}
