package bolt

import (
	"context"
	"strconv"
	"time"

	"go.etcd.io/bbolt"

	"optin/internal/consent"
)

// Actor is who performs an admin write: an API key, or the local CLI
// through the admin socket. It is recorded in the audit log and, as
// admin:<name>, in the source of ledger events the write causes.
type Actor struct {
	// Name is the API key's name, or "cli".
	Name string `json:"key"`
	// KeyID is the first 16 hex digits of the key's hash; empty for the CLI.
	KeyID string `json:"key_id,omitempty"`
}

// ActorOf returns the actor for an authenticated API key.
func ActorOf(k consent.APIKey) Actor { return Actor{Name: k.Name, KeyID: KeyID(k.Hash)} }

// CLIActor returns the actor of commands run through the admin socket or
// on the database file directly.
func CLIActor() Actor { return Actor{Name: "cli"} }

// Source returns the ledger source of events caused by a.
func (a Actor) Source() string { return "admin:" + a.Name }

// KeyID returns the public identifier of an API key: the first 16 hex
// digits of its hash. It names the key in the audit log and in revocation.
func KeyID(hash string) string {
	if len(hash) > 16 {
		return hash[:16]
	}
	return hash
}

// AuditEntry records one admin write: who, what, on what, how many records.
type AuditEntry struct {
	Seq    uint64    `json:"seq"`
	Time   time.Time `json:"time"`
	Key    string    `json:"key"`
	KeyID  string    `json:"key_id,omitempty"`
	Action string    `json:"action"`
	Target string    `json:"target,omitempty"`
	Count  int       `json:"count"`
}

// audit appends an entry to the audit log inside the admin write's own
// transaction, so a write and its record commit or fail together.
func (db *DB) audit(tx *bbolt.Tx, a Actor, action, target string, count int) error {
	b := tx.Bucket(bucketAudit)
	seq, err := b.NextSequence()
	if err != nil {
		return err
	}
	e := AuditEntry{Seq: seq, Time: db.Now(), Key: a.Name, KeyID: a.KeyID, Action: action, Target: target, Count: count}
	return put(tx, bucketAudit, u64(seq), e)
}

// AuditRead records a bulk read of personal data, such as an export or a
// backup (R84). Reads run in read transactions, so the entry is written
// right after, in its own.
func (db *DB) AuditRead(ctx context.Context, a Actor, action, target string, count int) error {
	return db.update(func(tx *bbolt.Tx) error { return db.audit(tx, a, action, target, count) })
}

// Audit returns up to limit audit entries, newest first, older than the
// entry numbered cursor ("" starts at the newest). next is the cursor of
// the following page, "" after the oldest entry. A malformed cursor is
// EInvalid.
func (db *DB) Audit(ctx context.Context, cursor string, limit int) (entries []AuditEntry, next string, err error) {
	var before uint64
	if cursor != "" {
		if before, err = strconv.ParseUint(cursor, 10, 64); err != nil || before == 0 {
			return nil, "", consent.Errorf(consent.EInvalid, "cursor must be a value from next_cursor")
		}
	}
	entries = []AuditEntry{}
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
			var e AuditEntry
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
