package bolt

import (
	"context"
	"time"

	"go.etcd.io/bbolt"

	"optin/internal/consent"
)

// Reawaken campaign records: creating, starting and pausing a campaign,
// the records behind a reawaken link and the "keep me subscribed" answer.
// The runner that walks the audience and follows up is in campaign_run.go.

// CreateCampaign validates in and stores it as a draft campaign. Its
// topic and filter topics must exist. It is audited.
func (db *DB) CreateCampaign(ctx context.Context, a consent.Actor, in consent.CampaignInput) (*consent.Campaign, error) {
	id := db.ID()
	var c *consent.Campaign
	err := db.update(ctx, func(tx *bbolt.Tx) error {
		var err error
		if c, err = consent.NewCampaign(in, id, db.Now()); err != nil {
			return err
		}
		if tx.Bucket(bucketTopics).Get([]byte(c.Topic)) == nil {
			return consent.Errorf(consent.EInvalid, "topic %q does not exist", consent.Truncate(c.Topic, 64))
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
// that a postal address is configured (CAN-SPAM, 15 U.S.C.
// 7704(a)(5)(A)(iii)). It is audited.
func (db *DB) StartCampaign(ctx context.Context, a consent.Actor, id string) (*consent.Campaign, error) {
	return db.changeCampaign(ctx, a, id, "campaign.start", func(c *consent.Campaign, now time.Time) error { return c.Start(now) })
}

// PauseCampaign stops a running campaign from queuing more mail; mail
// already queued (about one second's worth) still goes out. It is
// audited.
func (db *DB) PauseCampaign(ctx context.Context, a consent.Actor, id string) (*consent.Campaign, error) {
	return db.changeCampaign(ctx, a, id, "campaign.pause", func(c *consent.Campaign, now time.Time) error { return c.Pause(now) })
}

// CancelCampaign ends a campaign for good: first mails still in the
// outbox are withheld at send time, and no reminder or deadline follows.
// It is audited.
func (db *DB) CancelCampaign(ctx context.Context, a consent.Actor, id string) (*consent.Campaign, error) {
	return db.changeCampaign(ctx, a, id, "campaign.cancel", func(c *consent.Campaign, now time.Time) error {
		c.Cancel(now)
		return nil
	})
}

func (db *DB) changeCampaign(ctx context.Context, a consent.Actor, id, action string, fn func(*consent.Campaign, time.Time) error) (*consent.Campaign, error) {
	var c *consent.Campaign
	err := db.update(ctx, func(tx *bbolt.Tx) error {
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

// reawakenDeliverable is the send-time check of a reawaken mail, which is
// marketing and so stops at any opt-out (GDPR Art. 21(3)): the campaign
// still exists and was not cancelled, the recipient has not answered (a reminder only while the
// first mail awaits an answer), the subscription is still confirmed and
// the address is not suppressed for the topic or for all, for any reason.
func (db *DB) reawakenDeliverable(tx *bbolt.Tx, job consent.Job, sub *consent.Subscriber) (bool, error) {
	var c struct{ State consent.CampaignState }
	if ok, err := get(tx, bucketCampaigns, []byte(job.Campaign), &c); err != nil || !ok || c.State == consent.CampaignCancelled {
		return false, err
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

// Reawaken returns the campaign, recipient record and subscriber a
// reawaken link names, or ENotFound when any of them is gone.
func (db *DB) Reawaken(ctx context.Context, campaign, subscriber string) (consent.ReawakenLink, error) {
	var l consent.ReawakenLink
	err := db.view(func(tx *bbolt.Tx) error {
		l = consent.ReawakenLink{Campaign: new(consent.Campaign), Recipient: new(consent.Recipient), Subscriber: new(consent.Subscriber)}
		return reawakenRecords(tx, campaign, subscriber, l)
	})
	return l, err
}

func reawakenRecords(tx *bbolt.Tx, campaign, subscriber string, l consent.ReawakenLink) error {
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
	err = db.update(ctx, func(tx *bbolt.Tx) error {
		in.Now = db.Now()
		l := consent.ReawakenLink{Campaign: new(consent.Campaign), Recipient: new(consent.Recipient), Subscriber: new(consent.Subscriber)}
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
