package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestBrand(t *testing.T) {
	dir := t.TempDir()
	png := []byte("\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x01\x00\x00\x00\x01\x08\x06\x00\x00\x00")
	if err := os.WriteFile(filepath.Join(dir, "logo.png"), png, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "fake.png"), []byte("<script>alert(1)</script>"), 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := parseString(t, "data_dir: "+dir+"\nbrand:\n  site_name: ' Bottega Rossi '\n  logo_file: logo.png\n"+
		"  accent_color: '#A3C'\n  back_url: https://shop.example/\n", nil)
	if err != nil {
		t.Fatal(err)
	}
	want := Brand{SiteName: "Bottega Rossi", LogoFile: "logo.png", AccentColor: "#aa33cc", BackURL: "https://shop.example/"}
	if c.Brand != want {
		t.Errorf("brand: got %+v, want %+v", c.Brand, want)
	}
	if ct, data, err := c.Brand.Logo(c.DataDir); err != nil || ct != "image/png" || string(data) != string(png) {
		t.Errorf("Logo: got %q, %d bytes, %v; want image/png and the file", ct, len(data), err)
	}
	for yml, want := range map[string]string{
		"brand:\n  accent_color: 'red;x:y'\n":                           "brand.accent_color",
		"brand:\n  logo_url: http://shop.example/l.png\n":               "brand.logo_url",
		"brand:\n  back_url: javascript:alert(1)\n":                     "brand.back_url",
		"brand:\n  logo_file: logo.bmp\n":                               "brand.logo_file",
		"brand:\n  logo_file: fake.png\n":                               "brand.logo_file",
		"brand:\n  logo_file: missing.png\n":                            "brand.logo_file",
		"brand:\n  logo_file: logo.png\n  logo_url: https://x.test/l\n": "keep one",
	} {
		_, err := parseString(t, "data_dir: "+dir+"\n"+yml, nil)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: got %v, want an error naming %s", yml, err, want)
		}
	}
}
