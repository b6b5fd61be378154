// Package templates embeds optin's page and mail templates and message
// catalogs, so the binary runs with no files beside it.
package templates

import "embed"

// FS holds pages/*.html, mail/*.tmpl, locales/*.yaml, embed/embed.js and
// embed.css, and the console: console/*.html and its assets.
//
//go:embed pages mail locales embed console
var FS embed.FS
