package postgres

import (
	"context"
	"errors"
	"io"
	"net"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"optin/internal/consent"
)

// errUnavailable is what a caller learns when the database cannot be
// reached: the web server answers it with 503, so a client (or a load
// balancer) tries again instead of taking it for a bug.
var errUnavailable = consent.Errorf(consent.EUnavailable, "the database is unavailable; try again shortly")

// unavailableError is a failure to reach the database. It unwraps to the
// driver's error and to errUnavailable.
type unavailableError struct{ err error }

func (e unavailableError) Error() string   { return "postgres: database unavailable: " + e.err.Error() }
func (e unavailableError) Unwrap() []error { return []error{e.err, errUnavailable} }

// unavailable marks err when it says the database could not be reached
// or went away (refused or broken connections, a server shutting down or
// starting up); other errors, nil included, it returns as they are.
func unavailable(err error) error {
	if err == nil {
		return nil
	}
	var ce *pgconn.ConnectError
	var ne net.Error
	var pe *pgconn.PgError
	switch {
	case errors.As(err, &ce), errors.As(err, &ne), errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
	case errors.As(err, &pe) && (pe.Code[:2] == "08" || pe.Code == "57P01" || pe.Code == "57P02" || pe.Code == "57P03"):
		// connection_exception; admin_shutdown, crash_shutdown, cannot_connect_now
	default:
		return err
	}
	return unavailableError{err}
}

// guarded is a querier whose errors say when the database is unavailable.
type guarded struct{ q querier }

func (g guarded) Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error) {
	tag, err := g.q.Exec(ctx, sql, args...)
	return tag, unavailable(err)
}

func (g guarded) Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error) {
	rows, err := g.q.Query(ctx, sql, args...)
	return rows, unavailable(err)
}

func (g guarded) QueryRow(ctx context.Context, sql string, args ...any) pgx.Row {
	return guardedRow{g.q.QueryRow(ctx, sql, args...)}
}

type guardedRow struct{ r pgx.Row }

func (r guardedRow) Scan(dst ...any) error { return unavailable(r.r.Scan(dst...)) }
