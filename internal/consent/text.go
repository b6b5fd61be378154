package consent

import (
	"strings"
	"unicode"
	"unicode/utf8"
)

// PlainText reports whether s is valid UTF-8 of at most max runes without
// control characters; multiline allows line feeds and tabs. The bidi
// embeddings, overrides and isolates (U+202A-U+202E, U+2066-U+2069) and
// the line and paragraph separators (U+2028, U+2029) count as control
// characters: they reorder or break the text around them wherever it is
// shown (Unicode UAX #9; CVE-2021-42574, "Trojan Source").
func PlainText(s string, max int, multiline bool) bool {
	return utf8.ValidString(s) && utf8.RuneCountInString(s) <= max && !strings.ContainsFunc(s, func(r rune) bool {
		return isControl(r) && !(multiline && (r == '\n' || r == '\t'))
	})
}

// isControl reports whether r is a control character (Cc), a bidi
// formatting character that overrides or embeds direction, or a line or
// paragraph separator.
func isControl(r rune) bool {
	return unicode.IsControl(r) || '\u202a' <= r && r <= '\u202e' || '\u2066' <= r && r <= '\u2069' ||
		r == '\u2028' || r == '\u2029'
}

// maxNameRunes is the longest subscriber name.
const maxNameRunes = 100

// ParseName returns a subscriber's name without surrounding white space;
// "" is no name. A name is PlainText of at most 100 characters on one
// line, or an EInvalid *Error.
func ParseName(s string) (string, error) {
	name := strings.TrimSpace(s)
	if !PlainText(name, maxNameRunes, false) {
		return "", Errorf(EInvalid, "name must be at most %d characters without control characters", maxNameRunes)
	}
	return name, nil
}

// Truncate cuts s to at most n bytes of valid UTF-8, for echoing input in
// messages; a rune cut in half is dropped.
func Truncate(s string, n int) string {
	if len(s) > n {
		s = s[:n]
	}
	return strings.ToValidUTF8(s, "")
}
