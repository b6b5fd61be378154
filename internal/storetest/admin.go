package storetest

import (
	"encoding/csv"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"optin/internal/consent"
)

// testFindSubscribersUnderInserts: the listing filters, and pages through
// the subscribers in id order; a walk while others sign up sees every
// subscriber that existed before it exactly once and none twice.
func testFindSubscribersUnderInserts(t *testing.T, f *fixture) {
	ctx := t.Context()
	f.bootstrap()
	var b strings.Builder
	b.WriteString("email,name,topics,basis,consented_at,source\n")
	for i := range 60 {
		fmt.Fprintf(&b, "s%02d@example.com,Person %02d,news,consent,2025-01-01,shop\n", i, i)
	}
	if rep := f.importCSV(b.String()); rep.Imported != 60 {
		t.Fatalf("Import: got %+v, want 60 imported", rep)
	}
	f.signup("pending@example.com")
	before := f.allSubscribers()
	if len(before) != 61 || !slices.IsSorted(before) {
		t.Fatalf("FindSubscribers: got %d ids (sorted %v), want 61 in id order", len(before), slices.IsSorted(before))
	}
	find := func(filter consent.SubscriberFilter) []string {
		t.Helper()
		filter.Limit = 500
		page, next, err := f.s.FindSubscribers(ctx, filter)
		if err != nil || next != "" {
			t.Fatalf("FindSubscribers(%+v): got next %q, err %v, want one page", filter, next, err)
		}
		var emails []string
		for _, s := range page {
			emails = append(emails, s.Email)
		}
		return emails
	}
	if got := find(consent.SubscriberFilter{Status: consent.StatusPending}); !slices.Equal(got, []string{"pending@example.com"}) {
		t.Errorf("FindSubscribers(status pending): got %q, want pending@example.com", got)
	}
	if got := find(consent.SubscriberFilter{Topic: "offers"}); len(got) != 0 {
		t.Errorf("FindSubscribers(topic offers): got %q, want none", got)
	}
	if got := find(consent.SubscriberFilter{Query: "S07@EXAMPLE"}); !slices.Equal(got, []string{"s07@example.com"}) {
		t.Errorf("FindSubscribers(query S07@EXAMPLE): got %q, want s07@example.com", got)
	}
	if got := find(consent.SubscriberFilter{Query: "person 1"}); len(got) != 10 {
		t.Errorf("FindSubscribers(query by name): got %d, want 10", len(got))
	}
	if got := find(consent.SubscriberFilter{Query: "S07@example.com"}); !slices.Equal(got, []string{"s07@example.com"}) {
		t.Errorf("FindSubscribers(whole address): got %q, want s07@example.com", got)
	}

	// Writers sign up new addresses while the walk goes on: after each
	// page the walk waits for one more signup.
	const writers, each = 3, 20
	wording := f.wording()
	var ins [][]consent.SignupInput
	for w := range writers {
		ins = append(ins, nil)
		for i := range each {
			ins[w] = append(ins[w], f.signupInput(fmt.Sprintf("w%d-%02d@example.com", w, i)))
		}
	}
	signedUp := make(chan struct{}, writers*each)
	var wg sync.WaitGroup
	for _, in := range ins {
		wg.Go(func() {
			for _, one := range in {
				if _, err := f.s.Signup(ctx, one, wording); err != nil {
					t.Errorf("Signup(%s): got err %v, want nil", one.Address.Addr, err)
				}
				signedUp <- struct{}{}
			}
		})
	}
	written := make(chan struct{})
	go func() { wg.Wait(); close(written) }()

	seen := map[string]int{}
	for cursor, pages := "", 0; ; pages++ {
		page, next, err := f.s.FindSubscribers(ctx, consent.SubscriberFilter{Cursor: cursor, Limit: 7})
		if err != nil || pages > 200 {
			t.Errorf("FindSubscribers page %d: got err %v after %d pages", pages, err, pages)
			break
		}
		for i, s := range page {
			if s.ID <= cursor || (i > 0 && s.ID <= page[i-1].ID) {
				t.Errorf("page %d: id %s out of order after cursor %q", pages, s.ID, cursor)
			}
			seen[s.ID]++
		}
		if next == "" {
			break
		}
		cursor = next
		select {
		case <-signedUp:
		case <-written:
		}
	}
	<-written
	for _, id := range before {
		if seen[id] != 1 {
			t.Errorf("subscriber %s that existed before the walk: seen %d times, want once", id, seen[id])
		}
	}
	for id, n := range seen {
		if n > 1 {
			t.Errorf("subscriber %s: seen %d times, want once", id, n)
		}
	}
	if got := len(f.allSubscribers()); got != len(before)+writers*each {
		t.Errorf("subscribers after the walk: got %d, want %d", got, len(before)+writers*each)
	}
}

// testImport: each valid row lands, per the documented rules, and the
// report counts every row once.
func testImport(t *testing.T, f *fixture) {
	ctx := t.Context()
	f.bootstrap()
	f.signup("ann@example.com")
	f.subscribe("bob@example.com")
	gone := f.subscribe("gone@example.com")
	f.unsubscribe(gone.ID, "news")
	f.suppress("blocked@example.com", "")
	mails := len(f.due(f.now()))

	f.clock.Advance(time.Hour)
	rep := f.importCSV(`email,name,topics,basis,consented_at,source,last_purchase_at
new@example.com,New,news,consent,2025-01-01,shop checkout,
interest@example.com,,news,legitimate_interest,,,
noproof@example.com,,news,consent,,,
ann@example.com,,news,consent,2025-02-01,trade fair,
bob@example.com,,news,consent,2025-02-01,trade fair,
blocked@example.com,,news,consent,2025-01-01,shop,
gone@example.com,,news,consent,2025-01-01,shop,
not-an-address,,news,consent,,,
x@example.com,,no-such-topic,consent,2025-01-01,shop,
y@example.com,,news,soft_opt_in,,,
`)
	var lines []int
	for _, p := range rep.Invalid {
		if p.Reason == "" {
			t.Errorf("invalid line %d: got no reason", p.Line)
		}
		lines = append(lines, p.Line)
	}
	slices.Sort(lines)
	if rep.Batch == "" || rep.Imported != 3 || rep.Updated != 1 || rep.Unchanged != 1 || rep.Pending != 1 ||
		rep.SkippedSuppressed != 2 || rep.InvalidCount != 3 || !slices.Equal(lines, []int{9, 10, 11}) {
		t.Errorf("Import report: got %+v, want a batch, 3 imported, 1 updated, 1 unchanged, 1 pending, 2 skipped as suppressed, lines 9-11 invalid", rep)
	}
	source := "import:" + rep.Batch

	since := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	imported := f.sub("new@example.com")
	if s := imported.Subscriptions["news"]; imported.Name != "New" || s == nil || s.Status != consent.StatusConfirmed ||
		s.Basis != consent.BasisConsent || !s.Since.Equal(since) {
		t.Errorf("imported with evidence: got %+v, news %+v, want New, confirmed on consent since %v", imported, s, since)
	}
	if evs := f.events(imported.ID); len(evs) != 1 || evs[0].Type != consent.EventImported || evs[0].Source != source ||
		evs[0].Basis != consent.BasisConsent || !strings.Contains(evs[0].Page, "shop checkout") {
		t.Errorf("imported events: got %+v, want one imported event from %s citing the evidence", evs, source)
	}
	if s := f.sub("interest@example.com").Subscriptions["news"]; s == nil || s.Status != consent.StatusConfirmed || s.Basis != consent.BasisLegitimateInterest {
		t.Errorf("imported on legitimate interest: got %+v, want confirmed on that basis", s)
	}
	noproof := f.sub("noproof@example.com")
	if s := noproof.Subscriptions["news"]; s == nil || s.Status != consent.StatusPending || noproof.PendingRequest == "" {
		t.Errorf("consent without evidence: got %+v, want pending with a request", s)
	}
	if evs := f.events(noproof.ID); len(evs) != 1 || evs[0].Type != consent.EventRequested || evs[0].Source != source {
		t.Errorf("consent without evidence: got events %+v, want one requested from %s", evs, source)
	}
	confirms := f.dueOf(consent.JobConfirm, f.now())
	if len(confirms) != mails+1 || !slices.Contains(emails(confirms), "noproof@example.com") {
		t.Errorf("confirmation mails after the import: got %q, want the earlier %d and one to noproof@", emails(confirms), mails)
	}
	if s := f.sub("ann@example.com").Subscriptions["news"]; s == nil || s.Status != consent.StatusConfirmed {
		t.Errorf("pending subscriber imported with evidence: got %+v, want confirmed", s)
	}
	if s := f.sub("gone@example.com").Subscriptions["news"]; s == nil || s.Status != consent.StatusUnsubscribed {
		t.Errorf("withdrawn subscriber in an import: got %+v, want still unsubscribed", s)
	}
	for _, skipped := range []string{"blocked@example.com", "x@example.com", "y@example.com"} {
		if _, err := f.s.SubscriberByAddress(ctx, f.addr(skipped)); consent.ErrorCode(err) != consent.ENotFound {
			t.Errorf("SubscriberByAddress(%s) after the import: got err %v, want %s", skipped, err, consent.ENotFound)
		}
	}
	entries, _, err := f.s.Audit(ctx, "", 1)
	if err != nil || len(entries) != 1 || entries[0].Action != "import" || entries[0].Target != source || entries[0].Key != admin.Name {
		t.Errorf("newest audit entry: got %+v, %v, want the import of %s by %s", entries, err, source, admin.Name)
	}
	f.wantLedgerOK(3 + 2 + 1 + 4) // 3 signups, 2 confirmations, 1 withdrawal, 4 rows imported or requested
}

// errStop is what an EachExportable callback returns to stop the walk.
var errStop = errors.New("stop")

// testEachExportable: a bulk export never carries a suppressed address,
// nor a subscription to a suppressed topic.
func testEachExportable(t *testing.T, f *fixture) {
	ctx := t.Context()
	f.bootstrap()
	f.subscribe("keep@example.com")
	part := f.subscribe("part@example.com", "news", "offers")
	f.unsubscribe(part.ID, "offers")
	all := f.subscribe("all@example.com")
	f.unsubscribe(all.ID, "")
	f.subscribe("blocked@example.com")
	f.suppress("blocked@example.com", "")
	f.subscribe("topic@example.com")
	f.suppress("topic@example.com", "news")
	erased := f.subscribe("erased@example.com")
	if err := f.s.Erase(ctx, erased.ID, "preferences"); err != nil {
		t.Fatalf("Erase: %v", err)
	}
	f.signup("pending@example.com")

	exported := map[string][]string{} // address -> topics
	err := f.s.EachExportable(ctx, func(sub *consent.Subscriber) error {
		exported[sub.Email] = slices.Sorted(maps.Keys(sub.Subscriptions))
		return nil
	})
	if err != nil {
		t.Fatalf("EachExportable: got err %v, want nil", err)
	}
	for email, topics := range exported {
		for _, topic := range append(topics, "") {
			if f.suppressed(email, topic) {
				t.Errorf("exported %s with topics %q: suppressed for %q", email, topics, topic)
			}
		}
	}
	want := map[string][]string{"keep@example.com": {"news"}, "part@example.com": {"news"}, "pending@example.com": {"news"}}
	if !maps.EqualFunc(exported, want, slices.Equal) {
		t.Errorf("EachExportable: got %v, want %v", exported, want)
	}

	calls := 0
	err = f.s.EachExportable(ctx, func(*consent.Subscriber) error { calls++; return errStop })
	if !errors.Is(err, errStop) || calls != 1 {
		t.Errorf("EachExportable with a failing callback: got %d calls, err %v, want 1 call and the callback's error", calls, err)
	}
}

// testCatalog: Bootstrap works once on an empty store; topics and forms
// are created, changed and deleted with the documented error codes, a
// change to what a person sees makes a new wording version, and every
// write is audited.
func testCatalog(t *testing.T, f *fixture) {
	ctx := t.Context()
	if ts, err := f.s.Topics(ctx); err != nil || len(ts) != 0 {
		t.Errorf("Topics of an empty store: got %+v, %v, want none", ts, err)
	}
	if fs, err := f.s.Forms(ctx); err != nil || len(fs) != 0 {
		t.Errorf("Forms of an empty store: got %+v, %v, want none", fs, err)
	}
	_, err := f.s.APIKey(ctx, bootKeyHash)
	f.wantCode("APIKey before Bootstrap", err, consent.EUnauthorized)

	now := f.now()
	form := consent.Form{ID: "newsletter", Topics: []string{"news"}, Locale: "en",
		Wording: map[string]string{"en": testWording}, WordingVersion: 1}
	created, err := f.s.Bootstrap(ctx, consent.Topic{ID: "news", Name: "Product news"}, form, bootKeyHash)
	if err != nil || !created {
		t.Fatalf("Bootstrap: got %v, %v, want true, nil", created, err)
	}
	if tp, err := f.s.Topic(ctx, "news"); err != nil || tp.Name != "Product news" || !tp.Created.Equal(now) {
		t.Errorf("Topic(news): got %+v, %v, want Product news created %v", tp, err, now)
	}
	if got, err := f.s.Form(ctx, "newsletter"); err != nil || !slices.Equal(got.Topics, []string{"news"}) ||
		got.Wording["en"] != testWording || got.WordingVersion != 1 || !got.Created.Equal(now) {
		t.Errorf("Form(newsletter): got %+v, %v, want the bootstrapped form", got, err)
	}
	if key, err := f.s.APIKey(ctx, bootKeyHash); err != nil || key.Role != consent.RoleAdmin || key.Hash != bootKeyHash {
		t.Errorf("APIKey after Bootstrap: got %+v, %v, want an admin key", key, err)
	}
	otherKey := consent.HashAPIKey(consent.APIKeyPrefix + "other")
	created, err = f.s.Bootstrap(ctx, consent.Topic{ID: "other", Name: "Other"}, consent.Form{ID: "other", Topics: []string{"other"}}, otherKey)
	if err != nil || created {
		t.Errorf("second Bootstrap: got %v, %v, want false, nil", created, err)
	}
	_, err = f.s.Topic(ctx, "other")
	f.wantCode("Topic after a second Bootstrap", err, consent.ENotFound)
	_, err = f.s.Form(ctx, "other")
	f.wantCode("Form after a second Bootstrap", err, consent.ENotFound)
	_, err = f.s.APIKey(ctx, otherKey)
	f.wantCode("APIKey after a second Bootstrap", err, consent.EUnauthorized)

	f.clock.Advance(time.Minute)
	later := f.now()
	offers, err := f.s.CreateTopic(ctx, admin, consent.Topic{ID: "offers", Name: "Offers", Description: "Deals"})
	if err != nil || offers.ID != "offers" || !offers.Created.Equal(later) {
		t.Errorf("CreateTopic: got %+v, %v, want offers created %v", offers, err, later)
	}
	_, err = f.s.CreateTopic(ctx, admin, consent.Topic{ID: "offers", Name: "Again"})
	f.wantCode("CreateTopic of an existing id", err, consent.EConflict)
	if ts, err := f.s.Topics(ctx); err != nil || len(ts) != 2 || ts[0].ID != "news" || ts[1].ID != "offers" || ts[1].Description != "Deals" {
		t.Errorf("Topics: got %+v, %v, want news and offers in id order", ts, err)
	}
	offered := form
	offered.Topics = []string{"news", "offers"}
	if got, err := f.s.UpdateForm(ctx, admin, offered); err != nil || got.WordingVersion != 2 || !slices.Equal(got.Topics, offered.Topics) {
		t.Errorf("UpdateForm offering another topic: got %+v, %v, want version 2 with news and offers", got, err)
	}
	_, err = f.s.UpdateTopic(ctx, admin, consent.Topic{ID: "no-such-topic", Name: "Name"})
	f.wantCode("UpdateTopic(unknown)", err, consent.ENotFound)
	if tp, err := f.s.UpdateTopic(ctx, admin, consent.Topic{ID: "news", Name: "Weekly news", Description: "Every Monday"}); err != nil || tp.Name != "Weekly news" || tp.Description != "Every Monday" {
		t.Errorf("UpdateTopic: got %+v, %v, want Weekly news, Every Monday", tp, err)
	}
	if got, err := f.s.Form(ctx, "newsletter"); err != nil || got.WordingVersion != 3 || !slices.Equal(got.Topics, offered.Topics) {
		t.Errorf("Form(newsletter) after renaming its topic: got version %d, %v, want 3", got.WordingVersion, err)
	}

	shop := consent.Form{ID: "shop", Topics: []string{"offers"}, Locale: "en", Wording: map[string]string{"en": "Deals, please."}}
	got, err := f.s.CreateForm(ctx, admin, shop)
	if err != nil || got.WordingVersion != 1 || !got.Created.Equal(later) || !got.Updated.Equal(later) {
		t.Errorf("CreateForm: got %+v, %v, want version 1 created %v", got, err, later)
	}
	_, err = f.s.CreateForm(ctx, admin, shop)
	f.wantCode("CreateForm of an existing id", err, consent.EConflict)
	_, err = f.s.CreateForm(ctx, admin, consent.Form{ID: "bad", Topics: []string{"no-such-topic"}, Locale: "en"})
	f.wantCode("CreateForm with an unknown topic", err, consent.EInvalid)
	_, err = f.s.UpdateForm(ctx, admin, consent.Form{ID: "no-such-form", Topics: []string{"news"}, Locale: "en"})
	f.wantCode("UpdateForm(unknown)", err, consent.ENotFound)
	bad := shop
	bad.Topics = []string{"no-such-topic"}
	_, err = f.s.UpdateForm(ctx, admin, bad)
	f.wantCode("UpdateForm with an unknown topic", err, consent.EInvalid)

	f.clock.Advance(time.Minute)
	shop.Wording = map[string]string{"en": "Deals and offers, please."}
	if got, err := f.s.UpdateForm(ctx, admin, shop); err != nil || got.WordingVersion != 2 || !got.Created.Equal(later) || !got.Updated.Equal(f.now()) {
		t.Errorf("UpdateForm of the wording: got %+v, %v, want version 2, updated %v", got, err, f.now())
	}
	shop.SuccessURL = "https://shop.example/thanks"
	shop.AllowedOrigins = []string{"https://shop.example"}
	if got, err := f.s.UpdateForm(ctx, admin, shop); err != nil || got.WordingVersion != 2 || got.SuccessURL != shop.SuccessURL ||
		!slices.Equal(got.AllowedOrigins, shop.AllowedOrigins) {
		t.Errorf("UpdateForm of the success URL: got %+v, %v, want version 2 with the new URL and origins", got, err)
	}
	if stored, err := f.s.Form(ctx, "shop"); err != nil || stored.WordingVersion != 2 || stored.Wording["en"] != "Deals and offers, please." ||
		stored.SuccessURL != shop.SuccessURL {
		t.Errorf("Form(shop): got %+v, %v, want the updated form", stored, err)
	}
	if fs, err := f.s.Forms(ctx); err != nil || len(fs) != 2 || fs[0].ID != "newsletter" || fs[1].ID != "shop" {
		t.Errorf("Forms: got %+v, %v, want newsletter and shop in id order", fs, err)
	}
	if err := f.s.DeleteForm(ctx, admin, "shop"); err != nil {
		t.Errorf("DeleteForm: got err %v, want nil", err)
	}
	_, err = f.s.Form(ctx, "shop")
	f.wantCode("Form after DeleteForm", err, consent.ENotFound)
	err = f.s.DeleteForm(ctx, admin, "shop")
	f.wantCode("DeleteForm again", err, consent.ENotFound)

	want := []string{"form.delete", "form.update", "form.update", "form.create", "topic.update", "form.update", "topic.create"}
	if got := f.auditActions(); !slices.Equal(got, want) {
		t.Errorf("audit log: got %q, want %q (newest first)", got, want)
	}
	first, next, err := f.s.Audit(ctx, "", 4)
	if err != nil || len(first) != 4 || next == "" || first[0].Key != admin.Name || first[0].KeyID != admin.KeyID ||
		first[0].Target != "shop" || !first[0].Time.Equal(f.now()) {
		t.Fatalf("Audit page 1: got %+v, next %q, %v, want 4 entries by %+v, the newest deleting shop", first, next, err, admin)
	}
	rest, next, err := f.s.Audit(ctx, next, 4)
	if err != nil || len(rest) != 3 || next != "" || rest[2].Action != "topic.create" || rest[2].Target != "offers" {
		t.Errorf("Audit page 2: got %+v, next %q, %v, want the 3 oldest entries", rest, next, err)
	}
	_, _, err = f.s.Audit(ctx, "not-a-cursor", 4)
	f.wantCode("Audit with a malformed cursor", err, consent.EInvalid)
}

// testAPIKeys: keys are made with a secret shown once, found by its hash,
// listed, touched at most once a minute and revoked by their id.
func testAPIKeys(t *testing.T, f *fixture) {
	ctx := t.Context()
	f.bootstrap()
	f.clock.Advance(time.Minute)
	created := f.now()
	secret, info, err := f.s.NewAPIKey(ctx, admin, " ci ", consent.RoleMarketer)
	if err != nil {
		t.Fatalf("NewAPIKey: got err %v, want nil", err)
	}
	hash := consent.HashAPIKey(secret)
	if !strings.HasPrefix(secret, consent.APIKeyPrefix) || len(secret) < len(consent.APIKeyPrefix)+32 {
		t.Errorf("NewAPIKey secret: got %d characters, want %s and at least 32 more", len(secret), consent.APIKeyPrefix)
	}
	if info.ID != consent.KeyID(hash) || info.Name != "ci" || info.Role != consent.RoleMarketer || !info.Created.Equal(created) {
		t.Errorf("NewAPIKey info: got %+v, want id %s, name ci, marketer, created %v", info, consent.KeyID(hash), created)
	}
	key, err := f.s.APIKey(ctx, hash)
	if err != nil || key.Name != "ci" || key.Role != consent.RoleMarketer || key.Hash != hash {
		t.Fatalf("APIKey: got %+v, %v, want the ci marketer key", key, err)
	}
	_, _, err = f.s.NewAPIKey(ctx, admin, "ci", consent.RoleViewer)
	f.wantCode("NewAPIKey with a live key's name", err, consent.EConflict)
	_, _, err = f.s.NewAPIKey(ctx, admin, "  ", consent.RoleViewer)
	f.wantCode("NewAPIKey without a name", err, consent.EInvalid)
	_, _, err = f.s.NewAPIKey(ctx, admin, "root", consent.Role("root"))
	f.wantCode("NewAPIKey with an unknown role", err, consent.EInvalid)

	keyInfo := func(id string) consent.APIKeyInfo {
		t.Helper()
		keys, err := f.s.APIKeys(ctx)
		if err != nil || len(keys) != 2 || keys[0].ID != consent.KeyID(bootKeyHash) || keys[1].ID != info.ID {
			t.Fatalf("APIKeys: got %+v, %v, want the bootstrap key, then ci", keys, err)
		}
		return keys[slices.IndexFunc(keys, func(k consent.APIKeyInfo) bool { return k.ID == id })]
	}
	if k := keyInfo(info.ID); !k.LastUsed.IsZero() || !k.Revoked.IsZero() {
		t.Errorf("new key: got %+v, want never used, live", k)
	}
	if err := f.s.TouchAPIKey(ctx, key); err != nil {
		t.Fatalf("TouchAPIKey: got err %v, want nil", err)
	}
	touched := f.now()
	if k := keyInfo(info.ID); !k.LastUsed.Equal(touched) {
		t.Errorf("LastUsed after TouchAPIKey: got %v, want %v", k.LastUsed, touched)
	}
	f.clock.Advance(30 * time.Second)
	if err := f.s.TouchAPIKey(ctx, key); err != nil { // key as read before the first touch
		t.Fatalf("TouchAPIKey: got err %v, want nil", err)
	}
	if k := keyInfo(info.ID); !k.LastUsed.Equal(touched) {
		t.Errorf("LastUsed after a touch within the minute: got %v, want %v", k.LastUsed, touched)
	}
	f.clock.Advance(time.Minute)
	key, _ = f.s.APIKey(ctx, hash)
	if err := f.s.TouchAPIKey(ctx, key); err != nil {
		t.Fatalf("TouchAPIKey: got err %v, want nil", err)
	}
	if k := keyInfo(info.ID); !k.LastUsed.Equal(f.now()) {
		t.Errorf("LastUsed after a touch a minute later: got %v, want %v", k.LastUsed, f.now())
	}

	if err := f.s.RevokeAPIKey(ctx, admin, info.ID); err != nil {
		t.Fatalf("RevokeAPIKey: got err %v, want nil", err)
	}
	revoked := f.now()
	_, err = f.s.APIKey(ctx, hash)
	f.wantCode("APIKey after RevokeAPIKey", err, consent.EUnauthorized)
	if k := keyInfo(info.ID); !k.Revoked.Equal(revoked) {
		t.Errorf("Revoked: got %v, want %v", k.Revoked, revoked)
	}
	f.clock.Advance(time.Minute)
	if err := f.s.RevokeAPIKey(ctx, admin, info.ID); err != nil {
		t.Errorf("RevokeAPIKey again: got err %v, want nil", err)
	}
	if k := keyInfo(info.ID); !k.Revoked.Equal(revoked) {
		t.Errorf("Revoked after a second RevokeAPIKey: got %v, want %v", k.Revoked, revoked)
	}
	for _, id := range []string{"0123456789abcdef", "short", ""} {
		err := f.s.RevokeAPIKey(ctx, admin, id)
		f.wantCode(fmt.Sprintf("RevokeAPIKey(%q)", id), err, consent.ENotFound)
	}
	if _, _, err := f.s.NewAPIKey(ctx, admin, "ci", consent.RoleViewer); err != nil {
		t.Errorf("NewAPIKey with a revoked key's name: got err %v, want nil", err)
	}
	want := []string{"apikey.create", "apikey.revoke", "apikey.create", "form.update", "topic.create"}
	if got := f.auditActions(); !slices.Equal(got, want) {
		t.Errorf("audit log: got %q, want %q (newest first)", got, want)
	}
}

// testFindSubscribersSearch: a search for part of an address or a name
// finds exactly the subscribers consent.SubscriberFilter.Match accepts,
// whatever characters the name holds: ones JSON escapes (&, <, ", \),
// letters outside ASCII, and a Kelvin sign, which lower-cases to an
// ASCII k. Stores may skip records without decoding them, and must not
// skip one of these.
func testFindSubscribersSearch(t *testing.T, f *fixture) {
	ctx := t.Context()
	f.bootstrap()
	var b strings.Builder
	w := csv.NewWriter(&b)
	rows := [][]string{{"email", "name", "topics", "basis", "consented_at", "source"}}
	for i, name := range []string{"Ann & Bo", "Zoë Kraus", "Mr \u212Aent", `Quote "Q" Quist`, `Back\slash`, "<b>Bold</b>", "Émile Zola", "Plain Person"} {
		rows = append(rows, []string{fmt.Sprintf("p%d@Example.com", i), name, "news", "consent", "2025-01-01", "shop"})
	}
	if err := w.WriteAll(rows); err != nil {
		t.Fatal(err)
	}
	if rep := f.importCSV(b.String()); rep.Imported != len(rows)-1 {
		t.Fatalf("Import: got %+v, want %d imported", rep, len(rows)-1)
	}
	all, _, err := f.s.FindSubscribers(ctx, consent.SubscriberFilter{Limit: 500})
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		q    string
		want int
	}{
		{"ann & bo", 1}, {"& B", 1}, {"zoë", 1}, {"ZOË", 1}, {"KENT", 1}, {"\u212Aent", 1},
		{`"q"`, 1}, {`back\sl`, 1}, {"<B>", 1}, {"émile", 1}, {"ÉMILE", 1}, {"mile z", 1},
		{"P3@EXAMPLE", 1}, {"@example.com", 8}, {"plain", 1}, {"nobody", 0}, {"u0026", 0},
	} {
		var want []string
		filter := consent.SubscriberFilter{Query: tt.q, Limit: 500}
		for _, s := range all {
			if filter.Match(s, f.clock.Now()) {
				want = append(want, s.Email)
			}
		}
		page, _, err := f.s.FindSubscribers(ctx, filter)
		var got []string
		for _, s := range page {
			got = append(got, s.Email)
		}
		if err != nil || !slices.Equal(got, want) || len(got) != tt.want {
			t.Errorf("FindSubscribers(query %q): got %q, %v; want %q (%d)", tt.q, got, err, want, tt.want)
		}
	}
}

// testCatalogCopies: a form or topic read from the store is the caller's
// own, maps and slices included; a store that caches its catalog must not
// hand out the cached values themselves. Each read is spoilt, and the
// next read, from the cache or not, is as stored.
func testCatalogCopies(t *testing.T, f *fixture) {
	ctx := t.Context()
	f.bootstrap()
	topic := consent.Topic{ID: "events", Name: "Events",
		Translations: map[string]consent.TopicText{"sv": {Name: "Evenemang"}},
		Frequencies:  []consent.Frequency{consent.FrequencyWeekly, consent.FrequencyMonthly}}
	if _, err := f.s.CreateTopic(ctx, admin, topic); err != nil {
		t.Fatalf("CreateTopic: %v", err)
	}
	form := f.form
	form.AllowedOrigins = []string{"https://shop.example"}
	form.Channels = []consent.Channel{consent.ChannelSMS}
	if _, err := f.s.UpdateForm(ctx, admin, form); err != nil {
		t.Fatalf("UpdateForm: %v", err)
	}
	for range 5 {
		got, err := f.s.Form(ctx, form.ID)
		if err != nil {
			t.Fatalf("Form: %v", err)
		}
		if got.Wording["en"] != testWording || got.Topics[0] != "news" || got.AllowedOrigins[0] != "https://shop.example" || got.Channels[0] != consent.ChannelSMS {
			t.Fatalf("Form after a caller changed its copy: got %+v", got)
		}
		got.Wording["en"], got.Topics[0], got.AllowedOrigins[0], got.Channels[0] = "spoilt", "spoilt", "spoilt", "spoilt"
		tp, err := f.s.Topic(ctx, topic.ID)
		if err != nil {
			t.Fatalf("Topic: %v", err)
		}
		if tp.Translations["sv"].Name != "Evenemang" || tp.Frequencies[0] != consent.FrequencyWeekly {
			t.Fatalf("Topic after a caller changed its copy: got %+v", tp)
		}
		tp.Translations["sv"], tp.Frequencies[0] = consent.TopicText{Name: "spoilt"}, "spoilt"
	}
}
