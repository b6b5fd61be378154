package bolt

import (
	"bufio"
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"go.etcd.io/bbolt"

	"optin/internal/consent"
)

// Import formats.
const (
	FormatCSV    = "csv"
	FormatNDJSON = "ndjson"
)

const (
	// importChunk is how many rows one import transaction writes: large
	// enough to amortise the fsync, small enough to keep memory flat.
	importChunk = 1000
	// maxReportedInvalid caps the invalid rows listed in a report; the
	// count goes on.
	maxReportedInvalid = 1000
	// maxImportLine caps one NDJSON line.
	maxImportLine = 1 << 20
)

// importColumns are the columns an import file may have.
var importColumns = []string{"email", "name", "topics", "basis", "consented_at", "source", "last_purchase_at"}

// ImportProblem is an import row that was refused.
type ImportProblem struct {
	Line   int    `json:"line"`
	Reason string `json:"reason"`
}

// ImportReport is what an import did.
type ImportReport struct {
	// Batch names the import; ledger events cite it as import:<batch>.
	Batch string `json:"batch"`
	// Imported counts new subscribers, Updated existing ones that changed,
	// Unchanged existing ones the row added nothing to.
	Imported  int `json:"imported"`
	Updated   int `json:"updated"`
	Unchanged int `json:"unchanged"`
	// Pending counts rows that claimed consent without evidence: they got
	// a double-opt-in request and mail instead.
	Pending int `json:"pending"`
	// SkippedSuppressed counts rows whose address is suppressed for one
	// of the row's topics or for every topic.
	SkippedSuppressed int `json:"skipped_suppressed"`
	// Invalid lists refused rows (the first 1000); InvalidCount counts all.
	Invalid      []ImportProblem `json:"invalid"`
	InvalidCount int             `json:"invalid_count"`
	// Queued counts the confirmation mails put in the outbox.
	Queued int `json:"-"`
}

func (r *ImportReport) invalid(line int, reason string) {
	r.InvalidCount++
	if len(r.Invalid) < maxReportedInvalid {
		r.Invalid = append(r.Invalid, ImportProblem{Line: line, Reason: reason})
	}
}

// ImportRow is one parsed row of an import file.
type ImportRow struct {
	Line           int
	Address        consent.Address
	Name           string
	Topics         []string
	Basis          consent.Basis
	ConsentedAt    time.Time
	Source         string
	LastPurchaseAt time.Time
}

// hasEvidence reports whether the row proves consent: when and where.
func (r *ImportRow) hasEvidence() bool { return !r.ConsentedAt.IsZero() && r.Source != "" }

// evidence is the row's proof as the imported event records it.
func (r *ImportRow) evidence() string {
	var parts []string
	if r.Source != "" {
		parts = append(parts, "source="+r.Source)
	}
	if !r.ConsentedAt.IsZero() {
		parts = append(parts, "consented_at="+r.ConsentedAt.Format(time.RFC3339))
	}
	if !r.LastPurchaseAt.IsZero() {
		parts = append(parts, "last_purchase_at="+r.LastPurchaseAt.Format(time.RFC3339))
	}
	return strings.Join(parts, "; ")
}

// rawRow is a row before validation, from either format.
type rawRow struct {
	Email          string          `json:"email"`
	Name           string          `json:"name"`
	Topics         json.RawMessage `json:"topics"`
	topics         string
	Basis          string `json:"basis"`
	ConsentedAt    string `json:"consented_at"`
	Source         string `json:"source"`
	LastPurchaseAt string `json:"last_purchase_at"`
}

// ImportReader reads an import file row by row, never all of it at once.
type ImportReader struct {
	csv   *csv.Reader
	cols  []int // column index per importColumns entry; -1 if absent
	lines *bufio.Scanner
	line  int
}

// NewImportReader reads format (FormatCSV, with a header line, or
// FormatNDJSON) from r. A CSV header naming an unknown column, or missing
// email, topics or basis, is EInvalid.
func NewImportReader(r io.Reader, format string) (*ImportReader, error) {
	switch format {
	case FormatCSV:
		cr := csv.NewReader(r)
		cr.FieldsPerRecord = -1
		cr.ReuseRecord = true
		head, err := cr.Read()
		if err != nil {
			return nil, readErr(err, "reading the CSV header")
		}
		ir := &ImportReader{csv: cr, cols: make([]int, len(importColumns))}
		for i := range ir.cols {
			ir.cols[i] = -1
		}
		for i, h := range head {
			h = strings.ToLower(strings.TrimSpace(strings.TrimPrefix(h, "\uFEFF")))
			j := slices.Index(importColumns, h)
			if j < 0 {
				return nil, consent.Errorf(consent.EInvalid, "unknown CSV column %q; columns are %s", truncate(h, 64), strings.Join(importColumns, ","))
			}
			ir.cols[j] = i
		}
		for _, need := range []int{0, 2, 3} {
			if ir.cols[need] < 0 {
				return nil, consent.Errorf(consent.EInvalid, "the CSV header lacks the %s column", importColumns[need])
			}
		}
		return ir, nil
	case FormatNDJSON:
		sc := bufio.NewScanner(r)
		sc.Buffer(make([]byte, 64<<10), maxImportLine)
		return &ImportReader{lines: sc}, nil
	}
	return nil, consent.Errorf(consent.EInvalid, "format must be csv or ndjson")
}

// readErr turns a reader failure into an EInvalid error that still wraps
// the cause, so a body over its limit can be told apart (413).
func readErr(err error, doing string) error {
	return fmt.Errorf("%w: %w", consent.Errorf(consent.EInvalid, "%s failed", doing), err)
}

// Next returns the next row. A row that cannot be parsed or fails
// validation comes back with problem set (and the row's line); io.EOF ends
// the file; any other error aborts the import.
func (ir *ImportReader) Next(now time.Time) (row ImportRow, problem string, err error) {
	var raw rawRow
	if ir.csv != nil {
		rec, err := ir.csv.Read()
		if err == io.EOF {
			return ImportRow{}, "", io.EOF
		}
		var pe *csv.ParseError
		if errors.As(err, &pe) {
			return ImportRow{Line: pe.StartLine}, "malformed CSV: " + pe.Err.Error(), nil
		}
		if err != nil {
			return ImportRow{}, "", readErr(err, "reading the CSV file")
		}
		field := func(i int) string {
			if c := ir.cols[i]; c >= 0 && c < len(rec) {
				return rec[c]
			}
			return ""
		}
		row.Line, _ = ir.csv.FieldPos(0)
		raw = rawRow{Email: field(0), Name: field(1), topics: field(2), Basis: field(3),
			ConsentedAt: field(4), Source: field(5), LastPurchaseAt: field(6)}
	} else {
		for {
			if !ir.lines.Scan() {
				if err := ir.lines.Err(); err != nil {
					if errors.Is(err, bufio.ErrTooLong) {
						return ImportRow{}, "", consent.Errorf(consent.EInvalid, "line %d is longer than %d bytes", ir.line+1, maxImportLine)
					}
					return ImportRow{}, "", readErr(err, "reading the NDJSON file")
				}
				return ImportRow{}, "", io.EOF
			}
			ir.line++
			if len(bytes.TrimSpace(ir.lines.Bytes())) > 0 {
				break
			}
		}
		row.Line = ir.line
		dec := json.NewDecoder(bytes.NewReader(ir.lines.Bytes()))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&raw); err != nil {
			return row, "malformed JSON: " + err.Error(), nil
		}
		if _, err := dec.Token(); err != io.EOF {
			return row, "malformed JSON: more than one value on the line", nil
		}
		if len(raw.Topics) > 0 {
			var list []string
			if err := json.Unmarshal(raw.Topics, &raw.topics); err != nil {
				if err := json.Unmarshal(raw.Topics, &list); err != nil {
					return row, "topics must be a string or an array of strings", nil
				}
				raw.topics = strings.Join(list, ";")
			}
		}
	}
	problem = validateRow(&row, raw, now)
	return row, problem, nil
}

// validateRow checks raw and fills row; it returns the reason a row is
// refused, or "".
func validateRow(row *ImportRow, raw rawRow, now time.Time) string {
	addr, err := consent.ParseAddress(raw.Email)
	if err != nil {
		return consent.ErrorMessage(err)
	}
	row.Address = addr
	if row.Name, err = consent.ParseName(raw.Name); err != nil {
		return consent.ErrorMessage(err)
	}
	for _, t := range strings.Split(raw.topics, ";") {
		if t = strings.TrimSpace(t); t != "" && !slices.Contains(row.Topics, t) {
			row.Topics = append(row.Topics, t)
		}
	}
	if len(row.Topics) == 0 {
		return "topics is required (topic ids separated by ;)"
	}
	row.Basis = consent.Basis(strings.TrimSpace(raw.Basis))
	switch row.Basis {
	case consent.BasisConsent, consent.BasisSoftOptIn, consent.BasisLegitimateInterest:
	default:
		return "basis must be consent, soft_opt_in or legitimate_interest"
	}
	row.Source = strings.TrimSpace(raw.Source)
	if !consent.PlainText(row.Source, 500, false) {
		return "source must be at most 500 characters without control characters"
	}
	if row.ConsentedAt, err = parseImportTime(raw.ConsentedAt, now); err != nil {
		return "consented_at: " + err.Error()
	}
	if row.LastPurchaseAt, err = parseImportTime(raw.LastPurchaseAt, now); err != nil {
		return "last_purchase_at: " + err.Error()
	}
	if row.Basis == consent.BasisSoftOptIn && row.LastPurchaseAt.IsZero() {
		return "soft_opt_in needs last_purchase_at: the soft opt-in rests on a purchase"
	}
	return ""
}

// parseImportTime parses an RFC 3339 time or a YYYY-MM-DD date (UTC); ""
// is the zero time. Times in the future are refused.
func parseImportTime(s string, now time.Time) (time.Time, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return time.Time{}, nil
	}
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		if t, err = time.Parse(time.DateOnly, s); err != nil {
			return time.Time{}, errors.New("must be an RFC 3339 time or a YYYY-MM-DD date")
		}
	}
	t = t.UTC().Truncate(time.Millisecond)
	if t.After(now) {
		return time.Time{}, errors.New("must not be in the future")
	}
	return t, nil
}

// Import reads rows from ir and stores them in transactions of 1000 rows,
// so memory stays flat however long the file is. Each valid row lands
// even when others are refused. Per row:
//   - an address suppressed for any of its topics or for every topic is
//     skipped;
//   - basis consent with evidence (consented_at and source), soft_opt_in
//     (with last_purchase_at) and legitimate_interest subscribe the topics
//     on that basis with an imported ledger event citing import:<batch>
//     and the evidence;
//   - basis consent without evidence gets a double opt-in instead: a
//     pending request, a requested event and a confirmation mail;
//   - an existing subscriber is never downgraded (a confirmed topic stays
//     as it is) and an unsubscribed or lapsed topic is never re-enabled:
//     only the person can do that (R54, R66).
//
// A read error aborts the import; the chunks stored before stay, and the
// report so far is returned with the error.
func (db *DB) Import(ctx context.Context, a Actor, ir *ImportReader) (ImportReport, error) {
	rep := ImportReport{Batch: db.ID()[:10], Invalid: []ImportProblem{}}
	chunk := make([]ImportRow, 0, importChunk)
	for done := false; !done; {
		chunk = chunk[:0]
		now := db.Now()
		for len(chunk) < importChunk {
			row, problem, err := ir.Next(now)
			if err == io.EOF {
				done = true
				break
			}
			if err != nil {
				return rep, err
			}
			if problem != "" {
				rep.invalid(row.Line, problem)
				continue
			}
			chunk = append(chunk, row)
		}
		if len(chunk) == 0 {
			continue
		}
		if err := ctx.Err(); err != nil {
			return rep, err
		}
		var part ImportReport
		err := db.update(func(tx *bbolt.Tx) error {
			part = ImportReport{}
			for i := range chunk {
				if err := db.importRow(tx, &part, rep.Batch, &chunk[i]); err != nil {
					return fmt.Errorf("bolt: import line %d: %w", chunk[i].Line, err)
				}
			}
			return db.audit(tx, a, "import", "import:"+rep.Batch, part.Imported+part.Updated)
		})
		if err != nil {
			return rep, err
		}
		rep.Imported += part.Imported
		rep.Updated += part.Updated
		rep.Unchanged += part.Unchanged
		rep.Pending += part.Pending
		rep.SkippedSuppressed += part.SkippedSuppressed
		rep.Queued += part.Queued
		for _, p := range part.Invalid {
			rep.invalid(p.Line, p.Reason)
		}
		rep.InvalidCount += part.InvalidCount - len(part.Invalid)
	}
	return rep, nil
}

// importRow stores one validated row in tx and counts it in rep.
func (db *DB) importRow(tx *bbolt.Tx, rep *ImportReport, batch string, row *ImportRow) error {
	if err := checkTopics(tx, row.Topics); err != nil {
		rep.invalid(row.Line, consent.ErrorMessage(err))
		return nil
	}
	h := db.AddressHash(row.Address)
	for _, t := range row.Topics {
		s, err := suppressed(tx, h, t)
		if err != nil {
			return err
		}
		if s != nil {
			rep.SkippedSuppressed++
			return nil
		}
	}
	now := db.Now()
	source := "import:" + batch
	sub, err := subscriberByKey(tx, row.Address.Key)
	if err != nil {
		return err
	}
	isNew := sub == nil
	if isNew {
		sub = &consent.Subscriber{ID: db.ID(), Email: row.Address.Addr, Name: row.Name, Created: now,
			Subscriptions: map[string]*consent.Subscription{}}
	}
	changed := false
	if sub.Name == "" && row.Name != "" {
		sub.Name, changed = row.Name, true
	}
	if row.LastPurchaseAt.After(sub.LastPurchase) {
		sub.LastPurchase, changed = row.LastPurchaseAt, true
	}
	// Topics the row may still add: never a confirmed one (no downgrade,
	// no basis swap) and never one the person left (R66).
	var topics []string
	for _, t := range row.Topics {
		if s := sub.Subscriptions[t]; s == nil || s.Status == consent.StatusPending {
			topics = append(topics, t)
		}
	}

	if row.Basis == consent.BasisConsent && !row.hasEvidence() {
		requested, mailed, err := db.importDoubleOptIn(tx, sub, row, topics, source, now)
		if err != nil {
			return err
		}
		if requested {
			rep.Pending++
			changed = true
		}
		if mailed {
			rep.Queued++
		}
	} else if len(topics) > 0 {
		since := now
		if row.Basis == consent.BasisConsent {
			since = row.ConsentedAt
		}
		for _, t := range topics {
			sub.Subscriptions[t] = &consent.Subscription{Topic: t, Status: consent.StatusConfirmed, Basis: row.Basis, Since: since}
		}
		ev := &consent.Event{Time: now, Type: consent.EventImported, Subscriber: sub.ID, Topics: topics,
			Basis: row.Basis, Source: source, Page: row.evidence()}
		if err := appendEvent(tx, ev, consent.Personal{Salt: db.ID(), Email: sub.Email}); err != nil {
			return err
		}
		changed = true
	}
	switch {
	case isNew && !changed:
		return nil // a new address whose mail the policy held back: nothing stored
	case isNew:
		rep.Imported++
	case changed:
		rep.Updated++
	default:
		rep.Unchanged++
		return nil
	}
	return putSubscriber(tx, sub, row.Address.Key)
}

// importDoubleOptIn gives a row that claims consent without evidence the
// same double opt-in as a form signup: a pending request for topics, the
// requested event and the confirmation mail, under the signup rules (an
// open request is joined, the per-address mail cap and a not-me block
// apply). It reports whether topics were requested and whether a mail was
// queued.
func (db *DB) importDoubleOptIn(tx *bbolt.Tx, sub *consent.Subscriber, row *ImportRow, topics []string, source string, now time.Time) (requested, mailed bool, err error) {
	if len(topics) == 0 {
		return false, false, nil
	}
	var open *consent.Request
	if sub.PendingRequest != "" {
		open = new(consent.Request)
		if ok, err := get(tx, bucketRequests, []byte(sub.PendingRequest), open); err != nil {
			return false, false, err
		} else if !ok {
			open = nil
		}
	}
	locale := sub.Locale
	if locale == "" {
		locale = "en"
	}
	form := &consent.Form{Topics: topics} // no form: the request comes from the import
	plan := consent.PlanSignup(sub, open, consent.SignupInput{Form: form, Address: row.Address, Name: row.Name,
		Locale: locale, Topics: topics, Source: source, Now: now}, db.policy, db)
	if plan.Subscriber == nil {
		return false, false, nil
	}
	if err := put(tx, bucketRequests, []byte(plan.Request.ID), plan.Request); err != nil {
		return false, false, err
	}
	if err := tx.Bucket(bucketReqBySub).Put(pairKey(sub.ID, plan.Request.ID), nil); err != nil {
		return false, false, err
	}
	if err := appendEvent(tx, plan.Event, plan.Personal); err != nil {
		return false, false, err
	}
	if !plan.Mail {
		return true, false, nil
	}
	return true, true, enqueue(tx, &consent.Job{Kind: consent.JobConfirm, To: sub.Email, Name: sub.MailName(),
		Locale: plan.Request.Locale, Subscriber: sub.ID, Request: plan.Request.ID, Topics: plan.Request.Topics,
		MessageID: plan.Request.MessageID, Created: now, TokenExpires: plan.Request.Expires})
}
