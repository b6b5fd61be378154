package consent

import (
	"math"
	"net/url"
	"strconv"
	"strings"
)

// Brand is how the public pages and the mails present the operator: the
// site's name, its logo, an accent colour and the shop's own site, which
// pages link back to. The configuration sets one for every page and
// mail; a form may set any field of its own, which wins on the pages and
// mails of that form (see Over). Empty fields are unset.
type Brand struct {
	SiteName string `json:"site_name,omitempty"`
	// LogoURL is an absolute https URL (http only on a loopback host).
	LogoURL string `json:"logo_url,omitempty"`
	// AccentColor is "#rrggbb", lower case.
	AccentColor string `json:"accent_color,omitempty"`
	// BackURL is the shop's site: absolute https (http only on a
	// loopback host).
	BackURL string `json:"back_url,omitempty"`
}

// DefaultAccent is the accent colour of a brand that sets none.
const DefaultAccent = "#1f5fbf"

// NewBrand checks b and returns it normalized: text trimmed, the colour
// in lower case and six digits. The site name is plain text of at most
// 100 characters on one line; the URLs are absolute https URLs (http only
// on a loopback host) of at most 2048 bytes without user info; the colour
// is #rgb or #rrggbb. Nothing else passes, so a value can end no CSS
// declaration, attribute or header line it is put in.
func NewBrand(b Brand) (Brand, error) {
	b.SiteName = strings.TrimSpace(b.SiteName)
	if !PlainText(b.SiteName, 100, false) {
		return b, Errorf(EInvalid, "brand.site_name must be at most 100 characters on one line, without control characters")
	}
	var err error
	if b.LogoURL, err = brandURL(b.LogoURL, "brand.logo_url"); err != nil {
		return b, err
	}
	if b.BackURL, err = brandURL(b.BackURL, "brand.back_url"); err != nil {
		return b, err
	}
	if b.AccentColor, err = parseColor(strings.TrimSpace(b.AccentColor)); err != nil {
		return b, err
	}
	return b, nil
}

// brandURL checks one of a brand's URLs; "" is unset.
func brandURL(raw, key string) (string, error) {
	raw = strings.TrimSpace(raw)
	if raw == "" {
		return "", nil
	}
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" || u.User != nil || len(raw) > 2048 || !SecureURL(u) ||
		strings.ContainsAny(raw, " \t\r\n\"'<>\\") {
		return "", Errorf(EInvalid, "%s must be an absolute https URL (http only on a loopback host)", key)
	}
	return raw, nil
}

// parseColor returns a #rgb or #rrggbb colour as #rrggbb in lower case;
// "" is unset.
func parseColor(c string) (string, error) {
	if c == "" {
		return "", nil
	}
	bad := Errorf(EInvalid, "brand.accent_color must be a colour written #rrggbb or #rgb, such as #1f5fbf")
	if len(c) != 4 && len(c) != 7 || c[0] != '#' {
		return "", bad
	}
	hex := strings.ToLower(c[1:])
	if strings.Trim(hex, "0123456789abcdef") != "" {
		return "", bad
	}
	if len(hex) == 3 {
		hex = string([]byte{hex[0], hex[0], hex[1], hex[1], hex[2], hex[2]})
	}
	return "#" + hex, nil
}

// Over returns b with every field it leaves unset taken from base: a
// form's brand over the configured one.
func (b Brand) Over(base Brand) Brand {
	pick := func(own, def string) string {
		if own != "" {
			return own
		}
		return def
	}
	return Brand{SiteName: pick(b.SiteName, base.SiteName), LogoURL: pick(b.LogoURL, base.LogoURL),
		AccentColor: pick(b.AccentColor, base.AccentColor), BackURL: pick(b.BackURL, base.BackURL)}
}

// Accent returns the accent colour, DefaultAccent when unset.
func (b Brand) Accent() string {
	if b.AccentColor == "" {
		return DefaultAccent
	}
	return b.AccentColor
}

// ink is the dark text colour of pages and mails.
const ink = "#1d2330"

// OnAccent returns the text colour for text on the accent colour: white
// or ink, whichever contrasts more with it (WCAG 2.2, contrast ratio).
func (b Brand) OnAccent() string {
	a := luminance(b.Accent())
	if contrast(luminance("#ffffff"), a) >= contrast(a, luminance(ink)) {
		return "#ffffff"
	}
	return ink
}

// AccentInk returns the colour for accent-coloured text on white: the
// accent when it reaches the 4.5:1 contrast WCAG 2.2 asks of text (1.4.3),
// else ink.
func (b Brand) AccentInk() string {
	if contrast(luminance("#ffffff"), luminance(b.Accent())) >= 4.5 {
		return b.Accent()
	}
	return ink
}

// luminance is the relative luminance of a #rrggbb colour (WCAG 2.2).
func luminance(c string) float64 {
	var l float64
	for i, w := range []float64{0.2126, 0.7152, 0.0722} {
		v, _ := strconv.ParseUint(c[1+2*i:3+2*i], 16, 8)
		s := float64(v) / 255
		if s <= 0.04045 {
			s /= 12.92
		} else {
			s = math.Pow((s+0.055)/1.055, 2.4)
		}
		l += w * s
	}
	return l
}

// contrast is the contrast ratio of a lighter and a darker luminance.
func contrast(lighter, darker float64) float64 { return (lighter + 0.05) / (darker + 0.05) }
