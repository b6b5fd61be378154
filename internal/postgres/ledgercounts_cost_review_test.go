package postgres_test

import (
	"os"
	"strconv"
	"testing"
	"time"

	"optin/internal/storetest"
)

// TestLedgerCountsCost (review of migration 0020): the time of
// LedgerCounts after a seq, which reads and decodes every event since
// (a metrics scrape), over OPTIN_LEDGERCOST imported events. Skipped
// unless set.
func TestLedgerCountsCost(t *testing.T) {
	n, _ := strconv.Atoi(os.Getenv("OPTIN_LEDGERCOST"))
	if n == 0 {
		t.Skip("OPTIN_LEDGERCOST unset")
	}
	ctx := t.Context()
	db, _, _ := newStore(t)
	if err := storetest.StorageImport(ctx, db, n); err != nil {
		t.Fatal(err)
	}
	for range 3 {
		start := time.Now()
		counts, last, err := db.LedgerCounts(ctx, 1)
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("LedgerCounts(1) over %d events: %v (%v, last %d)", last-1, time.Since(start), counts, last)
	}
}
