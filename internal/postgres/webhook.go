package postgres

import (
	"context"
	"fmt"
	"time"

	"optin/internal/consent"
)

// Deliveries wait in webhook_queue; only the first delivery of each
// endpoint and subscriber has next_at set (see the migration), so the
// worker reads due group heads alone, leased as outbox jobs are, and a
// group's deliveries go out in commit order.

// webhooks returns the endpoints in id order, read once per transaction.
func webhooks(t *tx) ([]consent.Webhook, error) {
	if t.hooksRead {
		return t.hooks, nil
	}
	var hooks []consent.Webhook
	var b []byte
	err := t.each("SELECT data FROM webhooks ORDER BY id", nil, []any{&b}, func() error {
		var w consent.Webhook
		err := decode(b, &w)
		hooks = append(hooks, w)
		return err
	})
	if err != nil {
		return nil, err
	}
	t.hooks, t.hooksRead = hooks, true
	return hooks, nil
}

// queueEvent queues the deliveries of ledger event ev.
func queueEvent(t *tx, ev *consent.Event) error {
	if _, ok := consent.WebhookEventOf(ev.Type); !ok {
		return nil
	}
	hooks, err := webhooks(t)
	if err != nil || len(hooks) == 0 {
		return err
	}
	return queueDeliveries(t, ev.Queue(hooks), ev.Time)
}

// QueueHead implements consent.WebhookStore.
func (db *DB) QueueHead(ctx context.Context, note string) error {
	return db.update(ctx, func(t *tx) error {
		hooks, err := webhooks(t)
		if err != nil || len(hooks) == 0 {
			return err
		}
		now := db.Now()
		return queueDeliveries(t, consent.QueueHead(hooks, note, now), now)
	})
}

// suppressAddress writes suppression s of the address with key and
// queues the suppressed webhooks it causes (consent.Suppression.Reported),
// naming the subscriber who holds the address, if any. Every suppression
// a person did not cause by opting out goes through here. An address
// already suppressed for s's scope keeps its entry and queues nothing.
func suppressAddress(t *tx, s consent.Suppression, key string) error {
	b, err := encode(s)
	if err != nil {
		return err
	}
	n, err := t.execN("INSERT INTO suppressions (hash, scope, data) VALUES ($1, $2, $3) ON CONFLICT (hash, scope) DO NOTHING",
		s.Hash, s.Scope, b)
	if err != nil || n == 0 || !s.Reported() {
		return err
	}
	hooks, err := webhooks(t)
	if err != nil || len(hooks) == 0 {
		return err
	}
	sub, err := subscriberByKey(t.conn, key)
	if err != nil {
		return err
	}
	id := ""
	if sub != nil {
		id = sub.ID
	}
	return queueDeliveries(t, consent.QueueSuppressed(hooks, s, id), s.Created)
}

// queueDeliveries appends deliveries to their groups, each with a new
// id; one that starts its group is due at now.
func queueDeliveries(t *tx, ds []consent.Delivery, now time.Time) error {
	for _, d := range ds {
		b, err := encode(d)
		if err != nil {
			return err
		}
		err = t.exec(`INSERT INTO webhook_queue (id, webhook, subscriber, next_at, delivery)
			VALUES (nextval('webhook_delivery_ids'), $1, $2,
				CASE WHEN EXISTS (SELECT 1 FROM webhook_queue WHERE webhook = $1 AND subscriber = $2) THEN NULL ELSE $3::timestamptz END,
				$4)`, d.Webhook, dbID(d.Subscriber), now, b)
		if err != nil {
			return err
		}
	}
	return nil
}

// deliveryFrom returns the delivery stored as b in row id, due at nextAt.
func deliveryFrom(id int64, nextAt *time.Time, b []byte) (consent.Delivery, error) {
	var d consent.Delivery
	if err := decode(b, &d); err != nil {
		return d, err
	}
	d.ID, d.NextAt = uint64(id), time.Time{}
	if nextAt != nil {
		d.NextAt = nextAt.UTC()
	}
	return d, nil
}

// CreateWebhook stores w with a new id, audited.
func (db *DB) CreateWebhook(ctx context.Context, a consent.Actor, w consent.Webhook) (consent.Webhook, error) {
	err := db.update(ctx, func(t *tx) error {
		var n int
		if err := t.q.QueryRow(t.ctx, "SELECT count(*) FROM webhooks").Scan(&n); err != nil {
			return err
		}
		if n >= consent.MaxWebhooks {
			return consent.Errorf(consent.EConflict, "at most %d webhook endpoints; delete one first", consent.MaxWebhooks)
		}
		w.ID, w.Created = db.ID(), db.Now()
		if err := putJSON(t, "webhooks", w.ID, w); err != nil {
			return err
		}
		t.hooksRead = false
		return db.audit(t, a, "webhook.create", w.ID+" "+w.URL, 1)
	})
	return w, err
}

// Webhook returns endpoint id with its secret.
func (db *DB) Webhook(ctx context.Context, id string) (consent.Webhook, error) {
	var w consent.Webhook
	err := mustGet(db.read(ctx), "webhooks", id, &w, "webhook")
	return w, err
}

// Webhooks lists the endpoints with their queued and parked counts.
func (db *DB) Webhooks(ctx context.Context) ([]consent.WebhookInfo, error) {
	out := []consent.WebhookInfo{}
	var b []byte
	var queued, parked int
	err := db.read(ctx).each(`SELECT w.data, (SELECT count(*) FROM webhook_queue q WHERE q.webhook = w.id),
			(SELECT count(*) FROM webhook_parked p WHERE p.webhook = w.id)
		FROM webhooks w ORDER BY w.id`, nil, []any{&b, &queued, &parked}, func() error {
		var w consent.Webhook
		err := decode(b, &w)
		out = append(out, w.Info(queued, parked))
		return err
	})
	return out, err
}

// DeleteWebhook deletes endpoint id and its deliveries, audited.
func (db *DB) DeleteWebhook(ctx context.Context, a consent.Actor, id string) error {
	return db.update(ctx, func(t *tx) error {
		var w consent.Webhook
		if err := mustGet(t.conn, "webhooks", id, &w, "webhook"); err != nil {
			return err
		}
		queued, err := t.execN("DELETE FROM webhook_queue WHERE webhook = $1", id)
		if err != nil {
			return err
		}
		parked, err := t.execN("DELETE FROM webhook_parked WHERE webhook = $1", id)
		if err != nil {
			return err
		}
		if err := t.exec("DELETE FROM webhooks WHERE id = $1", id); err != nil {
			return err
		}
		t.hooksRead = false
		return db.audit(t, a, "webhook.delete", id+" "+w.URL, int(queued+parked))
	})
}

// RedeliverWebhook queues endpoint id's parked deliveries again.
func (db *DB) RedeliverWebhook(ctx context.Context, a consent.Actor, id string) (int, error) {
	n := 0
	err := db.update(ctx, func(t *tx) error {
		n = 0
		if err := mustGet(t.conn, "webhooks", id, new(consent.Webhook), "webhook"); err != nil {
			return err
		}
		now := db.Now()
		var ds []consent.Delivery
		var rid int64
		var b []byte
		err := t.each(`WITH gone AS (DELETE FROM webhook_parked WHERE webhook = $1 RETURNING id, delivery)
			SELECT id, delivery FROM gone ORDER BY id`, []any{id}, []any{&rid, &b}, func() error {
			d, err := deliveryFrom(rid, nil, b)
			d.Msg, d.Attempts, d.LastError = d.MessageID(), 0, ""
			ds = append(ds, d)
			return err
		})
		if err != nil {
			return err
		}
		if err := queueDeliveries(t, ds, now); err != nil {
			return err
		}
		n = len(ds)
		return db.audit(t, a, "webhook.redeliver", id, n)
	})
	return n, err
}

// DueDeliveries returns up to limit due group heads in due order, leased
// to this DB (see leaseDue).
func (db *DB) DueDeliveries(ctx context.Context, now time.Time, limit int, skip func(d consent.Delivery) bool) ([]consent.Delivery, error) {
	var ds []consent.Delivery
	err := db.leaseDue(ctx, "webhook_queue", "delivery", now, limit, func(id int64, nextAt time.Time, b []byte) (bool, error) {
		d, err := deliveryFrom(id, &nextAt, b)
		if err != nil || (skip != nil && skip(d)) {
			return false, err
		}
		ds = append(ds, d)
		return true, nil
	})
	if err != nil {
		return nil, fmt.Errorf("postgres: due deliveries: %w", err)
	}
	return ds, nil
}

// NextDelivery returns when the earliest delivery is due for this DB: one
// another instance leased counts as due when its lease ends.
func (db *DB) NextDelivery(ctx context.Context) (time.Time, error) {
	var t *time.Time
	err := db.pool.QueryRow(ctx, `SELECT least(
		(SELECT next_at FROM webhook_queue WHERE next_at IS NOT NULL
			AND (lease_owner IS NULL OR lease_owner = $1 OR lease_until <= next_at) ORDER BY next_at, id LIMIT 1),
		(SELECT min(lease_until) FROM webhook_queue WHERE next_at IS NOT NULL
			AND lease_owner IS NOT NULL AND lease_owner <> $1 AND lease_until > next_at))`,
		db.owner).Scan(&t)
	if err != nil || t == nil {
		return time.Time{}, err
	}
	return t.UTC(), nil
}

// DeliveryContent returns d's ledger event and its subscriber, if still
// held.
func (db *DB) DeliveryContent(ctx context.Context, d consent.Delivery) (*consent.Event, *consent.Subscriber, error) {
	var ev *consent.Event
	var sub *consent.Subscriber
	err := db.view(ctx, func(c conn) error {
		if d.Seq != 0 {
			var row ledgerRow
			err := c.each("SELECT "+ledgerColumns+" FROM "+ledgerRows+" WHERE l.seq = $1", []any{int64(d.Seq)}, row.dest(), func() error {
				ev = new(consent.Event)
				return row.decode(ev, c.shared())
			})
			if err != nil || ev == nil {
				return err
			}
		}
		if d.Subscriber != "" {
			var err error
			sub, err = subscriber(c, d.Subscriber)
			return err
		}
		return nil
	})
	return ev, sub, err
}

// takeDelivery removes delivery d (with onlyFree, only when this DB may
// take it: not leased by another instance) and makes the next delivery
// of its group due now. It reports whether d was removed.
func (db *DB) takeDelivery(t *tx, d consent.Delivery, onlyFree bool) (bool, error) {
	now := db.Now()
	sql, args := "DELETE FROM webhook_queue WHERE id = $1", []any{int64(d.ID)}
	if onlyFree {
		sql, args = "DELETE FROM webhook_queue WHERE id = $3 AND "+free, []any{db.owner, now, int64(d.ID)}
	}
	n, err := t.execN(sql, args...)
	if err != nil || n == 0 {
		return false, err
	}
	return true, t.exec(`UPDATE webhook_queue SET next_at = $3 WHERE id = (SELECT id FROM webhook_queue
		WHERE webhook = $1 AND subscriber = $2 ORDER BY id LIMIT 1) AND next_at IS NULL`, d.Webhook, dbID(d.Subscriber), now)
}

// FinishDelivery removes d and makes the next of its group due.
func (db *DB) FinishDelivery(ctx context.Context, d consent.Delivery) error {
	return db.update(ctx, func(t *tx) error {
		_, err := db.takeDelivery(t, d, false)
		return err
	})
}

// RetryDelivery records a failed attempt and makes d due at next. A
// delivery removed meanwhile, or leased meanwhile by another instance, is
// left alone.
func (db *DB) RetryDelivery(ctx context.Context, d consent.Delivery, next time.Time, reason string) error {
	d.Attempts++
	d.NextAt = next.UTC().Truncate(time.Millisecond)
	d.LastError = reason
	b, err := encode(d)
	if err != nil {
		return err
	}
	return db.update(ctx, func(t *tx) error {
		return t.exec(`UPDATE webhook_queue SET next_at = $3, delivery = $4, lease_owner = NULL, lease_until = NULL
			WHERE id = $5 AND `+free, db.owner, db.Now(), d.NextAt, b, int64(d.ID))
	})
}

// ParkDelivery sets d aside with reason and makes the next of its group
// due. A delivery removed meanwhile, or leased meanwhile by another
// instance, is not parked.
func (db *DB) ParkDelivery(ctx context.Context, d consent.Delivery, reason string) error {
	d.Attempts++
	d.LastError = reason
	d.NextAt = time.Time{}
	b, err := encode(d)
	if err != nil {
		return err
	}
	return db.update(ctx, func(t *tx) error {
		took, err := db.takeDelivery(t, d, true)
		if err != nil || !took {
			return err
		}
		return t.exec("INSERT INTO webhook_parked (id, webhook, delivery) VALUES ($1, $2, $3)", int64(d.ID), d.Webhook, b)
	})
}

// WebhookDepth counts the queued and the parked deliveries.
func (db *DB) WebhookDepth(ctx context.Context) (queued, parked int, err error) {
	err = db.pool.QueryRow(ctx, "SELECT (SELECT count(*) FROM webhook_queue), (SELECT count(*) FROM webhook_parked)").Scan(&queued, &parked)
	return queued, parked, err
}
