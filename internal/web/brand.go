package web

import (
	"context"
	"net/http"
	"net/url"

	"github.com/gin-gonic/gin"

	"optin/internal/consent"
)

// Logo is a logo file optin serves itself at /brand/logo.
type Logo struct {
	Type string // content type: image/png, image/svg+xml, ...
	Data []byte
}

// LogoPath is where optin serves the configured logo file.
const LogoPath = "/brand/logo"

// brandFor returns the brand of a page of form f (nil: a page of no
// form): the form's own brand over the configured one.
func (s *Server) brandFor(f *consent.Form) consent.Brand {
	if f == nil {
		return s.cfg.Brand
	}
	return f.Brand.Over(s.cfg.Brand)
}

// formBrand returns the brand of the pages of the form with id form ("":
// none); a form since deleted leaves the configured brand.
func (s *Server) formBrand(ctx context.Context, form string) consent.Brand {
	if form != "" {
		if f, err := s.store.Form(ctx, form); err == nil {
			return s.brandFor(&f)
		}
	}
	return s.brandFor(nil)
}

// imgSource returns the CSP source that lets a page load the logo at
// logo: 'self' for optin's own, else its origin; "" when it has none.
func (s *Server) imgSource(logo string) string {
	u, err := url.Parse(logo)
	if logo == "" || err != nil {
		return ""
	}
	origin := u.Scheme + "://" + u.Host
	if origin == s.origin {
		return "'self'"
	}
	if src := cspSources([]string{origin}); len(src) == 1 {
		return src[0]
	}
	return ""
}

// handleLogo serves the configured logo file. Mails and other sites show
// it too, so any origin may load it.
func (s *Server) handleLogo(c *gin.Context) {
	c.Header("Cache-Control", "public, max-age=3600")
	c.Header("Cross-Origin-Resource-Policy", "cross-origin")
	c.Data(http.StatusOK, s.cfg.Logo.Type, s.cfg.Logo.Data)
}
