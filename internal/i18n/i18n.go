// Package i18n holds optin's message catalogs: one YAML file of key/string
// pairs per locale under templates/locales. Templates call .L.T "key".
package i18n

import (
	"fmt"
	"io/fs"
	"path"
	"slices"
	"sort"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
)

// Default is the locale used when nothing else matches; its catalog must
// hold every key.
const Default = "en"

// Catalog holds the strings of every locale.
type Catalog struct {
	msgs map[string]map[string]string
}

// Load reads every dir/<locale>.yaml in fsys. It fails when the default
// locale is missing or another locale has a key the default lacks.
func Load(fsys fs.FS, dir string) (*Catalog, error) {
	names, err := fs.Glob(fsys, path.Join(dir, "*.yaml"))
	if err != nil {
		return nil, err
	}
	c := &Catalog{msgs: map[string]map[string]string{}}
	for _, n := range names {
		b, err := fs.ReadFile(fsys, n)
		if err != nil {
			return nil, err
		}
		m := map[string]string{}
		if err := yaml.Unmarshal(b, &m); err != nil {
			return nil, fmt.Errorf("i18n: %s: %w", n, err)
		}
		c.msgs[strings.TrimSuffix(path.Base(n), ".yaml")] = m
	}
	def, ok := c.msgs[Default]
	if !ok {
		return nil, fmt.Errorf("i18n: no %s catalog in %s", Default, dir)
	}
	for loc, m := range c.msgs {
		for k := range m {
			if _, ok := def[k]; !ok {
				return nil, fmt.Errorf("i18n: %s has key %q that %s lacks", loc, k, Default)
			}
		}
	}
	return c, nil
}

// Locales returns the supported locales, sorted.
func (c *Catalog) Locales() []string {
	var ls []string
	for l := range c.msgs {
		ls = append(ls, l)
	}
	sort.Strings(ls)
	return ls
}

// Supported reports whether the catalog has locale l.
func (c *Catalog) Supported(l string) bool { _, ok := c.msgs[l]; return ok }

// Pick returns the first candidate the catalog supports, trying each one
// and then its primary subtag ("sv-SE" then "sv"); Default if none.
func (c *Catalog) Pick(candidates ...string) string {
	for _, cand := range candidates {
		cand = strings.ToLower(strings.TrimSpace(cand))
		if c.Supported(cand) {
			return cand
		}
		if i := strings.IndexAny(cand, "-_"); i > 0 && c.Supported(cand[:i]) {
			return cand[:i]
		}
	}
	return Default
}

// Localizer is a catalog bound to one locale.
type Localizer struct {
	c      *Catalog
	Locale string
}

// For returns a Localizer for locale l (which should come from Pick).
func (c *Catalog) For(l string) Localizer { return Localizer{c: c, Locale: l} }

// T returns the string for key, falling back to the default locale and
// then to the key itself. Args fill fmt verbs in the string.
func (l Localizer) T(key string, args ...any) string {
	s, ok := l.c.msgs[l.Locale][key]
	if !ok {
		if s, ok = l.c.msgs[Default][key]; !ok {
			return key
		}
	}
	if len(args) > 0 {
		return fmt.Sprintf(s, args...)
	}
	return s
}

// AcceptLanguage returns the language tags of an Accept-Language header
// value ordered by descending quality; tags with q=0 are dropped.
func AcceptLanguage(h string) []string {
	type tag struct {
		name string
		q    float64
	}
	var tags []tag
	for _, part := range strings.Split(h, ",") {
		name, params, _ := strings.Cut(strings.TrimSpace(part), ";")
		q := 1.0
		if v, ok := strings.CutPrefix(strings.TrimSpace(params), "q="); ok {
			if f, err := strconv.ParseFloat(v, 64); err == nil {
				q = f
			}
		}
		if name != "" && name != "*" && q > 0 {
			tags = append(tags, tag{name, q})
		}
	}
	slices.SortStableFunc(tags, func(a, b tag) int {
		switch {
		case a.q > b.q:
			return -1
		case a.q < b.q:
			return 1
		}
		return 0
	})
	out := make([]string, len(tags))
	for i, t := range tags {
		out[i] = t.name
	}
	return out
}
