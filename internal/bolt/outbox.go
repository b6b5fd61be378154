package bolt

import (
	"context"
	"time"

	"go.etcd.io/bbolt"

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
			if err := decode(v, &j); err != nil {
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

// Deliverable reports whether job should still be sent: its subscriber
// still exists and, for a confirmation, its request is still open. The
// outbox worker asks right before each send.
func (db *DB) Deliverable(ctx context.Context, job consent.Job) (bool, error) {
	ok := false
	err := db.view(func(tx *bbolt.Tx) error {
		if tx.Bucket(bucketSubscribers).Get([]byte(job.Subscriber)) == nil {
			return nil
		}
		switch job.Kind {
		case consent.JobConfirm:
			var req consent.Request
			found, err := get(tx, bucketRequests, []byte(job.Request), &req)
			if err != nil || !found {
				return err
			}
			ok = req.Open(db.Now())
		default:
			ok = true
		}
		return nil
	})
	return ok, err
}

// FinishJob removes job from the outbox after it was sent or dropped.
func (db *DB) FinishJob(ctx context.Context, job consent.Job) error {
	return db.update(func(tx *bbolt.Tx) error {
		return tx.Bucket(bucketOutbox).Delete(outboxKey(job.NextAt, job.ID))
	})
}

// RetryJob records a failed attempt and makes job due again at next.
func (db *DB) RetryJob(ctx context.Context, job consent.Job, next time.Time, reason string) error {
	return db.update(func(tx *bbolt.Tx) error {
		b := tx.Bucket(bucketOutbox)
		if err := b.Delete(outboxKey(job.NextAt, job.ID)); err != nil {
			return err
		}
		job.Attempts++
		job.NextAt = next.UTC().Truncate(time.Millisecond)
		job.LastError = reason
		return put(tx, bucketOutbox, outboxKey(job.NextAt, job.ID), job)
	})
}

// ParkJob moves job out of the outbox into the parked bucket after a
// permanent failure, keeping the reason for the operator.
func (db *DB) ParkJob(ctx context.Context, job consent.Job, reason string) error {
	return db.update(func(tx *bbolt.Tx) error {
		if err := tx.Bucket(bucketOutbox).Delete(outboxKey(job.NextAt, job.ID)); err != nil {
			return err
		}
		job.Attempts++
		job.LastError = reason
		return put(tx, bucketParked, u64(job.ID), job)
	})
}
