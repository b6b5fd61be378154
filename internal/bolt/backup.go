package bolt

import (
	"context"
	"io"

	"go.etcd.io/bbolt"
)

// Backup writes a consistent snapshot of the whole database to w from one
// read transaction, while writers go on; size is called with the
// snapshot's size in bytes before the first byte is written. The copy is
// a valid bbolt file: restore it by stopping optin and putting it in place
// of data_dir/optin.db (with the same secrets.json).
func (db *DB) Backup(ctx context.Context, w io.Writer, size func(int64)) error {
	return db.view(func(tx *bbolt.Tx) error {
		if size != nil {
			size(tx.Size())
		}
		_, err := tx.WriteTo(w)
		return err
	})
}
