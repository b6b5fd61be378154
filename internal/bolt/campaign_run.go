package bolt

import (
	"bytes"
	"context"
	"time"

	"go.etcd.io/bbolt"

	"optin/internal/bolt/record"
	"optin/internal/consent"
)

// Reawaken campaigns on the store.
//
// A running campaign walks the subscribers confirmed on its topic (the
// index of subscriptions) in id order from a cursor kept in the campaign
// record. Each step of the walk is one transaction that
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

// topicCounts reads the counters consent.Counts.Unwalked needs for topic.
func topicCounts(tx *bbolt.Tx, topic string) consent.Counts {
	counts := consent.Counts{}
	b := tx.Bucket(bucketCounters)
	counts[consent.CounterSubscribers] = counterValue(b.Get([]byte(consent.CounterSubscribers)))
	prefix := []byte(consent.TopicCounter(topic, ""))
	c := b.Cursor()
	for k, v := c.Seek(prefix); hasPrefix(k, prefix); k, v = c.Next() {
		counts[string(k)] = counterValue(v)
	}
	return counts
}

// selectSubscriber applies the campaign's audience rule to sub
// (consent.Campaign.SelectLooking), looking its suppression and ledger
// evidence up in tx.
func (db *DB) selectSubscriber(tx *bbolt.Tx, c *consent.Campaign, sub *consent.Subscriber, now time.Time, p consent.CampaignPolicy) (bool, string, error) {
	return c.SelectLooking(sub, now, p, func() (bool, error) {
		sp, err := suppressed(tx, db.hashKey(consent.AddressKey(sub.Email)), c.Topic)
		return sp != nil, err
	}, func(basis consent.Basis) (bool, error) {
		return hasEvidence(tx, sub.ID, c.Topic, basis), nil
	})
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
// With mayQueue false (no postal address configured, which CAN-SPAM
// requires in every commercial mail) it queues no
// mail but still records answers and deadlines.
func (db *DB) CampaignStep(ctx context.Context, p consent.CampaignPolicy, tick time.Duration, mayQueue bool) (consent.StepResult, error) {
	return consent.CampaignSteps[[]byte]{
		Look:      db.lookCampaigns,
		Settle:    db.settleCampaignMail,
		Campaigns: db.Campaigns,
		Walk: func(ctx context.Context, id string, budget, waiting int) (int, int, bool, error) {
			return db.walkCampaign(ctx, id, budget, waiting, p)
		},
		FollowUps: func(ctx context.Context, after []byte) ([]byte, int, int, bool, error) {
			return db.followUps(ctx, after, tick, mayQueue)
		},
	}.Run(ctx, tick, mayQueue, walkPerStep)
}

// lookCampaigns reports whether first mails of campaigns wait in the
// outbox and whether follow-ups are due, in a read transaction.
func (db *DB) lookCampaigns(ctx context.Context) (queuedMail, dueNow bool, err error) {
	err = db.view(func(tx *bbolt.Tx) error {
		k, _ := tx.Bucket(bucketCampaignQ).Cursor().First()
		queuedMail = k != nil
		k, _ = tx.Bucket(bucketCampaignDue).Cursor().First()
		dueNow = k != nil && !outboxDue(k).After(db.Now())
		return nil
	})
	return queuedMail, dueNow, err
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
func (db *DB) settleCampaignMail(ctx context.Context) (map[string]int, error) {
	var waiting map[string]int
	err := db.update(ctx, func(tx *bbolt.Tx) error {
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
// outbox (consent.PlanSettle) and schedules the recipient's reminder and
// deadline when it was sent.
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
	sub, supp, err := db.subscriberAndSuppression(tx, subID, c.Topic)
	if err != nil {
		return err
	}
	deadline, remind, unmarked := consent.PlanSettle(c, r, sub, tx.Bucket(bucketParked).Get(u64(job)) != nil, supp, now)
	cc.dirty[cid] = true
	if unmarked {
		if err := put(tx, bucketSubscribers, []byte(sub.ID), sub); err != nil {
			return err
		}
	}
	due := tx.Bucket(bucketCampaignDue)
	if !deadline.IsZero() {
		if err := due.Put(campaignDueKey(deadline, dueDeadline, cid, subID), nil); err != nil {
			return err
		}
	}
	if !remind.IsZero() {
		if err := due.Put(campaignDueKey(remind, dueRemind, cid, subID), nil); err != nil {
			return err
		}
	}
	return put(tx, bucketRecipients, rk, r)
}

// subscriberAndSuppression loads subscriber id (nil when erased) and
// whether its address is suppressed for topic or for all.
func (db *DB) subscriberAndSuppression(tx *bbolt.Tx, id, topic string) (*consent.Subscriber, bool, error) {
	sub := new(consent.Subscriber)
	found, err := get(tx, bucketSubscribers, []byte(id), sub)
	if err != nil || !found {
		return nil, false, err
	}
	sp, err := suppressed(tx, db.hashKey(consent.AddressKey(sub.Email)), topic)
	return sub, sp != nil, err
}

// walkCampaign examines up to walkChunk subscribers after the campaign's
// cursor in one transaction and queues the first mail to at most budget
// of them. It reports how many it queued and examined, and whether the
// walk has more to do. A walk that is over with no mail waiting (waiting
// counts the campaign's first mails still in the outbox) ends the
// campaign.
func (db *DB) walkCampaign(ctx context.Context, id string, budget, waiting int, p consent.CampaignPolicy) (queued, examined int, more bool, err error) {
	err = db.update(ctx, func(tx *bbolt.Tx) error {
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
		// A half-built index would end the walk early.
		if err := derivedReady(tx); err != nil {
			return err
		}
		// The walk meets the topic's confirmed subscriptions in id order
		// and answers from their indexed facts; the others are counted by
		// reason from the counters when it ends. Those it picks are
		// checked again on their records before their mail is queued.
		st := tx.Bucket(bucketSubTopics)
		prefix := topicIndexPrefix(c.Topic, consent.StatusConfirmed)
		r := &audienceReader{tx: tx, topic: c.Topic}
		sel := consent.NewAudienceSelector(c, now, p)
		recipients := tx.Bucket(bucketRecipients)
		var picked []string
		cur := st.Cursor()
		from := appendID(append([]byte(nil), prefix...), []byte(c.Cursor))
		k, v := cur.Seek(from)
		if c.Cursor != "" && bytes.Equal(k, from) {
			k, v = cur.Next()
		}
		for ; hasPrefix(k, prefix) && examined < walkChunk && len(picked) < budget; k, v = cur.Next() {
			sid := k[len(prefix):] // as appendID stores it
			examined++
			c.Cursor = record.IDString(sid)
			ok, reason, err := r.answer(sel, sid, v)
			if err != nil {
				return err
			}
			if !ok {
				c.Counts.Excluded[reason]++
				continue
			}
			if recipients.Get(pairKey(c.ID, c.Cursor)) != nil {
				continue // never twice in one campaign
			}
			picked = append(picked, c.Cursor)
		}
		walked := !hasPrefix(k, prefix)
		// Queuing marks the person as asked, which rewrites their index
		// entries: only once the cursor over them is done with.
		for _, sid := range picked {
			sub := new(consent.Subscriber)
			if found, err := get(tx, bucketSubscribers, []byte(sid), sub); err != nil {
				return err
			} else if !found {
				continue
			}
			ok, reason, err := db.selectSubscriber(tx, c, sub, now, p)
			if err != nil {
				return err
			}
			if !ok {
				c.Counts.Excluded[reason]++
				continue
			}
			if err := db.queueReawaken(tx, c, sub, now); err != nil {
				return err
			}
			queued++
		}
		if walked {
			c.Walked = true
			for reason, n := range topicCounts(tx, c.Topic).Unwalked(c.Topic, now, p) {
				c.Counts.Excluded[reason] += n
			}
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
	job, r := consent.PlanReawaken(c, sub, now, db)
	if err := enqueue(tx, job); err != nil {
		return err
	}
	r.Job = job.ID
	if err := put(tx, bucketRecipients, pairKey(c.ID, sub.ID), r); err != nil {
		return err
	}
	if err := tx.Bucket(bucketCampaignQ).Put(campaignQueuedKey(c.ID, job.ID), []byte(sub.ID)); err != nil {
		return err
	}
	return put(tx, bucketSubscribers, []byte(sub.ID), sub)
}

// followUps handles, in one transaction, up to followUpChunk reminders
// and deadlines due at the store's clock, starting after the key after.
// Reminders of a paused campaign, and those beyond the campaign's rate in
// this tick, wait for a later step. It returns where to go on from,
// the mails queued, the subscriptions lapsed and whether more may be due.
func (db *DB) followUps(ctx context.Context, after []byte, tick time.Duration, mayQueue bool) (next []byte, queued, lapsed int, more bool, err error) {
	err = db.update(ctx, func(tx *bbolt.Tx) error {
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
			if kind == dueRemind && (!mayQueue || c.State == consent.CampaignPaused || reminded[cid] >= c.PerTick(tick)) {
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

// followUp handles one due reminder or deadline of recipient subID as
// consent.PlanFollowUp decides.
func (db *DB) followUp(tx *bbolt.Tx, c *consent.Campaign, kind byte, subID string, now time.Time) (reminded bool, lapsed int, err error) {
	rk := pairKey(c.ID, subID)
	r := new(consent.Recipient)
	if ok, err := get(tx, bucketRecipients, rk, r); err != nil || !ok || r.State != consent.RecipientSent {
		return false, 0, err
	}
	sub, supp, err := db.subscriberAndSuppression(tx, subID, c.Topic)
	if err != nil {
		return false, 0, err
	}
	f := consent.PlanFollowUp(c, r, sub, kind == dueRemind, supp, now, db)
	if !f.Changed {
		return false, 0, nil
	}
	if f.Mail != nil {
		if err := enqueue(tx, f.Mail); err != nil {
			return false, 0, err
		}
		reminded = true
	}
	if f.Event != nil {
		if err := put(tx, bucketSubscribers, []byte(sub.ID), sub); err != nil {
			return false, 0, err
		}
		if err := appendEvent(tx, f.Event, f.Personal); err != nil {
			return false, 0, err
		}
		lapsed = 1
	}
	return reminded, lapsed, put(tx, bucketRecipients, rk, r)
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
