package bolt

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"iter"
	"time"

	"go.etcd.io/bbolt"

	"optin/internal/consent"
)

// Dump yields every record of the database from one read transaction (a
// consistent snapshot), in the order consent.StoreRecord names, for `optin
// migrate`. Console sessions stay behind: people sign in again. The
// iteration stops at the first error, which it yields.
func (db *DB) Dump(ctx context.Context) iter.Seq2[consent.StoreRecord, error] {
	return func(yield func(consent.StoreRecord, error) bool) {
		stopped := false
		emit := func(r consent.StoreRecord) error {
			if err := ctx.Err(); err != nil {
				return err
			}
			if !yield(r, nil) {
				stopped = true
				return errStopDump
			}
			return nil
		}
		err := db.view(func(tx *bbolt.Tx) error {
			for _, d := range dumpers {
				b := tx.Bucket(d.bucket)
				if b == nil { // a bucket added later, not yet made in this file
					continue
				}
				if err := b.ForEach(func(k, v []byte) error {
					r, err := d.record(tx, k, v)
					if err != nil {
						return fmt.Errorf("bolt: dump %s %x: %w", d.bucket, k, err)
					}
					return emit(r)
				}); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil && !stopped {
			yield(consent.StoreRecord{}, err)
		}
	}
}

// errStopDump ends the read transaction when the consumer stops.
var errStopDump = fmt.Errorf("bolt: dump stopped")

// dumper turns one bucket's entries into records.
type dumper struct {
	bucket []byte
	record func(tx *bbolt.Tx, k, v []byte) (consent.StoreRecord, error)
}

// decoded returns a dumper of a bucket of JSON values of type T, set in
// the record by set.
func decoded[T any](bucket []byte, set func(r *consent.StoreRecord, v *T)) dumper {
	return dumper{bucket, func(tx *bbolt.Tx, k, v []byte) (consent.StoreRecord, error) {
		var r consent.StoreRecord
		x := new(T)
		err := decodeAt(tx, bucket, k, v, x)
		set(&r, x)
		return r, err
	}}
}

// dumpers lists the buckets in the order a load can write them.
var dumpers = []dumper{
	decoded(bucketTopics, func(r *consent.StoreRecord, v *consent.Topic) { r.Topic = v }),
	decoded(bucketAssessments, func(r *consent.StoreRecord, v *consent.Assessment) { r.Assessment = v }),
	decoded(bucketForms, func(r *consent.StoreRecord, v *consent.Form) { r.Form = v }),
	{bucketWordings, func(_ *bbolt.Tx, k, v []byte) (consent.StoreRecord, error) {
		w := new(consent.Wording)
		err := decode(v, w)
		return consent.StoreRecord{Wording: w, WordingHash: string(k)}, err
	}},
	decoded(bucketAPIKeys, func(r *consent.StoreRecord, v *consent.APIKey) { r.APIKey = v }),
	decoded(bucketSubscribers, func(r *consent.StoreRecord, v *consent.Subscriber) { r.Subscriber = v }),
	decoded(bucketRequests, func(r *consent.StoreRecord, v *consent.Request) { r.Request = v }),
	{bucketLedger, func(tx *bbolt.Tx, k, v []byte) (consent.StoreRecord, error) {
		ev := new(consent.Event)
		if err := decodeEvent(tx, k, v, ev); err != nil {
			return consent.StoreRecord{}, err
		}
		personal, err := personalJSON(tx, k, tx.Bucket(bucketPersonal).Get(k))
		return consent.StoreRecord{Event: ev, Personal: personal}, err
	}},
	decoded(bucketOutbox, func(r *consent.StoreRecord, v *consent.Job) { r.Job = v }),
	decoded(bucketParked, func(r *consent.StoreRecord, v *consent.Job) { r.Job, r.Parked = v, true }),
	decoded(bucketSuppressed, func(r *consent.StoreRecord, v *consent.Suppression) { r.Suppression = v }),
	{bucketAudit, func(_ *bbolt.Tx, k, v []byte) (consent.StoreRecord, error) {
		e := new(consent.AuditEntry)
		err := decode(v, e)
		e.Seq = binary.BigEndian.Uint64(k)
		return consent.StoreRecord{Audit: e}, err
	}},
	decoded(bucketCampaigns, func(r *consent.StoreRecord, v *consent.Campaign) { r.Campaign = v }),
	decoded(bucketRecipients, func(r *consent.StoreRecord, v *consent.Recipient) { r.Recipient = v }),
	{bucketCampaignQ, func(_ *bbolt.Tx, k, v []byte) (consent.StoreRecord, error) {
		campaign, job, ok := bytes.Cut(k, []byte{0})
		if !ok || len(job) != 8 {
			return consent.StoreRecord{}, fmt.Errorf("malformed key")
		}
		return consent.StoreRecord{Queued: &consent.CampaignQueued{Campaign: string(campaign),
			Job: binary.BigEndian.Uint64(job), Subscriber: string(v)}}, nil
	}},
	{bucketCampaignDue, func(_ *bbolt.Tx, k, _ []byte) (consent.StoreRecord, error) {
		if len(k) < 10 {
			return consent.StoreRecord{}, fmt.Errorf("malformed key")
		}
		campaign, sub, ok := bytes.Cut(k[9:], []byte{0})
		if !ok {
			return consent.StoreRecord{}, fmt.Errorf("malformed key")
		}
		return consent.StoreRecord{Due: &consent.CampaignDue{Due: time.UnixMilli(int64(binary.BigEndian.Uint64(k))).UTC(),
			Kind: k[8], Campaign: string(campaign), Subscriber: string(sub)}}, nil
	}},
	decoded(bucketIncidents, func(r *consent.StoreRecord, v *consent.Incident) { r.Incident = v }),
	decoded(bucketWebhooks, func(r *consent.StoreRecord, v *consent.Webhook) { r.Webhook = v }),
	decoded(bucketHookQueue, func(r *consent.StoreRecord, v *consent.Delivery) { r.Delivery = v }),
	decoded(bucketHookParked, func(r *consent.StoreRecord, v *consent.Delivery) { r.Delivery, r.Parked = v, true }),
}
