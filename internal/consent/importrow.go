package consent

import (
	"errors"
	"slices"
	"strings"
	"time"
)

// MaxReportedInvalid caps the invalid rows listed in an import report;
// the count goes on.
const MaxReportedInvalid = 1000

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
	// Notices counts the information notices queued (GDPR Art. 14).
	Notices int `json:"notices"`
	// Queued counts the mails put in the outbox (confirmations and
	// notices).
	Queued int `json:"-"`
}

// AddInvalid records a refused row: listed among the first
// MaxReportedInvalid, counted always.
func (r *ImportReport) AddInvalid(line int, reason string) {
	r.InvalidCount++
	if len(r.Invalid) < MaxReportedInvalid {
		r.Invalid = append(r.Invalid, ImportProblem{Line: line, Reason: reason})
	}
}

// ConsentMethod is how an imported contact's earlier consent was
// collected: the import column "method".
type ConsentMethod string

// Consent methods. Only a box the person ticked themselves, or a double
// opt-in, can be consent: a pre-ticked box or a clause inside a contract
// is not a freely given, unambiguous indication (GDPR Art. 4(11), Art. 7(2);
// CJEU C-673/17 Planet49), and an unknown method proves nothing.
const (
	MethodCheckboxUnticked ConsentMethod = "checkbox_unticked"
	MethodDoubleOptIn      ConsentMethod = "double_opt_in"
	MethodPrefilled        ConsentMethod = "prefilled"
	MethodContractClause   ConsentMethod = "contract_clause"
	MethodUnknown          ConsentMethod = "unknown"
)

// CountsAsConsent reports whether consent collected this way can stand;
// "" (the column left empty) is not a claim either way.
func (m ConsentMethod) CountsAsConsent() bool {
	return m == "" || m == MethodCheckboxUnticked || m == MethodDoubleOptIn
}

// ImportRow is one parsed row of an import file.
type ImportRow struct {
	Line           int
	Address        Address
	Name           string
	Topics         []string
	Basis          Basis
	ConsentedAt    time.Time
	Source         string
	Method         ConsentMethod
	LastPurchaseAt time.Time
	// Assessment is the legitimate-interest assessment the row cites.
	Assessment string
}

// HasEvidence reports whether the row proves consent: when and where,
// collected in a way that can be consent.
func (r *ImportRow) HasEvidence() bool {
	return !r.ConsentedAt.IsZero() && r.Source != "" && r.Method.CountsAsConsent()
}

// Evidence is the row's proof as the imported event records it.
func (r *ImportRow) Evidence() string {
	var parts []string
	if r.Source != "" {
		parts = append(parts, "source="+r.Source)
	}
	if !r.ConsentedAt.IsZero() {
		parts = append(parts, "consented_at="+r.ConsentedAt.Format(time.RFC3339))
	}
	if r.Method != "" {
		parts = append(parts, "method="+string(r.Method))
	}
	if !r.LastPurchaseAt.IsZero() {
		parts = append(parts, "last_purchase_at="+r.LastPurchaseAt.Format(time.RFC3339))
	}
	return strings.Join(parts, "; ")
}

// ImportFields are one import row's fields as the file gives them, before
// validation. Topics are topic ids separated by ";".
type ImportFields struct {
	Email, Name, Topics, Basis, ConsentedAt, Source, Method, LastPurchaseAt, Assessment string
}

// ParseImportRow validates the fields of the row on line and returns it,
// or the reason it is refused: names and sources are printable text
// (trimmed), topics are deduplicated, basis is one of the three, method
// is empty or one of the five, times are RFC 3339 or YYYY-MM-DD in UTC and
// not in the future, and soft_opt_in needs last_purchase_at.
func ParseImportRow(line int, raw ImportFields, now time.Time) (ImportRow, string) {
	row := ImportRow{Line: line}
	return row, row.fill(raw, now)
}

// fill checks raw and fills r; it returns the reason a row is refused, or "".
func (row *ImportRow) fill(raw ImportFields, now time.Time) string {
	addr, err := ParseAddress(raw.Email)
	if err != nil {
		return ErrorMessage(err)
	}
	row.Address = addr
	if row.Name, err = ParseName(raw.Name); err != nil {
		return ErrorMessage(err)
	}
	for _, t := range strings.Split(raw.Topics, ";") {
		if t = strings.TrimSpace(t); t != "" && !slices.Contains(row.Topics, t) {
			row.Topics = append(row.Topics, t)
		}
	}
	if len(row.Topics) == 0 {
		return "topics is required (topic ids separated by ;)"
	}
	row.Basis = Basis(strings.TrimSpace(raw.Basis))
	switch row.Basis {
	case BasisConsent, BasisSoftOptIn, BasisLegitimateInterest:
	default:
		return "basis must be consent, soft_opt_in or legitimate_interest"
	}
	row.Method = ConsentMethod(strings.TrimSpace(raw.Method))
	switch row.Method {
	case "", MethodCheckboxUnticked, MethodDoubleOptIn, MethodPrefilled, MethodContractClause, MethodUnknown:
	default:
		return "method must be checkbox_unticked, double_opt_in, prefilled, contract_clause or unknown"
	}
	row.Assessment = strings.TrimSpace(raw.Assessment)
	if row.Assessment != "" && !slugRE.MatchString(row.Assessment) {
		return "assessment must be the id of a legitimate-interest assessment"
	}
	row.Source = strings.TrimSpace(raw.Source)
	if !PlainText(row.Source, 500, false) {
		return "source must be at most 500 characters without control characters"
	}
	if row.ConsentedAt, err = parseImportTime(raw.ConsentedAt, now); err != nil {
		return "consented_at: " + err.Error()
	}
	if row.LastPurchaseAt, err = parseImportTime(raw.LastPurchaseAt, now); err != nil {
		return "last_purchase_at: " + err.Error()
	}
	if row.Basis == BasisSoftOptIn && row.LastPurchaseAt.IsZero() {
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

// ImportRows yields the rows of an import file in order, whatever its
// format (see package transfer).
type ImportRows interface {
	// Next returns the next row, validated at now. A row that cannot be
	// parsed or is refused comes back with problem set (and its line);
	// io.EOF ends the file; any other error aborts the import.
	Next(now time.Time) (row ImportRow, problem string, err error)
}
