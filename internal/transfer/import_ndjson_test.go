package transfer_test

import (
	"optin/internal/transfer"
	"strings"
	"testing"
	"time"
)

// TestImportNDJSONOneValuePerLine: a line with anything after its JSON
// value is refused, not half-read.
func TestImportNDJSONOneValuePerLine(t *testing.T) {
	for _, line := range []string{
		`{"email":"a@example.com","topics":"news","basis":"consent"}}`,
		`{"email":"a@example.com","topics":"news","basis":"consent"} {"email":"x"}`,
	} {
		ir, err := transfer.NewReader(strings.NewReader(line+"\n"), transfer.FormatNDJSON)
		if err != nil {
			t.Fatal(err)
		}
		_, problem, err := ir.Next(time.Now())
		if err != nil || !strings.Contains(problem, "more than one value") {
			t.Errorf("%s: got problem %q err %v, want a malformed-JSON problem", line, problem, err)
		}
	}
}
