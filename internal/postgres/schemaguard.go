package postgres

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/jackc/pgx/v5"
)

// The schema guard. Several instances share one database, and a newer
// optin migrates it at start while older ones may still run; a
// migration may change how rows are written (0015, 0016, 0019 did), so
// an older instance must write nothing once one it does not know has
// committed: not its use cases' rows, not its outbox and webhook leases
// (it would send mail read from rows it misreads, and fail to finish
// it), not its limits. Every writer asks SchemaMoved first; what sets it
// is a read of schema_migrations that finds a version this optin's
// migrations do not have (any, not only a higher one: a version landing
// later than a higher one is applied too, see migrationFiles):
//
//   - each write transaction (beginWrite) and each lease of the mail
//     and webhook workers (leaseEach, leaseTx) reads the versions right
//     after taking its lock (the write lock, or the guard lock shared),
//     in the same round trip, in READ COMMITTED (pinned: connect), so
//     the read sees every migration committed before the lock was
//     granted. A migration takes both locks exclusively (migrateTo): it
//     waits for the write and lease transactions running (short: a batch
//     has batchTimeout, a lease is a statement or a few), they wait for
//     it, and none commits a row of the old form after it;
//   - a migration notifies schemaChannel at its commit, and the
//     listener reads the versions then (and each time it connects), so
//     an instance that neither writes nor leases learns it too: its
//     limits refuse, its leaderships end (Lead), and SchemaMoved says
//     why to /readyz.
//
// Once seen, it is kept: schema versions are never removed.

// guardLock is the advisory lock that lease transactions take shared
// (leaseTx) and each migration exclusively, besides the write lock.
const guardLock = 0x6f7074696e02 // "optin" 2

// schemaChannel is the channel a migration notifies when it commits.
const schemaChannel = "optin_schema"

// knownList returns this optin's versions as an SQL list, "1,2,...".
var knownList = sync.OnceValue(func() string {
	vs := knownVersions()
	ss := make([]string, len(vs))
	for i, v := range vs {
		ss[i] = strconv.Itoa(int(v))
	}
	return strings.Join(ss, ",")
})

// unknownVersions returns the statement that selects the versions
// applied to the database that this optin does not know, as an array.
var unknownVersions = sync.OnceValue(func() string {
	return "SELECT coalesce(array_agg(version ORDER BY version), '{}') FROM schema_migrations WHERE version NOT IN (" + knownList() + ")"
})

// schemaKnown returns the condition that the database holds no version
// this optin does not know, for a statement that leases (leaseEach).
var schemaKnown = sync.OnceValue(func() string {
	return "NOT EXISTS (SELECT FROM schema_migrations WHERE version NOT IN (" + knownList() + "))"
})

// knownVersions returns the versions of this optin's migrations.
var knownVersions = sync.OnceValue(func() []int32 {
	ms, err := migrations()
	if err != nil {
		panic(err) // the embedded files are checked by the package's tests
	}
	vs := make([]int32, len(ms))
	for i, m := range ms {
		vs[i] = int32(m.version)
	}
	return vs
})

// unknownOf returns the versions of applied that this optin does not
// know.
func unknownOf(applied []int32) []int32 {
	var out []int32
	for _, v := range applied {
		if !slices.Contains(knownVersions(), v) {
			out = append(out, v)
		}
	}
	return out
}

// schemaMovedError is what every write answers once the database holds
// a schema version this optin does not know: unavailable to its callers
// (503: a load balancer sends them to an instance of the new version),
// and in the logs, what the operator must do.
type schemaMovedError struct{ unknown []int32 }

func (e *schemaMovedError) Error() string {
	return fmt.Sprintf("postgres: the database's schema has version(s) %v, which this optin (schema version %d) does not know: "+
		"a newer optin migrated it while this one ran, so this one writes, leases and sends nothing more; stop it and run the newer version",
		e.unknown, SchemaVersion())
}

func (e *schemaMovedError) Unwrap() error { return errUnavailable }

// SchemaMoved returns nil while this instance may write, and from the
// moment it saw a schema version it does not know, the error every
// write answers (unavailable).
func (db *DB) SchemaMoved() error {
	if e := db.moved.Load(); e != nil {
		return e
	}
	return nil
}

// sawVersions notes the unknown versions a read of schema_migrations
// found, and returns SchemaMoved.
func (db *DB) sawVersions(unknown []int32) error {
	if len(unknown) > 0 && db.moved.CompareAndSwap(nil, &schemaMovedError{unknown: unknown}) {
		close(db.movedC)
	}
	return db.SchemaMoved()
}

// SchemaMovedC returns a channel closed when SchemaMoved starts to
// return an error, for the one log line that says so.
func (db *DB) SchemaMovedC() <-chan struct{} { return db.movedC }

// The statements that take the locks (in a transaction; released when
// it ends).
const (
	writeLocked = "SELECT pg_advisory_xact_lock($1)"
	guardShared = "SELECT pg_advisory_xact_lock_shared($1)"
)

// queueCheck queues in b the statement lockSQL that takes the advisory
// lock key, then the read of the schema's versions: a statement of its
// own in a READ COMMITTED transaction, which sees every migration
// committed before the lock was granted. checked reads their results.
func queueCheck(b *pgx.Batch, lockSQL string, key int64) {
	b.Queue(lockSQL, key)
	b.Queue(unknownVersions())
}

// checked reads the results of the statements queueCheck queued and
// returns SchemaMoved, or the failure.
func (db *DB) checked(br pgx.BatchResults) error {
	_, err := br.Exec()
	var unknown []int32
	if err == nil {
		err = br.QueryRow().Scan(&unknown)
	}
	if err != nil {
		return fmt.Errorf("postgres: lock: %w", unavailable(err))
	}
	return db.sawVersions(unknown)
}

// lockChecked takes the advisory lock key in ptx with lockSQL and then
// reads the schema's versions, in one round trip (queueCheck). It
// returns SchemaMoved, or the failure.
func (db *DB) lockChecked(ctx context.Context, ptx pgx.Tx, lockSQL string, key int64) error {
	b := &pgx.Batch{}
	queueCheck(b, lockSQL, key)
	br := ptx.SendBatch(ctx, b)
	err := db.checked(br)
	if cerr := br.Close(); err == nil && cerr != nil {
		err = fmt.Errorf("postgres: lock: %w", unavailable(cerr))
	}
	return err
}

// leaseEach runs sql, one statement that leases rows of a queue and
// holds schemaKnown among its conditions, after the guard lock (shared)
// and the read of the schema's versions (queueCheck), the three in one
// round trip and one implicit transaction (a batch with no BEGIN commits
// at its end): the statement leases nothing once a newer optin's
// migration committed, and leaseEach returns SchemaMoved then. It calls
// fn for each row, scanned into dst.
func (db *DB) leaseEach(ctx context.Context, sql string, args, dst []any, fn func() error) error {
	return db.leaseEachOn(ctx, db.pool, sql, args, dst, fn)
}

// batcher sends batches: the pool, or a connection.
type batcher interface {
	SendBatch(ctx context.Context, b *pgx.Batch) pgx.BatchResults
}

// leaseEachOn is leaseEach on q.
func (db *DB) leaseEachOn(ctx context.Context, q batcher, sql string, args, dst []any, fn func() error) error {
	if err := db.SchemaMoved(); err != nil {
		return err
	}
	b := &pgx.Batch{}
	queueCheck(b, guardShared, guardLock)
	b.Queue(sql, args...)
	br := q.SendBatch(ctx, b)
	moved := db.checked(br)
	rows, err := br.Query()
	if err == nil {
		for rows.Next() && err == nil {
			if err = rows.Scan(dst...); err == nil {
				err = fn()
			}
		}
		rows.Close()
		if err == nil {
			err = unavailable(rows.Err())
		}
	} else {
		err = unavailable(err)
	}
	if cerr := br.Close(); err == nil {
		err = unavailable(cerr)
	}
	if moved != nil {
		return moved
	}
	return err
}

// leaseTx runs fn in a READ COMMITTED transaction that holds the guard
// lock shared, after checking the schema's versions (lockChecked): the
// mail and webhook workers' leases, which take no write lock, pass the
// guard too.
func (db *DB) leaseTx(ctx context.Context, fn func(c conn) error) error {
	if err := db.SchemaMoved(); err != nil {
		return err
	}
	ptx, err := db.pool.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.ReadCommitted})
	if err != nil {
		return fmt.Errorf("postgres: %w", unavailable(err))
	}
	defer ptx.Rollback(context.WithoutCancel(ctx))
	if err := db.lockChecked(ctx, ptx, guardShared, guardLock); err != nil {
		return err
	}
	if err := fn(conn{ctx: ctx, q: guarded{ptx}, strs: &sharedStrings{db: db, ctx: ctx}}); err != nil {
		return err
	}
	if err := ptx.Commit(ctx); err != nil {
		return fmt.Errorf("postgres: commit: %w", unavailable(err))
	}
	return nil
}

// readVersions reads the schema's versions outside any lock (the
// listener, when a migration notified or when it connects).
func (db *DB) readVersions(ctx context.Context) error {
	var unknown []int32
	if err := db.pool.QueryRow(ctx, unknownVersions()).Scan(&unknown); err != nil {
		return err
	}
	db.sawVersions(unknown)
	return nil
}
