package storetest

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"optin/internal/consent"
)

// testSessions follows a console session through its life: stored under the hash of its id and audited, found while live,
// moved on by use but never past its absolute end, ended by idleness, by
// its absolute end or by deletion, and swept when
// the next sign-in is stored.
func testSessions(t *testing.T, f *fixture) {
	ctx := t.Context()
	db := f.s
	actor := consent.Actor{Name: "marketing", KeyID: "0123456789abcdef"}
	newSession := func(id string) consent.Session {
		return consent.Session{IDHash: consent.HashSessionID(id), KeyHash: bootKeyHash, Created: db.Now(),
			IdleUntil: db.Now().Add(30 * time.Minute), Expires: db.Now().Add(12 * time.Hour)}
	}
	mustLive := func(what, id string) consent.Session {
		t.Helper()
		s, err := db.Session(ctx, consent.HashSessionID(id))
		if err != nil {
			t.Fatalf("%s: Session(%s): got err %v, want the session", what, id, err)
		}
		return s
	}
	mustGone := func(what, id string) {
		t.Helper()
		if _, err := db.Session(ctx, consent.HashSessionID(id)); consent.ErrorCode(err) != consent.ENotFound {
			t.Fatalf("%s: Session(%s): got err %v, want not_found", what, id, err)
		}
	}

	a := newSession("session-a")
	if err := db.CreateSession(ctx, actor, a); err != nil {
		t.Fatalf("CreateSession: %v", err)
	}
	if got := mustLive("after create", "session-a"); got != a {
		t.Errorf("stored session: got %+v, want %+v", got, a)
	}
	entries, _, err := db.Audit(ctx, "", 10)
	if err != nil || len(entries) == 0 || entries[0].Action != "console.signin" || entries[0].Key != "marketing" ||
		entries[0].Target != actor.KeyID {
		t.Errorf("audit: got %+v, %v, want console.signin by marketing first", entries, err)
	}
	if err := db.CreateSession(ctx, actor, consent.Session{KeyHash: "x"}); consent.ErrorCode(err) != consent.EInvalid {
		t.Errorf("CreateSession without id hash: got %v, want invalid", err)
	}

	// Use keeps it alive past the first idle end.
	f.clock.Advance(20 * time.Minute)
	if err := db.TouchSession(ctx, a.IDHash, db.Now().Add(30*time.Minute)); err != nil {
		t.Fatalf("TouchSession: %v", err)
	}
	f.clock.Advance(20 * time.Minute)
	mustLive("40 minutes in, used after 20", "session-a")

	// Idle for 30 minutes: ended.
	f.clock.Advance(31 * time.Minute)
	mustGone("idle for 31 minutes", "session-a")
	if err := db.TouchSession(ctx, a.IDHash, db.Now().Add(30*time.Minute)); consent.ErrorCode(err) != consent.ENotFound {
		t.Errorf("TouchSession of an idle session: got %v, want not_found", err)
	}

	// However much it is used, it ends at Expires, and a touch never
	// moves the idle end past it.
	b := newSession("session-b")
	if err := db.CreateSession(ctx, actor, b); err != nil {
		t.Fatal(err)
	}
	for db.Now().Add(20 * time.Minute).Before(b.Expires) {
		f.clock.Advance(20 * time.Minute)
		if err := db.TouchSession(ctx, b.IDHash, db.Now().Add(30*time.Minute)); err != nil {
			t.Fatalf("TouchSession %v after the sign-in: %v", db.Now().Sub(b.Created), err)
		}
	}
	if got := mustLive("just before the end", "session-b"); !got.IdleUntil.Equal(b.Expires) {
		t.Errorf("idle end near the absolute end: got %v, want %v", got.IdleUntil, b.Expires)
	}
	f.clock.Set(b.Expires)
	mustGone("at the absolute end", "session-b")

	// Deleting ends it at once; deleting again is no error.
	c := newSession("session-c")
	if err := db.CreateSession(ctx, actor, c); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		if err := db.DeleteSession(ctx, c.IDHash); err != nil {
			t.Fatalf("DeleteSession: %v", err)
		}
	}
	mustGone("after delete", "session-c")

	// The next sign-in sweeps the ended sessions: b is gone from the file,
	// not only hidden.
	if err := db.CreateSession(ctx, actor, newSession("session-d")); err != nil {
		t.Fatal(err)
	}
	f.clock.Set(b.Created)
	mustGone("b after the sweep, read at a time it was live", "session-b")
	mustLive("d, at its own start", "session-d")
}

// testFindSubscribersOrder pages through subscribers oldest first and
// newest first: every one exactly once, in creation order or its reverse,
// and a subscriber who signs up during a newest-first listing sorts
// before its cursor, so the pages that follow neither repeat nor skip
// anyone. A whole address honours the cursor in both orders.
func testFindSubscribersOrder(t *testing.T, f *fixture) {
	db := f.s
	f.bootstrap()
	var ids []string // in creation order
	for i := range 7 {
		f.clock.Advance(time.Second)
		addr := fmt.Sprintf("p%d@example.com", i)
		f.signup(addr)
		ids = append(ids, f.sub(addr).ID)
	}
	newest := slices.Clone(ids)
	slices.Reverse(newest)

	list := func(q consent.SubscriberFilter, during func(page int)) []string {
		t.Helper()
		var got []string
		for page := 0; ; page++ {
			subs, next, err := db.FindSubscribers(t.Context(), q)
			if err != nil {
				t.Fatalf("FindSubscribers(%+v): %v", q, err)
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
			q.Cursor = next
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
			f.clock.Advance(time.Second)
			f.signup("late@example.com")
			late = f.sub("late@example.com").ID
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
		q := consent.SubscriberFilter{Query: "P3@example.com", Newest: tt.newest, Cursor: tt.cursor, Limit: 5}
		if subs, _, err := db.FindSubscribers(t.Context(), q); err != nil || len(subs) != tt.want {
			t.Errorf("whole address, newest %v, cursor %s: got %d, %v, want %d", tt.newest, tt.cursor, len(subs), err, tt.want)
		}
	}
}
