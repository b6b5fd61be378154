package postgres

import (
	"context"
	"hash/fnv"
	"time"

	"github.com/jackc/pgx/v5"
)

// leaderLock is the base of the session advisory lock keys Lead takes,
// one per task.
const leaderLock = 0x6f7074696e100000

// leadEvery is how often Lead tries to take a task that another instance
// leads, and how often the leader checks the connection holding the lock.
const leadEvery = time.Second

// Lead runs fn on one instance at a time among the DBs on this database
// that lead task (housekeeping such as the sweep or the campaign runner).
// It waits until it holds task's session advisory lock, trying every
// second on a connection of its own, then runs fn with a context that
// ends when ctx does or when that connection fails: PostgreSQL releases
// the lock of a session that ends, so when the leading instance dies or
// loses the database, another one takes over within about a second of
// noticing. When fn returns, the lock is released and taken again as
// before; Lead returns once ctx is done and fn has returned.
//
// Once a newer optin migrated the schema (SchemaMoved), this instance
// leads nothing: it ends fn at the next check and takes no task again,
// so the instances of the new version take them over.
//
// A failing connection is noticed at the next check, so two instances
// may run task for a moment: a task must keep its effects right under the
// write lock, as the sweep and the campaign runner do (each of their
// transactions reads again what it changes).
func (db *DB) Lead(ctx context.Context, task string, fn func(ctx context.Context)) {
	h := fnv.New32a()
	h.Write([]byte(task))
	key := int64(leaderLock) + int64(h.Sum32())
	tick := time.NewTicker(leadEvery)
	defer tick.Stop()
	var conn *pgx.Conn
	defer func() {
		if conn != nil {
			conn.Close(context.Background())
		}
	}()
	for {
		if conn == nil {
			conn, _ = pgx.ConnectConfig(ctx, db.pool.Config().ConnConfig) // nil on error: tried again
		}
		if conn != nil && db.SchemaMoved() == nil {
			var got bool
			err := conn.QueryRow(ctx, "SELECT pg_try_advisory_lock($1)", key).Scan(&got)
			if err == nil && got {
				err = lead(ctx, conn, key, fn, tick.C, db.SchemaMoved)
			}
			if err != nil {
				conn.Close(context.Background())
				conn = nil
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

// lead runs fn while conn holds lock key, checking conn and moved at
// every tick; when the check fails (or moved returns an error) it ends
// fn's context and waits for fn. After fn it releases the lock. It
// returns the error of a failed check or release.
func lead(ctx context.Context, conn *pgx.Conn, key int64, fn func(ctx context.Context), tick <-chan time.Time, moved func() error) error {
	leadCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	done := make(chan struct{})
	go func() {
		defer close(done)
		fn(leadCtx)
	}()
	for {
		select {
		case <-done:
			unlockCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
			defer cancel()
			_, err := conn.Exec(unlockCtx, "SELECT pg_advisory_unlock($1)", key)
			return err
		case <-tick:
			if moved() != nil {
				cancel() // fn ends; the lock is released as it does
				continue
			}
			if err := conn.Ping(ctx); err != nil {
				cancel()
				<-done
				return err
			}
		}
	}
}
