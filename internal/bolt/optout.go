package bolt

import (
	"context"

	"go.etcd.io/bbolt"

	"optin/internal/consent"
)

// loadSubscriber returns subscriber id or an ENotFound *Error.
func loadSubscriber(tx *bbolt.Tx, id string) (*consent.Subscriber, error) {
	sub := new(consent.Subscriber)
	if err := mustGet(tx, bucketSubscribers, id, sub, "subscriber"); err != nil {
		return nil, err
	}
	return sub, nil
}

// Unsubscribe withdraws subscriber id from topic ("" = every topic) and
// suppresses the address for that scope, in one transaction. It is
// idempotent, and succeeds for an erased subscriber, whose address is
// suppressed already. It returns the topics that changed.
func (db *DB) Unsubscribe(ctx context.Context, id, topic, channel string, in consent.ConfirmInput) ([]string, error) {
	var changed []string
	err := db.update(ctx, func(tx *bbolt.Tx) error {
		changed = nil
		in.Now = db.Now()
		sub, err := loadSubscriber(tx, id)
		if consent.ErrorCode(err) == consent.ENotFound {
			return nil
		} else if err != nil {
			return err
		}
		changed, err = db.withdrawScope(tx, sub, topic, channel, in)
		return err
	})
	return changed, err
}

// withdrawScope unsubscribes sub from topic ("" = every topic) and
// suppresses the address for that scope, returning the topics that
// changed.
func (db *DB) withdrawScope(tx *bbolt.Tx, sub *consent.Subscriber, topic, channel string, in consent.ConfirmInput) ([]string, error) {
	scope := topic
	if scope == "" {
		scope = consent.ScopeAll
	}
	err := suppress(tx, consent.Suppression{Hash: db.hashKey(consent.AddressKey(sub.Email)), Scope: scope,
		Reason: consent.ReasonUnsubscribed, Source: channel, Created: in.Now})
	if err != nil {
		return nil, err
	}
	ev, personal := consent.PlanUnsubscribe(sub, topic, channel, in, db)
	if ev == nil {
		return nil, nil
	}
	if err := put(tx, bucketSubscribers, []byte(sub.ID), sub); err != nil {
		return nil, err
	}
	return ev.Topics, appendEvent(tx, ev, personal)
}

// withdraw unsubscribes and suppresses sub for each of topics.
func (db *DB) withdraw(tx *bbolt.Tx, sub *consent.Subscriber, topics []string, channel string, in consent.ConfirmInput) error {
	for _, t := range topics {
		if _, err := db.withdrawScope(tx, sub, t, channel, in); err != nil {
			return err
		}
	}
	return nil
}

// UpdatePreferences applies the preference center: topics in on are
// confirmed, the subscriber's other topics unsubscribed (and suppressed
// per topic); each change is a ledger event. wording is what the page
// showed.
func (db *DB) UpdatePreferences(ctx context.Context, id string, ch consent.PreferenceChoice, wording consent.Wording, in consent.ConfirmInput) error {
	return db.update(ctx, func(tx *bbolt.Tx) error {
		in.Now = db.Now()
		sub, err := loadSubscriber(tx, id)
		if err != nil {
			return err
		}
		for _, t := range ch.Topics {
			if sub.Subscriptions[t] == nil && tx.Bucket(bucketTopics).Get([]byte(t)) == nil {
				return consent.Errorf(consent.EInvalid, "topic %q does not exist", consent.Truncate(t, 64))
			}
		}
		hash := wording.Hash()
		evs, ps, removed, err := consent.PlanPreferences(sub, ch, hash, in, db)
		if err != nil {
			return err
		}
		if len(evs) == 0 {
			return nil
		}
		if tx.Bucket(bucketWordings).Get([]byte(hash)) == nil {
			if err := put(tx, bucketWordings, []byte(hash), wording); err != nil {
				return err
			}
		}
		h := db.hashKey(consent.AddressKey(sub.Email))
		for _, t := range removed {
			s := consent.Suppression{Hash: h, Scope: t, Reason: consent.ReasonUnsubscribed,
				Source: consent.ChannelPreferences, Created: in.Now}
			if err := suppress(tx, s); err != nil {
				return err
			}
		}
		if err := liftSuppressions(tx, h, ch.Topics); err != nil {
			return err
		}
		if err := put(tx, bucketSubscribers, []byte(sub.ID), sub); err != nil {
			return err
		}
		for i, ev := range evs {
			if err := appendEvent(tx, ev, ps[i]); err != nil {
				return err
			}
		}
		return nil
	})
}

// RequestPreferencesMail queues a mail with a preference-center link to
// the subscriber holding a, at most once per consent.ManageMailGap. An
// unknown address queues nothing; the caller answers the same either way.
func (db *DB) RequestPreferencesMail(ctx context.Context, a consent.Address) (bool, error) {
	queued := false
	err := db.update(ctx, func(tx *bbolt.Tx) error {
		queued = false
		now := db.Now()
		sub, err := subscriberByKey(tx, a.Key)
		if err != nil || sub == nil {
			return err
		}
		if blocked, err := db.blockedByOperator(tx, a.Key); err != nil || blocked {
			return err
		}
		if now.Sub(sub.LastManageMail) < consent.ManageMailGap {
			return nil
		}
		sub.LastManageMail = now
		if err := put(tx, bucketSubscribers, []byte(sub.ID), sub); err != nil {
			return err
		}
		queued = true
		return enqueue(tx, &consent.Job{Kind: consent.JobPreferences, To: sub.Email, Name: sub.MailName(),
			Locale: sub.Locale, Subscriber: sub.ID, MessageID: db.MessageID(), Created: now})
	})
	return queued, err
}

// Erase deletes everything optin holds about subscriber id (GDPR Art. 17):
// the subscriber and its address index, its requests, its queued and
// parked mail, its campaign recipient records and the personal records of
// its ledger events. What stays:
// the suppression entry (a keyed hash of the address, so the address is
// never imported or mailed again unless the person signs up afresh) and
// an erased event, so the ledger still proves what happened and when. The
// hash chain stays intact because events only commit to their personal
// records by digest. source says who asked (preferences, admin:<key>).
func (db *DB) Erase(ctx context.Context, id, source string) error {
	return db.update(ctx, func(tx *bbolt.Tx) error { return db.erase(tx, id, source) })
}

// erase is Erase inside a transaction.
func (db *DB) erase(tx *bbolt.Tx, id, source string) error {
	now := db.Now()
	sub, err := loadSubscriber(tx, id)
	if err != nil {
		return err
	}
	key := consent.AddressKey(sub.Email)
	h := db.hashKey(key)
	err = suppress(tx, consent.Suppression{Hash: h, Scope: consent.ScopeAll, Reason: consent.ReasonErased,
		Source: source, Created: now})
	if err != nil {
		return err
	}
	if err := tx.Bucket(bucketAddresses).Delete(addressIndexKey(db.hasher, key, id)); err != nil {
		return err
	}
	prefix := pairKey(id, "")
	reqs, err := requestsOf(tx, id)
	if err != nil {
		return err
	}
	for _, r := range reqs {
		if err := del(tx, bucketRequests, []byte(r)); err != nil {
			return err
		}
	}
	for _, k := range keysWithPrefix(tx.Bucket(bucketReqBySub), prefix) {
		if err := tx.Bucket(bucketReqBySub).Delete(k); err != nil {
			return err
		}
	}
	for _, name := range [][]byte{bucketOutbox, bucketParked} {
		if err := deleteJobsOf(tx, name, id); err != nil {
			return err
		}
	}
	if err := eraseRecipients(tx, id); err != nil {
		return err
	}
	for _, seq := range subscriberEvents(tx, id) {
		if err := tx.Bucket(bucketPersonal).Delete(seq); err != nil {
			return err
		}
	}
	if err := del(tx, bucketSubscribers, []byte(id)); err != nil {
		return err
	}
	ev := &consent.Event{Time: now, Type: consent.EventErased, Subscriber: id, Source: source}
	return appendEvent(tx, ev, consent.Personal{Salt: db.ID(), EmailHash: h})
}

// eraseRecipients deletes subscriber id's campaign recipient records (one
// per campaign at most); their pending follow-ups then find no record and
// are skipped. A campaign still waiting for the person's answer counts the
// erasure as a withdrawal.
func eraseRecipients(tx *bbolt.Tx, id string) error {
	return eachRecipient(tx, id, func(c *consent.Campaign, r *consent.Recipient) error {
		if r.State == consent.RecipientQueued || r.State == consent.RecipientSent {
			c.Counts.Unsubscribed++
			if err := put(tx, bucketCampaigns, []byte(c.ID), c); err != nil {
				return err
			}
		}
		return tx.Bucket(bucketRecipients).Delete(pairKey(c.ID, id))
	})
}

// answerCampaigns records, as the event is appended, the answer ev gives
// to each campaign that asked its subscriber (consent.PlanAnswer): the
// campaigns' counts are live.
func answerCampaigns(tx *bbolt.Tx, ev *consent.Event) error {
	if !consent.Answers(ev) {
		return nil
	}
	return eachRecipient(tx, ev.Subscriber, func(c *consent.Campaign, r *consent.Recipient) error {
		if !consent.PlanAnswer(c, r, ev) {
			return nil
		}
		if err := put(tx, bucketRecipients, pairKey(c.ID, r.Subscriber), r); err != nil {
			return err
		}
		return put(tx, bucketCampaigns, []byte(c.ID), c)
	})
}

// eachRecipient calls fn with each campaign that has a recipient record
// for subscriber id (one per campaign at most) and that record; fn may
// write both.
func eachRecipient(tx *bbolt.Tx, id string, fn func(*consent.Campaign, *consent.Recipient) error) error {
	var ids []string
	err := tx.Bucket(bucketCampaigns).ForEach(func(k, _ []byte) error {
		ids = append(ids, string(k))
		return nil
	})
	if err != nil {
		return err
	}
	for _, cid := range ids {
		r := new(consent.Recipient)
		if ok, err := get(tx, bucketRecipients, pairKey(cid, id), r); err != nil || !ok {
			if err != nil {
				return err
			}
			continue
		}
		c := new(consent.Campaign)
		if _, err := get(tx, bucketCampaigns, []byte(cid), c); err != nil {
			return err
		}
		if c.Counts.Excluded == nil {
			c.Counts.Excluded = map[string]int{}
		}
		if err := fn(c, r); err != nil {
			return err
		}
	}
	return nil
}

// keysWithPrefix returns copies of the keys in b that start with prefix.
func keysWithPrefix(b *bbolt.Bucket, prefix []byte) [][]byte {
	var ks [][]byte
	c := b.Cursor()
	for k, _ := c.Seek(prefix); hasPrefix(k, prefix); k, _ = c.Next() {
		ks = append(ks, append([]byte(nil), k...))
	}
	return ks
}

// deleteJobsOf deletes the jobs in outbox bucket name that belong to
// subscriber id. The outbox is small in normal operation, so a scan is
// fine.
func deleteJobsOf(tx *bbolt.Tx, name []byte, id string) error {
	b := tx.Bucket(name)
	var doomed [][]byte
	err := b.ForEach(func(k, v []byte) error {
		var j consent.Job
		if err := decodeAt(tx, name, k, v, &j); err != nil {
			return err
		}
		if j.Subscriber == id {
			doomed = append(doomed, append([]byte(nil), k...))
		}
		return nil
	})
	if err != nil {
		return err
	}
	for _, k := range doomed {
		if err := b.Delete(k); err != nil {
			return err
		}
	}
	return nil
}

// consent.Export returns the data held about subscriber id, or an ENotFound
// *Error (also after erasure).
func (db *DB) Export(ctx context.Context, id string) (consent.Export, error) {
	sub, err := db.Subscriber(ctx, id)
	if err != nil {
		return consent.Export{}, err
	}
	evs, err := db.Events(ctx, id)
	if err != nil {
		return consent.Export{}, err
	}
	x := consent.Export{Schema: consent.ExportSchema, Generated: db.Now(), Subscriber: sub, Events: evs}
	if sub.PendingRequest != "" {
		req, err := db.Request(ctx, sub.PendingRequest)
		if err != nil && consent.ErrorCode(err) != consent.ENotFound {
			return consent.Export{}, err
		}
		x.Request = req
	}
	return x, nil
}
