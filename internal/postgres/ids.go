package postgres

import "optin/internal/bolt/record"

// Subscriber and request ids are bytea in every column (migration 0014):
// the 22 bytes of a consent.NewID id, as record.ID gives them, which sort
// as the text does. A statement takes an id as dbID(id) and scans one
// with scanID; a Go string given for a bytea parameter would be sent as
// text and stored as its characters.

// dbID is the stored form of the subscriber or request id id.
func dbID(id string) []byte {
	if b := record.ID(id); b != nil {
		return b
	}
	return []byte{} // "" is an empty id, not NULL
}

// dbIDs is dbID of each of ids, for an array parameter (bytea[]).
func dbIDs(ids []string) [][]byte {
	out := make([][]byte, len(ids))
	for i, id := range ids {
		out[i] = dbID(id)
	}
	return out
}

// idScanner scans a stored id (bytea) into a string.
type idScanner struct{ s *string }

// scanID returns the scan target that reads a stored id into s.
func scanID(s *string) idScanner { return idScanner{s} }

// ScanBytes implements pgtype.BytesScanner; a NULL reads as "".
func (d idScanner) ScanBytes(b []byte) error {
	*d.s = record.IDString(b)
	return nil
}
