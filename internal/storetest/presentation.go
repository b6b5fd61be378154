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
