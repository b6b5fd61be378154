package storetest

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"optin/internal/consent"
)

// testFindSubscribersFilters: a listing filtered by status, topic,
// lifecycle and creation time (the filters a store serves from indexes)
// returns, page by page in both orders, exactly the subscribers the
// filter matches among all of them.
func testFindSubscribersFilters(t *testing.T, f *fixture) {
	ctx := t.Context()
	f.bootstrap()
	dormantAfter := 365 * consent.Day
	f.importConsented("a@example.com", "b@example.com")
	f.clock.Advance(time.Hour)
	mid := f.now()
	f.subscribe("c@example.com", "news", "offers")
	f.signup("d@example.com", "offers")
	e := f.subscribe("e@example.com", "offers")
	f.unsubscribe(e.ID, "offers")
	f.clock.Advance(time.Hour)
	late := f.now()
	f.importCSV("email,topics,basis,consented_at,source,last_purchase_at\n" +
		"f@example.com,news,soft_opt_in,,,2029-12-01\n" +
		"g@example.com,offers,soft_opt_in,,,2027-01-01\n")
	f.signup("h@example.com", "news", "offers")

	now := f.now()
	var all []*consent.Subscriber
	for _, id := range f.allSubscribers() {
		sub, err := f.s.Subscriber(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		all = append(all, sub)
	}
	if len(all) != 8 {
		t.Fatalf("subscribers: got %d, want 8", len(all))
	}
	filters := []consent.SubscriberFilter{
		{Status: consent.StatusConfirmed},
		{Status: consent.StatusPending},
		{Topic: "offers"},
		{Topic: "news", Status: consent.StatusConfirmed},
		{Topic: "offers", Status: consent.StatusUnsubscribed},
		{Lifecycle: consent.LifecycleProspect},
		{Lifecycle: consent.LifecycleCustomer},
		{Lifecycle: consent.LifecycleDormant},
		{Topic: "offers", Lifecycle: consent.LifecycleDormant},
		{CreatedSince: mid},
		{CreatedBefore: late},
		{CreatedSince: mid, CreatedBefore: late, Topic: "offers"},
		{Status: consent.StatusPending, Query: "h@"},
	}
	for _, base := range filters {
		for _, newest := range []bool{false, true} {
			flt := base
			flt.DormantAfter, flt.Newest = dormantAfter, newest
			var want []string
			for _, s := range all {
				if flt.Match(s, now) {
					want = append(want, s.Email)
				}
			}
			if newest {
				slices.Reverse(want)
			}
			var got []string
			for page := 0; page < 20; page++ {
				flt.Limit = 2
				subs, next, err := f.s.FindSubscribers(ctx, flt)
				if err != nil {
					t.Fatalf("FindSubscribers(%+v): got err %v", flt, err)
				}
				for _, s := range subs {
					got = append(got, s.Email)
				}
				if next == "" {
					break
				}
				flt.Cursor = next
			}
			if !slices.Equal(got, want) {
				t.Errorf("FindSubscribers(%s): got %q, want %q", describe(base, newest), got, want)
			}
		}
	}
}

// describe names a filter in a failure message.
func describe(f consent.SubscriberFilter, newest bool) string {
	return fmt.Sprintf("status %q topic %q lifecycle %q q %q since %v before %v newest %v",
		f.Status, f.Topic, f.Lifecycle, f.Query, !f.CreatedSince.IsZero(), !f.CreatedBefore.IsZero(), newest)
}
