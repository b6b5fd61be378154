package postgres_test

import (
	"fmt"
	"sync"
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

// TestSignupsReadAhead: signups that share a transaction read their
// addresses' state in one statement (readAhead); they must come out as
// one at a time would: a blocked address gets nothing, one with an open
// request no second mail, one signed up twice at once one mail, every
// new one its own.
func TestSignupsReadAhead(t *testing.T) {
	db := open(t, pg.EmptyDatabase(t), nil, testHMACKey)
	form := bootstrap(t, db)
	ctx := t.Context()
	addr := func(email string) consent.Address {
		a, err := consent.ParseAddress(email)
		if err != nil {
			t.Fatal(err)
		}
		return a
	}
	if _, _, err := db.AddSuppression(ctx, consent.Actor{Name: "test"}, addr("blocked@example.com"), "", "complaint"); err != nil {
		t.Fatalf("AddSuppression: %v", err)
	}
	signup(t, db, &form, "pending@example.com")
	emails := []string{"blocked@example.com", "pending@example.com", "twice@example.com", "twice@example.com"}
	for i := range 60 {
		emails = append(emails, fmt.Sprintf("new%d@example.com", i))
	}
	queued := make([]bool, len(emails))
	var wg sync.WaitGroup
	for i, email := range emails {
		wg.Go(func() {
			in := consent.SignupInput{Form: &form, Address: addr(email), Locale: "en", Topics: []string{"news"}, IP: "192.0.2.1"}
			res, err := db.Signup(ctx, in, form.WordingFor("en", nil, "Yes", ""))
			if err != nil {
				t.Errorf("Signup(%s): %v", email, err)
			}
			queued[i] = res.Queued
		})
	}
	wg.Wait()
	if queued[0] || queued[1] {
		t.Errorf("Signup of a blocked address, of one with an open request: queued %v, %v, want false, false", queued[0], queued[1])
	}
	if queued[2] == queued[3] {
		t.Errorf("two signups of one new address at once: queued %v, %v, want one mail", queued[2], queued[3])
	}
	for i := 4; i < len(emails); i++ {
		if !queued[i] {
			t.Errorf("Signup(%s): not queued, want a mail", emails[i])
		}
	}
	if _, err := db.SubscriberByAddress(ctx, addr("blocked@example.com")); consent.ErrorCode(err) != consent.ENotFound {
		t.Errorf("SubscriberByAddress of the blocked address: got err %v, want ENotFound", err)
	}
	for _, email := range emails[1:] {
		if _, err := db.SubscriberByAddress(ctx, addr(email)); err != nil {
			t.Errorf("SubscriberByAddress(%s): %v", email, err)
		}
	}
	// One event for each subscriber: pending@ before, twice@ and the new.
	if r, err := db.VerifyLedger(ctx); err != nil || !r.OK || r.Events != uint64(len(emails)-2) {
		t.Errorf("VerifyLedger: got %+v, %v, want %d events, OK", r, err, len(emails)-2)
	}
}

// TestCatalogCopies: the cache keeps forms and topics decoded, so a
// caller that changes the maps and slices of what it got must not change
// what the next caller reads.
func TestCatalogCopies(t *testing.T) {
	db := open(t, pg.EmptyDatabase(t), nil, testHMACKey)
	form := bootstrap(t, db)
	ctx := t.Context()
	topic := consent.Topic{ID: "offers", Name: "Offers", Translations: map[string]consent.TopicText{"de": {Name: "Angebote"}}, Frequencies: []consent.Frequency{consent.FrequencyWeekly}}
	if _, err := db.CreateTopic(ctx, consent.Actor{Name: "test"}, topic); err != nil {
		t.Fatalf("CreateTopic: %v", err)
	}
	form.AllowedOrigins = []string{"https://shop.example"}
	form.Channels = []consent.Channel{consent.ChannelSMS}
	if _, err := db.UpdateForm(ctx, consent.Actor{Name: "test"}, form); err != nil {
		t.Fatalf("UpdateForm: %v", err)
	}
	// Once the listener listens the reads come from the cache; spoil
	// each read, many times over, and see the next one as stored.
	for deadline := time.Now().Add(3 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		f, err := db.Form(ctx, form.ID)
		if err != nil {
			t.Fatalf("Form: %v", err)
		}
		if f.Wording["en"] != "Yes" || f.Topics[0] != "news" || f.AllowedOrigins[0] != "https://shop.example" || f.Channels[0] != consent.ChannelSMS {
			t.Fatalf("Form after a caller changed its copy: %+v", f)
		}
		f.Wording["en"], f.Topics[0], f.AllowedOrigins[0], f.Channels[0] = "spoilt", "spoilt", "spoilt", "spoilt"
		tp, err := db.Topic(ctx, topic.ID)
		if err != nil {
			t.Fatalf("Topic: %v", err)
		}
		if tp.Translations["de"].Name != "Angebote" || tp.Frequencies[0] != consent.FrequencyWeekly {
			t.Fatalf("Topic after a caller changed its copy: %+v", tp)
		}
		tp.Translations["de"], tp.Frequencies[0] = consent.TopicText{Name: "spoilt"}, "spoilt"
	}
}
