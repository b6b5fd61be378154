package storetest

import (
	"testing"

	"optin/internal/consent"
)

// testPresentation: a form's brand is kept by CreateForm and replaced by
// UpdateForm, and a confirmation mail names the form it came from, so
// the mail can wear that brand.
func testPresentation(t *testing.T, f *fixture) {
	ctx := t.Context()
	f.bootstrap()
	brand := consent.Brand{SiteName: "Bottega Rossi", LogoURL: "https://shop.example/logo.png", AccentColor: "#0a6e3c",
		BackURL: "https://shop.example/"}
	shop := consent.Form{ID: "shop", Topics: []string{"news"}, Locale: "en", Brand: brand}
	if got, err := f.s.CreateForm(ctx, admin, shop); err != nil || got.Brand != brand {
		t.Errorf("CreateForm: got brand %+v, %v; want %+v", got.Brand, err, brand)
	}
	if got, err := f.s.Form(ctx, "shop"); err != nil || got.Brand != brand {
		t.Errorf("Form after CreateForm: got brand %+v, %v; want %+v", got.Brand, err, brand)
	}
	shop.Brand = consent.Brand{SiteName: "Rossi Outlet"}
	if got, err := f.s.UpdateForm(ctx, admin, shop); err != nil || got.Brand != shop.Brand || got.WordingVersion != 1 {
		t.Errorf("UpdateForm: got brand %+v, version %d, %v; want %+v and the wording version unchanged", got.Brand,
			got.WordingVersion, err, shop.Brand)
	}
	if got, err := f.s.Form(ctx, "shop"); err != nil || got.Brand != shop.Brand {
		t.Errorf("Form after UpdateForm: got brand %+v, %v; want %+v", got.Brand, err, shop.Brand)
	}

	f.signup("ann@example.com")
	if j := f.onlyJob(); j.Kind != consent.JobConfirm || j.Form != "newsletter" {
		t.Errorf("confirmation job: got kind %s, form %q; want confirm from newsletter", j.Kind, j.Form)
	}
}

// testTopicTranslations: a topic's translations are kept by CreateTopic
// and replaced by UpdateTopic; a changed name in any language gives the
// forms that offer the topic a new wording version, a changed
// description does not.
func testTopicTranslations(t *testing.T, f *fixture) {
	ctx := t.Context()
	f.bootstrap()
	it := map[string]consent.TopicText{"it": {Name: "Offerte", Description: "Sconti"}}
	if got, err := f.s.CreateTopic(ctx, admin, consent.Topic{ID: "deals", Name: "Deals", Translations: it}); err != nil ||
		got.Translations["it"] != it["it"] {
		t.Errorf("CreateTopic: got %+v, %v; want the Italian translation", got, err)
	}
	if got, err := f.s.Topic(ctx, "deals"); err != nil || got.Translations["it"] != it["it"] {
		t.Errorf("Topic after CreateTopic: got %+v, %v; want the Italian translation", got, err)
	}
	version := func() int {
		t.Helper()
		form, err := f.s.Form(ctx, "newsletter")
		if err != nil {
			t.Fatal(err)
		}
		return form.WordingVersion
	}
	v := version()
	news := consent.Topic{ID: "news", Name: "Product news", Translations: map[string]consent.TopicText{"sv": {Name: "Nyheter"}}}
	if got, err := f.s.UpdateTopic(ctx, admin, news); err != nil || got.Translations["sv"].Name != "Nyheter" {
		t.Errorf("UpdateTopic: got %+v, %v; want the Swedish name", got, err)
	}
	if got := version(); got != v+1 {
		t.Errorf("a new Swedish name: wording version %d, want %d", got, v+1)
	}
	news.Translations = map[string]consent.TopicText{"sv": {Name: "Nyheter", Description: "Två gånger i månaden"}}
	if _, err := f.s.UpdateTopic(ctx, admin, news); err != nil {
		t.Fatal(err)
	}
	if got, err := f.s.Topic(ctx, "news"); err != nil || got.Translations["sv"] != news.Translations["sv"] {
		t.Errorf("Topic after UpdateTopic: got %+v, %v; want %+v", got.Translations, err, news.Translations)
	}
	if got := version(); got != v+1 {
		t.Errorf("a new Swedish description: wording version %d, want %d unchanged", got, v+1)
	}
}
