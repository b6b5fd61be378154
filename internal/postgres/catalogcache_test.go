package postgres_test

import (
	"testing"
	"time"

	"optin/internal/consent"
	"optin/internal/postgres"
)

// TestCatalogAcrossInstances: an instance reads forms from its cache, and
// a change made by another instance, or by SQL outside optin, reaches it
// (through the notification); its own change it reads at once.
func TestCatalogAcrossInstances(t *testing.T) {
	url := pg.EmptyDatabase(t)
	a := open(t, url, nil, testHMACKey)
	b := open(t, url, nil, testHMACKey)
	form := bootstrap(t, a)
	wording := func(db *postgres.DB) string {
		t.Helper()
		f, err := db.Form(t.Context(), form.ID)
		if err != nil {
			t.Fatalf("Form: %v", err)
		}
		return f.Wording["en"]
	}
	// eventually waits for b to read want (the notification travels
	// between connections); the bound only stops a broken test.
	eventually := func(db *postgres.DB, want string) {
		t.Helper()
		for deadline := time.Now().Add(20 * time.Second); wording(db) != want; time.Sleep(10 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("Form: wording %q, want %q", wording(db), want)
			}
		}
	}
	eventually(b, "Yes") // filled b's cache once its listener listens
	if got := wording(a); got != "Yes" {
		t.Fatalf("Form on a: wording %q, want Yes", got)
	}

	upd := form
	upd.Wording = map[string]string{"en": "Ja"}
	if _, err := a.UpdateForm(t.Context(), consent.Actor{Name: "test"}, upd); err != nil {
		t.Fatalf("UpdateForm: %v", err)
	}
	if got := wording(a); got != "Ja" {
		t.Errorf("Form on the instance that changed it: wording %q, want Ja at once", got)
	}
	eventually(b, "Ja")

	pool, err := postgres.Connect(t.Context(), url)
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	if _, err := pool.Exec(t.Context(), `UPDATE forms SET data = jsonb_set(data, '{wording,en}', '"Oui"')`); err != nil {
		t.Fatal(err)
	}
	eventually(a, "Oui")
	eventually(b, "Oui")

	if err := b.DeleteForm(t.Context(), consent.Actor{Name: "test"}, form.ID); err != nil {
		t.Fatalf("DeleteForm: %v", err)
	}
	if _, err := b.Form(t.Context(), form.ID); consent.ErrorCode(err) != consent.ENotFound {
		t.Errorf("Form after DeleteForm on the same instance: got err %v, want ENotFound", err)
	}
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		_, err := a.Form(t.Context(), form.ID)
		if consent.ErrorCode(err) == consent.ENotFound {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("Form on the other instance after DeleteForm: got err %v, want ENotFound", err)
		}
	}
}
