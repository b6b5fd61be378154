//go:build unix

package bolt

import (
	"bytes"
	"context"
	"io"
	"path/filepath"
	"testing"
	"time"

	"optin/internal/consent"
	"optin/internal/transfer"
)

// BenchmarkExport exports 100,000 subscribers (BenchmarkMillion's mix:
// every hundredth, suppressed for its only topic, is left out) as the
// API does, from EachExportable through transfer's encoders into
// a buffered writer that discards: one op is one whole export. It reports
// the CPU time per subscriber (cpu-ns/sub).
func BenchmarkExport(b *testing.B) {
	const n = 100_000
	now := time.Date(2030, 1, 1, 12, 0, 0, 0, time.UTC)
	db, err := Open(filepath.Join(b.TempDir(), "export.db"), Options{HMACKey: bytes.Repeat([]byte{3}, 32),
		Now: func() time.Time { return now }})
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	ctx := context.Background()
	form := consent.Form{ID: "newsletter", Topics: []string{"news"}, Locale: "en"}
	if _, err := db.Bootstrap(ctx, consent.Topic{ID: "news", Name: "News"}, form, "h"); err != nil {
		b.Fatal(err)
	}
	if _, err := db.CreateTopic(ctx, consent.CLIActor(), consent.Topic{ID: "offers", Name: "Offers"}); err != nil {
		b.Fatal(err)
	}
	generateSubscribers(b, db, n, now)
	const exported = n - n/100
	for _, format := range []string{transfer.FormatCSV, transfer.FormatNDJSON} {
		b.Run(format, func(b *testing.B) {
			start := cpuTime(b)
			for range b.N {
				ex, err := transfer.NewExporter(io.Discard, format, now, 365*consent.Day)
				if err != nil {
					b.Fatal(err)
				}
				count := 0
				err = ex.Begin()
				if err == nil {
					err = db.EachExportable(ctx, func(sub *consent.Subscriber) error { count++; return ex.Write(sub) })
				}
				if err == nil {
					err = ex.Flush()
				}
				if err != nil || count != exported {
					b.Fatalf("export: %d subscribers, %v", count, err)
				}
			}
			b.ReportMetric(float64(cpuTime(b)-start)/float64(b.N*n), "cpu-ns/sub")
		})
	}
}
