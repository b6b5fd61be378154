package postgres

import (
	"context"
	"errors"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// maxPipe is how many statements wait in a pipe at most before they go
// out, so a long write (a load of a whole store) does not hold them all in
// memory.
const maxPipe = 1000

// pipe is a write transaction's querier. Statements whose results the
// use case does not read (conn.exec) wait in a batch, and go out in one
// round trip (pgx's pipeline) right before the next statement whose
// result is read, or before the commit; a use case therefore reads what
// it wrote, as with single statements. Most of a signup's writes cost no
// round trip of their own this way.
type pipe struct {
	tx    pgx.Tx
	q     querier // guarded{tx}
	batch pgx.Batch
	// owners names, for each waiting statement, the call of the batch
	// of writes (its index in run's calls) that queued it.
	owners []int
	// call is the index of the call running now.
	call int
	// bulks are the bulk inserts waiting, in the order of their first
	// rows (bulk.go).
	bulks []*bulkStmt
}

// pipeError is the failure of a waiting statement, naming the call that
// queued it.
type pipeError struct {
	call int
	err  error
}

func (e *pipeError) Error() string { return e.err.Error() }
func (e *pipeError) Unwrap() error { return e.err }

// queue adds a statement to the waiting ones, sending them when there are
// maxPipe.
func (p *pipe) queue(ctx context.Context, sql string, args ...any) error {
	p.spill()
	p.batch.Queue(sql, args...)
	p.owners = append(p.owners, p.call)
	if len(p.owners) >= maxPipe {
		return p.flush(ctx)
	}
	return nil
}

// flush sends the waiting statements in one round trip. A failure is a
// *pipeError naming the call whose statement failed; the transaction is
// then aborted.
func (p *pipe) flush(ctx context.Context) error {
	p.spill()
	if len(p.owners) == 0 {
		return nil
	}
	owners, batch := p.owners, p.batch
	p.batch, p.owners = pgx.Batch{}, nil
	br := p.tx.SendBatch(ctx, &batch)
	for _, owner := range owners {
		if _, err := br.Exec(); err != nil {
			br.Close()
			return &pipeError{call: owner, err: unavailable(err)}
		}
	}
	if err := br.Close(); err != nil {
		return &pipeError{call: owners[len(owners)-1], err: unavailable(err)}
	}
	return nil
}

func (p *pipe) Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error) {
	if err := p.flush(ctx); err != nil {
		return pgconn.CommandTag{}, err
	}
	return p.q.Exec(ctx, sql, args...)
}

func (p *pipe) Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error) {
	if err := p.flush(ctx); err != nil {
		return nil, err
	}
	return p.q.Query(ctx, sql, args...)
}

// QueryRow sends the waiting statements and sql in one round trip.
func (p *pipe) QueryRow(ctx context.Context, sql string, args ...any) pgx.Row {
	p.spill()
	if len(p.owners) == 0 {
		return p.q.QueryRow(ctx, sql, args...)
	}
	owners, batch := p.owners, p.batch
	p.batch, p.owners = pgx.Batch{}, nil
	batch.Queue(sql, args...)
	br := p.tx.SendBatch(ctx, &batch)
	for _, owner := range owners {
		if _, err := br.Exec(); err != nil {
			br.Close()
			return errRow{&pipeError{call: owner, err: unavailable(err)}}
		}
	}
	return batchRow{br}
}

// batchRow is the row of the last statement of a batch.
type batchRow struct{ br pgx.BatchResults }

func (r batchRow) Scan(dst ...any) error {
	err := r.br.QueryRow().Scan(dst...)
	if cerr := r.br.Close(); err == nil && cerr != nil {
		err = cerr
	}
	return unavailable(err)
}

// errRow is a row whose statement could not run.
type errRow struct{ err error }

func (r errRow) Scan(...any) error { return r.err }

// callOf returns the index of the call err names when it is the failure
// of a statement that waited in the pipe, else i.
func callOf(err error, i int) int {
	var pe *pipeError
	if errors.As(err, &pe) {
		return pe.call
	}
	return i
}
