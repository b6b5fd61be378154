// Package jsonenc appends JSON values byte for byte as encoding/json's
// Marshal writes them, without reflection or allocation: for encoders
// written by hand where the bytes are hashed or signed (ledger events,
// tokens) or where reflection was the cost (exports).
package jsonenc

import (
	"time"
	"unicode/utf8"
)

// AppendString appends s as encoding/json writes a string with HTML
// escaping on (Marshal's and its Encoder's default): \" \\ \b \f \n \r
// \t, other control bytes and < > & as \u00XX, invalid UTF-8 as \ufffd,
// and U+2028 and U+2029 escaped.
func AppendString(b []byte, s string) []byte {
	const hex = "0123456789abcdef"
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		if c := s[i]; c < utf8.RuneSelf {
			if asIs[c] {
				i++
				continue
			}
			b = append(b, s[start:i]...)
			switch c {
			case '\\', '"':
				b = append(b, '\\', c)
			case '\b':
				b = append(b, '\\', 'b')
			case '\f':
				b = append(b, '\\', 'f')
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			default:
				b = append(b, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xF])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b = append(b, s[start:i]...)
			b = append(b, `\ufffd`...)
			i += size
			start = i
			continue
		}
		if r == '\u2028' || r == '\u2029' {
			b = append(b, s[start:i]...)
			b = append(b, '\\', 'u', '2', '0', '2', hex[r&0xF])
			i += size
			start = i
			continue
		}
		i += size
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}

// asIs marks the ASCII bytes AppendString copies as they are: printable
// ASCII and DEL, but for the quote, the backslash and < > &.
var asIs = func() (t [utf8.RuneSelf]bool) {
	for c := byte(0x20); c < utf8.RuneSelf; c++ {
		t[c] = c != '"' && c != '\\' && c != '<' && c != '>' && c != '&'
	}
	return t
}()

// AppendOptional appends key and s as a JSON string, or nothing when s
// is empty (a field tagged omitempty).
func AppendOptional(b []byte, key, s string) []byte {
	if s == "" {
		return b
	}
	return AppendString(append(b, key...), s)
}

// AppendTime appends t as time.Time's MarshalJSON does: quoted RFC 3339
// with nanoseconds (trailing zeros dropped). A time MarshalJSON refuses
// (a year past 9999, an offset of a day or more) is its error, with b
// returned as it was.
func AppendTime(b []byte, t time.Time) ([]byte, error) {
	if t.Location() == time.UTC {
		if out, ok := AppendUTC(append(b, '"'), t, false); ok {
			return append(out, '"'), nil
		}
	}
	out, err := t.AppendText(append(b, '"')) // MarshalJSON's own format and checks
	if err != nil {
		return b, err
	}
	return append(out, '"'), nil
}

// AppendUTC appends t, read in UTC, as RFC 3339 with "Z": with
// milliseconds (truncated, as time's layout ".000" writes them) when
// millis, else with its nanoseconds less their trailing zeros and no
// fraction at all for none (time.RFC3339Nano). Digits are written by
// hand: time's AppendFormat parses its layout on every call, which was
// an eighth of an export's CPU. A year outside 0-9999 is not written (ok
// false, b as it was): the caller falls back to package time, which
// writes such years its own way or refuses them.
func AppendUTC(b []byte, t time.Time, millis bool) (_ []byte, ok bool) {
	t = t.UTC()
	year, month, day := t.Date()
	if year < 0 || year > 9999 {
		return b, false
	}
	hour, minute, sec := t.Clock()
	b = appendDigits(b, year, 4)
	b = appendDigits(append(b, '-'), int(month), 2)
	b = appendDigits(append(b, '-'), day, 2)
	b = appendDigits(append(b, 'T'), hour, 2)
	b = appendDigits(append(b, ':'), minute, 2)
	b = appendDigits(append(b, ':'), sec, 2)
	ns := t.Nanosecond()
	switch {
	case millis:
		b = appendDigits(append(b, '.'), ns/1e6, 3)
	case ns != 0:
		digits := 9
		for ns%10 == 0 {
			ns /= 10
			digits--
		}
		b = appendDigits(append(b, '.'), ns, digits)
	}
	return append(b, 'Z'), true
}

// appendDigits appends n, at least 0, in exactly width decimal digits
// (n has no more).
func appendDigits(b []byte, n, width int) []byte {
	b = append(b, "000000000"[:width]...)
	for i := len(b) - 1; n > 0; i-- {
		b[i] = byte('0' + n%10)
		n /= 10
	}
	return b
}
