package bolt

import (
	"bytes"
	"context"
	"time"

	"go.etcd.io/bbolt"

	"optin/internal/consent"
)

// Reawaken campaigns on the store.
//
// A running campaign walks the subscribers in id order from a cursor kept
// in the campaign record. Each step of the walk is one transaction that
// writes, for every subscriber the audience rule admits, the recipient
// record, the outbox job and an entry in campaign_queued, and moves the
// cursor: a restart resumes after the last committed step, and the
// recipient record makes the campaign mail a person at most once. Nothing
// of the audience is held in memory beyond one step.
//
// A first mail counts as sent once its job left the outbox without being
// parked; only then does the recipient's deadline (and reminder) start,
// kept in campaign_due in time order. The outbox worker is not involved:
// CampaignStep notices that the job is gone. While a campaign's first
// mails are still in the outbox, the walk queues no more than about one
// second's worth, so an SMTP outage stalls the campaign instead of
// filling the outbox, and a pause leaves at most that much mail to go.

const (
	// walkChunk caps the subscribers one walk transaction examines.
	walkChunk = 2000
	// walkPerStep caps the subscribers one CampaignStep examines per
	// campaign, so a sparse audience cannot make one step run long.
	walkPerStep = 20000
	// followUpChunk caps the reminders and deadlines one transaction
	// handles.
	followUpChunk = 500
)

// CreateCampaign validates in and stores it as a draft campaign. Its
// topic and filter topics must exist. It is audited.
func (db *DB) CreateCampaign(ctx context.Context, a Actor, in consent.CampaignInput) (*consent.Campaign, error) {
	id := db.ID()
	var c *consent.Campaign
	err := db.update(func(tx *bbolt.Tx) error {
		var err error
		if c, err = consent.NewCampaign(in, id, db.Now()); err != nil {
			return err
		}
		if tx.Bucket(bucketTopics).Get([]byte(c.Topic)) == nil {
			return consent.Errorf(consent.EInvalid, "topic %q does not exist", truncate(c.Topic, 64))
		}
		if err := checkTopics(tx, c.Audience.Topics); err != nil {
			return consent.Errorf(consent.EInvalid, "audience.topics: %s", consent.ErrorMessage(err))
		}
		if err := put(tx, bucketCampaigns, []byte(c.ID), c); err != nil {
			return err
		}
		return db.audit(tx, a, "campaign.create", c.ID, 1)
	})
	if err != nil {
		return nil, err
	}
	return c, nil
}

// Campaign returns campaign id with its live counts, or ENotFound.
func (db *DB) Campaign(ctx context.Context, id string) (*consent.Campaign, error) {
	c := new(consent.Campaign)
	if err := db.view(func(tx *bbolt.Tx) error { return mustGet(tx, bucketCampaigns, id, c, "campaign") }); err != nil {
		return nil, err
	}
	return c, nil
}

// Campaigns returns every campaign, oldest first.
func (db *DB) Campaigns(ctx context.Context) ([]*consent.Campaign, error) {
	out := []*consent.Campaign{}
	err := db.view(func(tx *bbolt.Tx) error {
		return tx.Bucket(bucketCampaigns).ForEach(func(_, v []byte) error {
			c := new(consent.Campaign)
			if err := decode(v, c); err != nil {
				return err
			}
			out = append(out, c)
			return nil
		})
	})
	return out, err
}

// StartCampaign starts a draft campaign or resumes a paused one; a
// running one stays as it is, a done one is EConflict. The caller checks
// that a postal address is configured (R97). It is audited.
func (db *DB) StartCampaign(ctx context.Context, a Actor, id string) (*consent.Campaign, error) {
	return db.changeCampaign(a, id, "campaign.start", func(c *consent.Campaign, now time.Time) error { return c.Start(now) })
}

// PauseCampaign stops a running campaign from queuing more mail; mail
// already queued (about one second's worth) still goes out. It is
// audited.
func (db *DB) PauseCampaign(ctx context.Context, a Actor, id string) (*consent.Campaign, error) {
	return db.changeCampaign(a, id, "campaign.pause", func(c *consent.Campaign, now time.Time) error { return c.Pause(now) })
}

func (db *DB) changeCampaign(a Actor, id, action string, fn func(*consent.Campaign, time.Time) error) (*consent.Campaign, error) {
	var c *consent.Campaign
	err := db.update(func(tx *bbolt.Tx) error {
		c = new(consent.Campaign)
		if err := mustGet(tx, bucketCampaigns, id, c, "campaign"); err != nil {
			return err
		}
		if err := fn(c, db.Now()); err != nil {
			return err
		}
		if err := put(tx, bucketCampaigns, []byte(id), c); err != nil {
			return err
		}
		return db.audit(tx, a, action, id, 1)
	})
	if err != nil {
		return nil, err
	}
	return c, nil
}

// CampaignPreview is the audience a campaign would reach now and who it
// leaves out, by reason (the consent.Excluded constants).
type CampaignPreview struct {
	Audience int            `json:"audience"`
	Excluded map[string]int `json:"excluded"`
}

// PreviewCampaign applies the campaign's audience rule and filters to
// every subscriber, in read transactions of a few thousand subscribers,
// and counts; it sends and changes nothing.
func (db *DB) PreviewCampaign(ctx context.Context, id string, p consent.CampaignPolicy) (CampaignPreview, error) {
	c, err := db.Campaign(ctx, id)
	if err != nil {
		return CampaignPreview{}, err
	}
	pv := CampaignPreview{Excluded: map[string]int{}}
	for _, r := range []string{consent.ExcludedNotSubscribed, consent.ExcludedPending, consent.ExcludedUnsubscribed,
		consent.ExcludedLapsed, consent.ExcludedSuppressed, consent.ExcludedNoBasis, consent.ExcludedSoftOptInExpiry,
		consent.ExcludedAlreadyAsked, consent.ExcludedNew, consent.ExcludedFiltered} {
		pv.Excluded[r] = 0
	}
	cursor := []byte(nil)
	for done := false; !done; {
		if err := ctx.Err(); err != nil {
			return CampaignPreview{}, err
		}
		err := db.view(func(tx *bbolt.Tx) error {
			now := db.Now()
			cur := tx.Bucket(bucketSubscribers).Cursor()
			k, v := seekAfter(cur, cursor)
			for n := 0; n < walkChunk*2 && k != nil; n++ {
				cursor = append(cursor[:0], k...)
				sub := new(consent.Subscriber)
				if err := decode(v, sub); err != nil {
					return err
				}
				ok, reason, err := db.selectSubscriber(tx, c, sub, now, p)
				if err != nil {
					return err
				}
				if ok {
					pv.Audience++
				} else {
					pv.Excluded[reason]++
				}
				k, v = cur.Next()
			}
			done = k == nil
			return nil
		})
		if err != nil {
			return CampaignPreview{}, err
		}
	}
	return pv, nil
}

// seekAfter positions cur at the first key after after (at the first key
// when after is nil).
func seekAfter(cur *bbolt.Cursor, after []byte) ([]byte, []byte) {
	if after == nil {
		return cur.First()
	}
	k, v := cur.Seek(after)
	if k != nil && bytes.Equal(k, after) {
		k, v = cur.Next()
	}
	return k, v
}

// selectSubscriber applies consent.Campaign.Select to sub, looking up
// its suppression and ledger evidence only when the subscription is
// confirmed (the rule decides every other case without them).
func (db *DB) selectSubscriber(tx *bbolt.Tx, c *consent.Campaign, sub *consent.Subscriber, now time.Time, p consent.CampaignPolicy) (bool, string, error) {
	var supp, evidence bool
	if s := sub.Subscriptions[c.Topic]; s != nil && s.Status == consent.StatusConfirmed {
		sp, err := suppressed(tx, db.hashKey(consent.AddressKey(sub.Email)), c.Topic)
		if err != nil {
			return false, "", err
		}
		supp = sp != nil
		if !supp {
			if evidence, err = hasEvidence(tx, sub.ID, c.Topic, s.Basis); err != nil {
				return false, "", err
			}
		}
	}
	ok, reason := c.Select(sub, supp, evidence, now, p)
	return ok, reason, nil
}

// hasEvidence reports whether the ledger holds an event proving basis for
// topic for subscriber id (see consent.IsEvidence).
func hasEvidence(tx *bbolt.Tx, id, topic string, basis consent.Basis) (bool, error) {
	prefix := pairKey(id, "")
	c := tx.Bucket(bucketLedgerBySub).Cursor()
	for k, _ := c.Seek(prefix); hasPrefix(k, prefix); k, _ = c.Next() {
		var ev consent.Event
		if _, err := get(tx, bucketLedger, k[len(prefix):], &ev); err != nil {
			return false, err
		}
		if consent.IsEvidence(&ev, topic, basis) {
			return true, nil
		}
	}
	return false, nil
}

// StepResult says what one CampaignStep did.
type StepResult struct {
	// Queued counts mails put in the outbox (first mails and reminders).
	Queued int
	// Lapsed counts subscriptions that lapsed at their deadline.
	Lapsed int
}

// CampaignStep does one round of campaign work at the store's clock, for
// a runner that calls it every tick:
//  1. first mails that left the outbox are recorded as sent (or failed,
//     or dropped at send time), which starts their deadline;
//  2. each running campaign walks on and queues at most rate × tick first
//     mails, fewer while earlier ones are still in the outbox, and is done
//     once the walk is over and its mail is out;
//  3. reminders and deadlines that are due are handled: the reminder goes
//     to recipients who have not answered, and at the deadline their
//     subscription lapses.
//
// With mayQueue false (no postal address configured, R97) it queues no
// mail but still records answers and deadlines.
func (db *DB) CampaignStep(ctx context.Context, p consent.CampaignPolicy, tick time.Duration, mayQueue bool) (StepResult, error) {
	var res StepResult
	// An idle runner must not cost a write transaction (and its fsync)
	// every tick: look first.
	var queuedMail, dueNow bool
	err := db.view(func(tx *bbolt.Tx) error {
		k, _ := tx.Bucket(bucketCampaignQ).Cursor().First()
		queuedMail = k != nil
		k, _ = tx.Bucket(bucketCampaignDue).Cursor().First()
		dueNow = k != nil && !outboxDue(k).After(db.Now())
		return nil
	})
	if err != nil {
		return res, err
	}
	waiting := map[string]int{}
	if queuedMail {
		if waiting, err = db.settleCampaignMail(); err != nil {
			return res, err
		}
	}
	campaigns, err := db.Campaigns(ctx)
	if err != nil {
		return res, err
	}
	for _, c := range campaigns {
		if c.State != consent.CampaignRunning || !mayQueue {
			continue
		}
		budget := max(int(float64(c.Rate)*tick.Seconds()), 1) - waiting[c.ID]
		if (c.Walked && waiting[c.ID] > 0) || (!c.Walked && budget <= 0) {
			continue // nothing to do until mail leaves the outbox
		}
		for scanned := 0; ; {
			if err := ctx.Err(); err != nil {
				return res, err
			}
			n, examined, more, err := db.walkCampaign(c.ID, budget, waiting[c.ID], p)
			res.Queued += n
			budget -= n
			scanned += examined
			if err != nil {
				return res, err
			}
			if !more || budget <= 0 || scanned >= walkPerStep {
				break
			}
			waiting[c.ID] += n
		}
	}
	for after := []byte(nil); dueNow; {
		if err := ctx.Err(); err != nil {
			return res, err
		}
		var q, l int
		var more bool
		if after, q, l, more, err = db.followUps(after, tick, mayQueue); err != nil {
			return res, err
		}
		res.Queued += q
		res.Lapsed += l
		if !more {
			break
		}
	}
	return res, nil
}

// campaignCache loads each campaign a transaction touches once and
// writes back the changed ones.
type campaignCache struct {
	tx    *bbolt.Tx
	byID  map[string]*consent.Campaign
	dirty map[string]bool
}

func newCampaignCache(tx *bbolt.Tx) *campaignCache {
	return &campaignCache{tx: tx, byID: map[string]*consent.Campaign{}, dirty: map[string]bool{}}
}

// get returns campaign id, or nil when it does not exist.
func (cc *campaignCache) get(id string) (*consent.Campaign, error) {
	if c, ok := cc.byID[id]; ok {
		return c, nil
	}
	c := new(consent.Campaign)
	ok, err := get(cc.tx, bucketCampaigns, []byte(id), c)
	if err != nil || !ok {
		return nil, err
	}
	if c.Counts.Excluded == nil {
		c.Counts.Excluded = map[string]int{}
	}
	cc.byID[id] = c
	return c, nil
}

func (cc *campaignCache) flush() error {
	for id := range cc.dirty {
		if err := put(cc.tx, bucketCampaigns, []byte(id), cc.byID[id]); err != nil {
			return err
		}
	}
	return nil
}

// settleCampaignMail records the first mails that left the outbox and
// returns, per campaign, how many are still waiting in it.
func (db *DB) settleCampaignMail() (map[string]int, error) {
	var waiting map[string]int
	err := db.update(func(tx *bbolt.Tx) error {
		waiting = map[string]int{}
		qb := tx.Bucket(bucketCampaignQ)
		// The outbox is small in normal operation, and the walk keeps a
		// campaign's share of it to about a second's worth.
		inOutbox := map[uint64]bool{}
		oc := tx.Bucket(bucketOutbox).Cursor()
		for k, _ := oc.First(); k != nil; k, _ = oc.Next() {
			inOutbox[beUint64(k[8:])] = true
		}
		now := db.Now()
		cc := newCampaignCache(tx)
		var done [][]byte
		err := qb.ForEach(func(k, v []byte) error {
			i := bytes.IndexByte(k, 0)
			cid, job := string(k[:i]), beUint64(k[i+1:])
			if inOutbox[job] {
				waiting[cid]++
				return nil
			}
			done = append(done, append([]byte(nil), k...))
			return db.settleOne(tx, cc, cid, string(v), job, now)
		})
		if err != nil {
			return err
		}
		for _, k := range done {
			if err := qb.Delete(k); err != nil {
				return err
			}
		}
		return cc.flush()
	})
	return waiting, err
}

// settleOne records the outcome of a first mail whose job left the
// outbox: parked means failed; a subscriber erased, withdrawn or
// suppressed meanwhile means the send-time check held it back (a
// withdrawal counts as the person's answer); otherwise it was sent and
// the recipient's reminder and deadline are scheduled.
func (db *DB) settleOne(tx *bbolt.Tx, cc *campaignCache, cid, subID string, job uint64, now time.Time) error {
	c, err := cc.get(cid)
	if err != nil || c == nil {
		return err
	}
	rk := pairKey(cid, subID)
	r := new(consent.Recipient)
	if ok, err := get(tx, bucketRecipients, rk, r); err != nil || !ok || r.State != consent.RecipientQueued {
		return err
	}
	cc.dirty[cid] = true
	sub := new(consent.Subscriber)
	found, err := get(tx, bucketSubscribers, []byte(subID), sub)
	if err != nil {
		return err
	}
	var s *consent.Subscription
	if found {
		s = sub.Subscriptions[c.Topic]
	}
	switch {
	case tx.Bucket(bucketParked).Get(u64(job)) != nil:
		r.State = consent.RecipientFailed
		c.Counts.Failed++
	case s != nil && s.Status == consent.StatusUnsubscribed, !found:
		r.State, r.Answered = consent.RecipientUnsubscribed, now
		c.Counts.Unsubscribed++
	case s == nil || s.Status != consent.StatusConfirmed:
		r.State = consent.RecipientDropped
		c.Counts.Dropped++
	default:
		sp, err := suppressed(tx, db.hashKey(consent.AddressKey(sub.Email)), c.Topic)
		if err != nil {
			return err
		}
		if sp != nil {
			r.State = consent.RecipientDropped
			c.Counts.Dropped++
			break
		}
		r.State, r.Sent = consent.RecipientSent, now
		r.Deadline = now.Add(time.Duration(c.Deadline))
		c.Counts.Sent++
		if err := tx.Bucket(bucketCampaignDue).Put(campaignDueKey(r.Deadline, dueDeadline, cid, subID), nil); err != nil {
			return err
		}
		if c.Reminder > 0 {
			if err := tx.Bucket(bucketCampaignDue).Put(campaignDueKey(now.Add(time.Duration(c.Reminder)), dueRemind, cid, subID), nil); err != nil {
				return err
			}
		}
	}
	return put(tx, bucketRecipients, rk, r)
}

// walkCampaign examines up to walkChunk subscribers after the campaign's
// cursor in one transaction and queues the first mail to at most budget
// of them. It reports how many it queued and examined, and whether the
// walk has more to do. A walk that is over with no mail waiting (waiting
// counts the campaign's first mails still in the outbox) ends the
// campaign.
func (db *DB) walkCampaign(id string, budget, waiting int, p consent.CampaignPolicy) (queued, examined int, more bool, err error) {
	err = db.update(func(tx *bbolt.Tx) error {
		queued, examined, more = 0, 0, false
		c := new(consent.Campaign)
		if err := mustGet(tx, bucketCampaigns, id, c, "campaign"); err != nil {
			return err
		}
		if c.State != consent.CampaignRunning {
			return nil
		}
		if c.Counts.Excluded == nil {
			c.Counts.Excluded = map[string]int{}
		}
		now := db.Now()
		if c.Walked {
			if waiting == 0 {
				c.State, c.Finished, c.Updated = consent.CampaignDone, now, now
				return put(tx, bucketCampaigns, []byte(id), c)
			}
			return nil
		}
		if budget <= 0 {
			return nil
		}
		cur := tx.Bucket(bucketSubscribers).Cursor()
		var after []byte
		if c.Cursor != "" {
			after = []byte(c.Cursor)
		}
		k, v := seekAfter(cur, after)
		for ; k != nil && examined < walkChunk && queued < budget; k, v = cur.Next() {
			examined++
			c.Cursor = string(k)
			sub := new(consent.Subscriber)
			if err := decode(v, sub); err != nil {
				return err
			}
			ok, reason, err := db.selectSubscriber(tx, c, sub, now, p)
			if err != nil {
				return err
			}
			if !ok {
				c.Counts.Excluded[reason]++
				continue
			}
			if tx.Bucket(bucketRecipients).Get(pairKey(c.ID, sub.ID)) != nil {
				continue // never twice in one campaign
			}
			if err := db.queueReawaken(tx, c, sub, now); err != nil {
				return err
			}
			queued++
		}
		if k == nil {
			c.Walked = true
		}
		more = !c.Walked
		c.Updated = now
		return put(tx, bucketCampaigns, []byte(id), c)
	})
	return queued, examined, more, err
}

// queueReawaken writes, for sub, the recipient record, the first mail and
// its campaign_queued entry, and notes that the person was asked in this
// dormancy cycle.
func (db *DB) queueReawaken(tx *bbolt.Tx, c *consent.Campaign, sub *consent.Subscriber, now time.Time) error {
	locale, t := c.Template(sub.Locale)
	job := &consent.Job{Kind: consent.JobReawaken, To: sub.Email, Name: sub.MailName(), Locale: locale,
		Subscriber: sub.ID, Topics: []string{c.Topic}, MessageID: db.MessageID(), Created: now,
		TokenExpires: now.Add(time.Duration(c.Deadline) + consent.ReawakenLinkGrace), Campaign: c.ID, Topic: c.Topic,
		Subject: t.Subject, Body: t.Body}
	if err := enqueue(tx, job); err != nil {
		return err
	}
	r := consent.Recipient{Campaign: c.ID, Subscriber: sub.ID, State: consent.RecipientQueued, Job: job.ID, Queued: now}
	if err := put(tx, bucketRecipients, pairKey(c.ID, sub.ID), r); err != nil {
		return err
	}
	if err := tx.Bucket(bucketCampaignQ).Put(campaignQueuedKey(c.ID, job.ID), []byte(sub.ID)); err != nil {
		return err
	}
	if sub.Reawakened == nil {
		sub.Reawakened = map[string]time.Time{}
	}
	sub.Reawakened[c.Topic] = now
	c.Counts.Targeted++
	return put(tx, bucketSubscribers, []byte(sub.ID), sub)
}

// followUps handles, in one transaction, up to followUpChunk reminders
// and deadlines due at the store's clock, starting after the key after.
// Reminders of a paused campaign, and those beyond the campaign's rate in
// this tick, wait for a later step. It returns where to go on from,
// the mails queued, the subscriptions lapsed and whether more may be due.
func (db *DB) followUps(after []byte, tick time.Duration, mayQueue bool) (next []byte, queued, lapsed int, more bool, err error) {
	err = db.update(func(tx *bbolt.Tx) error {
		next, queued, lapsed, more = after, 0, 0, false
		now := db.Now()
		cc := newCampaignCache(tx)
		reminded := map[string]int{}
		due := tx.Bucket(bucketCampaignDue)
		cur := due.Cursor()
		var doomed [][]byte
		k, _ := seekAfter(cur, after)
		for n := 0; k != nil && n < followUpChunk; k, _ = cur.Next() {
			if outboxDue(k).After(now) {
				break
			}
			n++
			next = append([]byte(nil), k...)
			kind, rest := k[8], k[9:]
			i := bytes.IndexByte(rest, 0)
			cid, subID := string(rest[:i]), string(rest[i+1:])
			c, err := cc.get(cid)
			if err != nil {
				return err
			}
			if c == nil {
				doomed = append(doomed, next)
				continue
			}
			if kind == dueRemind && (!mayQueue || c.State == consent.CampaignPaused ||
				reminded[cid] >= max(int(float64(c.Rate)*tick.Seconds()), 1)) {
				continue // later
			}
			sent, l, err := db.followUp(tx, c, kind, subID, now)
			if err != nil {
				return err
			}
			cc.dirty[cid] = true
			doomed = append(doomed, next)
			if sent {
				reminded[cid]++
				queued++
			}
			lapsed += l
		}
		more = k != nil && !outboxDue(k).After(now)
		for _, d := range doomed {
			if err := due.Delete(d); err != nil {
				return err
			}
		}
		return cc.flush()
	})
	return next, queued, lapsed, more, err
}

// followUp handles one due reminder or deadline of recipient subID. A
// recipient who answered meanwhile needs nothing. Otherwise a subscription
// that is no longer confirmed is recorded as the person's answer (an
// unsubscribe through the usual links); a confirmed one gets the reminder,
// or at the deadline lapses with a lapsed ledger event.
func (db *DB) followUp(tx *bbolt.Tx, c *consent.Campaign, kind byte, subID string, now time.Time) (reminded bool, lapsed int, err error) {
	rk := pairKey(c.ID, subID)
	r := new(consent.Recipient)
	if ok, err := get(tx, bucketRecipients, rk, r); err != nil || !ok || r.State != consent.RecipientSent {
		return false, 0, err
	}
	if kind == dueRemind && !now.Before(r.Deadline) {
		return false, 0, nil
	}
	sub := new(consent.Subscriber)
	found, err := get(tx, bucketSubscribers, []byte(subID), sub)
	if err != nil {
		return false, 0, err
	}
	var s *consent.Subscription
	if found {
		s = sub.Subscriptions[c.Topic]
	}
	switch {
	case s == nil || s.Status != consent.StatusConfirmed:
		r.State, r.Answered = consent.RecipientUnsubscribed, now
		c.Counts.Unsubscribed++
	case kind == dueRemind:
		sp, err := suppressed(tx, db.hashKey(consent.AddressKey(sub.Email)), c.Topic)
		if err != nil || sp != nil {
			return false, 0, err
		}
		locale, t := c.Template(sub.Locale)
		job := &consent.Job{Kind: consent.JobReawaken, To: sub.Email, Name: sub.MailName(), Locale: locale,
			Subscriber: sub.ID, Topics: []string{c.Topic}, MessageID: db.MessageID(), Created: now,
			TokenExpires: r.Deadline.Add(consent.ReawakenLinkGrace), Campaign: c.ID, Topic: c.Topic,
			Subject: t.Subject, Body: t.Body, Reminder: true}
		if err := enqueue(tx, job); err != nil {
			return false, 0, err
		}
		r.Reminded = now
		c.Counts.Reminded++
		reminded = true
	default:
		ev, personal := consent.PlanLapse(c, r, sub, now, db)
		if ev == nil {
			// Confirmed afresh another way after the mail: an answer too.
			r.State, r.Answered = consent.RecipientReconfirmed, now
			c.Counts.Reconfirmed++
			break
		}
		if err := put(tx, bucketSubscribers, []byte(sub.ID), sub); err != nil {
			return false, 0, err
		}
		if err := appendEvent(tx, ev, personal); err != nil {
			return false, 0, err
		}
		c.Counts.Lapsed++
		lapsed = 1
	}
	return reminded, lapsed, put(tx, bucketRecipients, rk, r)
}

// reawakenDeliverable is the send-time check of a reawaken mail (R60,
// R69): the campaign still exists, the recipient has not answered (a
// reminder only while the first mail awaits an answer), the subscription
// is still confirmed and the address is not suppressed for the topic or
// for all, for any reason.
func (db *DB) reawakenDeliverable(tx *bbolt.Tx, job consent.Job, sub *consent.Subscriber) (bool, error) {
	if tx.Bucket(bucketCampaigns).Get([]byte(job.Campaign)) == nil {
		return false, nil
	}
	var r consent.Recipient
	if ok, err := get(tx, bucketRecipients, pairKey(job.Campaign, job.Subscriber), &r); err != nil || !ok {
		return false, err
	}
	want := consent.RecipientQueued
	if job.Reminder {
		want = consent.RecipientSent
	}
	if r.State != want {
		return false, nil
	}
	if s := sub.Subscriptions[job.Topic]; s == nil || s.Status != consent.StatusConfirmed {
		return false, nil
	}
	sp, err := suppressed(tx, db.hashKey(consent.AddressKey(sub.Email)), job.Topic)
	return sp == nil, err
}

// ReawakenLink is what a reawaken link's page needs to know.
type ReawakenLink struct {
	Campaign   *consent.Campaign
	Recipient  *consent.Recipient
	Subscriber *consent.Subscriber
}

// Reawaken returns the campaign, recipient record and subscriber a
// reawaken link names, or ENotFound when any of them is gone.
func (db *DB) Reawaken(ctx context.Context, campaign, subscriber string) (ReawakenLink, error) {
	var l ReawakenLink
	err := db.view(func(tx *bbolt.Tx) error {
		l = ReawakenLink{Campaign: new(consent.Campaign), Recipient: new(consent.Recipient), Subscriber: new(consent.Subscriber)}
		return reawakenRecords(tx, campaign, subscriber, l)
	})
	return l, err
}

func reawakenRecords(tx *bbolt.Tx, campaign, subscriber string, l ReawakenLink) error {
	gone := consent.Errorf(consent.ENotFound, "this link is no longer valid")
	for _, g := range []struct {
		bucket, key []byte
		v           any
	}{
		{bucketCampaigns, []byte(campaign), l.Campaign},
		{bucketRecipients, pairKey(campaign, subscriber), l.Recipient},
		{bucketSubscribers, []byte(subscriber), l.Subscriber},
	} {
		ok, err := get(tx, g.bucket, g.key, g.v)
		if err != nil {
			return err
		}
		if !ok {
			return gone
		}
	}
	return nil
}

// Reconfirm records that the recipient pressed "keep me subscribed" on a
// reawaken campaign's page, in one transaction: the wording the page
// showed (stored once), the refreshed subscription, the reconfirmed
// ledger event (source campaign:<id>, the wording's hash, IP and user
// agent), the recipient's answer and the campaign's count. A repeat
// succeeds and changes nothing (already). A link whose campaign,
// recipient or subscriber is gone is ENotFound; a subscription that
// lapsed or was withdrawn meanwhile EExpired.
func (db *DB) Reconfirm(ctx context.Context, campaign, subscriber string, wording consent.Wording, in consent.ConfirmInput) (already bool, err error) {
	hash := wording.Hash()
	err = db.update(func(tx *bbolt.Tx) error {
		in.Now = db.Now()
		l := ReawakenLink{Campaign: new(consent.Campaign), Recipient: new(consent.Recipient), Subscriber: new(consent.Subscriber)}
		if err := reawakenRecords(tx, campaign, subscriber, l); err != nil {
			return err
		}
		ev, personal, err := consent.PlanReconfirm(l.Campaign, l.Recipient, l.Subscriber, hash, in, db)
		if err != nil {
			return err
		}
		already = ev == nil
		if already {
			return nil
		}
		if tx.Bucket(bucketWordings).Get([]byte(hash)) == nil {
			if err := put(tx, bucketWordings, []byte(hash), wording); err != nil {
				return err
			}
		}
		if l.Campaign.Counts.Excluded == nil {
			l.Campaign.Counts.Excluded = map[string]int{}
		}
		l.Campaign.Counts.Reconfirmed++
		for _, w := range []struct {
			bucket, key []byte
			v           any
		}{
			{bucketCampaigns, []byte(campaign), l.Campaign},
			{bucketRecipients, pairKey(campaign, subscriber), l.Recipient},
			{bucketSubscribers, []byte(subscriber), l.Subscriber},
		} {
			if err := put(tx, w.bucket, w.key, w.v); err != nil {
				return err
			}
		}
		return appendEvent(tx, ev, personal)
	})
	return already, err
}
