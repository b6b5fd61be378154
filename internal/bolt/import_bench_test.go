package bolt

import (
	"bytes"
	"context"
	"testing"
	"time"

	"go.etcd.io/bbolt"

	"optin/internal/bench/people"
	"optin/internal/consent"
	"optin/internal/transfer"
)

// BenchmarkImport imports b.N generated people (optin-bench generate's
// mix, CSV) into a fresh store, as optin import does: one op is one row.
// It also reports the process's CPU time per row (cpu-ns/op) and the
// database file's size per row (file-bytes/op). Run with a row count, e.g.
// -benchtime 200000x.
func BenchmarkImport(b *testing.B) {
	db, _ := benchDB(b)
	ctx := context.Background()
	for _, id := range []string{"offers", "events"} {
		if _, err := db.CreateTopic(ctx, consent.CLIActor(), consent.Topic{ID: id, Name: id}); err != nil {
			b.Fatal(err)
		}
	}
	now := time.Now().UTC()
	var file bytes.Buffer
	if err := people.Generate(&file, people.Options{Subscribers: b.N, Format: transfer.FormatCSV, Seed: 1, Now: now}); err != nil {
		b.Fatal(err)
	}
	ir, err := transfer.NewReader(&file, transfer.FormatCSV)
	if err != nil {
		b.Fatal(err)
	}
	defer reportCPU(b)()
	b.ResetTimer()
	rep, err := db.Import(ctx, consent.CLIActor(), ir, consent.ImportOptions{SkipNotice: true})
	if err != nil || rep.Imported != b.N {
		b.Fatalf("Import: %d of %d imported, %d invalid, %v", rep.Imported, b.N, rep.InvalidCount, err)
	}
	b.StopTimer()
	var size int64
	if err := db.bolt.View(func(tx *bbolt.Tx) error { size = tx.Size(); return nil }); err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(float64(size)/float64(b.N), "db-bytes/op")
}
