//go:build unix

package bolt

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"testing"
	"time"

	"go.etcd.io/bbolt"

	"optin/internal/bolt/record"
	"optin/internal/consent"
)

// millionSize is how many subscribers BenchmarkMillion generates.
const millionSize = 1_000_000

// BenchmarkMillion measures, on a store of a million subscribers
// generated straight into it, what an operator's screens ask of it: the
// overview (Stats, from the counters), the full walk the counters spare
// (CheckCounters, which the old Stats came close to), list pages under
// several filters (from the indexes) and campaign previews. Besides the
// wall time (ns/op) each reports the process's CPU time per operation
// (cpu-ns/op, from getrusage), which other work on the machine does not
// inflate. Generating the store takes minutes; run it alone:
//
//	go test -run '^$' -bench '^BenchmarkMillion$' -benchtime 3x -timeout 60m ./internal/bolt
func BenchmarkMillion(b *testing.B) {
	now := time.Date(2030, 1, 1, 12, 0, 0, 0, time.UTC)
	db := millionDB(b, now)
	ctx := context.Background()
	dormantAfter := 365 * consent.Day

	b.Run("Stats", func(b *testing.B) {
		defer reportCPU(b)()
		for range b.N {
			st, err := db.Stats(ctx, dormantAfter, 90)
			if err != nil || st.Subscribers != millionSize {
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
		b.Run("Preview_"+topic, func(b *testing.B) {
			defer reportCPU(b)()
			for range b.N {
				pv, err := db.PreviewCampaign(ctx, c.ID, consent.CampaignPolicy{DormantAfter: dormantAfter})
				if err != nil || pv.Audience == 0 {
					b.Fatalf("PreviewCampaign: %+v, %v", pv, err)
				}
			}
		})
	}
}

// millionDB opens a store in a temporary directory whose clock stands
// still at now, with the topics news (and its form newsletter) and
// offers, and generates millionSize subscribers into it
// (generateSubscribers), the newest 20 seconds before now. The store is
// closed when the benchmark ends.
func millionDB(b *testing.B, now time.Time) *DB {
	b.Helper()
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
	generateSubscribers(b, db, millionSize, now)
	b.Logf("generated %d subscribers in %v", millionSize, time.Since(start).Round(time.Second))
	return db
}

// reportCPU starts measuring the process's CPU time (user and system);
// the function it returns reports it per operation as cpu-ns/op.
func reportCPU(b *testing.B) func() {
	start := cpuTime(b)
	return func() { b.ReportMetric(float64(cpuTime(b)-start)/float64(b.N), "cpu-ns/op") }
}

// generateSubscribers writes n subscribers created over the 230 days
// before now, in transactions of 20,000, through put and appendEvent (so
// counters and indexes move as on any write): everyone on news (75%
// confirmed, 10% pending, 10% unsubscribed, 5% lapsed), a fifth on offers
// too, a quarter customers with a last purchase up to four years back;
// each with the ledger event that proves the subscription (imported with
// evidence, or requested for a pending one).
func generateSubscribers(b *testing.B, db *DB, n int, now time.Time) {
	rnd := rand.NewChaCha8([32]byte{1})
	const chunk = 20_000
	for from := 0; from < n; from += chunk {
		err := db.bolt.Update(func(tx *bbolt.Tx) error {
			for i := from; i < min(from+chunk, n); i++ {
				created := now.Add(-time.Duration(n-i) * 20 * time.Second)
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
				sub.Subscriptions["news"] = &consent.Subscription{Topic: "news", Status: status, Basis: consent.BasisConsent, Since: created}
				if i%5 == 0 {
					offers := consent.StatusConfirmed
					if i%50 == 0 {
						offers = consent.StatusUnsubscribed
					}
					sub.Subscriptions["offers"] = &consent.Subscription{Topic: "offers", Status: offers, Basis: consent.BasisConsent, Since: created}
				}
				if i%4 == 1 {
					sub.LastPurchase = now.Add(-time.Duration(i%1460) * consent.Day).Truncate(time.Millisecond)
				}
				if err := put(tx, bucketSubscribers, []byte(sub.ID), sub); err != nil {
					return err
				}
				if err := tx.Bucket(bucketEmails).Put([]byte(sub.Email), record.ID(sub.ID)); err != nil {
					return err
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
