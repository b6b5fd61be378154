// Package people generates import files of varied, realistic people for
// optin's load tests ("optin-bench generate").
package people

import (
	"bufio"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"strconv"
	"strings"
	"time"
)

// Options says what Generate writes.
type Options struct {
	// Subscribers is how many rows (people) to write.
	Subscribers int
	// Format is "csv" (with a header line) or "ndjson", the import
	// formats of package transfer.
	Format string
	// Seed picks the data; the same seed, count and Now give the same
	// bytes.
	Seed uint64
	// Now is the moment the data is made for: every time in it lies in
	// the five years before.
	Now time.Time
}

// The import columns Generate fills, in the CSV header's order.
var generateColumns = []string{"email", "name", "topics", "basis", "consented_at", "source", "last_purchase_at", "method"}

// Pieces of generated rows. Names mix scripts and apostrophes; one source
// holds a comma, so CSV quoting is exercised.
var (
	genFirst   = []string{"Anna", "Ben", "Chiara", "Dmitri", "Émilie", "Farah", "Giulia", "Hiro", "Ines", "José", "Karin", "Lars", "Mei", "Nikos", "Olga", "Pål", "Quinn", "Rosa", "Søren", "Tomás", "Uma", "Viktor", "Wen", "Zoë"}
	genLast    = []string{"Andersson", "Bianchi", "Cohen", "Dubois", "Eriksen", "Fischer", "García", "Horvat", "Ivanova", "Jansen", "Kowalski", "Lambert", "Müller", "Nguyễn", "O'Brien", "Papadopoulos", "Rossi", "Schmidt", "Tanaka", "de la Cruz"}
	genDomains = []string{"example.com", "example.org", "example.net", "mail.example", "shop.example", "post.example"}
	genSources = []string{"checkout", "newsletter box, footer", "webinar 2024-05", "trade fair Milan", "shop account", "competition"}
	genMethods = []string{"", "checkbox_unticked", "double_opt_in"}
)

// The mix, per 100 people: consent with evidence, consent without it
// (a double opt-in: pending and a confirmation mail), consent on a
// pre-ticked box (also a double opt-in), soft opt-in after a purchase,
// legitimate interest.
const (
	genConsent       = 64
	genNoEvidence    = 1
	genPrefilled     = 1
	genSoftOptIn     = 25
	genLegitInterest = 9
)

// Generate writes o.Subscribers import rows of realistic, varied people:
// every one on topic news, a fifth also on offers and a tenth on events;
// bases as in the mix above; a customer's last purchase up to four years
// back (every soft opt-in, a fifth of the consent rows, half the
// legitimate-interest ones); names on three in five. Every address is
// different. It streams: memory stays the same whatever the count.
func Generate(w io.Writer, o Options) error {
	if o.Subscribers < 0 {
		return errors.New("people: subscribers must not be negative")
	}
	csvOut := o.Format == "csv"
	if !csvOut && o.Format != "ndjson" {
		return fmt.Errorf("people: format must be csv or ndjson, not %q", o.Format)
	}
	g := newGenerator(o.Seed, o.Now, csvOut)
	bw := bufio.NewWriterSize(w, 256<<10)
	if csvOut {
		bw.WriteString(strings.Join(generateColumns, ",") + "\n")
	}
	var buf []byte
	for i := range o.Subscribers {
		buf = g.row(buf[:0], i)
		if _, err := bw.Write(buf); err != nil {
			return err
		}
	}
	return bw.Flush()
}

// generator makes rows; its values are encoded for its format once.
type generator struct {
	rnd     *rand.Rand
	now     time.Time
	csv     bool
	names   []string // "First Last", encoded
	sources []string // encoded
	methods []string // encoded
	// localFirst and localLast are the names folded for addresses.
	localFirst, localLast []string
}

func newGenerator(seed uint64, now time.Time, csvOut bool) *generator {
	g := &generator{rnd: rand.New(rand.NewPCG(seed, 0x6f7074696e)), now: now.UTC().Truncate(time.Second), csv: csvOut}
	for _, f := range genFirst {
		for _, l := range genLast {
			g.names = append(g.names, g.encode(f+" "+l))
		}
	}
	for _, s := range genSources {
		g.sources = append(g.sources, g.encode(s))
	}
	for _, m := range genMethods {
		g.methods = append(g.methods, g.encode(m))
	}
	for _, f := range genFirst {
		g.localFirst = append(g.localFirst, strings.ToLower(localPart.Replace(f)))
	}
	for _, l := range genLast {
		g.localLast = append(g.localLast, strings.ToLower(localPart.Replace(l)))
	}
	return g
}

// encode returns s as a CSV cell or a JSON string.
func (g *generator) encode(s string) string {
	if !g.csv {
		b, _ := json.Marshal(s)
		return string(b)
	}
	var sb strings.Builder
	cw := csv.NewWriter(&sb)
	_ = cw.Write([]string{s})
	cw.Flush()
	return strings.TrimSuffix(sb.String(), "\n")
}

// row appends row i to b.
func (g *generator) row(b []byte, i int) []byte {
	r := g.rnd
	kind := r.IntN(100)
	basis, consentedAt, source, method := "consent", time.Time{}, -1, 0
	purchase := false
	switch {
	case kind < genConsent:
		consentedAt = g.ago(r, 5*365)
		source, method = r.IntN(len(g.sources)), r.IntN(len(g.methods))
		purchase = r.IntN(5) == 0
	case kind < genConsent+genNoEvidence:
	case kind < genConsent+genNoEvidence+genPrefilled:
		consentedAt, source, method = g.ago(r, 5*365), r.IntN(len(g.sources)), -1
	case kind < genConsent+genNoEvidence+genPrefilled+genSoftOptIn:
		basis, purchase = "soft_opt_in", true
	default:
		basis, purchase = "legitimate_interest", r.IntN(2) == 0
	}
	var lastPurchase time.Time
	if purchase {
		lastPurchase = g.ago(r, 4*365)
	}
	name := -1
	if r.IntN(5) < 3 {
		name = r.IntN(len(g.names))
	}
	offers, events := r.IntN(5) == 0, r.IntN(10) == 0

	// The address: first.last and the row number, so every one differs.
	if !g.csv {
		b = append(b, `{"email":`...)
	}
	b = g.open(b)
	b = append(b, g.localFirst[i%len(g.localFirst)]...)
	b = append(b, '.')
	b = append(b, g.localLast[(i/len(g.localFirst))%len(g.localLast)]...)
	b = strconv.AppendInt(b, int64(i), 10)
	b = append(b, '@')
	b = append(b, genDomains[i%len(genDomains)]...)
	b = g.close(b)

	b = g.field(b, "name")
	b = g.encoded(b, g.names, name)

	b = g.field(b, "topics")
	if g.csv {
		b = append(b, "news"...)
		if offers {
			b = append(b, ";offers"...)
		}
		if events {
			b = append(b, ";events"...)
		}
	} else {
		b = append(b, `["news"`...)
		if offers {
			b = append(b, `,"offers"`...)
		}
		if events {
			b = append(b, `,"events"`...)
		}
		b = append(b, ']')
	}

	b = g.field(b, "basis")
	b = g.close(append(g.open(b), basis...))

	b = g.field(b, "consented_at")
	b = g.open(b)
	if !consentedAt.IsZero() {
		b = consentedAt.AppendFormat(b, time.RFC3339)
	}
	b = g.close(b)

	b = g.field(b, "source")
	b = g.encoded(b, g.sources, source)

	b = g.field(b, "last_purchase_at")
	b = g.open(b)
	if !lastPurchase.IsZero() {
		b = lastPurchase.AppendFormat(b, time.DateOnly) // a date, as a shop's export has it
	}
	b = g.close(b)

	b = g.field(b, "method")
	if method >= 0 {
		b = append(b, g.methods[method]...)
	} else {
		b = g.close(append(g.open(b), "prefilled"...))
	}
	if g.csv {
		return append(b, '\n')
	}
	return append(b, "}\n"...)
}

// ago returns a time up to days days before g.now, to the second.
func (g *generator) ago(r *rand.Rand, days int) time.Time {
	return g.now.Add(-time.Duration(1+r.Int64N(int64(days)*86400)) * time.Second)
}

// field appends what comes before column name: a comma in CSV, the key in
// JSON.
func (g *generator) field(b []byte, name string) []byte {
	if g.csv {
		return append(b, ',')
	}
	b = append(b, ",\""...)
	b = append(b, name...)
	return append(b, "\":"...)
}

// open and close surround a value that needs no escaping: nothing in
// CSV, quotes in JSON.
func (g *generator) open(b []byte) []byte {
	if g.csv {
		return b
	}
	return append(b, '"')
}

func (g *generator) close(b []byte) []byte { return g.open(b) }

// encoded appends the encoded value list[i], or an empty value for i < 0.
func (g *generator) encoded(b []byte, list []string, i int) []byte {
	if i >= 0 {
		return append(b, list[i]...)
	}
	return g.close(g.open(b))
}

// localPart folds a name to the letters of an address's local part.
var localPart = strings.NewReplacer("É", "e", "é", "e", "ë", "e", "ễ", "e", "á", "a", "å", "a", "í", "i",
	"ø", "o", "ü", "u", "'", "", " ", "")
