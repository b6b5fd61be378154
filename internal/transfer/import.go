// Package transfer reads and writes optin's bulk file formats: import
// files (CSV with a header, or NDJSON) and subscriber exports. It knows the
// formats only; the rules a row must follow live in consent and the store
// receives validated rows.
package transfer

import (
	"bufio"
	"bytes"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"optin/internal/consent"
)

// The formats of import and export files.
const (
	FormatCSV    = "csv"
	FormatNDJSON = "ndjson"
)

// maxImportLine caps one NDJSON line.
const maxImportLine = 1 << 20

// importColumns are the columns an import file may have.
var importColumns = []string{"email", "name", "topics", "basis", "consented_at", "source", "last_purchase_at", "method", "assessment"}

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
	Method         string `json:"method"`
	Assessment     string `json:"assessment"`
}

// Reader reads an import file row by row, never all of it at once.
type Reader struct {
	csv   *csv.Reader
	cols  []int // column index per importColumns entry; -1 if absent
	lines *bufio.Scanner
	line  int
}

// NewReader reads format (FormatCSV, with a header line, or
// FormatNDJSON) from r. A CSV header naming an unknown column, or missing
// email, topics or basis, is EInvalid.
func NewReader(r io.Reader, format string) (*Reader, error) {
	switch format {
	case FormatCSV:
		cr := csv.NewReader(r)
		cr.FieldsPerRecord = -1
		cr.ReuseRecord = true
		head, err := cr.Read()
		if err != nil {
			return nil, readErr(err, "reading the CSV header")
		}
		ir := &Reader{csv: cr, cols: make([]int, len(importColumns))}
		for i := range ir.cols {
			ir.cols[i] = -1
		}
		for i, h := range head {
			h = strings.ToLower(strings.TrimSpace(strings.TrimPrefix(h, "\uFEFF")))
			j := slices.Index(importColumns, h)
			if j < 0 {
				return nil, consent.Errorf(consent.EInvalid, "unknown CSV column %q; columns are %s", consent.Truncate(h, 64), strings.Join(importColumns, ","))
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
		return &Reader{lines: sc}, nil
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
func (ir *Reader) Next(now time.Time) (row consent.ImportRow, problem string, err error) {
	var raw rawRow
	if ir.csv != nil {
		rec, err := ir.csv.Read()
		if err == io.EOF {
			return consent.ImportRow{}, "", io.EOF
		}
		var pe *csv.ParseError
		if errors.As(err, &pe) {
			return consent.ImportRow{Line: pe.StartLine}, "malformed CSV: " + pe.Err.Error(), nil
		}
		if err != nil {
			return consent.ImportRow{}, "", readErr(err, "reading the CSV file")
		}
		field := func(i int) string {
			if c := ir.cols[i]; c >= 0 && c < len(rec) {
				return rec[c]
			}
			return ""
		}
		row.Line, _ = ir.csv.FieldPos(0)
		raw = rawRow{Email: field(0), Name: field(1), topics: field(2), Basis: field(3),
			ConsentedAt: field(4), Source: field(5), LastPurchaseAt: field(6), Method: field(7), Assessment: field(8)}
	} else {
		for {
			if !ir.lines.Scan() {
				if err := ir.lines.Err(); err != nil {
					if errors.Is(err, bufio.ErrTooLong) {
						return consent.ImportRow{}, "", consent.Errorf(consent.EInvalid, "line %d is longer than %d bytes", ir.line+1, maxImportLine)
					}
					return consent.ImportRow{}, "", readErr(err, "reading the NDJSON file")
				}
				return consent.ImportRow{}, "", io.EOF
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
	row, problem = consent.ParseImportRow(row.Line, consent.ImportFields{Email: raw.Email, Name: raw.Name, Topics: raw.topics,
		Basis: raw.Basis, ConsentedAt: raw.ConsentedAt, Source: raw.Source, Method: raw.Method, LastPurchaseAt: raw.LastPurchaseAt, Assessment: raw.Assessment}, now)
	return row, problem, nil
}
