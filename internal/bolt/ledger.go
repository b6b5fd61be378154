package bolt

import (
	"fmt"

	"go.etcd.io/bbolt"

	"optin/internal/bolt/record"
	"optin/internal/consent"
)

// decodeEvent decodes the ledger event stored at key k with value v, in
// either encoding, restoring what the compact one leaves out (see
// record.MarshalEvent).
func decodeEvent(tx *bbolt.Tx, k, v []byte, ev *consent.Event) error {
	seq := beUint64(k)
	err := record.UnmarshalEvent(v, seq, func() (string, error) {
		return record.EventHash(tx.Bucket(bucketLedger).Get(u64(seq - 1)))
	}, sharedStrings(tx), ev)
	if err != nil {
		return fmt.Errorf("bolt: decode event %d: %w", seq, err)
	}
	return nil
}

// sharedStrings returns the table of strings ledger events share.
func sharedStrings(tx *bbolt.Tx) record.Strings {
	return record.BucketStrings{B: tx.Bucket(bucketStrings)}
}
