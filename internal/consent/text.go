package consent

import (
	"strings"
	"unicode"
	"unicode/utf8"
)

// Printable reports whether s is valid UTF-8 of at most max characters
// without control characters: the rule for one-line text people type
// (names, sources, notes).
func Printable(s string, max int) bool { return plainText(s, max, false) }

// plainText reports whether s is valid UTF-8 of at most max runes without
// control characters; multiline allows line feeds and tabs.
func plainText(s string, max int, multiline bool) bool {
	return utf8.ValidString(s) && utf8.RuneCountInString(s) <= max && !strings.ContainsFunc(s, func(r rune) bool {
		return unicode.IsControl(r) && !(multiline && (r == '\n' || r == '\t'))
	})
}

// Truncate cuts s to at most n bytes of valid UTF-8, for echoing input in
// messages; a rune cut in half is dropped.
func Truncate(s string, n int) string {
	if len(s) > n {
		s = s[:n]
	}
	return strings.ToValidUTF8(s, "")
}
