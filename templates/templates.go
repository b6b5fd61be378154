// Package templates embeds optin's page and mail templates and message
// catalogs, so the binary runs with no files beside it.
package templates

import "embed"

// FS holds pages/*.html, mail/*.tmpl, locales/*.yaml and embed/embed.js.
//
//go:embed pages mail locales embed
var FS embed.FS
