package postgres

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"slices"
	"sort"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// migrationFiles holds the schema: one file per version, named
// NNNN_what.sql, applied in order, never changed once released. A number
// may be skipped (work in parallel reserves numbers ahead); a version
// that lands later than a higher one is still applied, since each start
// applies every version not yet recorded.
//
//go:embed migrations/*.sql
var migrationFiles embed.FS

// migrateLock is the session advisory lock under which migrations run, so
// instances starting together apply each version once.
const migrateLock = 0x6f7074696e00 // "optin" 0

// migrationLocks takes, in a migration's transaction, the write lock
// ($1) and the guard lock ($2) exclusively (schemaguard.go).
const migrationLocks = "SELECT pg_advisory_xact_lock($1), pg_advisory_xact_lock($2)"

// migration is one schema version.
type migration struct {
	version int
	name    string
	sql     string
}

// migrations returns the embedded migrations in version order.
func migrations() ([]migration, error) {
	names, err := fs.Glob(migrationFiles, "migrations/*.sql")
	if err != nil {
		return nil, err
	}
	var ms []migration
	for _, name := range names {
		base := path.Base(name)
		n, _, ok := strings.Cut(base, "_")
		v, err := strconv.Atoi(n)
		if !ok || err != nil || v < 1 {
			return nil, fmt.Errorf("postgres: migration %s: name must be NNNN_what.sql", base)
		}
		b, err := migrationFiles.ReadFile(name)
		if err != nil {
			return nil, err
		}
		ms = append(ms, migration{version: v, name: base, sql: string(b)})
	}
	sort.Slice(ms, func(i, j int) bool { return ms[i].version < ms[j].version })
	for i := 1; i < len(ms); i++ {
		if ms[i].version == ms[i-1].version {
			return nil, fmt.Errorf("postgres: migrations %s and %s: two files with one version", ms[i-1].name, ms[i].name)
		}
	}
	return ms, nil
}

// SchemaVersion is the schema version this optin's migrations lead to:
// the highest.
func SchemaVersion() int {
	ms, err := migrations()
	if err != nil {
		panic(err) // the embedded files are checked by the package's tests
	}
	if len(ms) == 0 {
		return 0
	}
	return ms[len(ms)-1].version
}

// Migrate brings the database's schema up to this optin's version. It
// holds a session advisory lock while it works, so instances starting
// together wait for each other and each version is applied once; each
// version is applied in a transaction of its own with its record in
// schema_migrations. A database newer than this optin (one with a
// version this optin's migrations lack, higher than its own or not) is
// an error: running old code on a new schema is not safe. Each
// migration takes the write and guard locks and notifies at its commit,
// so the older instances still running stop writing (schemaguard.go).
func Migrate(ctx context.Context, pool *pgxpool.Pool) error {
	return migrateTo(ctx, pool, SchemaVersion())
}

// migrateTo is Migrate up to version to (the tests make databases of
// older versions with it).
func migrateTo(ctx context.Context, pool *pgxpool.Pool, to int) error {
	ms, err := migrations()
	if err != nil {
		return err
	}
	for len(ms) > 0 && ms[len(ms)-1].version > to {
		ms = ms[:len(ms)-1]
	}
	c, err := pool.Acquire(ctx)
	if err != nil {
		return fmt.Errorf("postgres: %w", err)
	}
	defer c.Release()
	if _, err := c.Exec(ctx, "SELECT pg_advisory_lock($1)", migrateLock); err != nil {
		return fmt.Errorf("postgres: migration lock: %w", err)
	}
	defer c.Exec(context.WithoutCancel(ctx), "SELECT pg_advisory_unlock($1)", migrateLock)
	_, err = c.Exec(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (
	version integer PRIMARY KEY,
	name    text NOT NULL,
	applied timestamptz NOT NULL DEFAULT now())`)
	if err != nil {
		return fmt.Errorf("postgres: schema_migrations: %w", err)
	}
	applied, err := appliedVersions(ctx, c)
	if err != nil {
		return err
	}
	if unknown := unknownOf(applied); len(unknown) > 0 {
		return fmt.Errorf("postgres: the database's schema has version(s) %v, which this optin (schema version %d) does not know: "+
			"it is newer than this optin; upgrade optin", unknown, SchemaVersion())
	}
	todo, err := unapplied(ctx, c, ms)
	if err != nil {
		return err
	}
	for _, m := range todo {
		err := pgx.BeginTxFunc(ctx, c, pgx.TxOptions{IsoLevel: pgx.ReadCommitted}, func(t pgx.Tx) error {
			// The write and guard locks order the migration with every
			// instance's write and lease transactions (schemaguard.go):
			// it waits for those running, and those after it find its
			// version, so an older instance writes nothing after it.
			// The notification tells the instances that do not write.
			if _, err := t.Exec(ctx, migrationLocks, writeLock, guardLock); err != nil {
				return err
			}
			if _, err := t.Exec(ctx, m.sql); err != nil {
				return err
			}
			if _, err := t.Exec(ctx, "INSERT INTO schema_migrations (version, name) VALUES ($1, $2)", m.version, m.name); err != nil {
				return err
			}
			_, err := t.Exec(ctx, "SELECT pg_notify($1, $2)", schemaChannel, strconv.Itoa(m.version))
			return err
		})
		if err != nil {
			return fmt.Errorf("postgres: migration %s: %w", m.name, err)
		}
	}
	return nil
}

// checkVersion returns an error unless the database's schema is at this
// optin's version.
func checkVersion(ctx context.Context, pool *pgxpool.Pool) error {
	st, err := readStatus(ctx, pool)
	switch {
	case err != nil:
		return err
	case st.Current == 0:
		return errors.New("postgres: the database has no optin schema yet: start optin serve on it once")
	case st.Unknown > 0:
		return fmt.Errorf("postgres: the database's schema has %d version(s) this optin (schema version %d) does not know: it is newer than this optin; upgrade optin", st.Unknown, st.Latest)
	case st.Current != st.Latest || st.Pending > 0:
		return fmt.Errorf("postgres: the database's schema is at version %d, this optin's at %d: start optin serve of the newer one on it", st.Current, st.Latest)
	}
	return nil
}

// appliedVersions returns the versions schema_migrations records.
func appliedVersions(ctx context.Context, q querier) ([]int32, error) {
	rows, err := q.Query(ctx, "SELECT version FROM schema_migrations ORDER BY version")
	if err != nil {
		return nil, fmt.Errorf("postgres: schema versions: %w", err)
	}
	done, err := pgx.CollectRows(rows, pgx.RowTo[int32])
	if err != nil {
		return nil, fmt.Errorf("postgres: schema versions: %w", err)
	}
	return done, nil
}

// unapplied returns the migrations of ms that schema_migrations does not
// record, in order.
func unapplied(ctx context.Context, q querier, ms []migration) ([]migration, error) {
	done, err := appliedVersions(ctx, q)
	if err != nil {
		return nil, err
	}
	var todo []migration
	for _, m := range ms {
		if !slices.Contains(done, int32(m.version)) {
			todo = append(todo, m)
		}
	}
	return todo, nil
}

// currentVersion returns the highest schema version applied (0 for none).
func currentVersion(ctx context.Context, q querier) (int, error) {
	var v int
	if err := q.QueryRow(ctx, "SELECT coalesce(max(version), 0) FROM schema_migrations").Scan(&v); err != nil {
		return 0, fmt.Errorf("postgres: schema version: %w", err)
	}
	return v, nil
}

// Status is where a database's schema stands.
type Status struct {
	// Current is the version applied; 0 for a database optin never
	// opened.
	Current int
	// Latest is the version this optin brings the schema to at start.
	Latest int
	// Pending is how many of this optin's migrations are not applied.
	Pending int
	// Unknown is how many applied versions this optin's migrations do
	// not have: a newer optin's, which this one does not start on.
	Unknown int
}

// ReadStatus reports the schema version of the database at url without
// changing anything.
func ReadStatus(ctx context.Context, url string) (Status, error) {
	pool, err := connect(ctx, url, true)
	if err != nil {
		return Status{Latest: SchemaVersion()}, err
	}
	defer pool.Close()
	return readStatus(ctx, pool)
}

func readStatus(ctx context.Context, pool *pgxpool.Pool) (Status, error) {
	st := Status{Latest: SchemaVersion()}
	var exists bool
	if err := pool.QueryRow(ctx, "SELECT to_regclass('schema_migrations') IS NOT NULL").Scan(&exists); err != nil {
		return st, fmt.Errorf("postgres: %w", err)
	}
	ms, err := migrations()
	if err != nil {
		return st, err
	}
	st.Pending = len(ms)
	if !exists {
		return st, nil
	}
	if st.Current, err = currentVersion(ctx, pool); err != nil {
		return st, err
	}
	todo, err := unapplied(ctx, pool, ms)
	if err != nil {
		return st, err
	}
	st.Pending = len(todo)
	applied, err := appliedVersions(ctx, pool)
	st.Unknown = len(unknownOf(applied))
	return st, err
}
