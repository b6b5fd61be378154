package postgres

import (
	"context"
	"time"

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
	err := db.update(ctx, func(t *tx) error {
		var err error
		if c, err = consent.NewCampaign(in, id, db.Now()); err != nil {
			return err
		}
		if ok, err := t.exists("SELECT 1 FROM topics WHERE id = $1", c.Topic); err != nil {
			return err
		} else if !ok {
			return consent.Errorf(consent.EInvalid, "topic %q does not exist", consent.Truncate(c.Topic, 64))
		}
		if err := checkTopics(t.conn, c.Audience.Topics); err != nil {
			if consent.ErrorCode(err) == consent.EInvalid {
				return consent.Errorf(consent.EInvalid, "audience.topics: %s", consent.ErrorMessage(err))
			}
			return err
		}
		if err := putJSON(t, "campaigns", c.ID, c); err != nil {
			return err
		}
		return db.audit(t, a, "campaign.create", c.ID, 1)
	})
	if err != nil {
		return nil, err
	}
	return c, nil
}

// Campaign returns campaign id with its live counts, or ENotFound.
func (db *DB) Campaign(ctx context.Context, id string) (*consent.Campaign, error) {
	c := new(consent.Campaign)
	if err := mustGet(db.read(ctx), "campaigns", id, c, "campaign"); err != nil {
		return nil, err
	}
	return c, nil
}

// Campaigns returns every campaign, oldest first.
func (db *DB) Campaigns(ctx context.Context) ([]*consent.Campaign, error) {
	out := []*consent.Campaign{}
	var b []byte
	err := db.read(ctx).each("SELECT data FROM campaigns ORDER BY id", nil, []any{&b}, func() error {
		c := new(consent.Campaign)
		if err := decode(b, c); err != nil {
			return err
		}
		out = append(out, c)
		return nil
	})
	return out, err
}

// StartCampaign starts a draft campaign or resumes a paused one; a
// running one stays as it is, a done one is EConflict. The caller checks
// that a postal address is configured. It is audited.
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
	err := db.update(ctx, func(t *tx) error {
		c = new(consent.Campaign)
		if err := mustGet(t.conn, "campaigns", id, c, "campaign"); err != nil {
			return err
		}
		if err := fn(c, db.Now()); err != nil {
			return err
		}
		if err := putJSON(t, "campaigns", id, c); err != nil {
			return err
		}
		return db.audit(t, a, action, id, 1)
	})
	if err != nil {
		return nil, err
	}
	return c, nil
}

// recipient returns the recipient record of subscriber sub in campaign
// cid, or nil.
func recipient(c conn, cid, sub string) (*consent.Recipient, error) {
	r := new(consent.Recipient)
	ok, err := c.get(r, "SELECT data FROM campaign_recipients WHERE campaign = $1 AND subscriber = $2", cid, dbID(sub))
	if err != nil || !ok {
		return nil, err
	}
	return r, nil
}

func putRecipient(t *tx, r *consent.Recipient) error {
	b, err := encode(r)
	if err != nil {
		return err
	}
	return t.exec(`INSERT INTO campaign_recipients (campaign, subscriber, data) VALUES ($1, $2, $3)
		ON CONFLICT (campaign, subscriber) DO UPDATE SET data = EXCLUDED.data`, r.Campaign, dbID(r.Subscriber), b)
}

// reawakenDeliverable is the send-time check of a reawaken mail: the
// campaign still exists and was not cancelled, the recipient has not answered (a reminder only
// while the first mail awaits an answer), the subscription is still
// confirmed and the address is not suppressed for the topic or for all,
// for any reason.
func (db *DB) reawakenDeliverable(c conn, job consent.Job, sub *consent.Subscriber) (bool, error) {
	if ok, err := c.exists("SELECT 1 FROM campaigns WHERE id = $1 AND data->>'state' <> $2", job.Campaign,
		string(consent.CampaignCancelled)); err != nil || !ok {
		return false, err
	}
	r, err := recipient(c, job.Campaign, job.Subscriber)
	if err != nil || r == nil {
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
	sp, err := suppressed(c, db.hashKey(consent.AddressKey(sub.Email)), job.Topic)
	return sp == nil, err
}

// Reawaken returns the campaign, recipient record and subscriber a
// reawaken link names, or ENotFound when any of them is gone.
func (db *DB) Reawaken(ctx context.Context, campaign, subscriber string) (consent.ReawakenLink, error) {
	var l consent.ReawakenLink
	err := db.view(ctx, func(c conn) error {
		var err error
		l, err = reawakenRecords(c, campaign, subscriber)
		return err
	})
	return l, err
}

func reawakenRecords(c conn, campaign, sub string) (consent.ReawakenLink, error) {
	gone := consent.Errorf(consent.ENotFound, "this link is no longer valid")
	l := consent.ReawakenLink{Campaign: new(consent.Campaign)}
	if ok, err := c.get(l.Campaign, "SELECT data FROM campaigns WHERE id = $1", campaign); err != nil || !ok {
		if err == nil {
			err = gone
		}
		return l, err
	}
	var err error
	if l.Recipient, err = recipient(c, campaign, sub); err != nil || l.Recipient == nil {
		if err == nil {
			err = gone
		}
		return l, err
	}
	if l.Subscriber, err = subscriber(c, sub); err != nil || l.Subscriber == nil {
		if err == nil {
			err = gone
		}
		return l, err
	}
	return l, nil
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
	err = db.update(ctx, func(t *tx) error {
		in.Now = db.Now()
		l, err := reawakenRecords(t.conn, campaign, subscriber)
		if err != nil {
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
		if err := putWording(t, hash, wording); err != nil {
			return err
		}
		if l.Campaign.Counts.Excluded == nil {
			l.Campaign.Counts.Excluded = map[string]int{}
		}
		l.Campaign.Counts.Reconfirmed++
		if err := putJSON(t, "campaigns", campaign, l.Campaign); err != nil {
			return err
		}
		if err := putRecipient(t, l.Recipient); err != nil {
			return err
		}
		if err := putSubscriber(t, l.Subscriber); err != nil {
			return err
		}
		return appendEvent(t, ev, personal)
	})
	return already, err
}
