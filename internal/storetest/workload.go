package storetest

import (
	"context"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"time"

	"optin/internal/consent"
	"optin/internal/testclock"
	"optin/internal/transfer"
)

// The records of the storage benchmarks (each store's BenchmarkStorage):
// the same rows and signups, so that the bytes per record of the two
// stores measure one thing. Issue 20 and issue 14 state their storage
// targets for these: an imported subscriber with one topic on consent
// with evidence, and a pending signup with its request, mail job and
// events.

// StorageImport imports n rows of topic news on consent, each with its
// own consent time and the source shop, as `optin import` would, and
// checks every row was imported.
func StorageImport(ctx context.Context, s consent.Store, n int) error {
	pr, pw := io.Pipe()
	go func() {
		fmt.Fprintln(pw, "email,topics,basis,consented_at,source")
		for i := range n {
			fmt.Fprintf(pw, "%s,news,consent,%s,shop\n", StorageAddress("u", i), storageConsentedAt(i).Format(time.RFC3339))
		}
		pw.Close()
	}()
	rows, err := transfer.NewReader(pr, transfer.FormatCSV)
	if err != nil {
		return err
	}
	rep, err := s.Import(ctx, consent.CLIActor(), rows, consent.ImportOptions{})
	if err != nil {
		return err
	}
	if rep.Imported != n {
		return fmt.Errorf("import: %d of %d rows imported: %+v", rep.Imported, n, rep)
	}
	return nil
}

// storageConsentedAt is when row i of the import consented: a time to
// the second spread over five years, as a real list's differ from row to
// row (so each row's evidence text differs, as it does in real data).
func storageConsentedAt(i int) time.Time {
	const span = 5 * 365 * 24 * 3600
	return time.Date(2021, 1, 1, 0, 0, 0, 0, time.UTC).Add(time.Duration(uint64(i)*2654435761%span) * time.Second)
}

// storageAgents are the browsers the signups and confirmations come
// from.
var storageAgents = []string{
	"Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/142.0.0.0 Safari/537.36",
	"Mozilla/5.0 (iPhone; CPU iPhone OS 18_6 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.6 Mobile/15E148 Safari/604.1",
	"Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/142.0.0.0 Safari/537.36",
	"Mozilla/5.0 (X11; Linux x86_64; rv:145.0) Gecko/20100101 Firefox/145.0",
}

// StorageSignups signs up n new addresses to form's topic news through
// 64 callers, as the web server would: each with one of four browsers'
// user agents, its own IP address and the form's page. Every signup
// must queue its confirmation mail.
func StorageSignups(ctx context.Context, s consent.Store, form *consent.Form, n int) error {
	w := consent.Wording{Form: form.ID, Version: 1, Locale: "en",
		Text:   "Yes, send me the shop's newsletter about new products and offers, about twice a month.",
		Topics: map[string]string{"news": "News"}, Notice: "Sent by Shop Ltd. You can unsubscribe at any time with the link in every mail."}
	return inParallel(n, func(i int) error {
		a, err := consent.ParseAddress(StorageAddress("p", i))
		if err != nil {
			return err
		}
		in := consent.SignupInput{Form: form, Address: a, Topics: []string{"news"}, Locale: "en",
			Page: "https://shop.example/newsletter", IP: storageIP(i), UserAgent: storageAgents[i%len(storageAgents)]}
		res, err := s.Signup(ctx, in, w)
		if err == nil && !res.Queued {
			err = fmt.Errorf("signup %d queued no mail", i)
		}
		return err
	})
}

// StorageConfirmed makes n subscribers the way most arrive: signed up
// (StorageSignups), their confirmation mail sent (taken from the outbox
// and finished, as the mail worker does once the relay accepted it), and
// the link clicked by a person (a confirmation from the browser the
// signup came from, minutes after the mail), through 64 callers.
func StorageConfirmed(ctx context.Context, s consent.Store, form *consent.Form, n int) error {
	if err := StorageSignups(ctx, s, form, n); err != nil {
		return err
	}
	far := time.Now().Add(365 * 24 * time.Hour)
	for sent := 0; sent < n; {
		jobs, err := s.DueJobs(ctx, far, 1000, nil)
		if err != nil {
			return err
		}
		if len(jobs) == 0 {
			return fmt.Errorf("%d of %d confirmation mails in the outbox", sent, n)
		}
		if err := s.FinishJobs(ctx, jobs); err != nil {
			return err
		}
		sent += len(jobs)
	}
	return inParallel(n, func(i int) error {
		sub, err := signedUp(ctx, s, i)
		if err != nil {
			return err
		}
		if sub == nil || sub.PendingRequest == "" {
			return fmt.Errorf("signup %d: no pending request", i)
		}
		_, err = s.Confirm(ctx, sub.PendingRequest, consent.ConfirmInput{IP: storageIP(i), UserAgent: storageAgents[i%len(storageAgents)],
			Check: &consent.Check{Class: consent.ClassPerson, AfterMail: 300, Interaction: true}})
		return err
	})
}

// StorageSettled makes n subscribers as StorageConfirmed does, then
// moves clock past their links' expiry and retention (the default
// policy's 72 hours and 7 days, and a day) and sweeps, as the service's
// hourly sweep does: what a signed-up subscriber keeps for good, its
// request gone (consent.Store.SweepRequests deletes every request that
// long expired, confirmed or not). The store must run on clock. The
// sweep must delete every request, and the first, middle and last
// subscriber must still be confirmed.
func StorageSettled(ctx context.Context, s consent.Store, form *consent.Form, n int, clock *testclock.Clock) error {
	if err := StorageConfirmed(ctx, s, form, n); err != nil {
		return err
	}
	const retention = 7 * 24 * time.Hour
	clock.Advance(consent.DefaultPolicy().ConfirmTTL + retention + 24*time.Hour)
	swept, err := s.SweepRequests(ctx, retention)
	if err != nil {
		return err
	}
	if swept != n {
		return fmt.Errorf("sweep: %d of %d confirmed requests deleted", swept, n)
	}
	for _, i := range []int{0, n / 2, n - 1} {
		sub, err := signedUp(ctx, s, i)
		if err != nil {
			return err
		}
		if sub == nil || sub.Subscriptions["news"] == nil || sub.Subscriptions["news"].Status != consent.StatusConfirmed {
			return fmt.Errorf("signup %d: not confirmed after the sweep", i)
		}
	}
	return nil
}

// signedUp returns the subscriber of StorageSignups's signup i, nil
// when there is none.
func signedUp(ctx context.Context, s consent.Store, i int) (*consent.Subscriber, error) {
	a, err := consent.ParseAddress(StorageAddress("p", i))
	if err != nil {
		return nil, err
	}
	return s.SubscriberByAddress(ctx, a)
}

// inParallel calls fn for 0 to n-1 from 64 goroutines, as the web
// server's requests come, and returns the first error.
func inParallel(n int, fn func(i int) error) error {
	var next atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, 64)
	for range 64 {
		wg.Go(func() {
			for i := int(next.Add(1)) - 1; i < n; i = int(next.Add(1)) - 1 {
				if err := fn(i); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	return <-errs
}

// storageIP is the IP address signup i comes from: one of its own for
// each of the first 13,434,880 (the first 65,536 as before, in
// 198.51.0.0/16).
func storageIP(i int) string {
	return fmt.Sprintf("198.%d.%d.%d", 51+i/65536%205, i/256%256, i%256)
}

// StorageAddress returns the i-th address of a run: distinct, and in no
// order, as a real list's addresses arrive (an index of addresses takes
// them where they sort).
func StorageAddress(prefix string, i int) string {
	return fmt.Sprintf("%s%08x.%d@example.com", prefix, uint32(i)*2654435761, i)
}
