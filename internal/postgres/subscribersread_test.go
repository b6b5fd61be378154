package postgres_test

import (
	"testing"

	"optin/internal/postgres"
	"optin/internal/storetest"
)

// TestSubscribersNotReadWhole: the signups' read of their addresses (the
// read ahead of a batch, signupState) stays a lookup in the address
// index once the table has grown. It is planned at each call: a generic
// plan made while the table was nearly empty (a new database) scanned
// it, and its pooled connection kept it as the table grew, reading every
// subscriber for each signup (the bench, 2026-12-03: 11,360 scans of 72
// million rows in a run of 14,000 signups, 2,900 signups a second
// against 7,400 without).
//
// With one signup at a time a batch holds one signup, which reads its
// address with signupState's own statement, queued in the transaction's
// batch (review, 2026-12-03: it did not scan either).
func TestSubscribersNotReadWhole(t *testing.T) {
	for _, tc := range []struct {
		name       string
		workers, n int
	}{{"batches", 8, 2000}, {"one at a time", 1, 300}} {
		t.Run(tc.name, func(t *testing.T) {
			url := pg.EmptyDatabase(t)
			db := open(t, url, nil, testHMACKey)
			form := bootstrap(t, db)
			pool, err := postgres.Connect(t.Context(), url)
			if err != nil {
				t.Fatal(err)
			}
			defer pool.Close()
			// Signups while the table is nearly empty, then a table of
			// 10,000 (an import, which reads the addresses otherwise),
			// then signups.
			signupsAtOnce(t, []*postgres.DB{db}, &form, "early", 50*tc.workers, tc.workers)
			if err := storetest.StorageImport(t.Context(), db, 10_000); err != nil {
				t.Fatal(err)
			}
			before := seqRead(t, pool, []string{"subscribers"})["subscribers"]
			signupsAtOnce(t, []*postgres.DB{db}, &form, "late", tc.n, tc.workers)
			read := seqRead(t, pool, []string{"subscribers"})["subscribers"] - before
			t.Logf("rows of subscribers read by sequential scans during %d signups on a table of 10,000: %d", tc.n, read)
			if read > 3*10_000 {
				t.Errorf("rows of subscribers read by sequential scans during %d signups: got %d, want fewer than three reads of the whole table", tc.n, read)
			}
		})
	}
}
