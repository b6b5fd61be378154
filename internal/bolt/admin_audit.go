package bolt

import (
	"context"
	"strconv"

	"go.etcd.io/bbolt"

	"optin/internal/consent"
)

// audit appends an entry to the audit log inside the admin write's own
// transaction, so a write and its record commit or fail together.
func (db *DB) audit(tx *bbolt.Tx, a consent.Actor, action, target string, count int) error {
	b := tx.Bucket(bucketAudit)
	seq, err := b.NextSequence()
	if err != nil {
		return err
	}
	e := consent.AuditEntry{Seq: seq, Time: db.Now(), Key: a.Name, KeyID: a.KeyID, Action: action, Target: target, Count: count}
	return put(tx, bucketAudit, u64(seq), e)
}

// AuditRead records a bulk read of personal data, such as an export or a
// backup (GDPR Art. 5(2) and 33(3)). Reads run in read transactions, so
// the entry is written right after, in its own.
func (db *DB) AuditRead(ctx context.Context, a consent.Actor, action, target string, count int) error {
	return db.update(ctx, func(tx *bbolt.Tx) error { return db.audit(tx, a, action, target, count) })
}

// Audit returns up to limit audit entries, newest first, older than the
// entry numbered cursor ("" starts at the newest). next is the cursor of
// the following page, "" after the oldest entry. A malformed cursor is
// EInvalid.
func (db *DB) Audit(ctx context.Context, cursor string, limit int) (entries []consent.AuditEntry, next string, err error) {
	var before uint64
	if cursor != "" {
		if before, err = strconv.ParseUint(cursor, 10, 64); err != nil || before == 0 {
			return nil, "", consent.Errorf(consent.EInvalid, "cursor must be a value from next_cursor")
		}
	}
	entries = []consent.AuditEntry{}
	err = db.view(func(tx *bbolt.Tx) error {
		c := tx.Bucket(bucketAudit).Cursor()
		var k, v []byte
		if before == 0 {
			k, v = c.Last()
		} else {
			if k, _ = c.Seek(u64(before)); k == nil {
				k, v = c.Last()
			} else {
				k, v = c.Prev()
			}
		}
		for ; k != nil && len(entries) < limit; k, v = c.Prev() {
			var e consent.AuditEntry
			if err := decode(v, &e); err != nil {
				return err
			}
			entries = append(entries, e)
		}
		if k != nil && len(entries) > 0 {
			next = strconv.FormatUint(entries[len(entries)-1].Seq, 10)
		}
		return nil
	})
	return entries, next, err
}
