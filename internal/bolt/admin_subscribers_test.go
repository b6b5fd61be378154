package bolt_test

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"optin/internal/consent"
)

// TestFindSubscribersOrder pages through subscribers oldest first and
// newest first: every one exactly once, in creation order or its reverse,
// and a subscriber who signs up during a newest-first listing sorts
// before its cursor, so the pages that follow neither repeat nor skip
// anyone. A whole address honours the cursor in both orders.
func TestFindSubscribersOrder(t *testing.T) {
	db := mustOpen(t)
	form := mustBootstrap(t, db)
	var ids []string // in creation order
	for i := range 7 {
		db.clock.Advance(time.Second)
		addr := fmt.Sprintf("p%d@example.com", i)
		mustSignup(t, db, form, addr)
		ids = append(ids, mustSubscriber(t, db, addr).ID)
	}
	newest := slices.Clone(ids)
	slices.Reverse(newest)

	list := func(f consent.SubscriberFilter, during func(page int)) []string {
		t.Helper()
		var got []string
		for page := 0; ; page++ {
			subs, next, err := db.FindSubscribers(t.Context(), f)
			if err != nil {
				t.Fatalf("FindSubscribers(%+v): %v", f, err)
			}
			for _, s := range subs {
				got = append(got, s.ID)
			}
			if during != nil {
				during(page)
			}
			if next == "" {
				return got
			}
			f.Cursor = next
		}
	}
	if got := list(consent.SubscriberFilter{Limit: 3}, nil); !slices.Equal(got, ids) {
		t.Errorf("oldest first: got %v, want %v", got, ids)
	}
	if got := list(consent.SubscriberFilter{Limit: 3, Newest: true}, nil); !slices.Equal(got, newest) {
		t.Errorf("newest first: got %v, want %v", got, newest)
	}
	if got := list(consent.SubscriberFilter{Limit: 7, Newest: true}, nil); !slices.Equal(got, newest) {
		t.Errorf("newest first, one full page: got %v, want %v", got, newest)
	}
	late := ""
	got := list(consent.SubscriberFilter{Limit: 2, Newest: true}, func(page int) {
		if page == 0 {
			db.clock.Advance(time.Second)
			mustSignup(t, db, form, "late@example.com")
			late = mustSubscriber(t, db, "late@example.com").ID
		}
	})
	if !slices.Equal(got, newest) {
		t.Errorf("newest first with a signup after the first page: got %v, want %v (the late one %s sorts first)", got, newest, late)
	}
	if got := list(consent.SubscriberFilter{Limit: 3, Newest: true}, nil); len(got) != 8 || got[0] != late {
		t.Errorf("a new listing: got %v, want the late one first", got)
	}

	for _, tt := range []struct {
		newest bool
		cursor string
		want   int
	}{
		{false, "", 1}, {false, ids[2], 1}, {false, ids[3], 0}, {false, ids[6], 0},
		{true, "", 1}, {true, ids[4], 1}, {true, ids[3], 0}, {true, ids[0], 0},
	} {
		f := consent.SubscriberFilter{Query: "P3@example.com", Newest: tt.newest, Cursor: tt.cursor, Limit: 5}
		if subs, _, err := db.FindSubscribers(t.Context(), f); err != nil || len(subs) != tt.want {
			t.Errorf("whole address, newest %v, cursor %s: got %d, %v, want %d", tt.newest, tt.cursor, len(subs), err, tt.want)
		}
	}
}
