package postgres_test

import (
	"os"
	"testing"
	"time"

	"optin/internal/consent"
	"optin/internal/postgres"
	"optin/internal/postgres/pgtest"
	"optin/internal/storetest"
)

// pg is the private PostgreSQL server of this package's tests.
var pg *pgtest.Server

func TestMain(m *testing.M) { os.Exit(pgtest.Main(m, &pg)) }

// TestConformance runs the store conformance suite on a real PostgreSQL
// server, a fresh database for each subtest.
func TestConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T, now func() time.Time) consent.Store {
		db, err := postgres.Open(t.Context(), pg.Database(t), postgres.Options{Now: now, MessageIDDomain: "news.example.com",
			Policy: consent.DefaultPolicy(), HMACKey: []byte("0123456789abcdef0123456789abcdef")})
		if err != nil {
			t.Fatalf("Open: got err %v, want nil", err)
		}
		return db
	})
}
