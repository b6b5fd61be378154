package consent_test

import (
	"testing"

	"optin/internal/consent"
)

func TestNewBrand(t *testing.T) {
	got, err := consent.NewBrand(consent.Brand{SiteName: "  Bottega Rossi ", LogoURL: "https://shop.example/logo.png",
		AccentColor: "#A3c", BackURL: "http://127.0.0.1:9000/"})
	want := consent.Brand{SiteName: "Bottega Rossi", LogoURL: "https://shop.example/logo.png", AccentColor: "#aa33cc",
		BackURL: "http://127.0.0.1:9000/"}
	if err != nil || got != want {
		t.Errorf("NewBrand: got %+v, %v; want %+v", got, err, want)
	}
	if got, err := consent.NewBrand(consent.Brand{}); err != nil || got != (consent.Brand{}) {
		t.Errorf("NewBrand(empty): got %+v, %v; want it unchanged", got, err)
	}
	reject := map[string]consent.Brand{
		"colour name":             {AccentColor: "red"},
		"colour with a CSS break": {AccentColor: "#fff;background:url(x)"},
		"colour with 5 digits":    {AccentColor: "#12345"},
		"colour not hex":          {AccentColor: "#12345g"},
		"logo over http":          {LogoURL: "http://shop.example/logo.png"},
		"logo javascript":         {LogoURL: "javascript:alert(1)"},
		"logo relative":           {LogoURL: "/logo.png"},
		"logo with a quote":       {LogoURL: "https://shop.example/a\"onerror=alert(1)"},
		"logo with user info":     {LogoURL: "https://u:p@shop.example/logo.png"},
		"back link with newline":  {BackURL: "https://shop.example/\r\nBcc: x@evil.test"},
		"back link data":          {BackURL: "data:text/html,hi"},
		"site name with newline":  {SiteName: "Shop\nBcc: x@evil.test"},
		"site name too long":      {SiteName: string(make([]byte, 101))},
	}
	for name, b := range reject {
		if _, err := consent.NewBrand(b); consent.ErrorCode(err) != consent.EInvalid {
			t.Errorf("%s: NewBrand(%+v): got %v, want an invalid error", name, b, err)
		}
	}
}

func TestBrandOver(t *testing.T) {
	global := consent.Brand{SiteName: "Shop", LogoURL: "https://shop.example/l.png", AccentColor: "#112233", BackURL: "https://shop.example"}
	form := consent.Brand{SiteName: "Shop Outlet", AccentColor: "#445566"}
	want := consent.Brand{SiteName: "Shop Outlet", LogoURL: "https://shop.example/l.png", AccentColor: "#445566", BackURL: "https://shop.example"}
	if got := form.Over(global); got != want {
		t.Errorf("Over: got %+v, want %+v", got, want)
	}
}

// The text on the accent colour and accent-coloured text on white stay
// readable whatever colour the operator picks.
func TestBrandContrast(t *testing.T) {
	for _, tt := range []struct{ accent, on, ink string }{
		{"", "#ffffff", consent.DefaultAccent},
		{"#ffdd00", "#1d2330", "#1d2330"}, // yellow: dark text on it, never yellow text on white
		{"#000000", "#ffffff", "#000000"},
	} {
		b := consent.Brand{AccentColor: tt.accent}
		if b.OnAccent() != tt.on || b.AccentInk() != tt.ink {
			t.Errorf("accent %q: OnAccent %s, AccentInk %s; want %s, %s", tt.accent, b.OnAccent(), b.AccentInk(), tt.on, tt.ink)
		}
	}
}
