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
// consistent snapshot), in the order consent.Record names, for `optin
// migrate`. Console sessions stay behind: people sign in again. The
// iteration stops at the first error, which it yields.
func (db *DB) Dump(ctx context.Context) iter.Seq2[consent.Record, error] {
	return func(yield func(consent.Record, error) bool) {
		stopped := false
		emit := func(r consent.Record) error {
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
			yield(consent.Record{}, err)
		}
	}
}

// errStopDump ends the read transaction when the consumer stops.
var errStopDump = fmt.Errorf("bolt: dump stopped")

// dumper turns one bucket's entries into records.
type dumper struct {
	bucket []byte
	record func(tx *bbolt.Tx, k, v []byte) (consent.Record, error)
}

// decoded returns a dumper of a bucket of JSON values of type T, set in
// the record by set.
func decoded[T any](bucket []byte, set func(r *consent.Record, v *T)) dumper {
	return dumper{bucket, func(_ *bbolt.Tx, _, v []byte) (consent.Record, error) {
		var r consent.Record
		x := new(T)
		err := decode(v, x)
		set(&r, x)
		return r, err
	}}
}

// dumpers lists the buckets in the order a load can write them.
var dumpers = []dumper{
	decoded(bucketTopics, func(r *consent.Record, v *consent.Topic) { r.Topic = v }),
	decoded(bucketForms, func(r *consent.Record, v *consent.Form) { r.Form = v }),
	{bucketWordings, func(_ *bbolt.Tx, k, v []byte) (consent.Record, error) {
		w := new(consent.Wording)
		err := decode(v, w)
		return consent.Record{Wording: w, WordingHash: string(k)}, err
	}},
	decoded(bucketAPIKeys, func(r *consent.Record, v *consent.APIKey) { r.APIKey = v }),
	decoded(bucketSubscribers, func(r *consent.Record, v *consent.Subscriber) { r.Subscriber = v }),
	decoded(bucketRequests, func(r *consent.Record, v *consent.Request) { r.Request = v }),
	{bucketLedger, func(tx *bbolt.Tx, k, v []byte) (consent.Record, error) {
		ev := new(consent.Event)
		err := decode(v, ev)
		return consent.Record{Event: ev, Personal: bytes.Clone(tx.Bucket(bucketPersonal).Get(k))}, err
	}},
	decoded(bucketOutbox, func(r *consent.Record, v *consent.Job) { r.Job = v }),
	decoded(bucketParked, func(r *consent.Record, v *consent.Job) { r.Job, r.Parked = v, true }),
	decoded(bucketSuppressed, func(r *consent.Record, v *consent.Suppression) { r.Suppression = v }),
	{bucketAudit, func(_ *bbolt.Tx, k, v []byte) (consent.Record, error) {
		e := new(consent.AuditEntry)
		err := decode(v, e)
		e.Seq = binary.BigEndian.Uint64(k)
		return consent.Record{Audit: e}, err
	}},
	decoded(bucketCampaigns, func(r *consent.Record, v *consent.Campaign) { r.Campaign = v }),
	decoded(bucketRecipients, func(r *consent.Record, v *consent.Recipient) { r.Recipient = v }),
	{bucketCampaignQ, func(_ *bbolt.Tx, k, v []byte) (consent.Record, error) {
		campaign, job, ok := bytes.Cut(k, []byte{0})
		if !ok || len(job) != 8 {
			return consent.Record{}, fmt.Errorf("malformed key")
		}
		return consent.Record{Queued: &consent.CampaignQueued{Campaign: string(campaign),
			Job: binary.BigEndian.Uint64(job), Subscriber: string(v)}}, nil
	}},
	{bucketCampaignDue, func(_ *bbolt.Tx, k, _ []byte) (consent.Record, error) {
		if len(k) < 10 {
			return consent.Record{}, fmt.Errorf("malformed key")
		}
		campaign, sub, ok := bytes.Cut(k[9:], []byte{0})
		if !ok {
			return consent.Record{}, fmt.Errorf("malformed key")
		}
		return consent.Record{Due: &consent.CampaignDue{Due: time.UnixMilli(int64(binary.BigEndian.Uint64(k))).UTC(),
			Kind: k[8], Campaign: string(campaign), Subscriber: string(sub)}}, nil
	}},
	decoded(bucketIncidents, func(r *consent.Record, v *consent.Incident) { r.Incident = v }),
	decoded(bucketWebhooks, func(r *consent.Record, v *consent.Webhook) { r.Webhook = v }),
	decoded(bucketHookQueue, func(r *consent.Record, v *consent.Delivery) { r.Delivery = v }),
	decoded(bucketHookParked, func(r *consent.Record, v *consent.Delivery) { r.Delivery, r.Parked = v, true }),
}
