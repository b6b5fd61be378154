package scanner_test

import (
	"net/netip"
	"strings"
	"testing"

	"optin/internal/scanner"
)

// TestKnown: the embedded list parses, names the gateways' ranges and
// takes the configured ones; other addresses are on none.
func TestKnown(t *testing.T) {
	l, err := scanner.Known(scanner.Network{Name: "configured", Prefix: netip.MustParsePrefix("198.51.100.0/24")})
	if err != nil {
		t.Fatal(err)
	}
	for ip, want := range map[string]string{
		"40.107.22.5":        "Microsoft Exchange Online Protection",
		"::ffff:104.47.1.2":  "Microsoft Exchange Online Protection",
		"2a01:111:f403:1::9": "Microsoft Exchange Online Protection",
		"148.163.150.7":      "Proofpoint",
		"170.10.129.124":     "Mimecast",
		"209.222.82.40":      "Barracuda Email Gateway Defense",
		"198.51.100.77":      "configured",
		"192.0.2.1":          "",
		"127.0.0.1":          "",
		"not an address":     "",
		"2001:db8::1":        "",
	} {
		if got := l.Lookup(ip); got != want {
			t.Errorf("Lookup(%q): got %q, want %q", ip, got, want)
		}
	}
}

func TestParseErrors(t *testing.T) {
	for in, want := range map[string]string{
		"10.0.0.0/8\n":                  "line 1",
		"network A\n# c\n10.0.0.1/8\n":  "line 3",
		"network A\n\n10.0.0.0/33\n":    "line 3",
		"network A\n10.0.0.0/8 extra\n": "line 2",
	} {
		_, err := scanner.Parse(strings.NewReader(in))
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Parse(%q): got %v, want an error naming %s", in, err, want)
		}
	}
}

func TestAutomation(t *testing.T) {
	for ua, want := range map[string]bool{
		"Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) HeadlessChrome/131.0.0.0 Safari/537.36":                           true,
		"Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36":                         false,
		"Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Mobile/15E148 Safari/604.1": false,
		"Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0":                                                                  false,
		"python-requests/2.32.3": true,
		"curl/8.11.0":            true,
		"Go-http-client/1.1":     true,
		"":                       true,
		"   ":                    true,
	} {
		if got := scanner.Automation(ua); got != want {
			t.Errorf("Automation(%q): got %v, want %v", ua, got, want)
		}
	}
}

func TestSameNetwork(t *testing.T) {
	for _, c := range []struct {
		a, b string
		want bool
	}{
		{"192.0.2.7", "192.0.2.200", true},
		{"192.0.2.7", "192.0.3.7", false},
		{"::ffff:192.0.2.7", "192.0.2.9", true},
		{"2001:db8:1:2::1", "2001:db8:1:ffff::2", true},
		{"2001:db8:1::1", "2001:db8:2::1", false},
		{"192.0.2.7", "2001:db8::1", false},
		{"", "192.0.2.7", false},
	} {
		if got := scanner.SameNetwork(c.a, c.b); got != c.want {
			t.Errorf("SameNetwork(%q, %q): got %v, want %v", c.a, c.b, got, c.want)
		}
	}
}
