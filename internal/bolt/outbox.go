package bolt

import (
	"bytes"
	"context"
	"fmt"
	"reflect"
	"slices"
	"time"

	"go.etcd.io/bbolt"

	"optin/internal/bolt/record"
	"optin/internal/consent"
)

// DueJobs returns up to limit outbox jobs due at or before now, oldest
// first, skipping the ids in skip (jobs already being sent).
func (db *DB) DueJobs(ctx context.Context, now time.Time, limit int, skip func(id uint64) bool) ([]consent.Job, error) {
	var jobs []consent.Job
	err := db.view(func(tx *bbolt.Tx) error {
		c := tx.Bucket(bucketOutbox).Cursor()
		for k, v := c.First(); k != nil && len(jobs) < limit; k, v = c.Next() {
			if outboxDue(k).After(now) {
				break
			}
			if skip != nil && skip(beUint64(k[8:])) {
				continue
			}
			var j consent.Job
			if err := decodeAt(tx, bucketOutbox, k, v, &j); err != nil {
				return err
			}
			jobs = append(jobs, j)
		}
		return nil
	})
	return jobs, err
}

// NextDue returns when the earliest outbox job is due; zero when the
// outbox is empty.
func (db *DB) NextDue(ctx context.Context) (time.Time, error) {
	var t time.Time
	err := db.view(func(tx *bbolt.Tx) error {
		if k, _ := tx.Bucket(bucketOutbox).Cursor().First(); k != nil {
			t = outboxDue(k)
		}
		return nil
	})
	return t, err
}

// OutboxDepth returns the number of queued and parked jobs.
func (db *DB) OutboxDepth(ctx context.Context) (queued, parked int, err error) {
	err = db.view(func(tx *bbolt.Tx) error {
		queued = tx.Bucket(bucketOutbox).Stats().KeyN
		parked = tx.Bucket(bucketParked).Stats().KeyN
		return nil
	})
	return queued, parked, err
}

// Deliverable reports whether job should still be sent. The outbox
// worker asks right before each send, so a change made after the job was
// queued (an unsubscribe, an erasure, a confirmation) is honoured even for
// mail already in the queue (GDPR Art. 21(3)). A job is not deliverable when its
// subscriber is gone, when an operator suppressed the address for every
// topic, or, for a confirmation, when its request is no longer open. A
// reawaken mail is marketing: it also needs a confirmed subscription to
// its topic and no suppression of any kind for it (reawakenDeliverable).
func (db *DB) Deliverable(ctx context.Context, job consent.Job) (bool, error) {
	oks, err := db.DeliverableBatch(ctx, []consent.Job{job})
	if err != nil {
		return false, err
	}
	return oks[0], nil
}

// DeliverableBatch is Deliverable for several jobs, in one read
// transaction.
func (db *DB) DeliverableBatch(ctx context.Context, jobs []consent.Job) ([]bool, error) {
	oks := make([]bool, len(jobs))
	err := db.view(func(tx *bbolt.Tx) error {
		for i, job := range jobs {
			ok, err := db.deliverable(tx, job)
			if err != nil {
				return err
			}
			oks[i] = ok
		}
		return nil
	})
	return oks, err
}

func (db *DB) deliverable(tx *bbolt.Tx, job consent.Job) (bool, error) {
	if getStored(tx.Bucket(bucketSubscribers), bucketSubscribers, []byte(job.Subscriber)) == nil {
		return false, nil // erased
	}
	if job.Kind == consent.JobIncidentNotice {
		return true, nil // a breach notice is owed whatever the person opted out of (GDPR Art. 34)
	}
	s, err := suppressed(tx, db.hashKey(consent.AddressKey(job.To)), "")
	if err != nil || (s != nil && !s.LiftedByOptIn()) {
		return false, err
	}
	switch job.Kind {
	case consent.JobConfirm, consent.JobAddressChange:
		var req consent.Request
		found, err := get(tx, bucketRequests, []byte(job.Request), &req)
		if err != nil || !found {
			return false, err
		}
		return req.Open(db.Now()), nil
	case consent.JobPreferences, consent.JobAddressChanged:
		return true, nil
	case consent.JobReawaken, consent.JobNotice:
		sub := new(consent.Subscriber)
		if _, err := get(tx, bucketSubscribers, []byte(job.Subscriber), sub); err != nil {
			return false, err
		}
		if job.Kind == consent.JobNotice {
			return consent.NoticeOwed(sub, job), nil
		}
		return db.reawakenDeliverable(tx, job, sub)
	}
	return false, nil
}

// FinishJobs removes jobs from the outbox after they were sent or
// dropped, in one transaction. An information notice that leaves still
// deliverable went out: it is recorded (noticeSent). Each open request
// records when its confirmation mail left (Request.MarkSent).
func (db *DB) FinishJobs(ctx context.Context, jobs []consent.Job) error {
	return db.update(ctx, func(tx *bbolt.Tx) error {
		b := tx.Bucket(bucketOutbox)
		for _, job := range jobs {
			k := outboxKey(job.NextAt, job.ID)
			if job.Kind == consent.JobNotice && b.Get(k) != nil {
				if err := db.noticeSent(tx, job); err != nil {
					return err
				}
			}
			if err := b.Delete(k); err != nil {
				return err
			}
			if job.Kind != consent.JobConfirm && job.Kind != consent.JobAddressChange {
				continue
			}
			var req consent.Request
			if found, err := get(tx, bucketRequests, []byte(job.Request), &req); err != nil || !found {
				return err
			}
			if req.MarkSent(db.Now()) {
				if err := put(tx, bucketRequests, []byte(req.ID), &req); err != nil {
					return err
				}
			}
		}
		return nil
	})
}

// noticeSent records that notice job went out, when it is still
// deliverable (the worker drops the others): the subscriber's notice
// marked sent and the informed ledger event (consent.PlanNoticeSent).
func (db *DB) noticeSent(tx *bbolt.Tx, job consent.Job) error {
	ok, err := db.deliverable(tx, job)
	if err != nil || !ok {
		return err
	}
	sub, err := loadSubscriber(tx, job.Subscriber)
	if err != nil {
		return err
	}
	ev, personal := consent.PlanNoticeSent(sub, job, db.Now(), db)
	if ev == nil {
		return nil
	}
	if err := appendEvent(tx, ev, personal); err != nil {
		return err
	}
	return put(tx, bucketSubscribers, []byte(sub.ID), sub)
}

// RetryJob records a failed attempt and makes job due again at next. A job
// removed from the outbox meanwhile (by an erasure) stays removed.
func (db *DB) RetryJob(ctx context.Context, job consent.Job, next time.Time, reason string) error {
	return db.update(ctx, func(tx *bbolt.Tx) error {
		b := tx.Bucket(bucketOutbox)
		k := outboxKey(job.NextAt, job.ID)
		if b.Get(k) == nil {
			return nil
		}
		if err := b.Delete(k); err != nil {
			return err
		}
		j := job // a copy: the group commit may run this function again
		j.Attempts++
		j.NextAt = next.UTC().Truncate(time.Millisecond)
		j.LastError = reason
		return put(tx, bucketOutbox, outboxKey(j.NextAt, j.ID), j)
	})
}

// ParkJob moves job out of the outbox into the parked bucket after a
// permanent failure, keeping the reason for the operator. A job removed
// from the outbox meanwhile (by an erasure) is not parked.
func (db *DB) ParkJob(ctx context.Context, job consent.Job, reason string) error {
	return db.update(ctx, func(tx *bbolt.Tx) error {
		k := outboxKey(job.NextAt, job.ID)
		if tx.Bucket(bucketOutbox).Get(k) == nil {
			return nil
		}
		if err := tx.Bucket(bucketOutbox).Delete(k); err != nil {
			return err
		}
		j := job // a copy: the group commit may run this function again
		j.Attempts++
		j.LastError = reason
		return put(tx, bucketParked, u64(j.ID), j)
	})
}

// ExpediteRetries makes every job that waits for a retry due now, in
// chunks, except the jobs in skip. The outbox worker calls it when a send
// succeeds after failures: the relay is back, and the backlog should not
// sit out its backoff. skip must name every job being sent: FinishJobs,
// RetryJob and ParkJob find a job by the due time it had when it was
// read, so a job moved while it is sent would stay in the outbox after
// its mail went out, and go out again.
func (db *DB) ExpediteRetries(ctx context.Context, skip func(id uint64) bool) (int, error) {
	total := 0
	for {
		n := 0
		err := db.update(ctx, func(tx *bbolt.Tx) error {
			n = 0
			now := db.Now()
			b := tx.Bucket(bucketOutbox)
			var moved []consent.Job
			var old [][]byte
			c := b.Cursor()
			for k, v := c.Seek(outboxKey(now.Add(time.Millisecond), 0)); k != nil && len(moved) < 1000; k, v = c.Next() {
				if skip != nil && skip(beUint64(k[8:])) {
					continue
				}
				var j consent.Job
				if err := decodeAt(tx, bucketOutbox, k, v, &j); err != nil {
					return err
				}
				old = append(old, append([]byte(nil), k...))
				moved = append(moved, j)
			}
			for i, j := range moved {
				if err := b.Delete(old[i]); err != nil {
					return err
				}
				j.NextAt = now
				if err := put(tx, bucketOutbox, outboxKey(now, j.ID), j); err != nil {
					return err
				}
			}
			n = len(moved)
			return nil
		})
		total += n
		if err != nil || n < 1000 || ctx.Err() != nil {
			return total, err
		}
	}
}

// A queued confirmation mail leaves to its request what the request
// holds too (sharedWithRequest: the form, topics, Message-ID, locale,
// link expiry, channels and, when the mail was queued with the request,
// the time), 60 bytes, and is stored with
// record.RefMagic; decodeAt fills them back from the request. Those
// fields of a request never change. The mail keeps its subscriber, by
// which an erasure or a sweep finds it after the request is gone; such a
// mail reads without the request's fields and is not deliverable. Parked
// mails stand alone: they wait for the operator, and a sweep may take the
// request meanwhile.

// requestShare is the part of a request a confirmation mail shares with
// it, decoded alone (readRequestShare): the request's other shared
// strings are not looked up.
type requestShare struct {
	Subscriber    string                       `json:"subscriber"`
	Form          string                       `json:"form"`
	Topics        []string                     `json:"topics"`
	Locale        string                       `json:"locale"`
	Created       time.Time                    `json:"created"`
	Expires       time.Time                    `json:"expires"`
	MessageID     string                       `json:"message_id"`
	Channels      map[string][]consent.Channel `json:"channels,omitempty"`
	Phone         string                       `json:"phone,omitempty"`
	PostalAddress string                       `json:"postal_address,omitempty"`
}

// readRequestShare reads the share of request id as a consent.Request
// would read it (decodeAt), and whether the request exists.
func readRequestShare(tx *bbolt.Tx, id string) (*requestShare, bool, error) {
	v := tx.Bucket(bucketRequests).Get([]byte(id))
	if v == nil {
		return nil, false, nil
	}
	r := new(requestShare)
	if err := record.UnmarshalWith(v, r, sharedStrings(tx)); err != nil {
		return nil, false, fmt.Errorf("bolt: decode request %s: %w", id, err)
	}
	if v[0] == record.RefMagic && r.Created.IsZero() {
		r.Created = idTime(id)
	}
	return r, true, nil
}

// sharedWithRequest copies the fields a confirmation mail shares with
// its request from r into j.
func sharedWithRequest(j *consent.Job, r *requestShare) {
	j.Form, j.Topics, j.MessageID, j.Locale, j.TokenExpires = r.Form, r.Topics, r.MessageID, r.Locale, r.Expires
	j.Channels, j.Phone, j.PostalAddress, j.Created = r.Channels, r.Phone, r.PostalAddress, r.Created
}

// leaveToRequest returns v, a job about to be stored in bucket, without
// the fields its request holds, and true, when it is a queued
// confirmation mail that its request gives back exactly; else v and
// false.
func leaveToRequest(tx *bbolt.Tx, bucket []byte, v any) (any, bool, error) {
	var j consent.Job
	switch x := v.(type) {
	case consent.Job:
		j = x
	case *consent.Job:
		j = *x
	default:
		return v, false, nil
	}
	if !bytes.Equal(bucket, bucketOutbox) || j.Kind != consent.JobConfirm || j.Request == "" {
		return v, false, nil
	}
	r, ok, err := readRequestShare(tx, j.Request)
	if err != nil || !ok || r.Subscriber != j.Subscriber || !givenByRequest(&j, r) {
		return v, false, err
	}
	short := j
	sharedWithRequest(&short, &requestShare{})
	return &short, true, nil
}

// givenByRequest reports whether sharedWithRequest from r gives back
// exactly the fields j has.
func givenByRequest(j *consent.Job, r *requestShare) bool {
	return j.Form == r.Form && j.MessageID == r.MessageID && j.Locale == r.Locale && j.TokenExpires == r.Expires &&
		j.Created == r.Created && j.Phone == r.Phone && j.PostalAddress == r.PostalAddress &&
		slices.Equal(j.Topics, r.Topics) && (j.Topics == nil) == (r.Topics == nil) &&
		(j.Channels == nil && r.Channels == nil || reflect.DeepEqual(j.Channels, r.Channels))
}

// fillFromRequest puts back into j what leaveToRequest left to its
// request; a request that is gone leaves j as it is.
func fillFromRequest(tx *bbolt.Tx, j *consent.Job) error {
	r, ok, err := readRequestShare(tx, j.Request)
	if err != nil || !ok {
		return err
	}
	sharedWithRequest(j, r)
	return nil
}
