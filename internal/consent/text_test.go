package consent_test

import (
	"strings"
	"testing"

	"optin/internal/consent"
)

func TestParseName(t *testing.T) {
	accept := []struct{ in, want string }{
		{"", ""},
		{"  Ann Lee \t", "Ann Lee"},
		{"José Núñez", "José Núñez"},
		{"שלום עליכם", "שלום עליכם"},     // right-to-left text needs no override
		{"Ann\u200fLee", "Ann\u200fLee"}, // a right-to-left mark only marks
		{strings.Repeat("é", 100), strings.Repeat("é", 100)},
	}
	for _, tt := range accept {
		got, err := consent.ParseName(tt.in)
		if err != nil || got != tt.want {
			t.Errorf("ParseName(%q): got %q, %v; want %q", tt.in, got, err, tt.want)
		}
	}
	reject := map[string]string{
		"line feed":               "Ann\nBcc: x@evil.test",
		"tab":                     "Ann\tLee",
		"NUL":                     "Ann\x00",
		"C1 control":              "Ann\u0085Lee",
		"left-to-right embedding": "Ann\u202aLee",
		"right-to-left embedding": "Ann\u202bLee",
		"pop directional":         "Ann\u202cLee",
		"left-to-right override":  "Ann\u202dLee",
		"right-to-left override":  "Ann \u202egnp.exe",
		"left-to-right isolate":   "Ann\u2066Lee",
		"right-to-left isolate":   "Ann\u2067Lee",
		"first strong isolate":    "Ann\u2068Lee",
		"pop directional isolate": "Ann\u2069Lee",
		"line separator":          "Ann\u2028Lee",
		"paragraph separator":     "Ann\u2029Lee",
		"invalid UTF-8":           "Ann\xff",
		"101 characters":          strings.Repeat("é", 101),
	}
	for name, in := range reject {
		got, err := consent.ParseName(in)
		if err == nil {
			t.Errorf("%s: ParseName(%q) = %q, want an error", name, in, got)
		} else if consent.ErrorCode(err) != consent.EInvalid {
			t.Errorf("%s: code %q, want %q", name, consent.ErrorCode(err), consent.EInvalid)
		}
	}
}

func TestPlainTextMultiline(t *testing.T) {
	if !consent.PlainText("line one\n\tline two", 100, true) {
		t.Error("multiline text with a line feed and a tab refused")
	}
	if consent.PlainText("line one\u2028line two", 100, true) {
		t.Error("multiline text with U+2028 accepted: line feeds only")
	}
	if consent.PlainText("a\u202eb", 100, true) {
		t.Error("multiline text with a bidi override accepted")
	}
}
