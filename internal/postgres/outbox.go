package postgres

import (
	"cmp"
	"context"
	"fmt"
	"slices"
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
// them to this DB for Options.Lease.
//
// Each read takes and leases its jobs in one statement, which goes with
// the guard lock and the schema check in one round trip and commits with
// them (leaseEach: nothing is leased once a newer optin migrated the
// schema): the rows are taken FOR UPDATE SKIP LOCKED,
// so another instance's read passes over them, and one that reads them
// after this lease committed finds them leased (the row lock makes it
// test the lease again on their new version). The jobs this DB is
// sending are left out in the statement (sending); a row skip names
// that the statement still took (one this DB handed out earlier) stays
// leased to this DB, which is sending it, and is passed over.
func (db *DB) DueJobs(ctx context.Context, now time.Time, limit int, skip func(id uint64) bool) ([]consent.Job, error) {
	except := db.sending(skip)
	clock := db.Now()
	after := struct {
		at time.Time
		id int64
	}{time.Time{}, -1}
	var out []consent.Job
	for len(out) < limit {
		want := limit - len(out)
		var read []consent.Job
		var id int64
		var nextAt time.Time
		var b []byte
		err := db.leaseEach(ctx, `UPDATE outbox o SET lease_owner = $1, lease_until = $8
			FROM (SELECT id FROM outbox WHERE next_at <= $3 AND (next_at, id) > ($4, $5) AND `+free+` AND id <> ALL($7)
				AND `+schemaKnown()+` ORDER BY next_at, id LIMIT $6 FOR UPDATE SKIP LOCKED) AS due
			WHERE o.id = due.id RETURNING o.id, o.next_at, o.job`,
			[]any{db.owner, clock, now, after.at, after.id, want, except, clock.Add(db.lease)},
			[]any{&id, &nextAt, &b}, func() error {
				j, err := jobFrom(id, nextAt, b)
				read = append(read, j)
				return err
			})
		if err != nil {
			return nil, fmt.Errorf("postgres: due jobs: %w", err)
		}
		slices.SortFunc(read, func(a, b consent.Job) int {
			if c := a.NextAt.Compare(b.NextAt); c != 0 {
				return c
			}
			return cmp.Compare(a.ID, b.ID)
		})
		for _, j := range read {
			after.at, after.id = j.NextAt, int64(j.ID)
			if skip == nil || !skip(j.ID) {
				out = append(out, j)
			}
		}
		if len(read) < want {
			break
		}
	}
	db.leasedMu.Lock()
	for _, j := range out {
		db.leased[int64(j.ID)] = struct{}{}
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

// leaseDue calls take for rows of table (a queue: id, next_at,
// lease_owner, lease_until and the record in column data) due at or
// before now, in due order, until take took limit of them (it reports
// whether it took a row), and leases those to this DB for
// Options.Lease, in a lease transaction (leaseTx). Rows another instance
// leased are left out until their lease ends; rows another leaseDue is
// reading just then are passed over (FOR UPDATE SKIP LOCKED).
func (db *DB) leaseDue(ctx context.Context, table, data string, now time.Time, limit int,
	take func(id int64, nextAt time.Time, b []byte) (bool, error)) error {
	if limit <= 0 {
		return nil
	}
	clock := db.Now()
	return db.leaseTx(ctx, func(c conn) error {
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
			err := c.each(`SELECT id, next_at, `+data+` FROM `+table+`
				WHERE next_at <= $3 AND (next_at, id) > ($4, $5) AND `+free+`
				ORDER BY next_at, id LIMIT $6 FOR UPDATE SKIP LOCKED`,
				[]any{db.owner, clock, now, after.at, after.id, limit}, []any{&id, &nextAt, &b}, func() error {
					read++
					after.at, after.id = nextAt, id
					if len(ids) == limit {
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
		return c.exec("UPDATE "+table+" SET lease_owner = $1, lease_until = $2 WHERE id = ANY($3)", db.owner, clock.Add(db.lease), ids)
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
//
// The states of all the jobs come from one statement, which is one
// snapshot by itself; only a reawaken mail reads more, so a batch with
// one runs in a read-only transaction instead (view).
func (db *DB) DeliverableBatch(ctx context.Context, jobs []consent.Job) ([]bool, error) {
	oks := make([]bool, len(jobs))
	check := func(c conn) error {
		st, err := db.jobStates(c, jobs)
		if err != nil {
			return err
		}
		for i, job := range jobs {
			if oks[i], err = db.deliverableIn(c, job, st[i]); err != nil {
				return err
			}
		}
		return nil
	}
	if slices.ContainsFunc(jobs, func(j consent.Job) bool { return j.Kind == consent.JobReawaken }) {
		return oks, db.view(ctx, check)
	}
	return oks, check(db.read(ctx))
}

// jobState is what deliverable reads about a job: whether its
// subscriber exists and, when the job's check reads the record
// (readsSubscriber), the subscriber; the suppression of its address for
// every topic and its request, each nil when there is none.
type jobState struct {
	exists bool
	sub    *consent.Subscriber
	supp   *consent.Suppression
	req    *consent.Request
}

// readsSubscriber says whether the send-time check of a job of kind
// reads its subscriber's record; the others ask only whether it exists.
// Reading the record of each confirmation mail's subscriber was a
// decode per mail that nothing used.
func readsSubscriber(kind consent.JobKind) bool {
	return kind == consent.JobNotice || kind == consent.JobReawaken
}

// jobStates reads the states of jobs, in their order, in one statement.
// It is planned for its arrays at each call (QueryExecModeCacheDescribe):
// a plan kept from when the tables were small (a new database) would
// go on reading them whole as they grow.
func (db *DB) jobStates(c conn, jobs []consent.Job) ([]jobState, error) {
	subIDs, hashes, reqIDs := make([]string, len(jobs)), make([]string, len(jobs)), make([]string, len(jobs))
	reads := make([]bool, len(jobs))
	for i, job := range jobs {
		subIDs[i], hashes[i], reqIDs[i] = job.Subscriber, db.hashKey(consent.AddressKey(job.To)), job.Request
		reads[i] = readsSubscriber(job.Kind)
	}
	out := make([]jobState, 0, len(jobs))
	var suppb, reqb []byte
	var subr subscriberRow
	err := c.each(`SELECT `+subscriberColumns+`,
		(SELECT data FROM suppressions WHERE hash = u.h AND scope = $4),
		(SELECT data FROM requests WHERE id = u.r)
		FROM unnest($1::bytea[], $2::text[], $3::bytea[]) WITH ORDINALITY AS u(s, h, r, n) `+subscriberJoin("id = u.s")+` ORDER BY u.n`,
		[]any{pgx.QueryExecModeCacheDescribe, dbIDs(subIDs), hashes, dbIDs(reqIDs), consent.ScopeAll}, append(subr.dest(), &suppb, &reqb), func() error {
			job := jobs[len(out)]
			st := jobState{exists: subr.data != nil}
			var err error
			if st.exists && reads[len(out)] {
				if st.sub, err = subr.decode(); err != nil {
					return err
				}
			}
			if suppb != nil {
				st.supp = new(consent.Suppression)
				if err := decode(suppb, st.supp); err != nil {
					return err
				}
			}
			if reqb != nil {
				if st.req, err = decodeRequest(job.Request, job.Subscriber, reqb, c.shared()); err != nil {
					return err
				}
			}
			out = append(out, st)
			return nil
		})
	if err == nil && len(out) != len(jobs) {
		err = fmt.Errorf("postgres: job states: got %d rows for %d jobs", len(out), len(jobs))
	}
	return out, err
}

// deliverable reports whether job may still be sent (see DeliverableBatch).
func (db *DB) deliverable(c conn, job consent.Job) (bool, error) {
	st, err := db.jobStates(c, []consent.Job{job})
	if err != nil {
		return false, err
	}
	return db.deliverableIn(c, job, st[0])
}

// deliverableIn is deliverable with job's state read.
func (db *DB) deliverableIn(c conn, job consent.Job, st jobState) (bool, error) {
	if !st.exists {
		return false, nil // erased
	}
	sub := st.sub // for the kinds that read it (readsSubscriber)
	if job.Kind == consent.JobIncidentNotice {
		return true, nil // a breach notice is owed whatever the person opted out of (GDPR Art. 34)
	}
	if s := st.supp; s != nil && !s.LiftedByOptIn() {
		return false, nil
	}
	switch job.Kind {
	case consent.JobConfirm, consent.JobAddressChange:
		req := st.req
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
		reqIDs := []string{}
		for _, job := range jobs {
			if job.Kind == consent.JobConfirm || job.Kind == consent.JobAddressChange {
				reqIDs = append(reqIDs, job.Request)
			}
		}
		// The sent time goes to its own column (withSent reads it), in
		// the statement that deletes the jobs: the first time counts. It
		// is planned for its arrays at each call, as jobStates is, so it
		// does not wait in the pipe.
		_, err := t.execN(`WITH done AS (DELETE FROM outbox WHERE id = ANY($1))
			UPDATE requests SET sent = $3 WHERE id = ANY($2) AND sent IS NULL`,
			pgx.QueryExecModeCacheDescribe, ids, dbIDs(reqIDs), db.Now())
		return err
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
