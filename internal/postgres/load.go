package postgres

import (
	"context"
	"fmt"
	"iter"
	"maps"
	"slices"
	"strings"

	"optin/internal/consent"
)

// loadTables are the tables a load fills, by the record kind counted in
// them, and the ones that must be empty before it.
var loadTables = map[string]string{
	"topics": "topics", "forms": "forms", "wordings": "wordings", "subscribers": "subscribers",
	"requests": "requests", "ledger events": "ledger", "queued mails": "outbox",
	"parked mails": "outbox_parked", "API keys": "api_keys", "suppressions": "suppressions",
	"audit entries": "audit", "campaigns": "campaigns", "campaign recipients": "campaign_recipients",
	"campaign first mails queued": "campaign_queued", "campaign follow-ups due": "campaign_due",
	"incidents": "incidents", "webhook endpoints": "webhooks", "webhook deliveries queued": "webhook_queue",
	"webhook deliveries parked": "webhook_parked", "assessments": "assessments",
}

// Load copies a dump of another store (consent.StoreRecord, in its order) into
// this database, which must hold no data yet, in one transaction under
// the write lock: a failure leaves the database as empty as it was. The
// ledger chain is checked as its events arrive, and the count of each
// kind in the tables is compared with the records read before the
// commit. secrets are stored under their names (the suppression list's
// HMAC key, generated token keys), replacing any this database generated
// itself, so addresses hash and links verify as before. It returns the
// records copied by kind.
func (db *DB) Load(ctx context.Context, records iter.Seq2[consent.StoreRecord, error], secrets map[string][]byte) (map[string]int, error) {
	if db.readOnly {
		return nil, ErrReadOnly
	}
	ptx, t, err := db.beginWrite(ctx)
	if err != nil {
		return nil, err
	}
	defer ptx.Rollback(context.WithoutCancel(ctx))
	for _, table := range slices.Sorted(maps.Values(loadTables)) {
		if full, err := t.exists("SELECT 1 FROM " + table); err != nil {
			return nil, fmt.Errorf("postgres: %w", err)
		} else if full {
			return nil, fmt.Errorf("postgres: the database already holds data (table %s): load into an empty one", table)
		}
	}
	for _, name := range slices.Sorted(maps.Keys(secrets)) {
		if err := t.exec(`INSERT INTO secrets (name, value) VALUES ($1, $2)
			ON CONFLICT (name) DO UPDATE SET value = EXCLUDED.value`, name, secrets[name]); err != nil {
			return nil, fmt.Errorf("postgres: secret %s: %w", name, err)
		}
	}
	counts := map[string]int{}
	var chain consent.Chain
	var maxJob, maxAudit, maxDelivery uint64
	for r, err := range records {
		if err != nil {
			return nil, err
		}
		if err := loadRecord(t, r, &chain); err != nil {
			return nil, fmt.Errorf("postgres: load %s: %w", r.Kind(), err)
		}
		counts[r.Kind()]++
		if r.Job != nil {
			maxJob = max(maxJob, r.Job.ID)
		}
		if r.Audit != nil {
			maxAudit = max(maxAudit, r.Audit.Seq)
		}
		if r.Delivery != nil {
			maxDelivery = max(maxDelivery, r.Delivery.ID)
		}
	}
	if err := t.exec("UPDATE ledger_head SET seq = $1, hash = $2", int64(chain.Count()), chain.Head()); err != nil {
		return nil, fmt.Errorf("postgres: ledger head: %w", err)
	}
	for seq, n := range map[string]uint64{"outbox_ids": maxJob, "audit_seqs": maxAudit, "webhook_delivery_ids": maxDelivery} {
		if n > 0 {
			if err := t.exec("SELECT setval($1, $2)", seq, int64(n)); err != nil {
				return nil, fmt.Errorf("postgres: sequence %s: %w", seq, err)
			}
		}
	}
	// The counters and indexes are derived from the records: counted
	// once, here, as a first start does for an older database.
	if _, err := rebuild(t); err != nil {
		return nil, err
	}
	if err := t.writeCounts(); err != nil {
		return nil, err
	}
	if err := compareCounts(t, counts); err != nil {
		return nil, err
	}
	if err := t.pipe.flush(ctx); err != nil {
		return nil, err
	}
	if err := ptx.Commit(ctx); err != nil {
		return nil, fmt.Errorf("postgres: commit: %w", unavailable(err))
	}
	db.strings.add(t.numbered)
	return counts, nil
}

// loadRecord writes one record as the store's own writes would, but for
// ledger events, which keep their sequence numbers and hashes: chain
// checks that they continue the chain.
func loadRecord(t *tx, r consent.StoreRecord, chain *consent.Chain) error {
	switch {
	case r.Topic != nil:
		return putJSON(t, "topics", r.Topic.ID, r.Topic)
	case r.Form != nil:
		return putJSON(t, "forms", r.Form.ID, r.Form)
	case r.Wording != nil:
		return putWording(t, r.WordingHash, *r.Wording)
	case r.Subscriber != nil:
		return putSubscriber(t, r.Subscriber)
	case r.Request != nil:
		return putRequest(t, r.Request)
	case r.Event != nil:
		var p *consent.Personal
		if r.Personal != nil {
			p = new(consent.Personal)
			if err := decode(r.Personal, p); err != nil {
				return err
			}
		}
		if err := chain.Check(r.Event, p); err != nil {
			return err
		}
		b, err := encodeEvent(r.Event, r.Event.Prev, t.shared()) // Check found Prev the hash before
		if err != nil {
			return err
		}
		var pb []byte
		if p != nil {
			if pb, err = encodeShared(p, t.shared()); err != nil {
				return err
			}
		}
		return t.exec("INSERT INTO ledger (seq, subscriber, event, personal) VALUES ($1, $2, $3, $4)",
			int64(r.Event.Seq), dbID(r.Event.Subscriber), b, pb)
	case r.Job != nil:
		b, err := encodeRecord(r.Job)
		if err != nil {
			return err
		}
		if r.Parked {
			return t.exec("INSERT INTO outbox_parked (id, subscriber, job) VALUES ($1, $2, $3)", int64(r.Job.ID), dbID(r.Job.Subscriber), b)
		}
		return t.exec("INSERT INTO outbox (id, next_at, subscriber, job) VALUES ($1, $2, $3, $4)",
			int64(r.Job.ID), r.Job.NextAt, dbID(r.Job.Subscriber), b)
	case r.APIKey != nil:
		return putAPIKey(t, *r.APIKey)
	case r.Suppression != nil:
		return suppress(t, *r.Suppression)
	case r.Audit != nil:
		b, err := encode(r.Audit)
		if err != nil {
			return err
		}
		return t.exec("INSERT INTO audit (seq, data) VALUES ($1, $2)", int64(r.Audit.Seq), b)
	case r.Campaign != nil:
		return putJSON(t, "campaigns", r.Campaign.ID, r.Campaign)
	case r.Recipient != nil:
		return putRecipient(t, r.Recipient)
	case r.Queued != nil:
		return t.exec("INSERT INTO campaign_queued (campaign, job, subscriber) VALUES ($1, $2, $3)",
			r.Queued.Campaign, int64(r.Queued.Job), dbID(r.Queued.Subscriber))
	case r.Due != nil:
		return t.exec("INSERT INTO campaign_due (due, kind, campaign, subscriber) VALUES ($1, $2, $3, $4)",
			r.Due.Due, string(r.Due.Kind), r.Due.Campaign, dbID(r.Due.Subscriber))
	case r.Incident != nil:
		return putJSON(t, "incidents", r.Incident.ID, r.Incident)
	case r.Assessment != nil:
		b, err := encode(r.Assessment)
		if err != nil {
			return err
		}
		return t.exec("INSERT INTO assessments (id, data) VALUES ($1, $2)", r.Assessment.ID, b)
	case r.Webhook != nil:
		return putJSON(t, "webhooks", r.Webhook.ID, r.Webhook)
	case r.Delivery != nil:
		b, err := encode(r.Delivery)
		if err != nil {
			return err
		}
		d := r.Delivery
		if r.Parked {
			return t.exec("INSERT INTO webhook_parked (id, webhook, delivery) VALUES ($1, $2, $3)", int64(d.ID), d.Webhook, b)
		}
		// Only the first of a group (they come in id order) is due.
		return t.exec(`INSERT INTO webhook_queue (id, webhook, subscriber, next_at, delivery)
			VALUES ($1, $2, $3, CASE WHEN EXISTS (SELECT 1 FROM webhook_queue WHERE webhook = $2 AND subscriber = $3)
				THEN NULL ELSE $4::timestamptz END, $5)`, int64(d.ID), d.Webhook, dbID(d.Subscriber), d.Created, b)
	}
	return fmt.Errorf("an empty record")
}

// compareCounts checks that each table holds as many rows as records of
// its kind were read.
func compareCounts(t *tx, counts map[string]int) error {
	var wrong []string
	for _, kind := range slices.Sorted(maps.Keys(loadTables)) {
		var n int
		if err := t.q.QueryRow(t.ctx, "SELECT count(*) FROM "+loadTables[kind]).Scan(&n); err != nil {
			return fmt.Errorf("postgres: count %s: %w", kind, err)
		}
		if n != counts[kind] {
			wrong = append(wrong, fmt.Sprintf("%s: %d read, %d stored", kind, counts[kind], n))
		}
	}
	if len(wrong) > 0 {
		return fmt.Errorf("postgres: the copy does not match the source (%s); nothing was stored", strings.Join(wrong, "; "))
	}
	return nil
}
