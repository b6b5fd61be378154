package i18n

import (
	"io/fs"
	"maps"
	"regexp"
	"slices"
	"strings"
	"testing"
	"testing/fstest"

	"go.yaml.in/yaml/v3"

	"optin/templates"
)

// shipped are the locales optin ships: the languages of the seeds.
var shipped = []string{"en", "it", "sv"}

func readCatalog(t *testing.T, locale string) map[string]string {
	t.Helper()
	b, err := fs.ReadFile(templates.FS, "locales/"+locale+".yaml")
	if err != nil {
		t.Fatal(err)
	}
	m := map[string]string{}
	if err := yaml.Unmarshal(b, &m); err != nil {
		t.Fatalf("%s: %v", locale, err)
	}
	return m
}

var verbRE = regexp.MustCompile(`%[a-z%]`)

// TestCatalogsComplete checks that every shipped locale has exactly the
// keys of en, no empty string, and the same fmt verbs in the same order,
// so no page or mail falls back to English or breaks a Sprintf.
func TestCatalogsComplete(t *testing.T) {
	cat, err := Load(templates.FS, "locales")
	if err != nil {
		t.Fatal(err)
	}
	if got := cat.Locales(); !slices.Equal(got, shipped) {
		t.Errorf("locales: got %v, want %v", got, shipped)
	}
	en := readCatalog(t, Default)
	for _, loc := range shipped {
		t.Run(loc, func(t *testing.T) {
			m := readCatalog(t, loc)
			for _, k := range slices.Sorted(maps.Keys(en)) {
				v, ok := m[k]
				if !ok {
					t.Errorf("key %q missing", k)
					continue
				}
				if strings.TrimSpace(v) == "" {
					t.Errorf("key %q is empty", k)
				}
				if got, want := verbRE.FindAllString(v, -1), verbRE.FindAllString(en[k], -1); !slices.Equal(got, want) {
					t.Errorf("key %q: verbs %v, want %v as in en", k, got, want)
				}
			}
			for k := range m {
				if _, ok := en[k]; !ok {
					t.Errorf("key %q is not in en", k)
				}
			}
			if loc != Default {
				same := 0
				for k, v := range m {
					if v == en[k] {
						same++
					}
				}
				if same > 0 {
					t.Errorf("%d strings are identical to English: not translated?", same)
				}
			}
		})
	}
}

func TestLoadRefusesUnknownKey(t *testing.T) {
	fsys := fstest.MapFS{
		"l/en.yaml": {Data: []byte(`a: "A"`)},
		"l/it.yaml": {Data: []byte(`a: "A"` + "\n" + `b: "B"`)},
	}
	if _, err := Load(fsys, "l"); err == nil || !strings.Contains(err.Error(), `"b"`) {
		t.Errorf("Load: got %v, want an error naming key b", err)
	}
	if _, err := Load(fstest.MapFS{"l/it.yaml": {Data: []byte(`a: "A"`)}}, "l"); err == nil {
		t.Error("Load without en: got nil error")
	}
}

func TestPick(t *testing.T) {
	cat, err := Load(templates.FS, "locales")
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		cands []string
		want  string
	}{
		{nil, "en"},
		{[]string{"it"}, "it"},
		{[]string{"SV-se"}, "sv"},
		{[]string{"de", "it_IT", "sv"}, "it"},
		{[]string{"", "de", "sv"}, "sv"},
		{[]string{"<script>", "x"}, "en"},
		{[]string{"de"}, "en"},
	}
	for _, tt := range tests {
		if got := cat.Pick(tt.cands...); got != tt.want {
			t.Errorf("Pick(%q): got %q, want %q", tt.cands, got, tt.want)
		}
	}
}

func TestAcceptLanguage(t *testing.T) {
	tests := []struct {
		header string
		want   []string
	}{
		{"", nil},
		{"sv-SE,sv;q=0.9,en;q=0.5", []string{"sv-SE", "sv", "en"}},
		{"en;q=0.2, it;q=0.8, *;q=0.1", []string{"it", "en"}},
		{"it;q=0, sv", []string{"sv"}},
		{"fr;q=bogus, de;q=0.5", []string{"fr", "de"}},
	}
	for _, tt := range tests {
		got := AcceptLanguage(tt.header)
		if len(got) == 0 && len(tt.want) == 0 {
			continue
		}
		if !slices.Equal(got, tt.want) {
			t.Errorf("AcceptLanguage(%q): got %q, want %q", tt.header, got, tt.want)
		}
	}
}

func TestT(t *testing.T) {
	cat, err := Load(templates.FS, "locales")
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		locale, key string
		args        []any
		want        string
	}{
		{"it", "confirm.button", nil, "Conferma"},
		{"sv", "mail.confirm.greeting", []any{"Ann"}, "Hej Ann,"},
		{"sv", "no.such.key", nil, "no.such.key"},
	}
	for _, tt := range tests {
		if got := cat.For(tt.locale).T(tt.key, tt.args...); got != tt.want {
			t.Errorf("%s %s: got %q, want %q", tt.locale, tt.key, got, tt.want)
		}
	}
}
