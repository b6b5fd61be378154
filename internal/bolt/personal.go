package bolt

import (
	"bytes"
	"fmt"

	"go.etcd.io/bbolt"

	"optin/internal/bolt/record"
	"optin/internal/consent"
)

// A personal record whose address is its subscriber's leaves it out and
// is stored with record.RefMagic; reading it takes the address from the
// subscriber its event names (decodeAt). So the address of an imported
// or signed-up person is stored once, in the subscriber, not again in
// the personal record of each of their events. The invariant: a
// RefMagic personal record's subscriber exists and holds its address.
// It holds because a subscriber's address changes, and a subscriber
// goes, only through put and del, which first write the address back
// into the records that leave it (track, moveAddress); erasure and the
// sweep delete the personal records before the subscriber. The event's
// personal digest is of the whole record, address included, as before.

// storePersonal stores p, the personal record of event seq of subscriber
// sub, leaving its address to the subscriber when the subscriber's
// stored record holds the same one.
func storePersonal(tx *bbolt.Tx, seq uint64, sub string, p *consent.Personal) error {
	ref := p.Email != "" && subscriberEmail(tx, sub) == p.Email
	if ref {
		short := *p
		short.Email = ""
		p = &short
	}
	v, err := record.MarshalWith(p, sharedStrings(tx))
	if err != nil {
		return err
	}
	if ref {
		v[0] = record.RefMagic
	}
	return bucketOf(tx, bucketPersonal).Put(u64(seq), v)
}

// storeFreshPersonal stores p, the personal record of event seq of a
// subscriber not stored yet who will hold address, as leaveAddress leaves
// it once the subscriber is stored: without address when it holds it
// written out.
func storeFreshPersonal(tx *bbolt.Tx, seq uint64, address string, p *consent.Personal) error {
	v, err := record.MarshalWith(p, sharedStrings(tx))
	if err != nil {
		return err
	}
	if short, ok := withoutAddress(v, address); ok {
		v = short
	}
	return bucketOf(tx, bucketPersonal).Put(u64(seq), v)
}

// withoutAddress returns personal record v without its address when it
// holds address written out, marked as one whose subscriber holds it
// (record.RefMagic).
func withoutAddress(v []byte, address string) ([]byte, bool) {
	short, ok := record.WithoutString(v, "email", address)
	if ok {
		short[0] = record.RefMagic
	}
	return short, ok
}

// subscriberEmail returns the address stored for subscriber id ("" for
// none), decoding nothing else.
func subscriberEmail(tx *bbolt.Tx, id string) string {
	v := getStored(tx.Bucket(bucketSubscribers), bucketSubscribers, []byte(id))
	if v == nil {
		return ""
	}
	var s struct {
		Email string `json:"email"`
	}
	if record.Unmarshal(v, &s) != nil {
		return ""
	}
	return s.Email
}

// fillAddress puts back into p, the personal record stored as v at key
// k, the address it left to its subscriber.
func fillAddress(tx *bbolt.Tx, k, v []byte, p *consent.Personal) error {
	if v[0] != record.RefMagic || p.Email != "" {
		return nil
	}
	var ev struct {
		Subscriber string `json:"subscriber"`
	}
	if err := record.Unmarshal(tx.Bucket(bucketLedger).Get(k), &ev); err != nil {
		return fmt.Errorf("bolt: personal record %d: its event: %w", beUint64(k), err)
	}
	if p.Email = subscriberEmail(tx, ev.Subscriber); p.Email == "" {
		return fmt.Errorf("bolt: personal record %d: subscriber %s, who holds its address, is missing", beUint64(k), ev.Subscriber)
	}
	return nil
}

// leaveAddress shortens the personal records that hold address of the
// events of subscriber id appended before the subscriber was first
// stored (an import's), which is about to happen. Those events are of
// this version, so their ledger_bysub keys are of the present form.
func leaveAddress(tx *bbolt.Tx, id, address string) error {
	prefix := record.ID(id)
	if len(prefix) == len(id) {
		prefix = oldLedgerBySubKey(id, 0)[:len(id)+1]
	}
	b := bucketOf(tx, bucketPersonal)
	c := tx.Bucket(bucketLedgerBySub).Cursor()
	for k, _ := c.Seek(prefix); hasPrefix(k, prefix); k, _ = c.Next() {
		seq, ok := bySubSeq(k, len(prefix))
		if !ok {
			continue
		}
		key := u64(seq)
		if short, ok := withoutAddress(b.Get(key), address); ok {
			if err := b.Put(key, short); err != nil {
				return err
			}
		}
	}
	return nil
}

// restoreAddress writes address back into the personal records of
// subscriber id that left it out, before the subscriber's address
// changes or the subscriber goes.
func restoreAddress(tx *bbolt.Tx, id, address string) error {
	b := bucketOf(tx, bucketPersonal)
	for _, seq := range subscriberEvents(tx, id) {
		v := b.Get(seq)
		if len(v) == 0 || v[0] != record.RefMagic {
			continue
		}
		p := new(consent.Personal)
		if err := record.UnmarshalWith(v, p, sharedStrings(tx)); err != nil {
			return fmt.Errorf("bolt: personal record %d: %w", beUint64(seq), err)
		}
		p.Email = address
		nv, err := record.MarshalWith(p, sharedStrings(tx))
		if err != nil {
			return err
		}
		if err := b.Put(bytes.Clone(seq), nv); err != nil {
			return err
		}
	}
	return nil
}

// moveAddress keeps the personal records of a subscriber stored as old
// and about to be stored as sub (nil: deleted) true to their addresses.
func moveAddress(tx *bbolt.Tx, old, sub *consent.Subscriber) error {
	switch {
	case old == nil && sub != nil:
		return leaveAddress(tx, sub.ID, sub.Email)
	case old != nil && (sub == nil || sub.Email != old.Email):
		return restoreAddress(tx, old.ID, old.Email)
	}
	return nil
}

// personalJSON returns the JSON of the personal record v stored at key k
// (nil for none), the form its digest is of, with its address.
func personalJSON(tx *bbolt.Tx, k, v []byte) ([]byte, error) {
	if !record.IsCompact(v) {
		return bytes.Clone(v), nil
	}
	var p consent.Personal
	if err := decodeAt(tx, bucketPersonal, k, v, &p); err != nil {
		return nil, err
	}
	data, _ := p.Encode()
	return data, nil
}
