// Package storetest is the conformance suite of consent.Store: the
// behaviour every store (the embedded bbolt one, a database server) must
// show, checked through the interface alone. A store's own tests call Run
// with a function that opens a fresh, empty store:
//
//	func TestConformance(t *testing.T) {
//		storetest.Run(t, func(t *testing.T, now func() time.Time) consent.Store {
//			return openMyStore(t, now)
//		})
//	}
//
// The suite knows nothing of how a store keeps its data; it drives the
// store's clock (a testclock.Clock) and reads
// everything back through consent.Store.
package storetest

import (
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"optin/internal/consent"
	"optin/internal/testclock"
	"optin/internal/transfer"
)

// Opener opens a fresh, empty store for one subtest. The store reads its
// time from now, applies consent.DefaultPolicy() and keys its suppression
// hashes with a key of the opener's choosing. Run closes the store when
// the subtest ends; the opener may register its own cleanup (removing
// files, dropping a schema), which runs after that.
type Opener func(t *testing.T, now func() time.Time) consent.Store

// Run checks that the stores made by open behave as consent.Store
// promises. Each subtest gets a store of its own.
func Run(t *testing.T, open Opener) {
	tests := []struct {
		name string
		run  func(t *testing.T, f *fixture)
	}{
		{"Clock", testClock},
		{"SignupAppliesPlan", testSignupAppliesPlan},
		{"ConcurrentSignup", testConcurrentSignup},
		{"OpenRequestKeepsItsTopics", testOpenRequestKeepsItsTopics},
		{"ConfirmOnce", testConfirmOnce},
		{"ConfirmMailSent", testConfirmMailSent},
		{"NotMe", testNotMe},
		{"SweepRequests", testSweepRequests},
		{"SuppressionAtSendTime", testSuppressionAtSendTime},
		{"EraseLeavesOnlyTheHash", testEraseLeavesOnlyTheHash},
		{"PreferencesMail", testPreferencesMail},
		{"Rectify", testRectify},
		{"WithdrawFor", testWithdrawFor},
		{"Feedback", testFeedback},
		{"ForgetOptedOut", testForgetOptedOut},
		{"Channels", testChannels},
		{"RectifyContact", testRectifyContact},
		{"Incidents", testIncidents},
		{"Assessments", testAssessments},
		{"Notices", testNotices},
		{"Sessions", testSessions},
		{"FindSubscribersOrder", testFindSubscribersOrder},
		{"FindSubscribersFilters", testFindSubscribersFilters},
		{"Suppressions", testSuppressions},
		{"LedgerOrderAndChain", testLedgerOrderAndChain},
		{"LedgerTree", testLedgerTree},
		{"Stats", testStats},
		{"Counters", testCounters},
		{"Outbox", testOutbox},
		{"Webhooks", testWebhooks},
		{"CampaignEligibility", testCampaignEligibility},
		{"CampaignCancel", testCampaignCancel},
		{"CampaignLiveCounts", testCampaignLiveCounts},
		{"CampaignAudienceList", testCampaignAudienceList},
		{"CampaignAudienceIndexed", testCampaignAudienceIndexed},
		{"FindSubscribersUnderInserts", testFindSubscribersUnderInserts},
		{"FindSubscribersSearch", testFindSubscribersSearch},
		{"Import", testImport},
		{"EachExportable", testEachExportable},
		{"Catalog", testCatalog},
		{"CatalogCopies", testCatalogCopies},
		{"Presentation", testPresentation},
		{"TopicTranslations", testTopicTranslations},
		{"APIKeys", testAPIKeys},
		{"Limits", testLimits},
		{"WebhookHeads", testWebhookHeads},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clk := testclock.At(start)
			s := open(t, clk.Now)
			t.Cleanup(func() {
				if err := s.Close(); err != nil {
					t.Errorf("Close: got err %v, want nil", err)
				}
			})
			tt.run(t, &fixture{t: t, s: s, clock: clk})
		})
	}
}

// start is where every subtest's clock begins: not on a whole millisecond,
// since stores keep milliseconds, and late enough that import rows may
// carry consents from years before.
var start = time.Date(2030, 1, 2, 3, 4, 5, 678_900_123, time.UTC)

// Names the fixture gives the catalog.
const (
	testWording = "Yes, send me these emails."
	testNotice  = "Shop Ltd sends these emails; unsubscribe at any time."
)

var (
	// bootKeyHash is the hash of the admin key bootstrap creates.
	bootKeyHash = consent.HashAPIKey(consent.APIKeyPrefix + "suite-bootstrap")
	// admin is the actor of the suite's admin writes.
	admin = consent.Actor{Name: "suite", KeyID: "0123456789abcdef"}
)

// fixture is one subtest's store with its clock and the helpers that
// drive it; every helper fails the test on an unexpected error.
type fixture struct {
	t     *testing.T
	s     consent.Store
	clock *testclock.Clock
	// form is the newsletter form offering news and offers, once
	// bootstrap ran.
	form consent.Form
}

// bootstrap gives the store what a first start gives it: topic news, form
// newsletter and an admin key; then a second topic, offers, which the
// form offers too.
func (f *fixture) bootstrap() {
	f.t.Helper()
	ctx := f.t.Context()
	form := consent.Form{ID: "newsletter", Topics: []string{"news"}, Locale: "en",
		Wording: map[string]string{"en": testWording}, WordingVersion: 1}
	created, err := f.s.Bootstrap(ctx, consent.Topic{ID: "news", Name: "Product news"}, form, bootKeyHash)
	if err != nil || !created {
		f.t.Fatalf("Bootstrap: got %v, %v, want true, nil", created, err)
	}
	if _, err := f.s.CreateTopic(ctx, admin, consent.Topic{ID: "offers", Name: "Offers"}); err != nil {
		f.t.Fatalf("CreateTopic(offers): got err %v, want nil", err)
	}
	form.Topics = []string{"news", "offers"}
	if f.form, err = f.s.UpdateForm(ctx, admin, form); err != nil {
		f.t.Fatalf("UpdateForm(newsletter): got err %v, want nil", err)
	}
}

// now is the store's clock reading.
func (f *fixture) now() time.Time { return f.s.Now() }

func (f *fixture) addr(s string) consent.Address {
	f.t.Helper()
	a, err := consent.ParseAddress(s)
	if err != nil {
		f.t.Fatalf("ParseAddress(%q): %v", s, err)
	}
	return a
}

// wording is the consent wording the newsletter form shows in English.
func (f *fixture) wording() consent.Wording {
	f.t.Helper()
	topics, err := f.s.Topics(f.t.Context())
	if err != nil {
		f.t.Fatalf("Topics: got err %v, want nil", err)
	}
	return f.form.WordingFor("en", topics, "fallback wording", testNotice)
}

func (f *fixture) signupInput(email string, topics ...string) consent.SignupInput {
	f.t.Helper()
	if len(topics) == 0 {
		topics = []string{"news"}
	}
	return consent.SignupInput{Form: &f.form, Address: f.addr(email), Name: "Ann", Locale: "en", Topics: topics,
		Page: "https://shop.example/", IP: "192.0.2.7", UserAgent: "Mozilla/5.0 test"}
}

// signup signs email up on the newsletter form for topics (news when
// none are given).
func (f *fixture) signup(email string, topics ...string) consent.SignupResult {
	f.t.Helper()
	res, err := f.s.Signup(f.t.Context(), f.signupInput(email, topics...), f.wording())
	if err != nil {
		f.t.Fatalf("Signup(%q): got err %v, want nil", email, err)
	}
	return res
}

func (f *fixture) sub(email string) *consent.Subscriber {
	f.t.Helper()
	sub, err := f.s.SubscriberByAddress(f.t.Context(), f.addr(email))
	if err != nil {
		f.t.Fatalf("SubscriberByAddress(%q): got err %v, want nil", email, err)
	}
	return sub
}

// subscribe signs email up for topics and confirms, and returns the
// subscriber.
func (f *fixture) subscribe(email string, topics ...string) *consent.Subscriber {
	f.t.Helper()
	f.signup(email, topics...)
	if _, err := f.s.Confirm(f.t.Context(), f.sub(email).PendingRequest, consent.ConfirmInput{}); err != nil {
		f.t.Fatalf("Confirm(%q): got err %v, want nil", email, err)
	}
	return f.sub(email)
}

func (f *fixture) unsubscribe(id, topic string) []string {
	f.t.Helper()
	changed, err := f.s.Unsubscribe(f.t.Context(), id, topic, consent.ChannelOneClick, consent.ConfirmInput{IP: "192.0.2.8"})
	if err != nil {
		f.t.Fatalf("Unsubscribe(%s, %q): got err %v, want nil", id, topic, err)
	}
	return changed
}

func (f *fixture) suppress(email, topic string) {
	f.t.Helper()
	if _, _, err := f.s.AddSuppression(f.t.Context(), admin, f.addr(email), topic, "complaint"); err != nil {
		f.t.Fatalf("AddSuppression(%q, %q): got err %v, want nil", email, topic, err)
	}
}

func (f *fixture) suppressed(email, topic string) bool {
	f.t.Helper()
	ok, err := f.s.Suppressed(f.t.Context(), f.addr(email), topic)
	if err != nil {
		f.t.Fatalf("Suppressed(%q, %q): got err %v, want nil", email, topic, err)
	}
	return ok
}

func (f *fixture) events(id string) []consent.EventRecord {
	f.t.Helper()
	evs, err := f.s.Events(f.t.Context(), id)
	if err != nil {
		f.t.Fatalf("Events(%s): got err %v, want nil", id, err)
	}
	return evs
}

// due returns the jobs due at now (at most 1000).
func (f *fixture) due(now time.Time) []consent.Job {
	f.t.Helper()
	jobs, err := f.s.DueJobs(f.t.Context(), now, 1000, nil)
	if err != nil {
		f.t.Fatalf("DueJobs: got err %v, want nil", err)
	}
	return jobs
}

// onlyJob returns the one job due now.
func (f *fixture) onlyJob() consent.Job {
	f.t.Helper()
	jobs := f.due(f.now())
	if len(jobs) != 1 {
		f.t.Fatalf("DueJobs: got %d jobs, want 1", len(jobs))
	}
	return jobs[0]
}

// dueOf returns the jobs of kind due at now.
func (f *fixture) dueOf(kind consent.JobKind, now time.Time) []consent.Job {
	f.t.Helper()
	return slices.DeleteFunc(f.due(now), func(j consent.Job) bool { return j.Kind != kind })
}

func (f *fixture) deliverable(jobs ...consent.Job) []bool {
	f.t.Helper()
	oks, err := f.s.DeliverableBatch(f.t.Context(), jobs)
	if err != nil {
		f.t.Fatalf("DeliverableBatch: got err %v, want nil", err)
	}
	if len(oks) != len(jobs) {
		f.t.Fatalf("DeliverableBatch: got %d answers for %d jobs", len(oks), len(jobs))
	}
	return oks
}

func (f *fixture) wantOutbox(queued, parked int) {
	f.t.Helper()
	q, p, err := f.s.OutboxDepth(f.t.Context())
	if err != nil {
		f.t.Fatalf("OutboxDepth: got err %v, want nil", err)
	}
	if q != queued || p != parked {
		f.t.Errorf("OutboxDepth: got %d queued, %d parked, want %d, %d", q, p, queued, parked)
	}
}

func (f *fixture) wantLedgerOK(events uint64) {
	f.t.Helper()
	rep, err := f.s.VerifyLedger(f.t.Context())
	if err != nil {
		f.t.Fatalf("VerifyLedger: got err %v, want nil", err)
	}
	if !rep.OK || rep.Broken != nil || rep.Events != events {
		f.t.Errorf("VerifyLedger: got OK %v, Broken %+v, Events %d, want OK with %d events", rep.OK, rep.Broken, rep.Events, events)
	}
}

// wantCode fails the test unless err carries code.
func (f *fixture) wantCode(what string, err error, code string) {
	f.t.Helper()
	if got := consent.ErrorCode(err); got != code {
		f.t.Errorf("%s: got code %q (%v), want %q", what, got, err, code)
	}
}

// importCSV imports a CSV file (header included) as the suite's admin.
func (f *fixture) importCSV(csv string) consent.ImportReport {
	f.t.Helper()
	return f.importWith(csv, consent.ImportOptions{})
}

// importWith imports a CSV file (header included) with opts.
func (f *fixture) importWith(csv string, opts consent.ImportOptions) consent.ImportReport {
	f.t.Helper()
	rows, err := transfer.NewReader(strings.NewReader(csv), transfer.FormatCSV)
	if err != nil {
		f.t.Fatalf("transfer.NewReader: %v", err)
	}
	rep, err := f.s.Import(f.t.Context(), admin, rows, opts)
	if err != nil {
		f.t.Fatalf("Import: got err %v, want nil", err)
	}
	return rep
}

// allSubscribers lists every subscriber id in id order, page by page.
func (f *fixture) allSubscribers() []string {
	f.t.Helper()
	var ids []string
	cursor := ""
	for {
		page, next, err := f.s.FindSubscribers(f.t.Context(), consent.SubscriberFilter{Cursor: cursor, Limit: 500})
		if err != nil {
			f.t.Fatalf("FindSubscribers: got err %v, want nil", err)
		}
		for _, s := range page {
			ids = append(ids, s.ID)
		}
		if next == "" {
			return ids
		}
		cursor = next
	}
}

// auditActions returns the actions of the whole audit log, newest first.
func (f *fixture) auditActions() []string {
	f.t.Helper()
	entries, _, err := f.s.Audit(f.t.Context(), "", 1000)
	if err != nil {
		f.t.Fatalf("Audit: got err %v, want nil", err)
	}
	var actions []string
	for _, e := range entries {
		actions = append(actions, e.Action)
	}
	return actions
}

// emails returns the addresses of jobs, sorted.
func emails(jobs []consent.Job) []string {
	var out []string
	for _, j := range jobs {
		out = append(out, j.To)
	}
	sort.Strings(out)
	return out
}

// nonZero returns the entries of m that are not zero.
func nonZero(m map[string]int) map[string]int {
	out := map[string]int{}
	for k, v := range m {
		if v != 0 {
			out[k] = v
		}
	}
	return out
}
