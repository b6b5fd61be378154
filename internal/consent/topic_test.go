package consent_test

import (
	"testing"

	"optin/internal/consent"
)

func TestTopicTranslations(t *testing.T) {
	locales := []string{"en", "it", "sv"}
	in := consent.TopicInput{ID: "news", Name: " Product news ", Description: "Twice a month", Translations: map[string]consent.TopicText{
		"it": {Name: " Novità ", Description: "Due volte al mese"}, "sv": {Name: "Nyheter"}, "en": {}}}
	if err := in.Validate(locales); err != nil {
		t.Fatal(err)
	}
	want := map[string]consent.TopicText{"it": {Name: "Novità", Description: "Due volte al mese"}, "sv": {Name: "Nyheter"}}
	if in.Name != "Product news" || len(in.Translations) != 2 || in.Translations["it"] != want["it"] || in.Translations["sv"] != want["sv"] {
		t.Errorf("Validate: got %+v, want trimmed, the empty en translation dropped", in)
	}
	tp := in.Topic()
	for _, tt := range []struct{ loc, name, desc string }{
		{"it", "Novità", "Due volte al mese"},
		{"sv", "Nyheter", "Twice a month"}, // no Swedish description: the default one
		{"en", "Product news", "Twice a month"},
		{"de", "Product news", "Twice a month"},
	} {
		if got := tp.In(tt.loc); got.Name != tt.name || got.Description != tt.desc {
			t.Errorf("In(%s): got %q, %q; want %q, %q", tt.loc, got.Name, got.Description, tt.name, tt.desc)
		}
	}
	for name, tr := range map[string]map[string]consent.TopicText{
		"unknown locale":       {"de": {Name: "Neuigkeiten"}},
		"description, no name": {"it": {Description: "Due volte al mese"}},
		"name with a newline":  {"it": {Name: "Novità\nBcc: x"}},
		"description too long": {"it": {Name: "Novità", Description: string(make([]rune, 501))}},
	} {
		b := consent.TopicInput{ID: "news", Name: "News", Translations: tr}
		if err := b.Validate(locales); consent.ErrorCode(err) != consent.EInvalid {
			t.Errorf("%s: Validate got %v, want an invalid error", name, err)
		}
	}

	// A changed name in any language is a new wording; a description is not.
	for _, tt := range []struct {
		name    string
		upd     map[string]consent.TopicText
		renamed bool
	}{
		{"same", map[string]consent.TopicText{"it": {Name: "Novità", Description: "Due volte al mese"}, "sv": {Name: "Nyheter"}}, false},
		{"description", map[string]consent.TopicText{"it": {Name: "Novità", Description: "Ogni lunedì"}, "sv": {Name: "Nyheter"}}, false},
		{"Italian name", map[string]consent.TopicText{"it": {Name: "Notizie"}, "sv": {Name: "Nyheter"}}, true},
		{"translation removed", map[string]consent.TopicText{"it": {Name: "Novità"}}, true},
	} {
		cur := tp
		upd := tp
		upd.Translations = tt.upd
		if got := cur.Update(upd); got != tt.renamed || cur.Translations["it"] != tt.upd["it"] {
			t.Errorf("Update, %s: renamed %v, want %v; translations %+v", tt.name, got, tt.renamed, cur.Translations)
		}
	}
}
