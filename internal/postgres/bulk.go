package postgres

import (
	"context"
	"time"
)

// manyCalls is the call a failed statement names when it held rows of
// several calls (a bulk insert): the batch's calls then run one by one.
const manyCalls = -2

// bulkStmt is an insert of rows that wait in the pipe: the rows of the
// same statement queued one after the other, by any calls, go out as one
// statement, whose sql takes each column as an array ($1, $2, ... in
// unnest), so a batch of signups costs one insert per table.
type bulkStmt struct {
	sql string
	// cols holds the columns: []string, []*string, [][]byte, []int64,
	// []*int16, []time.Time or []*time.Time.
	cols []any
	// owner is the call of every row, or manyCalls.
	owner int
	n     int
}

// Bulk inserts of the hot path. Each column travels as an array; the
// records are bytea in the compact encoding (encodeRecord), the ids
// bytea too (dbID).
const (
	// bulkSubscribers takes subs as the text of the array
	// (subsText): an array of rows cannot hold arrays.
	bulkSubscribers = `INSERT INTO subscribers (id, email_key, data, last_purchase, subs, proven)
		SELECT i, k, d, l, c::smallint[], p FROM unnest($1::bytea[], $2::text[], $3::bytea[], $4::timestamptz[], $5::text[], $6::bytea[]) AS u(i, k, d, l, c, p)`
	bulkRequests = `INSERT INTO requests (id, subscriber, data)
		SELECT * FROM unnest($1::bytea[], $2::bytea[], $3::bytea[])`
	bulkLedger = `INSERT INTO ledger (seq, subscriber, event, personal, tree)
		SELECT * FROM unnest($1::bigint[], $2::bytea[], $3::bytea[], $4::bytea[], $5::bytea[])`
	bulkOutbox = `INSERT INTO outbox (id, next_at, subscriber, job)
		SELECT nextval('outbox_ids'), n, s, j FROM unnest($1::timestamptz[], $2::bytea[], $3::bytea[]) AS u(n, s, j)`
)

// row queues one row of the bulk insert sql (one of the bulk constants);
// values are string, *string, []byte, int64, *int16, time.Time or *time.Time, in
// the order of sql's arrays. A statement queued in between sends the
// rows first (spill), so statements keep their order.
func (p *pipe) row(ctx context.Context, sql string, values ...any) error {
	var b *bulkStmt
	if n := len(p.bulks); n > 0 && p.bulks[n-1].sql == sql {
		b = p.bulks[n-1]
	} else {
		for _, o := range p.bulks {
			if o.sql == sql {
				b = o
			}
		}
	}
	if b == nil {
		b = &bulkStmt{sql: sql, owner: p.call, cols: make([]any, len(values))}
		for i, v := range values {
			switch v.(type) {
			case string:
				b.cols[i] = []string(nil)
			case *string:
				b.cols[i] = []*string(nil)
			case []byte:
				b.cols[i] = [][]byte(nil)
			case int64:
				b.cols[i] = []int64(nil)
			case *int16:
				b.cols[i] = []*int16(nil)
			case time.Time:
				b.cols[i] = []time.Time(nil)
			case *time.Time:
				b.cols[i] = []*time.Time(nil)
			}
		}
		p.bulks = append(p.bulks, b)
	}
	if b.owner != p.call {
		b.owner = manyCalls
	}
	for i, v := range values {
		switch c := b.cols[i].(type) {
		case []string:
			b.cols[i] = append(c, v.(string))
		case []*string:
			b.cols[i] = append(c, v.(*string))
		case [][]byte:
			b.cols[i] = append(c, v.([]byte))
		case []int64:
			b.cols[i] = append(c, v.(int64))
		case []*int16:
			b.cols[i] = append(c, v.(*int16))
		case []time.Time:
			b.cols[i] = append(c, v.(time.Time))
		case []*time.Time:
			b.cols[i] = append(c, v.(*time.Time))
		}
	}
	b.n++
	if b.n >= maxPipe {
		return p.flush(ctx)
	}
	return nil
}

// spill moves the waiting bulk inserts into the batch, each as one
// statement.
func (p *pipe) spill() {
	for _, b := range p.bulks {
		p.batch.Queue(b.sql, b.cols...)
		p.owners = append(p.owners, b.owner)
	}
	p.bulks = nil
}

// bulkRow queues a row of a bulk insert through t's pipe.
func (t *tx) bulkRow(sql string, values ...any) error {
	return t.pipe.row(t.ctx, sql, values...)
}
