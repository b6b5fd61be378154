package bolt_test

import (
	"testing"

	"optin/internal/consent"
)

// TestBootstrapDefaultsThenKey: a Bootstrap without a key (an import
// before the first start) creates topic and form only; a later one with a
// key creates the key, and leaves the catalog alone.
func TestBootstrapDefaultsThenKey(t *testing.T) {
	db := mustOpen(t)
	topic := consent.Topic{ID: "news", Name: "Product news"}
	form := consent.Form{ID: "newsletter", Topics: []string{"news"}, WordingVersion: 1}
	if created, err := db.Bootstrap(t.Context(), topic, form, ""); err != nil || created {
		t.Fatalf("Bootstrap without a key: got %v, %v, want false, nil", created, err)
	}
	if _, err := db.Form(t.Context(), "newsletter"); err != nil {
		t.Errorf("Form(newsletter): %v", err)
	}
	if keys, err := db.APIKeys(t.Context()); err != nil || len(keys) != 0 {
		t.Errorf("APIKeys: got %d, %v, want none", len(keys), err)
	}

	other := consent.Form{ID: "other", Topics: []string{"other"}, WordingVersion: 1}
	created, err := db.Bootstrap(t.Context(), consent.Topic{ID: "other"}, other, consent.HashAPIKey(testKey))
	if err != nil || !created {
		t.Fatalf("Bootstrap with a key: got %v, %v, want true, nil", created, err)
	}
	if _, err := db.APIKey(t.Context(), consent.HashAPIKey(testKey)); err != nil {
		t.Errorf("APIKey: %v", err)
	}
	if _, err := db.Topic(t.Context(), "other"); consent.ErrorCode(err) != consent.ENotFound {
		t.Errorf("Topic(other): got %v, want %s: the catalog was not empty", err, consent.ENotFound)
	}
	if created, err := db.Bootstrap(t.Context(), topic, form, consent.HashAPIKey("another")); err != nil || created {
		t.Errorf("third Bootstrap: got %v, %v, want false, nil", created, err)
	}
}
