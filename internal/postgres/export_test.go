package postgres

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"optin/internal/consent"
)

// InsertTopicsInOneBatch runs one write call per id, all in one batch
// (as the committer gathers them), each inserting a topic row through
// the pipe, and returns each call's answer.
func (db *DB) InsertTopicsInOneBatch(ids ...string) []error {
	batch := make([]*call, len(ids))
	for i, id := range ids {
		batch[i] = &call{ctx: context.Background(), done: make(chan error, 1), fn: func(t *tx) error {
			return t.exec(`INSERT INTO topics (id, data) VALUES ($1, '{"id": "`+id+`"}')`, id)
		}}
	}
	db.commit(batch)
	errs := make([]error, len(ids))
	for i, c := range batch {
		errs[i] = <-c.done
	}
	return errs
}

// InsertRequestsInOneBatch is InsertTopicsInOneBatch with rows of one
// bulk insert (bulkRequests), and returns the request ids stored after.
func (db *DB) InsertRequestsInOneBatch(ids ...string) ([]error, []string) {
	batch := make([]*call, len(ids))
	for i, id := range ids {
		batch[i] = &call{ctx: context.Background(), done: make(chan error, 1), fn: func(t *tx) error {
			return t.bulkRow(bulkRequests, dbID(id), dbID("s"), []byte(`{"id": "`+id+`"}`))
		}}
	}
	db.commit(batch)
	errs := make([]error, len(ids))
	for i, c := range batch {
		errs[i] = <-c.done
	}
	var stored []string
	var id string
	if err := db.read(context.Background()).each("SELECT id FROM requests ORDER BY id", nil, []any{scanID(&id)}, func() error {
		stored = append(stored, id)
		return nil
	}); err != nil {
		panic(err)
	}
	return errs, stored
}

// MigrationLocks is the statement a migration takes its locks with, and
// the guard lock (with WriteLock, its arguments): a test's migration of
// a newer optin takes them too.
const MigrationLocks, GuardLock = migrationLocks, guardLock

// MigrateTo brings the schema of the database at url up to version to
// and no further: a database as an older optin left it.
func MigrateTo(ctx context.Context, url string, to int) error {
	pool, err := Connect(ctx, url)
	if err != nil {
		return err
	}
	defer pool.Close()
	return migrateTo(ctx, pool, to)
}

// EventThenSubscriber appends ev with personal record p, then stores
// sub, a subscriber new to the store, in one transaction: an event that
// comes before its subscriber's rows (an import's did before migration
// 0016), which the evidence bits must survive.
func (db *DB) EventThenSubscriber(ev *consent.Event, p consent.Personal, sub *consent.Subscriber) error {
	return db.update(context.Background(), func(t *tx) error {
		if err := appendEvent(t, ev, p); err != nil {
			return err
		}
		return insertSubscriber(t, sub)
	})
}

// WriteLock is the advisory lock every write transaction takes first.
const WriteLock = writeLock

// Update runs fn as a write of its own through the committer (update),
// writing nothing.
func (db *DB) Update(ctx context.Context, fn func()) error {
	return db.update(ctx, func(*tx) error { fn(); return nil })
}

// StoreRequestsInOneBatch runs one write call per request, all in one
// batch (as the committer gathers them), each storing its request (its
// strings numbered in the table of shared strings); the call of index
// fail then fails, after its request was stored. It returns each call's
// answer.
func (db *DB) StoreRequestsInOneBatch(reqs []*consent.Request, fail int) []error {
	batch := make([]*call, len(reqs))
	for i, req := range reqs {
		batch[i] = &call{ctx: context.Background(), done: make(chan error, 1), fn: func(t *tx) error {
			if err := insertRequest(t, req); err != nil {
				return err
			}
			if i == fail {
				return consent.Errorf(consent.EInvalid, "call %d fails", i)
			}
			return nil
		}}
	}
	db.commit(batch)
	errs := make([]error, len(reqs))
	for i, c := range batch {
		errs[i] = <-c.done
	}
	return errs
}

// StoredRequest returns request id as stored, or nil, whether or not its
// subscriber exists.
func (db *DB) StoredRequest(ctx context.Context, id string) (*consent.Request, error) {
	return request(db.read(ctx), id)
}

// EmptyWrite begins a write transaction on c, takes the write lock and
// commits: with check, as beginWrite does (the lock and the schema's
// versions in one round trip); without, the lock alone, as before the
// schema guard. For BenchmarkSchemaCheck.
func (db *DB) EmptyWrite(ctx context.Context, c *pgx.Conn, check bool) error {
	ptx, err := c.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.ReadCommitted})
	if err != nil {
		return err
	}
	defer ptx.Rollback(ctx)
	if check {
		err = db.lockChecked(ctx, ptx, writeLocked, writeLock)
	} else {
		_, err = ptx.Exec(ctx, writeLocked, writeLock)
	}
	if err != nil {
		return err
	}
	return ptx.Commit(ctx)
}

// OutboxRead runs DueJobs's statement once on c, on an outbox with
// nothing due: with guard, as DueJobs does (leaseEach); without, alone,
// as before the schema guard. For BenchmarkSchemaCheck.
func (db *DB) OutboxRead(ctx context.Context, c *pgx.Conn, guard bool) error {
	sql := `UPDATE outbox o SET lease_owner = $1, lease_until = $3
		FROM (SELECT id FROM outbox WHERE next_at <= $2 AND %s ORDER BY next_at, id LIMIT 10 FOR UPDATE SKIP LOCKED) AS due
		WHERE o.id = due.id RETURNING o.id`
	args := []any{db.owner, db.Now().Add(-time.Hour), db.Now()}
	if !guard {
		_, err := c.Exec(ctx, fmt.Sprintf(sql, "true"), args...)
		return err
	}
	var id int64
	return db.leaseEachOn(ctx, c, fmt.Sprintf(sql, schemaKnown()), args, []any{&id}, func() error { return nil })
}
