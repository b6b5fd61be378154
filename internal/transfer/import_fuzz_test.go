package transfer_test

import (
	"bytes"
	"encoding/csv"
	"encoding/json"
	"io"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"optin/internal/consent"
	"optin/internal/transfer"
)

// fuzzImportNow is the clock reading the fuzzed imports are checked at.
var fuzzImportNow = time.Date(2030, 1, 2, 3, 4, 5, 678_000_000, time.UTC)

// fuzzImportResult is one Reader.Next answer.
type fuzzImportResult struct {
	row     consent.ImportRow
	problem string
}

// FuzzImportRow writes one import row with fuzzed fields as CSV (with a
// header), as NDJSON with topics as a ";"-separated string and as NDJSON
// with topics as an array, and reads each back with Reader.
//
// Properties: each file yields exactly one row and then io.EOF, never an
// error; a row without a problem satisfies every documented rule (see
// checkFuzzImportRow); and when the fields are valid UTF-8 without CR
// (which neither format carries unchanged) the three files give the same
// row and the same problem.
//
// Seeds: testdata/fuzz/FuzzImportRow.
func FuzzImportRow(f *testing.F) {
	f.Fuzz(func(t *testing.T, email, name, topics, basis, consentedAt, source, lastPurchaseAt string) {
		fields := []string{email, name, topics, basis, consentedAt, source, lastPurchaseAt}
		keys := []string{"email", "name", "topics", "basis", "consented_at", "source", "last_purchase_at"}

		var csvFile bytes.Buffer
		w := csv.NewWriter(&csvFile)
		if err := w.WriteAll([][]string{keys, fields}); err != nil {
			t.Fatalf("csv.Writer: got err %v, want nil", err)
		}
		asString := map[string]any{}
		asArray := map[string]any{}
		for i, k := range keys {
			asString[k], asArray[k] = fields[i], fields[i]
		}
		asArray["topics"] = strings.Split(topics, ";")

		files := []struct {
			name, format string
			data         []byte
		}{
			{"CSV", transfer.FormatCSV, csvFile.Bytes()},
			{"NDJSON, topics string", transfer.FormatNDJSON, fuzzJSONLine(t, asString)},
			{"NDJSON, topics array", transfer.FormatNDJSON, fuzzJSONLine(t, asArray)},
		}
		var got []fuzzImportResult
		for _, file := range files {
			ir, err := transfer.NewReader(bytes.NewReader(file.data), file.format)
			if err != nil {
				t.Fatalf("%s %q: NewReader: got err %v, want nil", file.name, file.data, err)
			}
			row, problem, err := ir.Next(fuzzImportNow)
			if err != nil {
				t.Fatalf("%s %q: Next: got err %v, want a row", file.name, file.data, err)
			}
			if _, _, err := ir.Next(fuzzImportNow); err != io.EOF {
				t.Fatalf("%s %q: second Next: got err %v, want io.EOF", file.name, file.data, err)
			}
			if problem == "" {
				checkFuzzImportRow(t, row)
			}
			row.Line = 0 // the CSV row is on line 2, the NDJSON one on line 1
			got = append(got, fuzzImportResult{row, problem})
		}

		comparable := !slices.ContainsFunc(fields, func(s string) bool { return !utf8.ValidString(s) || strings.Contains(s, "\r") })
		if !comparable {
			return
		}
		for i := 1; i < len(got); i++ {
			if !reflect.DeepEqual(got[i], got[0]) {
				t.Fatalf("fields %q: %s gives row %+v problem %q; %s gives row %+v problem %q; want the same",
					fields, files[0].name, got[0].row, got[0].problem, files[i].name, got[i].row, got[i].problem)
			}
		}
	})
}

// FuzzImportFile reads arbitrary bytes as a CSV or NDJSON import file.
//
// Properties: NewReader and Next fail only with EInvalid errors;
// the file ends (io.EOF or an error) after at most one row per line; line
// numbers strictly increase; every row without a problem satisfies
// checkFuzzImportRow.
//
// Seeds: testdata/fuzz/FuzzImportFile.
func FuzzImportFile(f *testing.F) {
	f.Fuzz(func(t *testing.T, data []byte, ndjson bool) {
		format := transfer.FormatCSV
		if ndjson {
			format = transfer.FormatNDJSON
		}
		ir, err := transfer.NewReader(bytes.NewReader(data), format)
		if err != nil {
			if code := consent.ErrorCode(err); code != consent.EInvalid {
				t.Fatalf("NewReader(%q, %s): got err %v (code %q), want code %q", data, format, err, code, consent.EInvalid)
			}
			return
		}
		maxRows := bytes.Count(data, []byte("\n")) + 1
		lastLine := 0
		for rows := 0; ; rows++ {
			row, problem, err := ir.Next(fuzzImportNow)
			if err == io.EOF {
				return
			}
			if err != nil {
				if code := consent.ErrorCode(err); code != consent.EInvalid {
					t.Fatalf("Next on %q (%s): got err %v (code %q), want io.EOF or code %q", data, format, err, code, consent.EInvalid)
				}
				return
			}
			if rows == maxRows {
				t.Fatalf("Next on %q (%s): more than %d rows from %d lines", data, format, maxRows, maxRows)
			}
			if row.Line <= lastLine {
				t.Fatalf("Next on %q (%s): row on line %d after a row on line %d, want increasing lines", data, format, row.Line, lastLine)
			}
			lastLine = row.Line
			if problem == "" {
				checkFuzzImportRow(t, row)
			}
		}
	})
}

// checkFuzzImportRow checks the rules NewReader documents for a row
// it accepts.
func checkFuzzImportRow(t *testing.T, row consent.ImportRow) {
	t.Helper()
	if again, err := consent.ParseAddress(row.Address.Addr); err != nil || again != row.Address {
		t.Fatalf("row %+v: ParseAddress(Address.Addr): got %+v, %v, want the same address", row, again, err)
	}
	checkText := func(field, s string, max int) {
		if s != strings.TrimSpace(s) || !consent.PlainText(s, max, false) {
			t.Fatalf("row %+v: %s %q: want trimmed valid UTF-8 of at most %d characters without control characters", row, field, s, max)
		}
	}
	checkText("name", row.Name, 100)
	checkText("source", row.Source, 500)
	if len(row.Topics) == 0 {
		t.Fatalf("row %+v: no topics", row)
	}
	for i, topic := range row.Topics {
		if topic == "" || topic != strings.TrimSpace(topic) || strings.Contains(topic, ";") || slices.Contains(row.Topics[:i], topic) {
			t.Fatalf("row %+v: topic %q: want non-empty, trimmed, without ';' and not repeated", row, topic)
		}
	}
	switch row.Basis {
	case consent.BasisConsent, consent.BasisSoftOptIn, consent.BasisLegitimateInterest:
	default:
		t.Fatalf("row %+v: basis %q is not one of the three", row, row.Basis)
	}
	for field, ts := range map[string]time.Time{"consented_at": row.ConsentedAt, "last_purchase_at": row.LastPurchaseAt} {
		if !ts.IsZero() && (ts.Location() != time.UTC || ts.Nanosecond()%int(time.Millisecond) != 0 || ts.After(fuzzImportNow)) {
			t.Fatalf("row %+v: %s %v: want UTC, whole milliseconds and not after %v", row, field, ts, fuzzImportNow)
		}
	}
	if row.Basis == consent.BasisSoftOptIn && row.LastPurchaseAt.IsZero() {
		t.Fatalf("row %+v: soft_opt_in without last_purchase_at", row)
	}
	if row.Line < 1 {
		t.Fatalf("row %+v: line %d, want >= 1", row, row.Line)
	}
}

// fuzzJSONLine returns v as one NDJSON line.
func fuzzJSONLine(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatalf("json.Marshal: got err %v, want nil", err)
	}
	return append(b, '\n')
}
