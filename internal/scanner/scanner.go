// Package scanner recognises mail security scanners by where they come
// from and what they say they are: the published networks of the big mail
// security gateways (networks.txt, embedded in the binary, extended by the
// configuration) and the user agents of headless and automation browsers.
package scanner

import (
	"bufio"
	_ "embed"
	"fmt"
	"io"
	"net/netip"
	"strings"
)

//go:embed networks.txt
var networksTxt string

// Network is one address range of a known scanner.
type Network struct {
	Name   string
	Prefix netip.Prefix
}

// List finds the known scanner network an address is on.
type List struct{ nets []Network }

// Known returns the embedded list of the big gateways' networks with
// extra added.
func Known(extra ...Network) (*List, error) {
	nets, err := Parse(strings.NewReader(networksTxt))
	if err != nil {
		return nil, fmt.Errorf("scanner: embedded networks.txt: %w", err)
	}
	return &List{nets: append(nets, extra...)}, nil
}

// Parse reads a networks file: "network NAME" starts a block whose lines
// are CIDRs; blank lines and lines starting with # are skipped. A CIDR
// outside a block, or one that is not a network address, is an error
// naming its line.
func Parse(r io.Reader) ([]Network, error) {
	var out []Network
	name := ""
	sc := bufio.NewScanner(r)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		switch {
		case line == "" || strings.HasPrefix(line, "#"):
		case strings.HasPrefix(line, "network "):
			name = strings.TrimSpace(strings.TrimPrefix(line, "network "))
		case name == "":
			return nil, fmt.Errorf("line %d: %q before any \"network NAME\" line", n, line)
		default:
			p, err := netip.ParsePrefix(line)
			if err != nil || p != p.Masked() {
				return nil, fmt.Errorf("line %d: %q is not a network in CIDR notation", n, line)
			}
			out = append(out, Network{Name: name, Prefix: p})
		}
	}
	return out, sc.Err()
}

// Lookup returns the name of the known scanner network ip is on, or ""
// when none is (or ip is not an address). An IPv4 address written as
// IPv6 (::ffff:a.b.c.d) counts as the IPv4 address.
func (l *List) Lookup(ip string) string {
	a, err := netip.ParseAddr(ip)
	if err != nil {
		return ""
	}
	a = a.Unmap()
	for _, n := range l.nets {
		if n.Prefix.Contains(a) {
			return n.Name
		}
	}
	return ""
}

// Automation reports whether ua is a headless or automation browser's or
// an HTTP library's user agent, or missing: every browser a person uses
// sends one.
func Automation(ua string) bool {
	ua = strings.ToLower(strings.TrimSpace(ua))
	if ua == "" {
		return true
	}
	// What headless browsers, browser automation and HTTP libraries put
	// in their user agents; a person's browser sends none of them.
	marks := []string{"headless", "phantomjs", "selenium", "webdriver", "puppeteer", "playwright",
		"python-requests", "python-urllib", "aiohttp", "curl/", "wget/", "go-http-client", "java/",
		"okhttp", "httpclient", "libwww-perl", "scrapy", "node-fetch", "axios/"}
	for _, m := range marks {
		if strings.Contains(ua, m) {
			return true
		}
	}
	return false
}

// SameNetwork reports whether a and b are in one network: the same /24
// for IPv4, the same /48 for IPv6 (what one site is usually given). It is
// false when either is not an address.
func SameNetwork(a, b string) bool {
	x, err1 := netip.ParseAddr(a)
	y, err2 := netip.ParseAddr(b)
	if err1 != nil || err2 != nil {
		return false
	}
	x, y = x.Unmap(), y.Unmap()
	if x.Is4() != y.Is4() {
		return false
	}
	bits := 48
	if x.Is4() {
		bits = 24
	}
	px, _ := x.Prefix(bits)
	return px.Contains(y)
}

// SameAddress reports whether a and b are one address (an IPv4 address
// written as IPv6 is the IPv4 address); false when either is not one.
func SameAddress(a, b string) bool {
	x, err1 := netip.ParseAddr(a)
	y, err2 := netip.ParseAddr(b)
	return err1 == nil && err2 == nil && x.Unmap() == y.Unmap()
}
