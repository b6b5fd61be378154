package bolt

import (
	"context"

	"go.etcd.io/bbolt"

	"optin/internal/consent"
)

// RecordFeedback applies a bounce or complaint report (consent.PlanFeedback)
// in one transaction: the soft-bounce count, the suppression of the
// address for every topic, the ledger event and, when a is not nil, the
// audit entry.
func (db *DB) RecordFeedback(ctx context.Context, a *consent.Actor, fb consent.Feedback, p consent.SoftBouncePolicy) (consent.FeedbackResult, error) {
	if err := consent.CheckFeedback(fb); err != nil {
		return consent.FeedbackResult{}, err
	}
	var res consent.FeedbackResult
	err := db.update(ctx, func(tx *bbolt.Tx) error {
		now := db.Now()
		h := db.hashKey(fb.Address.Key)
		s, err := suppressed(tx, h, "")
		if err != nil {
			return err
		}
		sub, err := subscriberByKey(tx, fb.Address.Key)
		if err != nil {
			return err
		}
		reason, ev, personal, soft := consent.PlanFeedback(sub, fb, p, s != nil, now, db)
		res = consent.FeedbackResult{SoftBounces: soft}
		if reason != "" && s == nil {
			if err := suppressAddress(tx, consent.Suppression{Hash: h, Scope: consent.ScopeAll, Reason: reason,
				Source: fb.Channel, Created: now}, fb.Address.Key); err != nil {
				return err
			}
			res.Suppressed = true
		}
		if a != nil {
			if err := db.audit(tx, *a, "feedback."+string(fb.Kind), consent.KeyID(h), 1); err != nil {
				return err
			}
		}
		if sub == nil {
			return nil
		}
		if err := put(tx, bucketSubscribers, []byte(sub.ID), sub); err != nil {
			return err
		}
		if ev == nil {
			return nil
		}
		return appendEvent(tx, ev, personal)
	})
	return res, err
}
