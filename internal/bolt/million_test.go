//go:build unix

package bolt

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"go.etcd.io/bbolt"

	"optin/internal/consent"
)

// millionSize is how many subscribers BenchmarkMillion generates, unless
// OPTIN_BENCH_SUBSCRIBERS says otherwise.
const millionSize = 1_000_000

// BenchmarkMillion measures, on a store of a million subscribers
// generated straight into it, what an operator's screens ask of it: the
// overview (Stats, from the counters), the full walk the counters spare
// (CheckCounters, which the old Stats came close to), list pages under
// several filters (from the indexes), campaign previews and one page of
// a campaign's audience list (both from the audience facts). Besides the
// wall time (ns/op) each reports the process's CPU time per operation
// (cpu-ns/op, from getrusage), which other work on the machine does not
// inflate. Generating the store takes minutes; run it alone:
//
//	go test -run '^$' -bench '^BenchmarkMillion$' -benchtime 3x -timeout 60m ./internal/bolt
//
// OPTIN_BENCH_SUBSCRIBERS=10000000 generates ten million instead.
func BenchmarkMillion(b *testing.B) {
	now := time.Date(2030, 1, 1, 12, 0, 0, 0, time.UTC)
	db, size := millionDB(b, now), benchSize(b)
	ctx := context.Background()
	dormantAfter := 365 * consent.Day

	b.Run("Stats", func(b *testing.B) {
		defer reportCPU(b)()
		for range b.N {
			st, err := db.Stats(ctx, dormantAfter, 90)
			if err != nil || st.Subscribers != size {
				b.Fatalf("Stats: %d subscribers, %v", st.Subscribers, err)
			}
		}
	})
	b.Run("FullWalk", func(b *testing.B) {
		defer reportCPU(b)()
		for range b.N {
			if diff, err := db.CheckCounters(ctx); err != nil || len(diff) != 0 {
				b.Fatalf("CheckCounters: %v, %v", diff, err)
			}
		}
	})
	for _, tt := range []struct {
		name string
		f    consent.SubscriberFilter
	}{
		{"ListNewest", consent.SubscriberFilter{}},
		{"ListConfirmedNews", consent.SubscriberFilter{Topic: "news", Status: consent.StatusConfirmed}},
		{"ListUnsubscribedOffers", consent.SubscriberFilter{Topic: "offers", Status: consent.StatusUnsubscribed}},
		{"ListLapsed", consent.SubscriberFilter{Status: consent.StatusLapsed}},
		{"ListDormant", consent.SubscriberFilter{Lifecycle: consent.LifecycleDormant}},
		{"ListCustomerOffers", consent.SubscriberFilter{Topic: "offers", Lifecycle: consent.LifecycleCustomer}},
		{"ListCreatedLastWeek", consent.SubscriberFilter{CreatedSince: now.Add(-7 * consent.Day)}},
		{"ListCreatedOneDayHalfAYearAgo", consent.SubscriberFilter{CreatedSince: now.Add(-180 * consent.Day), CreatedBefore: now.Add(-179 * consent.Day)}},
	} {
		b.Run(tt.name, func(b *testing.B) {
			f := tt.f
			f.Limit, f.Newest, f.DormantAfter = 50, true, dormantAfter
			defer reportCPU(b)()
			for range b.N {
				subs, _, err := db.FindSubscribers(ctx, f)
				if err != nil || len(subs) != 50 {
					b.Fatalf("FindSubscribers: %d, %v", len(subs), err)
				}
			}
		})
	}
	for _, topic := range []string{"offers", "news"} {
		c, err := db.CreateCampaign(ctx, consent.CLIActor(), consent.CampaignInput{Name: "Still there?", Topic: topic,
			Templates: map[string]consent.CampaignTemplate{"en": {Subject: "Still there?", Body: "Hello"}}})
		if err != nil {
			b.Fatal(err)
		}
		p := consent.CampaignPolicy{DormantAfter: dormantAfter}
		b.Run("Preview_"+topic, func(b *testing.B) {
			defer reportCPU(b)()
			for range b.N {
				pv, err := db.PreviewCampaign(ctx, c.ID, p)
				total := pv.Audience
				for _, n := range pv.Excluded {
					total += n
				}
				if err != nil || pv.Audience == 0 || total != size {
					b.Fatalf("PreviewCampaign: %+v (%d in all), %v", pv, total, err)
				}
			}
		})
		// One page of 50 of the audience list: everyone, those in, and
		// those left out for a rare reason (news: suppressed, 1 in 100;
		// offers: unsubscribed, 1 in 50 of those on it).
		rare := map[string]string{"news": consent.ExcludedSuppressed, "offers": consent.ExcludedUnsubscribed}[topic]
		for _, only := range []string{"", "in", rare} {
			name := only
			if name == "" {
				name = "all"
			}
			b.Run("AudiencePage_"+topic+"_"+name, func(b *testing.B) {
				defer reportCPU(b)()
				for range b.N {
					page, err := db.CampaignAudience(ctx, c.ID, p, consent.AudienceQuery{Limit: 50, Only: only})
					if err != nil || len(page.Items) == 0 || page.NextCursor == "" {
						b.Fatalf("CampaignAudience: %d items, next %q, %v", len(page.Items), page.NextCursor, err)
					}
				}
			})
		}
	}
}

// logIndexSizes logs what the indexes campaign audiences read take per
// subscriber: the bytes in use and the pages allocated.
func logIndexSizes(b *testing.B, db *DB, n int) {
	err := db.view(func(tx *bbolt.Tx) error {
		for _, name := range [][]byte{bucketSubTopics, bucketLedgerBySub} {
			s := tx.Bucket(name).Stats()
			b.Logf("%s: %d keys, %.0f bytes in use and %.0f allocated per subscriber", name, s.KeyN,
				float64(s.LeafInuse+s.BranchInuse)/float64(n), float64(s.LeafAlloc+s.BranchAlloc)/float64(n))
		}
		return nil
	})
	if err != nil {
		b.Fatal(err)
	}
}

// millionDB opens a store in a temporary directory whose clock stands
// still at now, with the topics news (and its form newsletter) and
// offers, and generates millionSize subscribers into it
// (generateSubscribers), the newest 20 seconds before now. The store is
// closed when the benchmark ends.
func millionDB(b *testing.B, now time.Time) *DB {
	b.Helper()
	size := benchSize(b)
	db, err := Open(filepath.Join(b.TempDir(), "million.db"), Options{HMACKey: bytes.Repeat([]byte{3}, 32),
		Now: func() time.Time { return now }})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { db.Close() })
	ctx := context.Background()
	form := consent.Form{ID: "newsletter", Topics: []string{"news"}, Locale: "en"}
	if _, err := db.Bootstrap(ctx, consent.Topic{ID: "news", Name: "News"}, form, "h"); err != nil {
		b.Fatal(err)
	}
	if _, err := db.CreateTopic(ctx, consent.CLIActor(), consent.Topic{ID: "offers", Name: "Offers"}); err != nil {
		b.Fatal(err)
	}
	start := time.Now()
	generateSubscribers(b, db, size, now)
	b.Logf("generated %d subscribers in %v", size, time.Since(start).Round(time.Second))
	logIndexSizes(b, db, size)
	return db
}

// benchSize is the number of subscribers millionDB generates: a million,
// or OPTIN_BENCH_SUBSCRIBERS.
func benchSize(b *testing.B) int {
	s := os.Getenv("OPTIN_BENCH_SUBSCRIBERS")
	if s == "" {
		return millionSize
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 1000 {
		b.Fatalf("OPTIN_BENCH_SUBSCRIBERS=%q: want a number of at least 1000", s)
	}
	return n
}

// reportCPU starts measuring the process's CPU time (user and system);
// the function it returns reports it per operation as cpu-ns/op.
func reportCPU(b *testing.B) func() {
	start := cpuTime(b)
	return func() { b.ReportMetric(float64(cpuTime(b)-start)/float64(b.N), "cpu-ns/op") }
}

// generateSubscribers writes n subscribers created over the 230 days
// before now (their consents given up to 1,000 days before that), in transactions of 20,000, through put and appendEvent (so
// counters and indexes move as on any write): everyone on news (75%
// confirmed, 10% pending, 10% unsubscribed, 5% lapsed), a fifth on offers
// too, a quarter customers with a last purchase up to four years back;
// each with the ledger event that proves the subscription (imported with
// evidence, or requested for a pending one); one in a hundred suppressed
// for news by an operator.
func generateSubscribers(b *testing.B, db *DB, n int, now time.Time) {
	rnd := rand.NewChaCha8([32]byte{1})
	step := 20 * time.Second * millionSize / time.Duration(n)
	const chunk = 20_000
	for from := 0; from < n; from += chunk {
		err := db.bolt.Update(func(tx *bbolt.Tx) error {
			for i := from; i < min(from+chunk, n); i++ {
				created := now.Add(-time.Duration(n-i) * step)
				since := created.Add(-time.Duration(i%1000) * consent.Day) // consents imported with their date
				sub := &consent.Subscriber{ID: consent.NewID(created, rnd), Email: fmt.Sprintf("u%07d@example.com", i),
					Locale: "en", Created: created, Subscriptions: map[string]*consent.Subscription{}}
				status := consent.StatusConfirmed
				switch i % 20 {
				case 0, 1:
					status = consent.StatusPending
				case 2, 3:
					status = consent.StatusUnsubscribed
				case 4:
					status = consent.StatusLapsed
				}
				sub.Subscriptions["news"] = &consent.Subscription{Topic: "news", Status: status, Basis: consent.BasisConsent, Since: since}
				if i%5 == 0 {
					offers := consent.StatusConfirmed
					if i%50 == 0 {
						offers = consent.StatusUnsubscribed
					}
					sub.Subscriptions["offers"] = &consent.Subscription{Topic: "offers", Status: offers, Basis: consent.BasisConsent, Since: since}
				}
				if i%4 == 1 {
					sub.LastPurchase = now.Add(-time.Duration(i%1460) * consent.Day).Truncate(time.Millisecond)
				}
				if err := db.putSubscriber(tx, sub, sub.Email); err != nil {
					return err
				}
				if i%100 == 7 {
					s := consent.Suppression{Hash: db.hashKey(sub.Email), Scope: "news", Reason: consent.ReasonAdmin, Created: created}
					if err := suppress(tx, s); err != nil {
						return err
					}
				}
				ev := &consent.Event{Time: created, Type: consent.EventImported, Subscriber: sub.ID, Basis: consent.BasisConsent,
					Source: "import:bench", Topics: []string{"news"}}
				if sub.Subscriptions["offers"] != nil {
					ev.Topics = append(ev.Topics, "offers")
				}
				if status == consent.StatusPending {
					ev.Type, ev.Source = consent.EventRequested, "form:newsletter"
				}
				if err := appendEvent(tx, ev, consent.Personal{Salt: sub.ID, Email: sub.Email}); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			b.Fatal(err)
		}
	}
}
