package postgres

import (
	"context"

	"optin/internal/consent"
)

// Unsubscribe withdraws subscriber id from topic ("" = every topic) and
// suppresses the address for that scope, in one transaction. It is
// idempotent, and succeeds for an erased subscriber, whose address is
// suppressed already. It returns the topics that changed.
func (db *DB) Unsubscribe(ctx context.Context, id, topic, channel string, in consent.ConfirmInput) ([]string, error) {
	var changed []string
	err := db.update(ctx, func(t *tx) error {
		changed = nil
		in.Now = db.Now()
		sub, err := subscriber(t.conn, id)
		if err != nil || sub == nil {
			return err
		}
		changed, err = db.withdrawScope(t, sub, topic, channel, in)
		return err
	})
	return changed, err
}

// WithdrawFor unsubscribes subscriber id from topic ("" = every topic) on
// the person's word: the withdrawal and suppression of Unsubscribe, with
// channel operator and the reason in the event's personal record, and the
// audit entry, in one transaction.
func (db *DB) WithdrawFor(ctx context.Context, a consent.Actor, id, topic, reason string) ([]string, error) {
	reason, err := consent.OperatorReason(reason)
	if err != nil {
		return nil, err
	}
	var changed []string
	err = db.update(ctx, func(t *tx) error {
		changed = nil
		sub, err := loadSubscriber(t.conn, id)
		if err != nil {
			return err
		}
		if topic != "" && sub.Subscriptions[topic] == nil {
			if ok, err := t.exists("SELECT 1 FROM topics WHERE id = $1", topic); err != nil {
				return err
			} else if !ok {
				return consent.Errorf(consent.EInvalid, "topic %q does not exist", consent.Truncate(topic, 64))
			}
		}
		in := consent.ConfirmInput{Now: db.Now(), Note: reason}
		if changed, err = db.withdrawScope(t, sub, topic, consent.ChannelOperator, in); err != nil {
			return err
		}
		return db.audit(t, a, "subscriber.unsubscribe", id, len(changed))
	})
	return changed, err
}

// withdrawScope unsubscribes sub from topic ("" = every topic) and
// suppresses the address for that scope, returning the topics that
// changed.
func (db *DB) withdrawScope(t *tx, sub *consent.Subscriber, topic, channel string, in consent.ConfirmInput) ([]string, error) {
	scope := topic
	if scope == "" {
		scope = consent.ScopeAll
	}
	err := suppress(t, consent.Suppression{Hash: db.hashKey(consent.AddressKey(sub.Email)), Scope: scope,
		Reason: consent.ReasonUnsubscribed, Source: channel, Created: in.Now})
	if err != nil {
		return nil, err
	}
	ev, personal := consent.PlanUnsubscribe(sub, topic, channel, in, db)
	if ev == nil {
		return nil, nil
	}
	if err := putSubscriber(t, sub); err != nil {
		return nil, err
	}
	return ev.Topics, appendEvent(t, ev, personal)
}

// withdraw unsubscribes and suppresses sub for each of topics.
func (db *DB) withdraw(t *tx, sub *consent.Subscriber, topics []string, channel string, in consent.ConfirmInput) error {
	for _, topic := range topics {
		if _, err := db.withdrawScope(t, sub, topic, channel, in); err != nil {
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
	hash := wording.Hash()
	return db.update(ctx, func(t *tx) error {
		in.Now = db.Now()
		sub, err := loadSubscriber(t.conn, id)
		if err != nil {
			return err
		}
		for _, topic := range ch.Topics {
			if sub.Subscriptions[topic] != nil {
				continue
			}
			if ok, err := t.exists("SELECT 1 FROM topics WHERE id = $1", topic); err != nil {
				return err
			} else if !ok {
				return consent.Errorf(consent.EInvalid, "topic %q does not exist", consent.Truncate(topic, 64))
			}
		}
		evs, ps, removed, err := consent.PlanPreferences(sub, ch, hash, in, db)
		if err != nil {
			return err
		}
		if len(evs) == 0 {
			return nil
		}
		if err := putWording(t, hash, wording); err != nil {
			return err
		}
		h := db.hashKey(consent.AddressKey(sub.Email))
		for _, topic := range removed {
			s := consent.Suppression{Hash: h, Scope: topic, Reason: consent.ReasonUnsubscribed,
				Source: consent.ChannelPreferences, Created: in.Now}
			if err := suppress(t, s); err != nil {
				return err
			}
		}
		if err := liftSuppressions(t, h, ch.Topics); err != nil {
			return err
		}
		if err := putSubscriber(t, sub); err != nil {
			return err
		}
		for i, ev := range evs {
			if err := appendEvent(t, ev, ps[i]); err != nil {
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
	err := db.update(ctx, func(t *tx) error {
		queued = false
		now := db.Now()
		sub, err := subscriberByKey(t.conn, a.Key)
		if err != nil || sub == nil {
			return err
		}
		if blocked, err := db.blockedByOperator(t.conn, a.Key); err != nil || blocked {
			return err
		}
		if now.Sub(sub.LastManageMail) < consent.ManageMailGap {
			return nil
		}
		sub.LastManageMail = now
		if err := putSubscriber(t, sub); err != nil {
			return err
		}
		queued = true
		return enqueue(t, &consent.Job{Kind: consent.JobPreferences, To: sub.Email, Name: sub.MailName(),
			Locale: sub.Locale, Subscriber: sub.ID, MessageID: db.MessageID(), Created: now})
	})
	return queued, err
}

// Erase deletes everything optin holds about subscriber id (GDPR Art. 17):
// the subscriber, its requests, its queued and parked mail, its campaign
// recipient records and the personal records of its ledger events. What
// stays: the suppression entry (a keyed hash of the address, so the
// address is never imported or mailed again unless the person signs up
// afresh) and an erased event, so the ledger still proves what happened
// and when. The hash chain stays intact because events only commit to
// their personal records by digest. source says who asked (preferences,
// admin:<key>).
func (db *DB) Erase(ctx context.Context, id, source string) error {
	return db.update(ctx, func(t *tx) error { return db.erase(t, id, source) })
}

// erase is Erase inside a transaction.
func (db *DB) erase(t *tx, id, source string) error {
	now := db.Now()
	sub, err := loadSubscriber(t.conn, id)
	if err != nil {
		return err
	}
	h := db.hashKey(consent.AddressKey(sub.Email))
	err = suppress(t, consent.Suppression{Hash: h, Scope: consent.ScopeAll, Reason: consent.ReasonErased,
		Source: source, Created: now})
	if err != nil {
		return err
	}
	if err := eraseRecipients(t, id); err != nil {
		return err
	}
	if err := forget(t, id); err != nil {
		return err
	}
	if err := deleteRequests(t, "subscriber = $1", dbID(id)); err != nil {
		return err
	}
	ev := &consent.Event{Time: now, Type: consent.EventErased, Subscriber: id, Source: source}
	return appendEvent(t, ev, consent.Personal{Salt: db.ID(), EmailHash: h})
}

// forget deletes subscriber id with its address, its queued and parked
// mail and the personal records of its ledger events.
func forget(t *tx, id string) error {
	for _, sql := range []string{
		"UPDATE ledger SET personal = NULL WHERE subscriber = $1 AND personal IS NOT NULL",
		"DELETE FROM outbox WHERE subscriber = $1",
		"DELETE FROM outbox_parked WHERE subscriber = $1",
	} {
		if err := t.exec(sql, dbID(id)); err != nil {
			return err
		}
	}
	return deleteSubscriber(t, id)
}

// eraseRecipients deletes subscriber id's campaign recipient records (one
// per campaign at most); their pending follow-ups then find no record and
// are skipped. A campaign still waiting for the person's answer counts the
// erasure as a withdrawal.
func eraseRecipients(t *tx, id string) error {
	var cids []string
	var cid string
	var b []byte
	err := t.each("DELETE FROM campaign_recipients WHERE subscriber = $1 RETURNING campaign, data", []any{dbID(id)}, []any{&cid, &b},
		func() error {
			var r consent.Recipient
			if err := decode(b, &r); err != nil {
				return err
			}
			if r.State == consent.RecipientQueued || r.State == consent.RecipientSent {
				cids = append(cids, cid)
			}
			return nil
		})
	if err != nil {
		return err
	}
	for _, cid := range cids {
		c := new(consent.Campaign)
		if ok, err := t.get(c, "SELECT data FROM campaigns WHERE id = $1", cid); err != nil || !ok {
			return err
		}
		c.Counts.Unsubscribed++
		if err := putJSON(t, "campaigns", cid, c); err != nil {
			return err
		}
	}
	return nil
}

// Export returns the data held about subscriber id, or an ENotFound
// *Error (also after erasure), from one snapshot.
func (db *DB) Export(ctx context.Context, id string) (consent.Export, error) {
	var x consent.Export
	err := db.view(ctx, func(c conn) error {
		sub, err := loadSubscriber(c, id)
		if err != nil {
			return err
		}
		evs, err := events(c, id)
		if err != nil {
			return err
		}
		x = consent.Export{Schema: consent.ExportSchema, Generated: db.Now(), Subscriber: sub, Events: evs}
		if sub.PendingRequest != "" {
			req, _, err := requestAndSubscriber(c, sub.PendingRequest)
			if err != nil && consent.ErrorCode(err) != consent.ENotFound {
				return err
			}
			x.Request = req
		}
		return nil
	})
	return x, err
}
