package postgres

import (
	"context"

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
	err := db.update(ctx, func(t *tx) error {
		now := db.Now()
		h := db.hashKey(fb.Address.Key)
		s, err := suppressed(t.conn, h, "")
		if err != nil {
			return err
		}
		sub, err := subscriberByKey(t.conn, fb.Address.Key)
		if err != nil {
			return err
		}
		reason, ev, personal, soft := consent.PlanFeedback(sub, fb, p, s != nil, now, db)
		res = consent.FeedbackResult{SoftBounces: soft}
		if reason != "" && s == nil {
			if err := suppressAddress(t, consent.Suppression{Hash: h, Scope: consent.ScopeAll, Reason: reason,
				Source: fb.Channel, Created: now}, fb.Address.Key); err != nil {
				return err
			}
			res.Suppressed = true
		}
		if a != nil {
			if err := db.audit(t, *a, "feedback."+string(fb.Kind), consent.KeyID(h), 1); err != nil {
				return err
			}
		}
		if sub == nil {
			return nil
		}
		if err := putSubscriber(t, sub); err != nil {
			return err
		}
		if ev == nil {
			return nil
		}
		return appendEvent(t, ev, personal)
	})
	return res, err
}
