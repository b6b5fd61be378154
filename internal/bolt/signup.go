package bolt

import (
	"context"
	"fmt"

	"go.etcd.io/bbolt"

	"optin/internal/bolt/record"
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
	in.Wording = wording.Hash() // outside the transaction: writes are serial
	err := db.update(ctx, func(tx *bbolt.Tx) error {
		res = consent.SignupResult{}
		in.Now = db.Now()
		if tx.Bucket(bucketWordings).Get([]byte(in.Wording)) == nil {
			if err := put(tx, bucketWordings, []byte(in.Wording), wording); err != nil {
				return err
			}
		}
		if blocked, err := db.blockedByOperator(tx, in.Address.Key); err != nil || blocked {
			return err
		}
		sub, err := subscriberByKey(tx, in.Address.Key)
		if err != nil {
			return err
		}
		var open *consent.Request
		if sub != nil && sub.PendingRequest != "" {
			open = new(consent.Request)
			if ok, err := get(tx, bucketRequests, []byte(sub.PendingRequest), open); err != nil {
				return err
			} else if !ok {
				open = nil
			}
		}
		plan := consent.PlanSignup(sub, open, in, db.policy, db)
		if plan.Subscriber == nil {
			return nil
		}
		if err := db.putSubscriber(tx, plan.Subscriber, in.Address.Key); err != nil {
			return err
		}
		if err := putRequest(tx, plan.Request, plan.Event); err != nil {
			return err
		}
		if err := appendEvent(tx, plan.Event, plan.Personal); err != nil {
			return err
		}
		if !plan.Mail {
			return nil
		}
		res.Queued = true
		return enqueue(tx, consent.ConfirmJob(plan.Subscriber, plan.Request, in.Now))
	})
	return res, err
}

// Confirm confirms the pending request id: its topics become confirmed and
// the confirmed event is appended, in one transaction. A second call
// succeeds with Already set and changes nothing. An unknown request is
// ENotFound; an expired or cancelled one EExpired.
func (db *DB) Confirm(ctx context.Context, id string, in consent.ConfirmInput) (consent.ConfirmResult, error) {
	var res consent.ConfirmResult
	err := db.update(ctx, func(tx *bbolt.Tx) error {
		in.Now = db.Now()
		req, sub, err := requestAndSubscriber(tx, id)
		if err != nil {
			return err
		}
		if req.NewEmail != "" {
			res = consent.ConfirmResult{NewEmail: req.NewEmail}
			res.Already, err = db.confirmAddress(tx, sub, req, in)
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
		if err := put(tx, bucketRequests, []byte(req.ID), req); err != nil {
			return err
		}
		if err := put(tx, bucketSubscribers, []byte(sub.ID), sub); err != nil {
			return err
		}
		// A completed double opt-in is the one thing that lifts the
		// person's own earlier opt-outs.
		if err := liftSuppressions(tx, db.hashKey(consent.AddressKey(sub.Email)), req.Topics); err != nil {
			return err
		}
		if err := appendEvent(tx, ev, personal); err != nil {
			return err
		}
		evs, ps := consent.ConfirmedChannels(sub, req, in, db)
		for i, ev := range evs {
			if err := appendEvent(tx, ev, ps[i]); err != nil {
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
func (db *DB) confirmAddress(tx *bbolt.Tx, sub *consent.Subscriber, req *consent.Request, in consent.ConfirmInput) (already bool, err error) {
	oldKey, newKey := consent.AddressKey(sub.Email), consent.AddressKey(req.NewEmail)
	if req.Confirmed.IsZero() {
		if other, err := subscriberByKey(tx, newKey); err != nil {
			return false, err
		} else if other != nil && other.ID != sub.ID {
			return false, consent.Errorf(consent.EConflict, "another subscriber already has this address")
		}
	}
	ev, personal, notice, err := consent.PlanAddressConfirm(sub, req, in, db)
	if err != nil || ev == nil {
		return ev == nil && err == nil, err
	}
	if err := tx.Bucket(bucketAddresses).Delete(addressIndexKey(db.hasher, oldKey, sub.ID)); err != nil {
		return false, err
	}
	if err := db.putSubscriber(tx, sub, newKey); err != nil {
		return false, err
	}
	if err := put(tx, bucketRequests, []byte(req.ID), req); err != nil {
		return false, err
	}
	if err := appendEvent(tx, ev, personal); err != nil {
		return false, err
	}
	return false, enqueue(tx, notice)
}

// Rectify corrects subscriber id's name, phone number and postal address
// at once and starts the double opt-in of a new address
// (consent.PlanRectify), in one transaction, with a rectified event for
// each field corrected and, when a is set, an audit entry. A new
// address another subscriber holds is EConflict; one an operator
// suppressed for every topic EForbidden.
func (db *DB) Rectify(ctx context.Context, a *consent.Actor, id string, ch consent.Rectification, source string) (consent.RectifyResult, error) {
	var res consent.RectifyResult
	err := db.update(ctx, func(tx *bbolt.Tx) error {
		res = consent.RectifyResult{}
		sub, err := loadSubscriber(tx, id)
		if err != nil {
			return err
		}
		if ch.Email != nil && ch.Email.Key != consent.AddressKey(sub.Email) {
			if other, err := subscriberByKey(tx, ch.Email.Key); err != nil {
				return err
			} else if other != nil {
				return consent.Errorf(consent.EConflict, "another subscriber already has this address")
			}
			if blocked, err := db.blockedByOperator(tx, ch.Email.Key); err != nil {
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
			if err := appendEvent(tx, ev, plan.Personals[i]); err != nil {
				return err
			}
		}
		if len(plan.Events) > 0 {
			if err := put(tx, bucketSubscribers, []byte(sub.ID), sub); err != nil {
				return err
			}
		}
		if plan.Request != nil {
			res.AddressPending = true
			if err := putRequest(tx, plan.Request, nil); err != nil {
				return err
			}
			if err := enqueue(tx, plan.Mail); err != nil {
				return err
			}
		}
		if a == nil || (len(plan.Events) == 0 && plan.Request == nil) {
			return nil
		}
		return db.audit(tx, *a, "subscriber.rectify", id, 1)
	})
	return res, err
}

// NotMe cancels the pending request id because its recipient never asked
// for it, and blocks confirmation mail to the address for a while. Repeated
// calls change nothing. On a request that was confirmed meanwhile it is a
// withdrawal: the not-me link is the confirmation mail's one-click
// List-Unsubscribe target, and a one-click must never be a no-op, so
// the request's topics are unsubscribed and suppressed.
func (db *DB) NotMe(ctx context.Context, id string, in consent.ConfirmInput) error {
	return db.update(ctx, func(tx *bbolt.Tx) error {
		in.Now = db.Now()
		req, sub, err := requestAndSubscriber(tx, id)
		if err != nil {
			return err
		}
		if !req.Confirmed.IsZero() {
			return db.withdraw(tx, sub, req.Topics, consent.ChannelOneClick, in)
		}
		ev, personal := consent.PlanNotMe(sub, req, in, db.policy, db)
		if ev == nil {
			return nil
		}
		if err := put(tx, bucketRequests, []byte(req.ID), req); err != nil {
			return err
		}
		if err := put(tx, bucketSubscribers, []byte(sub.ID), sub); err != nil {
			return err
		}
		return appendEvent(tx, ev, personal)
	})
}

// Request returns the request id, or an ENotFound *Error.
func (db *DB) Request(ctx context.Context, id string) (*consent.Request, error) {
	var req *consent.Request
	err := db.view(func(tx *bbolt.Tx) error {
		var err error
		req, _, err = requestAndSubscriber(tx, id)
		return err
	})
	return req, err
}

func requestAndSubscriber(tx *bbolt.Tx, id string) (*consent.Request, *consent.Subscriber, error) {
	req := new(consent.Request)
	if ok, err := get(tx, bucketRequests, []byte(id), req); err != nil {
		return nil, nil, err
	} else if !ok {
		return nil, nil, consent.Errorf(consent.ENotFound, "this link is no longer valid")
	}
	sub := new(consent.Subscriber)
	if ok, err := get(tx, bucketSubscribers, []byte(req.Subscriber), sub); err != nil {
		return nil, nil, err
	} else if !ok {
		return nil, nil, consent.Errorf(consent.ENotFound, "this link is no longer valid")
	}
	return req, sub, nil
}

// subscriberByKey returns the subscriber whose case-folded address key
// is key, or nil: of those the addresses index names under the key's
// prefix, the one whose address it is. A database whose emails index is
// not converted yet (opened read-only) is read through that.
func subscriberByKey(tx *bbolt.Tx, key string) (*consent.Subscriber, error) {
	var ids [][]byte
	if old := tx.Bucket(bucketEmails); old != nil {
		if id := old.Get([]byte(key)); id != nil {
			ids = append(ids, id)
		}
	}
	if b := tx.Bucket(bucketAddresses); b != nil {
		h, err := hasherOf(tx)
		if err != nil {
			return nil, err
		}
		prefix := addressPrefix(h, key)
		for _, k := range keysWithPrefix(b, prefix) {
			ids = append(ids, k[len(prefix):])
		}
	}
	for _, id := range ids {
		sub := new(consent.Subscriber)
		if ok, err := get(tx, bucketSubscribers, []byte(record.IDString(id)), sub); err != nil {
			return nil, err
		} else if ok && consent.AddressKey(sub.Email) == key {
			return sub, nil
		}
	}
	return nil, nil
}

// putSubscriber stores sub under its id and the case-folded address
// key.
func (db *DB) putSubscriber(tx *bbolt.Tx, sub *consent.Subscriber, key string) error {
	if err := put(tx, bucketSubscribers, []byte(sub.ID), sub); err != nil {
		return err
	}
	return tx.Bucket(bucketAddresses).Put(addressIndexKey(db.hasher, key, sub.ID), nil)
}

// putFreshSubscriber is putSubscriber for sub, new to the store, whose
// events tx appended with appendEventOf: there is no stored version to
// read, and no personal record to leave the address to sub (moveAddress).
func (db *DB) putFreshSubscriber(tx *bbolt.Tx, sub *consent.Subscriber, key string) error {
	id := []byte(sub.ID)
	v, err := encodeAt(tx, bucketSubscribers, id, sub)
	if err != nil {
		return err
	}
	if err := trackSubscriber(tx, nil, sub); err != nil {
		return err
	}
	if err := bucketOf(tx, bucketSubscribers).Put(storedKey(bucketSubscribers, id), v); err != nil {
		return err
	}
	return tx.Bucket(bucketAddresses).Put(addressIndexKey(db.hasher, key, sub.ID), nil)
}

// putRequest stores req, and indexes it under its subscriber in
// requests_bysub unless ev, the event stored with it, names it: then
// ledger_bysub finds it (requestsOf).
func putRequest(tx *bbolt.Tx, req *consent.Request, ev *consent.Event) error {
	if err := put(tx, bucketRequests, []byte(req.ID), req); err != nil {
		return err
	}
	if ev != nil && ev.Request == req.ID && ev.Subscriber == req.Subscriber {
		return nil
	}
	return bucketOf(tx, bucketReqBySub).Put(pairKey(req.Subscriber, req.ID), nil)
}

// requestsOf returns the ids of subscriber id's stored requests: those
// in requests_bysub and those its ledger events name (a request created
// with an event that names it has no requests_bysub entry), each once.
func requestsOf(tx *bbolt.Tx, id string) ([]string, error) {
	var out []string
	seen := map[string]bool{}
	add := func(r string) {
		if r != "" && !seen[r] {
			seen[r] = true
			if tx.Bucket(bucketRequests).Get([]byte(r)) != nil {
				out = append(out, r)
			}
		}
	}
	prefix := pairKey(id, "")
	for _, k := range keysWithPrefix(tx.Bucket(bucketReqBySub), prefix) {
		add(string(k[len(prefix):]))
	}
	ledger := tx.Bucket(bucketLedger)
	for _, seq := range subscriberEvents(tx, id) {
		v := ledger.Get(seq)
		if v == nil {
			continue
		}
		var ev struct {
			Request string `json:"request"`
		}
		if err := record.Unmarshal(v, &ev); err != nil {
			return nil, fmt.Errorf("bolt: event %d: %w", beUint64(seq), err)
		}
		add(ev.Request)
	}
	return out, nil
}
