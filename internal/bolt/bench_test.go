package bolt

import (
	"bytes"
	"context"
	"fmt"
	"path/filepath"
	"sync/atomic"
	"testing"

	"optin/internal/consent"
)

func benchDB(b *testing.B) (*DB, consent.Form) {
	b.Helper()
	db, err := Open(filepath.Join(b.TempDir(), "bench.db"), Options{HMACKey: bytes.Repeat([]byte{3}, 32)})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { db.Close() })
	form := consent.Form{ID: "newsletter", Topics: []string{"news"}, Locale: "en"}
	if _, err := db.Bootstrap(context.Background(), consent.Topic{ID: "news", Name: "News"}, form, "h"); err != nil {
		b.Fatal(err)
	}
	return db, form
}

// BenchmarkSignup measures one durable signup (subscriber, request, ledger
// event, outbox job, fsynced) from one caller at a time: every commit
// pays for its own fsync.
func BenchmarkSignup(b *testing.B) {
	db, form := benchDB(b)
	w := consent.Wording{Form: "newsletter", Text: "Tick what you want"}
	ctx := context.Background()
	b.ResetTimer()
	for i := range b.N {
		a, _ := consent.ParseAddress(fmt.Sprintf("s%d@bench.example", i))
		if _, err := db.Signup(ctx, consent.SignupInput{Form: &form, Address: a, Topics: []string{"news"}}, w); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkSignupParallel measures durable signups from 64 concurrent
// callers per core: the group commit lets them share fsyncs.
func BenchmarkSignupParallel(b *testing.B) {
	db, form := benchDB(b)
	w := consent.Wording{Form: "newsletter", Text: "Tick what you want"}
	ctx := context.Background()
	var n atomic.Int64
	b.SetParallelism(64)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			a, _ := consent.ParseAddress(fmt.Sprintf("p%d@bench.example", n.Add(1)))
			if _, err := db.Signup(ctx, consent.SignupInput{Form: &form, Address: a, Topics: []string{"news"}}, w); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

// BenchmarkVerifyLedger measures the hash-chain walk per event.
func BenchmarkVerifyLedger(b *testing.B) {
	db, form := benchDB(b)
	w := consent.Wording{Form: "newsletter"}
	ctx := context.Background()
	for i := range 2000 {
		a, _ := consent.ParseAddress(fmt.Sprintf("v%d@bench.example", i))
		if _, err := db.Signup(ctx, consent.SignupInput{Form: &form, Address: a, Topics: []string{"news"}}, w); err != nil {
			b.Fatal(err)
		}
	}
	b.ResetTimer()
	for range b.N {
		if rep, err := db.VerifyLedger(ctx); err != nil || !rep.OK {
			b.Fatal(rep, err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/2000, "ns/event")
}
