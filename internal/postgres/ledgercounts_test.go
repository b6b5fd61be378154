package postgres_test

import (
	"maps"
	"reflect"
	"testing"

	"optin/internal/consent"
	"optin/internal/storetest"
)

// TestLedgerCountsAfterMatchesCounters (review of migration 0020, which
// reads an event's type from its record): the events after the first,
// counted from their records by LedgerCounts(1), are those the counters
// hold (LedgerCounts(0)) less the first, for events of every kind the
// store writes — signups with shared strings (form, page, wording, user
// agent), confirmations with a check, imports with packed evidence — and
// for events another instance wrote, whose shared strings this one has
// not seen.
func TestLedgerCountsAfterMatchesCounters(t *testing.T) {
	ctx := t.Context()
	url := pg.EmptyDatabase(t)
	db, form, _ := newStoreAt(t, url)
	signup(t, db, &form, "first@example.com") // event 1: requested
	if err := storetest.StorageImport(ctx, db, 40); err != nil {
		t.Fatal(err)
	}
	if err := storetest.StorageConfirmed(ctx, db, &form, 40); err != nil {
		t.Fatal(err)
	}
	other := open(t, url, nil, testHMACKey)
	signup(t, other, &form, "second@example.com")
	all, last, err := db.LedgerCounts(ctx, 0)
	if err != nil {
		t.Fatal(err)
	}
	want := maps.Clone(all)
	want[consent.EventRequested]--
	after, lastAfter, err := db.LedgerCounts(ctx, 1)
	if err != nil || lastAfter != last || !reflect.DeepEqual(after, want) {
		t.Errorf("LedgerCounts(1): got %v, %d, %v, want %v, %d", after, lastAfter, err, want, last)
	}
}
