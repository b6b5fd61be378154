package postgres

import (
	"context"

	"optin/internal/consent"
)

// Signup records a signup in one transaction: the wording version (once),
// the subscriber and its pending subscriptions, the pending request, the
// requested ledger event and the confirmation mail in the outbox. in.Now is
// set by the store. The person's own earlier opt-outs do not stop a signup:
// it is the fresh double opt-in that may lift them. An address an operator
// suppressed for every topic changes nothing.
func (db *DB) Signup(ctx context.Context, in consent.SignupInput, wording consent.Wording) (consent.SignupResult, error) {
	var res consent.SignupResult
	in.Wording = wording.Hash()
	err := db.updateSignup(ctx, in.Address.Key, func(t *tx) error {
		res = consent.SignupResult{}
		in.Now = db.Now()
		if err := putWording(t, in.Wording, wording); err != nil {
			return err
		}
		blocked, sub, err := db.signupState(t, in.Address.Key)
		if err != nil || blocked {
			return err
		}
		open, err := openRequest(t.conn, sub)
		if err != nil {
			return err
		}
		plan := consent.PlanSignup(sub, open, in, db.policy, db)
		if plan.Subscriber == nil {
			return nil
		}
		put := putSubscriber
		if sub == nil {
			put = insertSubscriber // PlanSignup gave it a new id
		}
		if err := put(t, plan.Subscriber); err != nil {
			return err
		}
		// PlanSignup's request is always a new one.
		if err := insertRequest(t, plan.Request); err != nil {
			return err
		}
		if err := appendEvent(t, plan.Event, plan.Personal); err != nil {
			return err
		}
		if !plan.Mail {
			return nil
		}
		res.Queued = true
		return enqueueLater(t, consent.ConfirmJob(plan.Subscriber, plan.Request, in.Now))
	})
	return res, err
}

// signupState reads, in one statement, whether an operator suppressed the
// address with key for every topic (blockedByOperator) and the
// subscriber holding it, if any.
func (db *DB) signupState(t *tx, key string) (blocked bool, sub *consent.Subscriber, err error) {
	var sb []byte
	var subr subscriberRow
	if r, ok := t.ahead[key]; ok {
		// Read when the transaction began (readAhead).
		delete(t.ahead, key)
		sb, subr = r.suppression, r.subscriber
	} else if err = t.q.QueryRow(t.ctx, `SELECT (SELECT data FROM suppressions WHERE hash = $1 AND scope = $2), `+subscriberColumns+`
		FROM (VALUES (1)) AS one `+subscriberJoin("email_key = $3"),
		db.hashKey(key), consent.ScopeAll, key).Scan(append([]any{&sb}, subr.dest()...)...); err != nil {
		return false, nil, err
	}
	if sb != nil {
		var s consent.Suppression
		if err := decode(sb, &s); err != nil {
			return false, nil, err
		}
		if !s.LiftedByOptIn() {
			return true, nil, nil
		}
	}
	sub, err = subr.decode()
	return false, sub, err
}

// Confirm confirms the pending request id: its topics become confirmed and
// the confirmed event is appended, in one transaction. A second call
// succeeds with Already set and changes nothing. An unknown request is
// ENotFound; an expired or cancelled one EExpired.
func (db *DB) Confirm(ctx context.Context, id string, in consent.ConfirmInput) (consent.ConfirmResult, error) {
	var res consent.ConfirmResult
	err := db.update(ctx, func(t *tx) error {
		in.Now = db.Now()
		req, sub, err := requestAndSubscriber(t.conn, id)
		if err != nil {
			return err
		}
		if req.NewEmail != "" {
			res = consent.ConfirmResult{NewEmail: req.NewEmail}
			res.Already, err = db.confirmAddress(t, sub, req, in)
			return err
		}
		ev, personal, err := consent.PlanConfirm(sub, req, in, db)
		if err != nil {
			return err
		}
		res = consent.ConfirmResult{Topics: req.Topics, Already: ev == nil}
		if ev == nil {
			return nil
		}
		if err := putRequest(t, req); err != nil {
			return err
		}
		if err := putSubscriber(t, sub); err != nil {
			return err
		}
		// A completed double opt-in is the one thing that lifts the
		// person's own earlier opt-outs.
		if err := liftSuppressions(t, db.hashKey(consent.AddressKey(sub.Email)), req.Topics); err != nil {
			return err
		}
		if err := appendEvent(t, ev, personal); err != nil {
			return err
		}
		evs, ps := consent.ConfirmedChannels(sub, req, in, db)
		for i, ev := range evs {
			if err := appendEvent(t, ev, ps[i]); err != nil {
				return err
			}
		}
		return nil
	})
	return res, err
}

// confirmAddress completes an address change whose new address confirmed
// it (consent.PlanAddressConfirm): the address and its index move, the
// rectified event is appended and the old address gets its notice. An
// address another subscriber took meanwhile is EConflict.
func (db *DB) confirmAddress(t *tx, sub *consent.Subscriber, req *consent.Request, in consent.ConfirmInput) (already bool, err error) {
	if req.Confirmed.IsZero() {
		if other, err := subscriberByKey(t.conn, consent.AddressKey(req.NewEmail)); err != nil {
			return false, err
		} else if other != nil && other.ID != sub.ID {
			return false, consent.Errorf(consent.EConflict, "another subscriber already has this address")
		}
	}
	ev, personal, notice, err := consent.PlanAddressConfirm(sub, req, in, db)
	if err != nil || ev == nil {
		return ev == nil && err == nil, err
	}
	// putSubscriber indexes the subscriber under its new address.
	if err := putSubscriber(t, sub); err != nil {
		return false, err
	}
	if err := putRequest(t, req); err != nil {
		return false, err
	}
	if err := appendEvent(t, ev, personal); err != nil {
		return false, err
	}
	return false, enqueue(t, notice)
}

// Rectify corrects subscriber id's name, phone number and postal address
// at once and starts the double opt-in of a new address
// (consent.PlanRectify), in one transaction, with a rectified event for
// each field corrected and, when a is set, an audit entry. A new
// address another subscriber holds is EConflict; one an operator
// suppressed for every topic EForbidden.
func (db *DB) Rectify(ctx context.Context, a *consent.Actor, id string, ch consent.Rectification, source string) (consent.RectifyResult, error) {
	var res consent.RectifyResult
	err := db.update(ctx, func(t *tx) error {
		res = consent.RectifyResult{}
		sub, err := loadSubscriber(t.conn, id)
		if err != nil {
			return err
		}
		if ch.Email != nil && ch.Email.Key != consent.AddressKey(sub.Email) {
			if other, err := subscriberByKey(t.conn, ch.Email.Key); err != nil {
				return err
			} else if other != nil {
				return consent.Errorf(consent.EConflict, "another subscriber already has this address")
			}
			if blocked, err := db.blockedByOperator(t.conn, ch.Email.Key); err != nil {
				return err
			} else if blocked {
				return consent.Errorf(consent.EForbidden, "this address is blocked")
			}
		}
		plan, err := consent.PlanRectify(sub, ch, source, db.Now(), db.policy, db)
		if err != nil {
			return err
		}
		for i, ev := range plan.Events {
			res.Renamed = res.Renamed || ev.Field == consent.FieldName
			res.Contact = res.Contact || ev.Field != consent.FieldName
			if err := appendEvent(t, ev, plan.Personals[i]); err != nil {
				return err
			}
		}
		if len(plan.Events) > 0 {
			if err := putSubscriber(t, sub); err != nil {
				return err
			}
		}
		if plan.Request != nil {
			res.AddressPending = true
			if err := putRequest(t, plan.Request); err != nil {
				return err
			}
			if err := enqueue(t, plan.Mail); err != nil {
				return err
			}
		}
		if a == nil || (len(plan.Events) == 0 && plan.Request == nil) {
			return nil
		}
		return db.audit(t, *a, "subscriber.rectify", id, 1)
	})
	return res, err
}

// NotMe cancels the pending request id because its recipient never asked
// for it, and blocks confirmation mail to the address for a while. Repeated
// calls change nothing. On a request that was confirmed meanwhile it is a
// withdrawal: the not-me link is the confirmation mail's one-click
// List-Unsubscribe target, and a one-click must never be a no-op (RFC
// 8058), so the request's topics are unsubscribed and suppressed.
func (db *DB) NotMe(ctx context.Context, id string, in consent.ConfirmInput) error {
	return db.update(ctx, func(t *tx) error {
		in.Now = db.Now()
		req, sub, err := requestAndSubscriber(t.conn, id)
		if err != nil {
			return err
		}
		if !req.Confirmed.IsZero() {
			return db.withdraw(t, sub, req.Topics, consent.ChannelOneClick, in)
		}
		ev, personal := consent.PlanNotMe(sub, req, in, db.policy, db)
		if ev == nil {
			return nil
		}
		if err := putRequest(t, req); err != nil {
			return err
		}
		if err := putSubscriber(t, sub); err != nil {
			return err
		}
		return appendEvent(t, ev, personal)
	})
}

// Request returns the request id, or an ENotFound *Error.
func (db *DB) Request(ctx context.Context, id string) (*consent.Request, error) {
	// One statement (requestAndSubscriber) sees one snapshot: no
	// transaction around it, which cost a confirmation page and click two
	// round trips more.
	req, _, err := requestAndSubscriber(db.read(ctx), id)
	return req, err
}
