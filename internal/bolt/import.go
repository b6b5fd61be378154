package bolt

import (
	"context"
	"fmt"
	"io"
	"time"

	"go.etcd.io/bbolt"

	"optin/internal/consent"
)

// importChunk is how many rows one import transaction writes: large
// enough to amortise the fsync, small enough to keep memory flat.
const importChunk = 1000

// Import reads rows from ir and stores them in transactions of 1000 rows,
// so memory stays flat however long the file is. Each valid row lands
// even when others are refused. Per row:
//   - an address suppressed for any of its topics or for every topic is
//     skipped;
//   - basis consent with evidence (consented_at and source), soft_opt_in
//     (with last_purchase_at) and legitimate_interest subscribe the topics
//     on that basis with an imported ledger event citing import:<batch>
//     and the evidence;
//   - basis consent without evidence gets a double opt-in instead: a
//     pending request, a requested event and a confirmation mail;
//   - an existing subscriber is never downgraded (a confirmed topic stays
//     as it is) and an unsubscribed or lapsed topic is never re-enabled:
//     only the person can do that, and a lawful basis is never swapped
//     after the fact (GDPR Art. 6(1)).
//
// A read error aborts the import; the chunks stored before stay, and the
// report so far is returned with the error.
func (db *DB) Import(ctx context.Context, a consent.Actor, ir consent.ImportRows) (consent.ImportReport, error) {
	rep := consent.ImportReport{Batch: db.ID()[:10], Invalid: []consent.ImportProblem{}}
	chunk := make([]consent.ImportRow, 0, importChunk)
	for done := false; !done; {
		chunk = chunk[:0]
		now := db.Now()
		for len(chunk) < importChunk {
			row, problem, err := ir.Next(now)
			if err == io.EOF {
				done = true
				break
			}
			if err != nil {
				return rep, err
			}
			if problem != "" {
				rep.AddInvalid(row.Line, problem)
				continue
			}
			chunk = append(chunk, row)
		}
		if len(chunk) == 0 {
			continue
		}
		if err := ctx.Err(); err != nil {
			return rep, err
		}
		var part consent.ImportReport
		err := db.update(ctx, func(tx *bbolt.Tx) error {
			part = consent.ImportReport{}
			for i := range chunk {
				if err := db.importRow(tx, &part, rep.Batch, &chunk[i]); err != nil {
					return fmt.Errorf("bolt: import line %d: %w", chunk[i].Line, err)
				}
			}
			return db.audit(tx, a, "import", "import:"+rep.Batch, part.Imported+part.Updated)
		})
		if err != nil {
			return rep, err
		}
		rep.Imported += part.Imported
		rep.Updated += part.Updated
		rep.Unchanged += part.Unchanged
		rep.Pending += part.Pending
		rep.SkippedSuppressed += part.SkippedSuppressed
		rep.Queued += part.Queued
		for _, p := range part.Invalid {
			rep.AddInvalid(p.Line, p.Reason)
		}
		rep.InvalidCount += part.InvalidCount - len(part.Invalid)
	}
	return rep, nil
}

// importRow stores one validated row in tx and counts it in rep.
func (db *DB) importRow(tx *bbolt.Tx, rep *consent.ImportReport, batch string, row *consent.ImportRow) error {
	if err := checkTopics(tx, row.Topics); err != nil {
		rep.AddInvalid(row.Line, consent.ErrorMessage(err))
		return nil
	}
	h := db.AddressHash(row.Address)
	for _, t := range row.Topics {
		s, err := suppressed(tx, h, t)
		if err != nil {
			return err
		}
		if s != nil {
			rep.SkippedSuppressed++
			return nil
		}
	}
	now := db.Now()
	source := "import:" + batch
	sub, err := subscriberByKey(tx, row.Address.Key)
	if err != nil {
		return err
	}
	isNew := sub == nil
	if isNew {
		sub = &consent.Subscriber{ID: db.ID(), Email: row.Address.Addr, Name: row.Name, Created: now,
			Subscriptions: map[string]*consent.Subscription{}}
	}
	changed := false
	if sub.Name == "" && row.Name != "" {
		sub.Name, changed = row.Name, true
	}
	if row.LastPurchaseAt.After(sub.LastPurchase) {
		sub.LastPurchase, changed = row.LastPurchaseAt, true
	}
	// Topics the row may still add: never a confirmed one (no downgrade,
	// no basis swap) and never one the person left.
	var topics []string
	for _, t := range row.Topics {
		if s := sub.Subscriptions[t]; s == nil || s.Status == consent.StatusPending {
			topics = append(topics, t)
		}
	}

	if row.Basis == consent.BasisConsent && !row.HasEvidence() {
		requested, mailed, err := db.importDoubleOptIn(tx, sub, row, topics, source, now)
		if err != nil {
			return err
		}
		if requested {
			rep.Pending++
			changed = true
		}
		if mailed {
			rep.Queued++
		}
	} else if len(topics) > 0 {
		since := now
		if row.Basis == consent.BasisConsent {
			since = row.ConsentedAt
		}
		for _, t := range topics {
			sub.Subscriptions[t] = &consent.Subscription{Topic: t, Status: consent.StatusConfirmed, Basis: row.Basis, Since: since}
		}
		ev := &consent.Event{Time: now, Type: consent.EventImported, Subscriber: sub.ID, Topics: topics,
			Basis: row.Basis, Source: source, Page: row.Evidence()}
		if err := appendEvent(tx, ev, consent.Personal{Salt: db.ID(), Email: sub.Email}); err != nil {
			return err
		}
		changed = true
	}
	switch {
	case isNew && !changed:
		return nil // a new address whose mail the policy held back: nothing stored
	case isNew:
		rep.Imported++
	case changed:
		rep.Updated++
	default:
		rep.Unchanged++
		return nil
	}
	return putSubscriber(tx, sub, row.Address.Key)
}

// importDoubleOptIn gives a row that claims consent without evidence the
// same double opt-in as a form signup: a pending request for topics, the
// requested event and the confirmation mail, under the signup rules (an
// open request is joined, the per-address mail cap and a not-me block
// apply). It reports whether topics were requested and whether a mail was
// queued.
func (db *DB) importDoubleOptIn(tx *bbolt.Tx, sub *consent.Subscriber, row *consent.ImportRow, topics []string, source string, now time.Time) (requested, mailed bool, err error) {
	if len(topics) == 0 {
		return false, false, nil
	}
	var open *consent.Request
	if sub.PendingRequest != "" {
		open = new(consent.Request)
		if ok, err := get(tx, bucketRequests, []byte(sub.PendingRequest), open); err != nil {
			return false, false, err
		} else if !ok {
			open = nil
		}
	}
	locale := sub.Locale
	if locale == "" {
		locale = "en"
	}
	form := &consent.Form{Topics: topics} // no form: the request comes from the import
	plan := consent.PlanSignup(sub, open, consent.SignupInput{Form: form, Address: row.Address, Name: row.Name,
		Locale: locale, Topics: topics, Source: source, Now: now}, db.policy, db)
	if plan.Subscriber == nil {
		return false, false, nil
	}
	if err := put(tx, bucketRequests, []byte(plan.Request.ID), plan.Request); err != nil {
		return false, false, err
	}
	if err := tx.Bucket(bucketReqBySub).Put(pairKey(sub.ID, plan.Request.ID), nil); err != nil {
		return false, false, err
	}
	if err := appendEvent(tx, plan.Event, plan.Personal); err != nil {
		return false, false, err
	}
	if !plan.Mail {
		return true, false, nil
	}
	return true, true, enqueue(tx, &consent.Job{Kind: consent.JobConfirm, To: sub.Email, Name: sub.MailName(),
		Locale: plan.Request.Locale, Subscriber: sub.ID, Request: plan.Request.ID, Topics: plan.Request.Topics,
		MessageID: plan.Request.MessageID, Created: now, TokenExpires: plan.Request.Expires})
}
