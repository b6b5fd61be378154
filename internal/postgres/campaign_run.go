package postgres

import (
	"context"
	"time"

	"optin/internal/consent"
)

// Reawaken campaigns on the store, as in the bbolt store.
//
// A running campaign walks the subscribers confirmed on its topic (the
// index of subscriptions) in id order from a cursor kept in the campaign
// record. Each step of the walk is one transaction that
// writes, for every subscriber the audience rule admits, the recipient
// record, the outbox job and a campaign_queued row, and moves the cursor:
// a restart (on this or another instance) resumes after the last
// committed step, and the recipient record makes the campaign mail a
// person at most once.
//
// A first mail counts as sent once its job left the outbox without being
// parked; only then does the recipient's deadline (and reminder) start,
// kept in campaign_due. While a campaign's first mails are still in the
// outbox, the walk queues no more than about one second's worth, so an
// SMTP outage stalls the campaign instead of filling the outbox.

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

// Kinds of campaign_due rows.
const (
	dueRemind   = "r"
	dueDeadline = "d"
)

// topicCounts reads the counters consent.Counts.Unwalked needs for topic.
func topicCounts(c conn, topic string) (consent.Counts, error) {
	counts := consent.Counts{}
	var name string
	var n int64
	err := c.each("SELECT name, n FROM counters WHERE name = $1 OR starts_with(name, $2)",
		[]any{consent.CounterSubscribers, consent.TopicCounter(topic, "")}, []any{&name, &n}, func() error {
			counts[name] = n
			return nil
		})
	return counts, err
}

// selectSubscriber applies the campaign's audience rule to sub
// (consent.Campaign.SelectLooking), looking its suppression and ledger
// evidence up in c.
func (db *DB) selectSubscriber(c conn, camp *consent.Campaign, sub *consent.Subscriber, now time.Time, p consent.CampaignPolicy) (bool, string, error) {
	return camp.SelectLooking(sub, now, p, func() (bool, error) {
		sp, err := suppressed(c, db.hashKey(consent.AddressKey(sub.Email)), camp.Topic)
		return sp != nil, err
	}, func(basis consent.Basis) (bool, error) {
		bit := basisBit(basis)
		if bit == 0 {
			return false, nil // a basis that qualifies for nothing
		}
		code, ok, err := topicCode(c, camp.Topic)
		if err != nil || !ok {
			return false, err
		}
		var proven []byte
		err = c.each("SELECT proven FROM subscribers WHERE id = $1", []any{dbID(sub.ID)}, []any{&proven}, func() error { return nil })
		return provenBits(proven, code)&bit != 0, err
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
// With mayQueue false (no postal address configured) it queues no mail
// but still records answers and deadlines.
func (db *DB) CampaignStep(ctx context.Context, p consent.CampaignPolicy, tick time.Duration, mayQueue bool) (consent.StepResult, error) {
	return consent.CampaignSteps[dueKey]{
		Look:      db.lookCampaigns,
		Settle:    db.settleCampaignMail,
		Campaigns: db.Campaigns,
		Walk: func(ctx context.Context, id string, budget, waiting int) (int, int, bool, error) {
			return db.walkCampaign(ctx, id, budget, waiting, p)
		},
		FollowUps: func(ctx context.Context, after dueKey) (dueKey, int, int, bool, error) {
			return db.followUps(ctx, after, tick, mayQueue)
		},
	}.Run(ctx, tick, mayQueue, walkPerStep)
}

// lookCampaigns reports whether first mails of campaigns wait in the
// outbox and whether follow-ups are due, in one read.
func (db *DB) lookCampaigns(ctx context.Context) (queuedMail, dueNow bool, err error) {
	err = db.pool.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM campaign_queued), EXISTS (SELECT 1 FROM campaign_due WHERE due <= $1)",
		db.Now()).Scan(&queuedMail, &dueNow)
	return queuedMail, dueNow, err
}

// campaignCache loads each campaign a transaction touches once and
// writes back the changed ones.
type campaignCache struct {
	t     *tx
	byID  map[string]*consent.Campaign
	dirty map[string]bool
}

func newCampaignCache(t *tx) *campaignCache {
	return &campaignCache{t: t, byID: map[string]*consent.Campaign{}, dirty: map[string]bool{}}
}

// get returns campaign id, or nil when it does not exist.
func (cc *campaignCache) get(id string) (*consent.Campaign, error) {
	if c, ok := cc.byID[id]; ok {
		return c, nil
	}
	c := new(consent.Campaign)
	ok, err := cc.t.get(c, "SELECT data FROM campaigns WHERE id = $1", id)
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
		if err := putJSON(cc.t, "campaigns", id, cc.byID[id]); err != nil {
			return err
		}
	}
	return nil
}

// settleCampaignMail records the first mails that left the outbox and
// returns, per campaign, how many are still waiting in it.
func (db *DB) settleCampaignMail(ctx context.Context) (map[string]int, error) {
	var waiting map[string]int
	err := db.update(ctx, func(t *tx) error {
		waiting = map[string]int{}
		type queued struct {
			campaign, sub    string
			job              int64
			inOutbox, parked bool
		}
		var qs []queued
		var q queued
		err := t.each(`SELECT q.campaign, q.subscriber, q.job,
			EXISTS (SELECT 1 FROM outbox o WHERE o.id = q.job), EXISTS (SELECT 1 FROM outbox_parked p WHERE p.id = q.job)
			FROM campaign_queued q ORDER BY q.campaign, q.job`, nil, []any{&q.campaign, scanID(&q.sub), &q.job, &q.inOutbox, &q.parked},
			func() error {
				qs = append(qs, q)
				return nil
			})
		if err != nil {
			return err
		}
		now := db.Now()
		cc := newCampaignCache(t)
		for _, q := range qs {
			if q.inOutbox {
				waiting[q.campaign]++
				continue
			}
			if err := t.exec("DELETE FROM campaign_queued WHERE campaign = $1 AND job = $2", q.campaign, q.job); err != nil {
				return err
			}
			if err := db.settleOne(t, cc, q.campaign, q.sub, q.parked, now); err != nil {
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
func (db *DB) settleOne(t *tx, cc *campaignCache, cid, subID string, parked bool, now time.Time) error {
	c, err := cc.get(cid)
	if err != nil || c == nil {
		return err
	}
	r, err := recipient(t.conn, cid, subID)
	if err != nil || r == nil || r.State != consent.RecipientQueued {
		return err
	}
	sub, supp, err := db.subscriberAndSuppression(t.conn, subID, c.Topic)
	if err != nil {
		return err
	}
	deadline, remind, unmarked := consent.PlanSettle(c, r, sub, parked, supp, now)
	cc.dirty[cid] = true
	if unmarked {
		if err := putSubscriber(t, sub); err != nil {
			return err
		}
	}
	for _, d := range []struct {
		at   time.Time
		kind string
	}{{deadline, dueDeadline}, {remind, dueRemind}} {
		if d.at.IsZero() {
			continue
		}
		err := t.exec("INSERT INTO campaign_due (due, kind, campaign, subscriber) VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING",
			d.at, d.kind, cid, dbID(subID))
		if err != nil {
			return err
		}
	}
	return putRecipient(t, r)
}

// subscriberAndSuppression loads subscriber id (nil when erased) and
// whether its address is suppressed for topic or for all.
func (db *DB) subscriberAndSuppression(c conn, id, topic string) (*consent.Subscriber, bool, error) {
	sub, err := subscriber(c, id)
	if err != nil || sub == nil {
		return nil, false, err
	}
	sp, err := suppressed(c, db.hashKey(consent.AddressKey(sub.Email)), topic)
	return sub, sp != nil, err
}

// walkCampaign examines up to walkChunk subscribers after the campaign's
// cursor in one transaction and queues the first mail to at most budget
// of them. It reports how many it queued and examined, and whether the
// walk has more to do. A walk that is over with no mail waiting (waiting
// counts the campaign's first mails still in the outbox) ends the
// campaign.
func (db *DB) walkCampaign(ctx context.Context, id string, budget, waiting int, p consent.CampaignPolicy) (queued, examined int, more bool, err error) {
	err = db.update(ctx, func(t *tx) error {
		queued, examined, more = 0, 0, false
		c := new(consent.Campaign)
		if err := mustGet(t.conn, "campaigns", id, c, "campaign"); err != nil {
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
				return putJSON(t, "campaigns", id, c)
			}
			return nil
		}
		if budget <= 0 {
			return nil
		}
		// The walk meets the topic's confirmed subscribers in id order
		// (the index on subs) and answers from their records' facts and
		// proven bits; the others are counted by
		// reason from the counters when it ends. Those it picks are
		// checked again on their records before their mail is queued.
		// Each row read is a record decoded and an address hashed
		// under the write lock, so a small budget reads fewer rows: a
		// few times the budget, and the step walks on from the cursor
		// in another transaction when too few of them qualified. At
		// least 500: each transaction also reads and writes the
		// campaign and commits, which an audience mostly left out
		// would pay for every few rows (a step over 20,000 excluded
		// took 185 ms with 100, 69 with 500, 56-65 with 2,000).
		limit := min(walkChunk, max(4*budget, 500))
		rows, err := db.audienceRows(t.conn, c, consent.StatusConfirmed, c.Cursor, limit)
		if err != nil {
			return err
		}
		sel := consent.NewAudienceSelector(c, now, p)
		var picked []string
		for i := range rows {
			if len(picked) == budget {
				break
			}
			examined++
			c.Cursor = rows[i].id
			ok, reason, err := rows[i].answer(sel)
			if err != nil {
				return err
			}
			if !ok {
				c.Counts.Excluded[reason]++
				continue
			}
			picked = append(picked, rows[i].id)
		}
		ended := len(rows) < limit && examined == len(rows)
		for _, sid := range picked {
			if r, err := recipient(t.conn, c.ID, sid); err != nil {
				return err
			} else if r != nil {
				continue // never twice in one campaign
			}
			sub, err := subscriber(t.conn, sid)
			if err != nil {
				return err
			}
			if sub == nil {
				continue
			}
			ok, reason, err := db.selectSubscriber(t.conn, c, sub, now, p)
			if err != nil {
				return err
			}
			if !ok {
				c.Counts.Excluded[reason]++
				continue
			}
			if err := db.queueReawaken(t, c, sub, now); err != nil {
				return err
			}
			queued++
		}
		if ended {
			c.Walked = true
			counts, err := topicCounts(t.conn, c.Topic)
			if err != nil {
				return err
			}
			for reason, n := range counts.Unwalked(c.Topic, now, p) {
				c.Counts.Excluded[reason] += n
			}
		}
		more = !c.Walked
		c.Updated = now
		return putJSON(t, "campaigns", id, c)
	})
	return queued, examined, more, err
}

// queueReawaken writes, for sub, the recipient record, the first mail and
// its campaign_queued row, and notes that the person was asked in this
// dormancy cycle.
func (db *DB) queueReawaken(t *tx, c *consent.Campaign, sub *consent.Subscriber, now time.Time) error {
	job, r := consent.PlanReawaken(c, sub, now, db)
	if err := enqueue(t, job); err != nil {
		return err
	}
	r.Job = job.ID
	if err := putRecipient(t, r); err != nil {
		return err
	}
	if err := t.exec("INSERT INTO campaign_queued (campaign, job, subscriber) VALUES ($1, $2, $3)", c.ID, int64(job.ID), dbID(sub.ID)); err != nil {
		return err
	}
	return putSubscriber(t, sub)
}

// dueKey is the key of a campaign_due row, in its order.
type dueKey struct {
	due      time.Time
	kind     string
	campaign string
	sub      string
}

// followUps handles, in one transaction, up to followUpChunk reminders
// and deadlines due at the store's clock, starting after the key after.
// Reminders of a paused campaign, and those beyond the campaign's rate in
// this tick, wait for a later step. It returns where to go on from,
// the mails queued, the subscriptions lapsed and whether more may be due.
func (db *DB) followUps(ctx context.Context, after dueKey, tick time.Duration, mayQueue bool) (next dueKey, queued, lapsed int, more bool, err error) {
	err = db.update(ctx, func(t *tx) error {
		next, queued, lapsed, more = after, 0, 0, false
		now := db.Now()
		cc := newCampaignCache(t)
		reminded := map[string]int{}
		var keys []dueKey
		var k dueKey
		err := t.each(`SELECT due, kind, campaign, subscriber FROM campaign_due
			WHERE due <= $1 AND (due, kind, campaign, subscriber) > ($2, $3, $4, $5)
			ORDER BY due, kind, campaign, subscriber LIMIT $6`,
			[]any{now, after.due, after.kind, after.campaign, dbID(after.sub), followUpChunk + 1},
			[]any{&k.due, &k.kind, &k.campaign, scanID(&k.sub)}, func() error {
				keys = append(keys, k)
				return nil
			})
		if err != nil {
			return err
		}
		more = len(keys) > followUpChunk
		keys = keys[:min(len(keys), followUpChunk)]
		for _, k := range keys {
			next = k
			c, err := cc.get(k.campaign)
			if err != nil {
				return err
			}
			if c != nil && k.kind == dueRemind && (!mayQueue || c.State == consent.CampaignPaused || reminded[k.campaign] >= c.PerTick(tick)) {
				continue // later
			}
			if c != nil {
				sent, l, err := db.followUp(t, c, k.kind, k.sub, now)
				if err != nil {
					return err
				}
				cc.dirty[k.campaign] = true
				if sent {
					reminded[k.campaign]++
					queued++
				}
				lapsed += l
			}
			err = t.exec("DELETE FROM campaign_due WHERE due = $1 AND kind = $2 AND campaign = $3 AND subscriber = $4",
				k.due, k.kind, k.campaign, dbID(k.sub))
			if err != nil {
				return err
			}
		}
		return cc.flush()
	})
	return next, queued, lapsed, more, err
}

// followUp handles one due reminder or deadline of recipient subID as
// consent.PlanFollowUp decides.
func (db *DB) followUp(t *tx, c *consent.Campaign, kind, subID string, now time.Time) (reminded bool, lapsed int, err error) {
	r, err := recipient(t.conn, c.ID, subID)
	if err != nil || r == nil || r.State != consent.RecipientSent {
		return false, 0, err
	}
	sub, supp, err := db.subscriberAndSuppression(t.conn, subID, c.Topic)
	if err != nil {
		return false, 0, err
	}
	f := consent.PlanFollowUp(c, r, sub, kind == dueRemind, supp, now, db)
	if !f.Changed {
		return false, 0, nil
	}
	if f.Mail != nil {
		if err := enqueue(t, f.Mail); err != nil {
			return false, 0, err
		}
		reminded = true
	}
	if f.Event != nil {
		if err := putSubscriber(t, sub); err != nil {
			return false, 0, err
		}
		if err := appendEvent(t, f.Event, f.Personal); err != nil {
			return false, 0, err
		}
		lapsed = 1
	}
	return reminded, lapsed, putRecipient(t, r)
}
