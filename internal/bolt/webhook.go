package bolt

import (
	"bytes"
	"context"
	"time"

	"go.etcd.io/bbolt"

	"optin/internal/consent"
)

// Deliveries wait in webhook_queue, grouped by endpoint and subscriber in
// commit order. Only the first delivery of each group has an entry in
// webhook_due, keyed by when it is due: finishing or parking it puts the
// next one of its group there, due at once. So the worker reads only due
// group heads, and a group's deliveries go out in order.

// webhooks returns the stored endpoints in id order.
func webhooks(tx *bbolt.Tx) ([]consent.Webhook, error) {
	var hooks []consent.Webhook
	err := tx.Bucket(bucketWebhooks).ForEach(func(_, v []byte) error {
		var w consent.Webhook
		if err := decode(v, &w); err != nil {
			return err
		}
		hooks = append(hooks, w)
		return nil
	})
	return hooks, err
}

// queueEvent queues the deliveries of ledger event ev.
func queueEvent(tx *bbolt.Tx, ev *consent.Event) error {
	if _, ok := consent.WebhookEventOf(ev.Type); !ok {
		return nil
	}
	hooks, err := webhooks(tx)
	if err != nil || len(hooks) == 0 {
		return err
	}
	return queueDeliveries(tx, ev.Queue(hooks))
}

// QueueHead implements consent.WebhookStore.
func (db *DB) QueueHead(ctx context.Context, note string) error {
	return db.update(ctx, func(tx *bbolt.Tx) error {
		hooks, err := webhooks(tx)
		if err != nil || len(hooks) == 0 {
			return err
		}
		return queueDeliveries(tx, consent.QueueHead(hooks, note, db.Now()))
	})
}

// suppressAddress writes suppression s of the address with key and
// queues the suppressed webhooks it causes (consent.Suppression.Reported),
// naming the subscriber who holds the address, if any. Every suppression
// a person did not cause by opting out goes through here.
// An address already suppressed for s's scope keeps its entry and queues
// nothing.
func suppressAddress(tx *bbolt.Tx, s consent.Suppression, key string) error {
	if tx.Bucket(bucketSuppressed).Get(pairKey(s.Hash, s.Scope)) != nil {
		return nil
	}
	if err := suppress(tx, s); err != nil || !s.Reported() {
		return err
	}
	hooks, err := webhooks(tx)
	if err != nil || len(hooks) == 0 {
		return err
	}
	sub, err := subscriberByKey(tx, key)
	if err != nil {
		return err
	}
	id := ""
	if sub != nil {
		id = sub.ID
	}
	return queueDeliveries(tx, consent.QueueSuppressed(hooks, s, id))
}

// queueDeliveries stores new deliveries, each with a new id; one that starts its group is due at once.
func queueDeliveries(tx *bbolt.Tx, ds []consent.Delivery) error {
	for i := range ds {
		d := &ds[i]
		id, err := tx.Bucket(bucketHookQueue).NextSequence()
		if err != nil {
			return err
		}
		d.ID = id
		if err := enqueueDelivery(tx, d, d.Created); err != nil {
			return err
		}
	}
	return nil
}

// enqueueDelivery appends d (with its id set) to its group, due at now
// when the group was empty.
func enqueueDelivery(tx *bbolt.Tx, d *consent.Delivery, now time.Time) error {
	group := hookGroup(d.Webhook, d.Subscriber)
	first, _ := tx.Bucket(bucketHookQueue).Cursor().Seek(group)
	d.NextAt = time.Time{}
	if !hasPrefix(first, group) {
		d.NextAt = now
		if err := tx.Bucket(bucketHookDue).Put(outboxKey(now, d.ID), hookQueueKey(d)); err != nil {
			return err
		}
	}
	return put(tx, bucketHookQueue, hookQueueKey(d), d)
}

// CreateWebhook stores w with a new id, audited.
func (db *DB) CreateWebhook(ctx context.Context, a consent.Actor, w consent.Webhook) (consent.Webhook, error) {
	err := db.update(ctx, func(tx *bbolt.Tx) error {
		if countPrefix(tx.Bucket(bucketWebhooks), nil) >= consent.MaxWebhooks {
			return consent.Errorf(consent.EConflict, "at most %d webhook endpoints; delete one first", consent.MaxWebhooks)
		}
		w.ID, w.Created = db.ID(), db.Now()
		if err := put(tx, bucketWebhooks, []byte(w.ID), w); err != nil {
			return err
		}
		return db.audit(tx, a, "webhook.create", w.ID+" "+w.URL, 1)
	})
	return w, err
}

// Webhook returns endpoint id with its secret.
func (db *DB) Webhook(ctx context.Context, id string) (consent.Webhook, error) {
	var w consent.Webhook
	err := db.view(func(tx *bbolt.Tx) error { return mustGet(tx, bucketWebhooks, id, &w, "webhook") })
	return w, err
}

// Webhooks lists the endpoints with their queued and parked counts.
func (db *DB) Webhooks(ctx context.Context) ([]consent.WebhookInfo, error) {
	out := []consent.WebhookInfo{}
	err := db.view(func(tx *bbolt.Tx) error {
		hooks, err := webhooks(tx)
		for _, w := range hooks {
			prefix := pairKey(w.ID, "")
			out = append(out, w.Info(countPrefix(tx.Bucket(bucketHookQueue), prefix), countPrefix(tx.Bucket(bucketHookParked), prefix)))
		}
		return err
	})
	return out, err
}

// countPrefix counts the keys of b that start with prefix.
func countPrefix(b *bbolt.Bucket, prefix []byte) int {
	n := 0
	c := b.Cursor()
	for k, _ := c.Seek(prefix); hasPrefix(k, prefix); k, _ = c.Next() {
		n++
	}
	return n
}

// DeleteWebhook deletes endpoint id and its deliveries, audited.
func (db *DB) DeleteWebhook(ctx context.Context, a consent.Actor, id string) error {
	return db.update(ctx, func(tx *bbolt.Tx) error {
		var w consent.Webhook
		if err := mustGet(tx, bucketWebhooks, id, &w, "webhook"); err != nil {
			return err
		}
		prefix := pairKey(id, "")
		n := 0
		for _, k := range keysWithPrefix(tx.Bucket(bucketHookQueue), prefix) {
			var d consent.Delivery
			if _, err := get(tx, bucketHookQueue, k, &d); err != nil {
				return err
			}
			if !d.NextAt.IsZero() {
				if err := tx.Bucket(bucketHookDue).Delete(outboxKey(d.NextAt, d.ID)); err != nil {
					return err
				}
			}
			if err := tx.Bucket(bucketHookQueue).Delete(k); err != nil {
				return err
			}
			n++
		}
		for _, k := range keysWithPrefix(tx.Bucket(bucketHookParked), prefix) {
			if err := tx.Bucket(bucketHookParked).Delete(k); err != nil {
				return err
			}
			n++
		}
		if err := tx.Bucket(bucketWebhooks).Delete([]byte(id)); err != nil {
			return err
		}
		return db.audit(tx, a, "webhook.delete", id+" "+w.URL, n)
	})
}

// RedeliverWebhook queues endpoint id's parked deliveries again.
func (db *DB) RedeliverWebhook(ctx context.Context, a consent.Actor, id string) (int, error) {
	n := 0
	err := db.update(ctx, func(tx *bbolt.Tx) error {
		n = 0
		if err := mustGet(tx, bucketWebhooks, id, new(consent.Webhook), "webhook"); err != nil {
			return err
		}
		now := db.Now()
		var ds []consent.Delivery
		for _, k := range keysWithPrefix(tx.Bucket(bucketHookParked), pairKey(id, "")) {
			var d consent.Delivery
			if _, err := get(tx, bucketHookParked, k, &d); err != nil {
				return err
			}
			if err := tx.Bucket(bucketHookParked).Delete(k); err != nil {
				return err
			}
			d.Msg, d.Attempts, d.LastError = d.MessageID(), 0, ""
			ds = append(ds, d)
		}
		for i := range ds {
			seq, err := tx.Bucket(bucketHookQueue).NextSequence()
			if err != nil {
				return err
			}
			ds[i].ID = seq
			if err := enqueueDelivery(tx, &ds[i], now); err != nil {
				return err
			}
		}
		n = len(ds)
		return db.audit(tx, a, "webhook.redeliver", id, n)
	})
	return n, err
}

// DueDeliveries returns up to limit due group heads in due order.
func (db *DB) DueDeliveries(ctx context.Context, now time.Time, limit int, skip func(d consent.Delivery) bool) ([]consent.Delivery, error) {
	var ds []consent.Delivery
	err := db.view(func(tx *bbolt.Tx) error {
		c := tx.Bucket(bucketHookDue).Cursor()
		for k, v := c.First(); k != nil && len(ds) < limit; k, v = c.Next() {
			if outboxDue(k).After(now) {
				break
			}
			var d consent.Delivery
			ok, err := get(tx, bucketHookQueue, v, &d)
			if err != nil {
				return err
			}
			if ok && (skip == nil || !skip(d)) {
				ds = append(ds, d)
			}
		}
		return nil
	})
	return ds, err
}

// NextDelivery returns when the earliest delivery is due.
func (db *DB) NextDelivery(ctx context.Context) (time.Time, error) {
	var t time.Time
	err := db.view(func(tx *bbolt.Tx) error {
		if k, _ := tx.Bucket(bucketHookDue).Cursor().First(); k != nil {
			t = outboxDue(k)
		}
		return nil
	})
	return t, err
}

// DeliveryContent returns d's ledger event and its subscriber, if still
// held.
func (db *DB) DeliveryContent(ctx context.Context, d consent.Delivery) (*consent.Event, *consent.Subscriber, error) {
	var ev *consent.Event
	var sub *consent.Subscriber
	err := db.view(func(tx *bbolt.Tx) error {
		if d.Seq != 0 {
			ev = new(consent.Event)
			if ok, err := get(tx, bucketLedger, u64(d.Seq), ev); err != nil || !ok {
				ev = nil
				return err
			}
		}
		if d.Subscriber != "" {
			s := new(consent.Subscriber)
			if ok, err := get(tx, bucketSubscribers, []byte(d.Subscriber), s); err != nil || !ok {
				return err
			}
			sub = s
		}
		return nil
	})
	return ev, sub, err
}

// takeDelivery removes d from the queue and from the due index, and makes
// the next delivery of its group due at now. It returns the stored
// delivery, or nil when d is gone (its endpoint was deleted).
func takeDelivery(tx *bbolt.Tx, d consent.Delivery, now time.Time) (*consent.Delivery, error) {
	key := hookQueueKey(&d)
	stored := new(consent.Delivery)
	if ok, err := get(tx, bucketHookQueue, key, stored); err != nil || !ok {
		return nil, err
	}
	if err := tx.Bucket(bucketHookDue).Delete(outboxKey(stored.NextAt, stored.ID)); err != nil {
		return nil, err
	}
	if err := tx.Bucket(bucketHookQueue).Delete(key); err != nil {
		return nil, err
	}
	group := hookGroup(d.Webhook, d.Subscriber)
	k, v := tx.Bucket(bucketHookQueue).Cursor().Seek(group)
	if !hasPrefix(k, group) {
		return stored, nil
	}
	var next consent.Delivery
	if err := decode(v, &next); err != nil {
		return nil, err
	}
	next.NextAt = now
	if err := tx.Bucket(bucketHookDue).Put(outboxKey(now, next.ID), bytes.Clone(k)); err != nil {
		return nil, err
	}
	return stored, put(tx, bucketHookQueue, bytes.Clone(k), next)
}

// FinishDelivery removes d and makes the next of its group due.
func (db *DB) FinishDelivery(ctx context.Context, d consent.Delivery) error {
	return db.update(ctx, func(tx *bbolt.Tx) error {
		_, err := takeDelivery(tx, d, db.Now())
		return err
	})
}

// RetryDelivery records a failed attempt and makes d due at next.
func (db *DB) RetryDelivery(ctx context.Context, d consent.Delivery, next time.Time, reason string) error {
	return db.update(ctx, func(tx *bbolt.Tx) error {
		key := hookQueueKey(&d)
		var stored consent.Delivery
		if ok, err := get(tx, bucketHookQueue, key, &stored); err != nil || !ok {
			return err
		}
		if err := tx.Bucket(bucketHookDue).Delete(outboxKey(stored.NextAt, stored.ID)); err != nil {
			return err
		}
		stored.Attempts++
		stored.NextAt = next.UTC().Truncate(time.Millisecond)
		stored.LastError = reason
		if err := tx.Bucket(bucketHookDue).Put(outboxKey(stored.NextAt, stored.ID), key); err != nil {
			return err
		}
		return put(tx, bucketHookQueue, key, stored)
	})
}

// ParkDelivery sets d aside with reason and makes the next of its group
// due.
func (db *DB) ParkDelivery(ctx context.Context, d consent.Delivery, reason string) error {
	return db.update(ctx, func(tx *bbolt.Tx) error {
		stored, err := takeDelivery(tx, d, db.Now())
		if err != nil || stored == nil {
			return err
		}
		stored.Attempts++
		stored.LastError = reason
		stored.NextAt = time.Time{}
		return put(tx, bucketHookParked, hookParkedKey(stored), stored)
	})
}

// WebhookDepth counts the queued and the parked deliveries.
func (db *DB) WebhookDepth(ctx context.Context) (queued, parked int, err error) {
	err = db.view(func(tx *bbolt.Tx) error {
		queued = tx.Bucket(bucketHookQueue).Stats().KeyN
		parked = tx.Bucket(bucketHookParked).Stats().KeyN
		return nil
	})
	return queued, parked, err
}
