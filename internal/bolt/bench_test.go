package bolt

import (
	"bytes"
	"context"
	"fmt"
	"path/filepath"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

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
// callers per core: the group commit lets them share fsyncs. It also
// reports the process's CPU time per signup (cpu-ns/op), which a machine
// shared with other work inflates less than the wall time.
func BenchmarkSignupParallel(b *testing.B) {
	db, form := benchDB(b)
	w := consent.Wording{Form: "newsletter", Text: "Tick what you want"}
	ctx := context.Background()
	var n atomic.Int64
	b.SetParallelism(64)
	start := cpuTime(b)
	defer func() { b.ReportMetric(float64((cpuTime(b)-start).Nanoseconds())/float64(b.N), "cpu-ns/op") }()
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

// BenchmarkAppendEvent measures the CPU cost of appending one ledger event
// (seal, encode, chain head and, with the Merkle tree, its tree hashes)
// inside transactions of maxBatch events, as group commit writes them;
// the commits, whose cost is the disk's, are left out of the timing. It
// also reports the process's CPU time per event (cpu-ns/op), which a
// machine shared with other work inflates less than the wall time.
func BenchmarkAppendEvent(b *testing.B) {
	db, _ := benchDB(b)
	db.bolt.NoSync = true
	ev := consent.Event{Type: consent.EventRequested, Subscriber: "06h0000000000000000000000000", Topics: []string{"news"},
		Basis: consent.BasisConsent, Source: "form:newsletter", Page: "https://shop.example/news"}
	p := consent.Personal{Salt: "06h0000000000000000000000001", Email: "ann@example.com", IP: "192.0.2.1", UserAgent: "bench/1"}
	var cpu time.Duration
	b.ResetTimer()
	for done := 0; done < b.N; {
		b.StopTimer()
		tx, err := db.bolt.Begin(true)
		if err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		n := min(maxBatch, b.N-done)
		before := cpuTime(b)
		for range n {
			e := ev
			if err := appendEvent(tx, &e, p); err != nil {
				b.Fatal(err)
			}
		}
		cpu += cpuTime(b) - before
		b.StopTimer()
		if err := tx.Commit(); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		done += n
	}
	b.ReportMetric(float64(cpu.Nanoseconds())/float64(b.N), "cpu-ns/op")
}

// cpuTime returns the user and system CPU time the process has used.
func cpuTime(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
