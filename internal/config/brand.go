package config

import (
	"bytes"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"

	"optin/internal/consent"
)

// Brand is how the public pages and the mails present the operator; a
// form's own brand wins over it field by field.
type Brand struct {
	// SiteName is the name pages and mails show; default mail.from's
	// display name (else its address).
	SiteName string `yaml:"site_name"`
	// LogoURL is an https URL of the logo; LogoFile a PNG, JPEG, GIF,
	// WebP or SVG file (relative paths from data_dir) optin serves itself
	// at {base_url}/brand/logo. At most one of the two.
	LogoURL  string `yaml:"logo_url"`
	LogoFile string `yaml:"logo_file"`
	// AccentColor is the colour of buttons and borders, #rrggbb.
	AccentColor string `yaml:"accent_color"`
	// BackURL is the shop's own site (https, or http on a loopback
	// host), linked from every page a person lands on from a mail.
	BackURL string `yaml:"back_url"`
}

// maxLogoBytes caps a logo file: it is held in memory and sent with
// every page that shows it.
const maxLogoBytes = 512 << 10

// logoTypes are the content types of the logo files optin serves, by
// file name extension.
var logoTypes = map[string]string{".png": "image/png", ".jpg": "image/jpeg", ".jpeg": "image/jpeg",
	".gif": "image/gif", ".webp": "image/webp", ".svg": "image/svg+xml"}

// validate checks the brand and normalizes it (consent.NewBrand); a logo
// file must be readable and what its extension says.
func (b *Brand) validate(dataDir string) []error {
	var errs []error
	nb, err := consent.NewBrand(consent.Brand{SiteName: b.SiteName, LogoURL: b.LogoURL, AccentColor: b.AccentColor, BackURL: b.BackURL})
	if err != nil {
		errs = append(errs, errors.New(consent.ErrorMessage(err)))
	} else {
		b.SiteName, b.LogoURL, b.AccentColor, b.BackURL = nb.SiteName, nb.LogoURL, nb.AccentColor, nb.BackURL
	}
	if b.LogoFile != "" {
		if b.LogoURL != "" {
			errs = append(errs, errors.New("brand.logo_file: set, and so is brand.logo_url: keep one"))
		}
		if _, _, err := b.Logo(dataDir); err != nil {
			errs = append(errs, err)
		}
	}
	return errs
}

// Logo reads the logo file and returns its content type and bytes; a
// relative path is taken from dataDir.
func (b Brand) Logo(dataDir string) (string, []byte, error) {
	path := b.LogoFile
	if !filepath.IsAbs(path) {
		path = filepath.Join(dataDir, path)
	}
	ct, ok := logoTypes[strings.ToLower(filepath.Ext(path))]
	if !ok {
		return "", nil, fmt.Errorf("brand.logo_file: %q: must be a .png, .jpg, .gif, .webp or .svg file", b.LogoFile)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return "", nil, fmt.Errorf("brand.logo_file: %w", err)
	}
	if len(data) > maxLogoBytes {
		return "", nil, fmt.Errorf("brand.logo_file: %q: larger than %d KiB", b.LogoFile, maxLogoBytes>>10)
	}
	var fits bool
	if ct == "image/svg+xml" {
		fits = bytes.Contains(data, []byte("<svg"))
	} else {
		fits = http.DetectContentType(data) == ct
	}
	if !fits {
		return "", nil, fmt.Errorf("brand.logo_file: %q: the content is not %s", b.LogoFile, ct)
	}
	return ct, data, nil
}
