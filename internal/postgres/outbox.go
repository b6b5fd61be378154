package postgres

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"optin/internal/consent"
)

// The outbox is shared by every instance's mail worker. DueJobs leases the
// jobs it hands out to this DB (lease_owner, lease_until): another
// instance's DueJobs passes them over until the lease runs out, so two
// instances never hand the same mail to a relay at once, and the jobs of
// an instance that died go to the others when its leases end. The
// instance holding a lease still sees the job (its worker skips the jobs
// it is sending), and its outcome (FinishJobs, RetryJob, ParkJob) ends
// the lease.

// jobFrom returns the job stored as b in the outbox row id, due at nextAt.
func jobFrom(id int64, nextAt time.Time, b []byte) (consent.Job, error) {
	var j consent.Job
	if err := decode(b, &j); err != nil {
		return j, err
	}
	j.ID, j.NextAt = uint64(id), nextAt.UTC()
	return j, nil
}

// free is the condition on outbox rows this DB may take: not leased, or
// leased to it, or leased to another whose lease ran out ($1 is the
// owner, $2 the time).
const free = "(lease_owner IS NULL OR lease_owner = $1 OR lease_until <= $2)"

// DueJobs returns up to limit outbox jobs due at or before now, in due
// order, skipping the ids in skip (jobs already being sent), and leases
// them to this DB for Options.Lease (see leaseDue).
func (db *DB) DueJobs(ctx context.Context, now time.Time, limit int, skip func(id uint64) bool) ([]consent.Job, error) {
	// The rows are read without their jobs (the ones this DB is sending
	// come up again and are skipped), and the jobs taken are read as
	// they are leased.
	var ids []int64
	due := map[int64]time.Time{}
	jobs := map[int64]consent.Job{}
	err := db.leaseDue(ctx, "outbox", "", now, limit, skip, db.sending(skip), func(id int64, nextAt time.Time, _ []byte) (bool, error) {
		ids = append(ids, id)
		due[id] = nextAt
		return true, nil
	}, func(id int64, b []byte) error {
		j, err := jobFrom(id, due[id], b)
		jobs[id] = j
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("postgres: due jobs: %w", err)
	}
	out := make([]consent.Job, 0, len(ids))
	db.leasedMu.Lock()
	for _, id := range ids {
		out = append(out, jobs[id])
		db.leased[id] = struct{}{}
	}
	db.leasedMu.Unlock()
	return out, nil
}

// sending returns the jobs this DB handed out that skip still skips (the
// worker is sending them), for DueJobs to leave out in its statement
// instead of reading (and locking) each again; the others it forgets.
func (db *DB) sending(skip func(id uint64) bool) []int64 {
	out := []int64{}
	db.leasedMu.Lock()
	defer db.leasedMu.Unlock()
	for id := range db.leased {
		if skip != nil && skip(uint64(id)) {
			out = append(out, id)
		} else {
			delete(db.leased, id)
		}
	}
	return out
}

// leaseDue calls take for rows of table (an outbox: id, next_at,
// lease_owner, lease_until and the record in column data) due at or
// before now, in due order, skipping the ids in skip, until take took
// limit of them (it reports whether it took a row), and leases those to
// this DB for Options.Lease. Rows another instance leased are
// left out until their lease ends; rows another leaseDue is reading just
// then are passed over (FOR UPDATE SKIP LOCKED).
//
// With data "" take gets no record, and leased gets each leased row's
// record (column job) as the lease is written. The rows with the ids in
// except are not read at all (skip would skip them).
func (db *DB) leaseDue(ctx context.Context, table, data string, now time.Time, limit int, skip func(id uint64) bool, except []int64,
	take func(id int64, nextAt time.Time, b []byte) (bool, error), leased func(id int64, b []byte) error) error {
	if except == nil {
		except = []int64{} // NULL would leave every row out
	}
	cols := "id, next_at"
	if data != "" {
		cols += ", " + data
	}
	if limit <= 0 {
		return nil
	}
	clock := db.Now()
	return pgx.BeginFunc(ctx, db.pool, func(ptx pgx.Tx) error {
		c := conn{ctx: ctx, q: ptx}
		after := struct {
			at time.Time
			id int64
		}{time.Time{}, -1}
		var ids []int64
		for len(ids) < limit {
			read := 0
			var id int64
			var nextAt time.Time
			var b []byte
			dst := []any{&id, &nextAt}
			if data != "" {
				dst = append(dst, &b)
			}
			err := c.each(`SELECT `+cols+` FROM `+table+`
				WHERE next_at <= $3 AND (next_at, id) > ($4, $5) AND `+free+` AND id <> ALL($7)
				ORDER BY next_at, id LIMIT $6 FOR UPDATE SKIP LOCKED`,
				[]any{db.owner, clock, now, after.at, after.id, limit, except}, dst, func() error {
					read++
					after.at, after.id = nextAt, id
					if len(ids) == limit || (skip != nil && skip(uint64(id))) {
						return nil
					}
					took, err := take(id, nextAt.UTC(), b)
					if took {
						ids = append(ids, id)
					}
					return err
				})
			if err != nil {
				return err
			}
			if read < limit {
				break
			}
		}
		if len(ids) == 0 {
			return nil
		}
		if leased == nil {
			return c.exec("UPDATE "+table+" SET lease_owner = $1, lease_until = $2 WHERE id = ANY($3)", db.owner, clock.Add(db.lease), ids)
		}
		var id int64
		var b []byte
		return c.each("UPDATE "+table+" SET lease_owner = $1, lease_until = $2 WHERE id = ANY($3) RETURNING id, job",
			[]any{db.owner, clock.Add(db.lease), ids}, []any{&id, &b}, func() error { return leased(id, b) })
	})
}

// NextDue returns when the earliest outbox job is due for this DB: a job
// another instance leased counts as due when its lease ends. It is zero
// when the outbox is empty.
func (db *DB) NextDue(ctx context.Context) (time.Time, error) {
	var t *time.Time
	err := db.pool.QueryRow(ctx, `SELECT least(
		(SELECT next_at FROM outbox WHERE lease_owner IS NULL OR lease_owner = $1 OR lease_until <= next_at
			ORDER BY next_at, id LIMIT 1),
		(SELECT min(lease_until) FROM outbox WHERE lease_owner IS NOT NULL AND lease_owner <> $1 AND lease_until > next_at))`,
		db.owner).Scan(&t)
	if err != nil || t == nil {
		return time.Time{}, err
	}
	return t.UTC(), nil
}

// OutboxDepth returns the number of queued and parked jobs.
func (db *DB) OutboxDepth(ctx context.Context) (queued, parked int, err error) {
	err = db.pool.QueryRow(ctx, "SELECT (SELECT count(*) FROM outbox), (SELECT count(*) FROM outbox_parked)").Scan(&queued, &parked)
	return queued, parked, err
}

// DeliverableBatch reports for each job whether it should still be sent,
// from one snapshot. The outbox worker asks right before each send, so a
// change made after the job was queued (an unsubscribe, an erasure, a
// confirmation) is honoured even for mail already in the queue. A job is
// not deliverable when its subscriber is gone, when an operator
// suppressed the address for every topic, or, for a confirmation, when
// its request is no longer open. A reawaken mail is marketing: it also
// needs a confirmed subscription to its topic and no suppression of any
// kind for it (reawakenDeliverable).
func (db *DB) DeliverableBatch(ctx context.Context, jobs []consent.Job) ([]bool, error) {
	oks := make([]bool, len(jobs))
	err := db.view(ctx, func(c conn) error {
		st, err := db.jobStates(c, jobs)
		if err != nil {
			return err
		}
		for i, job := range jobs {
			ok, err := db.deliverableIn(c, job, st)
			if err != nil {
				return err
			}
			oks[i] = ok
		}
		return nil
	})
	return oks, err
}

// jobStates holds what deliverable reads about jobs, read for many jobs
// at once: their subscribers by id, the suppressions for every topic by
// address hash, and their requests by id.
type jobStates struct {
	subs map[string]*consent.Subscriber
	supp map[string]*consent.Suppression
	reqs map[string]*consent.Request
}

// jobStates reads the states of jobs in three statements.
func (db *DB) jobStates(c conn, jobs []consent.Job) (jobStates, error) {
	st := jobStates{subs: map[string]*consent.Subscriber{}, supp: map[string]*consent.Suppression{}, reqs: map[string]*consent.Request{}}
	var subIDs, hashes, reqIDs []string
	for _, job := range jobs {
		subIDs = append(subIDs, job.Subscriber)
		hashes = append(hashes, db.hashKey(consent.AddressKey(job.To)))
		if job.Request != "" {
			reqIDs = append(reqIDs, job.Request)
		}
	}
	var b []byte
	err := c.each("SELECT data FROM subscribers WHERE id = ANY($1)", []any{dbIDs(subIDs)}, []any{&b}, func() error {
		sub := new(consent.Subscriber)
		if err := decode(b, sub); err != nil {
			return err
		}
		st.subs[sub.ID] = sub
		return nil
	})
	if err != nil {
		return st, err
	}
	var hash string
	err = c.each("SELECT hash, data FROM suppressions WHERE hash = ANY($1) AND scope = $2", []any{hashes, consent.ScopeAll}, []any{&hash, &b}, func() error {
		s := new(consent.Suppression)
		if err := decode(b, s); err != nil {
			return err
		}
		st.supp[hash] = s
		return nil
	})
	if err != nil || len(reqIDs) == 0 {
		return st, err
	}
	var id, subID string
	err = c.each("SELECT id, subscriber, data FROM requests WHERE id = ANY($1)", []any{dbIDs(reqIDs)}, []any{scanID(&id), scanID(&subID), &b}, func() error {
		r, err := decodeRequest(id, subID, b)
		if err != nil {
			return err
		}
		st.reqs[r.ID] = r
		return nil
	})
	return st, err
}

// deliverable reports whether job may still be sent (see DeliverableBatch).
func (db *DB) deliverable(c conn, job consent.Job) (bool, error) {
	st, err := db.jobStates(c, []consent.Job{job})
	if err != nil {
		return false, err
	}
	return db.deliverableIn(c, job, st)
}

// deliverableIn is deliverable with job's state read.
func (db *DB) deliverableIn(c conn, job consent.Job, st jobStates) (bool, error) {
	sub := st.subs[job.Subscriber]
	if sub == nil {
		return false, nil // erased
	}
	if job.Kind == consent.JobIncidentNotice {
		return true, nil // a breach notice is owed whatever the person opted out of (GDPR Art. 34)
	}
	if s := st.supp[db.hashKey(consent.AddressKey(job.To))]; s != nil && !s.LiftedByOptIn() {
		return false, nil
	}
	switch job.Kind {
	case consent.JobConfirm, consent.JobAddressChange:
		req := st.reqs[job.Request]
		if req == nil {
			return false, nil
		}
		return req.Open(db.Now()), nil
	case consent.JobPreferences, consent.JobAddressChanged:
		return true, nil
	case consent.JobNotice:
		return consent.NoticeOwed(sub, job), nil
	case consent.JobReawaken:
		return db.reawakenDeliverable(c, job, sub)
	}
	return false, nil
}

// FinishJobs removes jobs from the outbox after they were sent or
// dropped, in one transaction. An information notice that leaves still
// deliverable went out: it is recorded (noticeSent). Each request
// records when its confirmation mail left, in its sent column; a read
// keeps it only if the request was open then (withSent).
func (db *DB) FinishJobs(ctx context.Context, jobs []consent.Job) error {
	ids := make([]int64, 0, len(jobs))
	var notices []consent.Job
	for _, j := range jobs {
		if j.Kind == consent.JobNotice {
			notices = append(notices, j)
		} else {
			ids = append(ids, int64(j.ID))
		}
	}
	return db.update(ctx, func(t *tx) error {
		for _, j := range notices {
			n, err := t.execN("DELETE FROM outbox WHERE id = $1", int64(j.ID))
			if err != nil {
				return err
			}
			if n == 1 {
				if err := db.noticeSent(t, j); err != nil {
					return err
				}
			}
		}
		if err := t.exec("DELETE FROM outbox WHERE id = ANY($1)", ids); err != nil {
			return err
		}
		var reqIDs []string
		for _, job := range jobs {
			if job.Kind == consent.JobConfirm || job.Kind == consent.JobAddressChange {
				reqIDs = append(reqIDs, job.Request)
			}
		}
		if len(reqIDs) == 0 {
			return nil
		}
		// The sent time goes to its own column (withSent reads it), in
		// one statement with the pipe: the first time counts.
		return t.exec("UPDATE requests SET sent = $2 WHERE id = ANY($1) AND sent IS NULL", dbIDs(reqIDs), db.Now())
	})
}

// noticeSent records that notice job went out, when it is still
// deliverable (the worker drops the others): the subscriber's notice
// marked sent and the informed ledger event (consent.PlanNoticeSent).
func (db *DB) noticeSent(t *tx, job consent.Job) error {
	ok, err := db.deliverable(t.conn, job)
	if err != nil || !ok {
		return err
	}
	sub, err := loadSubscriber(t.conn, job.Subscriber)
	if err != nil {
		return err
	}
	ev, personal := consent.PlanNoticeSent(sub, job, db.Now(), db)
	if ev == nil {
		return nil
	}
	if err := appendEvent(t, ev, personal); err != nil {
		return err
	}
	return putSubscriber(t, sub)
}

// RetryJob records a failed attempt and makes job due again at next. A job
// removed from the outbox meanwhile (by an erasure), or leased meanwhile
// by another instance whose send then decides, is left alone.
func (db *DB) RetryJob(ctx context.Context, job consent.Job, next time.Time, reason string) error {
	j := job
	j.Attempts++
	j.NextAt = next.UTC().Truncate(time.Millisecond)
	j.LastError = reason
	b, err := encodeRecord(&j)
	if err != nil {
		return err
	}
	return db.update(ctx, func(t *tx) error {
		return t.exec(`UPDATE outbox SET next_at = $3, job = $4, lease_owner = NULL, lease_until = NULL
			WHERE id = $5 AND `+free, db.owner, db.Now(), j.NextAt, b, int64(j.ID))
	})
}

// ParkJob moves job out of the outbox into the parked table after a
// permanent failure, keeping the reason for the operator. A job removed
// from the outbox meanwhile (by an erasure), or leased meanwhile by
// another instance, is not parked.
func (db *DB) ParkJob(ctx context.Context, job consent.Job, reason string) error {
	j := job
	j.Attempts++
	j.LastError = reason
	b, err := encodeRecord(&j)
	if err != nil {
		return err
	}
	return db.update(ctx, func(t *tx) error {
		n, err := t.execN("DELETE FROM outbox WHERE id = $3 AND "+free, db.owner, db.Now(), int64(j.ID))
		if err != nil || n == 0 {
			return err
		}
		return t.exec("INSERT INTO outbox_parked (id, subscriber, job) VALUES ($1, $2, $3)", int64(j.ID), dbID(j.Subscriber), b)
	})
}

// ExpediteRetries makes every job that waits for a retry due now, in
// chunks, except the jobs in skip and those another instance holds. The
// outbox worker calls it when a send succeeds after failures: the relay
// is back, and the backlog should not sit out its backoff.
func (db *DB) ExpediteRetries(ctx context.Context, skip func(id uint64) bool) (int, error) {
	total := 0
	after := int64(-1) // the last job id looked at
	for {
		n, looked, last := 0, 0, after
		err := db.update(ctx, func(t *tx) error {
			n, looked, last = 0, 0, after
			now := db.Now()
			var ids []int64
			var id int64
			err := t.each("SELECT id FROM outbox WHERE next_at > $2 AND id > $3 AND "+free+" ORDER BY id LIMIT 1000",
				[]any{db.owner, now, after}, []any{&id}, func() error {
					looked++
					last = id
					if skip == nil || !skip(uint64(id)) {
						ids = append(ids, id)
					}
					return nil
				})
			if err != nil {
				return err
			}
			n = len(ids)
			return t.exec("UPDATE outbox SET next_at = $1 WHERE id = ANY($2)", now, ids)
		})
		if err != nil {
			return total, err
		}
		total += n
		if looked < 1000 || ctx.Err() != nil {
			return total, nil
		}
		after = last
	}
}
