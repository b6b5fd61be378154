package bolt_test

import (
	"path/filepath"
	"testing"
	"time"

	"optin/internal/bolt"
	"optin/internal/consent"
	"optin/internal/storetest"
)

// TestConformance runs the store conformance suite on a real bbolt file.
func TestConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T, now func() time.Time) consent.Store {
		db, err := bolt.Open(filepath.Join(t.TempDir(), "optin.db"),
			bolt.Options{Now: now, MessageIDDomain: testDomain, Policy: consent.DefaultPolicy(), HMACKey: testHMACKey})
		if err != nil {
			t.Fatalf("Open: got err %v, want nil", err)
		}
		return db
	})
}
