package bolt

import (
	"bytes"
	"context"
	"path/filepath"
	"testing"

	"optin/internal/consent"
)

// openBootstrappedDB opens a store in a temp dir with topic news and form
// newsletter.
func openBootstrappedDB(t *testing.T) (*DB, consent.Form) {
	t.Helper()
	db, err := Open(filepath.Join(t.TempDir(), "s.db"), Options{HMACKey: bytes.Repeat([]byte{7}, 32)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	form := consent.Form{ID: "newsletter", Topics: []string{"news"}, Locale: "en"}
	if _, err := db.Bootstrap(context.Background(), consent.Topic{ID: "news", Name: "News"}, form, "h"); err != nil {
		t.Fatal(err)
	}
	return db, form
}

// TestCatalogCacheFollowsWrites: reads served from the catalog cache see
// every change made through the store, and what a caller does to a form
// it got does not reach the next caller.
func TestCatalogCacheFollowsWrites(t *testing.T) {
	ctx := context.Background()
	db, _ := openBootstrappedDB(t)
	cli := consent.Actor{Name: "cli"}
	form := func() consent.Form {
		t.Helper()
		f, err := db.Form(ctx, "newsletter")
		if err != nil {
			t.Fatalf("Form: %v", err)
		}
		return f
	}
	first := form() // cached from here on
	if first.WordingVersion != 0 || len(first.Topics) != 1 {
		t.Fatalf("bootstrapped form: %+v", first)
	}
	first.Topics[0] = "changed by a caller"
	first.Wording = map[string]string{"en": "changed by a caller"}
	if got := form(); got.Topics[0] != "news" || got.Wording != nil {
		t.Errorf("a caller's change reached the cache: %+v", got)
	}

	upd := form()
	upd.Wording = map[string]string{"en": "New wording"}
	if _, err := db.UpdateForm(ctx, cli, upd); err != nil {
		t.Fatal(err)
	}
	if got := form(); got.WordingVersion != 1 || got.Wording["en"] != "New wording" {
		t.Errorf("after UpdateForm: got version %d wording %q, want 1 %q", got.WordingVersion, got.Wording["en"], "New wording")
	}

	if _, err := db.Topic(ctx, "news"); err != nil { // cached
		t.Fatal(err)
	}
	if _, err := db.UpdateTopic(ctx, cli, consent.Topic{ID: "news", Name: "Weekly news"}); err != nil {
		t.Fatal(err)
	}
	if got, err := db.Topic(ctx, "news"); err != nil || got.Name != "Weekly news" {
		t.Errorf("after UpdateTopic: got %+v, %v; want the name %q", got, err, "Weekly news")
	}
	if got := form(); got.WordingVersion != 2 {
		t.Errorf("a renamed topic changes the wording of its form: got version %d, want 2", got.WordingVersion)
	}

	if _, err := db.CreateTopic(ctx, cli, consent.Topic{ID: "offers", Name: "Offers"}); err != nil {
		t.Fatal(err)
	}
	if _, err := db.CreateForm(ctx, cli, consent.Form{ID: "shop", Topics: []string{"offers"}, Locale: "en"}); err != nil {
		t.Fatal(err)
	}
	if f, err := db.Form(ctx, "shop"); err != nil || f.Topics[0] != "offers" {
		t.Errorf("a created form: got %+v, %v", f, err)
	}
	if err := db.DeleteForm(ctx, cli, "newsletter"); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Form(ctx, "newsletter"); consent.ErrorCode(err) != consent.ENotFound {
		t.Errorf("a deleted form: got %v, want ENotFound", err)
	}
}
