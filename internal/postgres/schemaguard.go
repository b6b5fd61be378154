package postgres

import (
	"context"
	"fmt"
	"slices"
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
//   - each write transaction (beginWrite) and each lease transaction
//     (leaseTx) reads the versions right after taking its lock, in the
//     same round trip, in READ COMMITTED, so the read sees every
//     migration committed before the lock was granted. A migration takes
//     both locks exclusively (migrateTo): it waits for the write and
//     lease transactions running (short: a batch has batchTimeout), they
//     wait for it, and none commits a row of the old form after it;
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

// unknownVersions selects the versions applied to the database that
// are not in $1, this optin's (knownVersions).
const unknownVersions = "SELECT coalesce(array_agg(version ORDER BY version), '{}') FROM schema_migrations WHERE NOT version = ANY($1)"

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

// lockChecked takes the advisory lock key in ptx with lockSQL and then
// reads the schema's versions, both in one round trip: the read, a
// statement of its own in a READ COMMITTED transaction, sees every
// migration committed before the lock was granted. It returns
// SchemaMoved, or the failure.
func (db *DB) lockChecked(ctx context.Context, ptx pgx.Tx, lockSQL string, key int64) error {
	b := &pgx.Batch{}
	b.Queue(lockSQL, key)
	b.Queue(unknownVersions, knownVersions())
	br := ptx.SendBatch(ctx, b)
	_, err := br.Exec()
	var unknown []int32
	if err == nil {
		err = br.QueryRow().Scan(&unknown)
	}
	if cerr := br.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("postgres: lock: %w", unavailable(err))
	}
	return db.sawVersions(unknown)
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
	if err := db.lockChecked(ctx, ptx, "SELECT pg_advisory_xact_lock_shared($1)", guardLock); err != nil {
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
	if err := db.pool.QueryRow(ctx, unknownVersions, knownVersions()).Scan(&unknown); err != nil {
		return err
	}
	db.sawVersions(unknown)
	return nil
}
