package postgres

import (
	"context"

	"optin/internal/consent"
)

// CreateIncident validates in and stores the incident in the breach
// register, audited under a.
func (db *DB) CreateIncident(ctx context.Context, a consent.Actor, in consent.IncidentInput) (*consent.Incident, error) {
	id := db.ID()
	var inc *consent.Incident
	err := db.update(ctx, func(t *tx) error {
		var err error
		if inc, err = consent.NewIncident(in, id, a, db.Now()); err != nil {
			return err
		}
		if err := putJSON(t, "incidents", inc.ID, inc); err != nil {
			return err
		}
		return db.audit(t, a, "incident.create", inc.ID, 1)
	})
	if err != nil {
		return nil, err
	}
	return inc, nil
}

// Incident returns incident id, or ENotFound.
func (db *DB) Incident(ctx context.Context, id string) (*consent.Incident, error) {
	inc := new(consent.Incident)
	if err := mustGet(db.read(ctx), "incidents", id, inc, "incident"); err != nil {
		return nil, err
	}
	return inc, nil
}

// EachAffected calls fn for every subscriber inc affects, in id order,
// from one snapshot. Imports may carry creation times older than their
// ids, so every subscriber is read.
func (db *DB) EachAffected(ctx context.Context, inc *consent.Incident, fn func(*consent.Subscriber) error) error {
	return db.view(ctx, func(c conn) error {
		return eachSubscriber(c, "", func(sub *consent.Subscriber) (bool, error) {
			if !inc.Affects(sub) {
				return true, nil
			}
			return true, fn(sub)
		})
	})
}

// NotifyIncident queues the notice with text to every subscriber incident
// id affects, in one transaction, once; it records when and how many on
// the incident and audits it under a. A second call is EConflict.
func (db *DB) NotifyIncident(ctx context.Context, a consent.Actor, id, text string) (int, error) {
	n := 0
	err := db.update(ctx, func(t *tx) error {
		n = 0
		inc := new(consent.Incident)
		if err := mustGet(t.conn, "incidents", id, inc, "incident"); err != nil {
			return err
		}
		if !inc.Notified.IsZero() {
			return consent.Errorf(consent.EConflict, "the people affected were told already, at %s", inc.Notified.Format("2006-01-02 15:04 MST"))
		}
		now := db.Now()
		var jobs []*consent.Job
		err := eachSubscriber(t.conn, "", func(sub *consent.Subscriber) (bool, error) {
			if inc.Affects(sub) {
				jobs = append(jobs, consent.IncidentNotice(inc, sub, text, now, db))
			}
			return true, nil
		})
		if err != nil {
			return err
		}
		for _, job := range jobs {
			if err := enqueue(t, job); err != nil {
				return err
			}
		}
		n = len(jobs)
		inc.Notified, inc.NoticesQueued = now, n
		if err := putJSON(t, "incidents", id, inc); err != nil {
			return err
		}
		return db.audit(t, a, "incident.notify", id, n)
	})
	return n, err
}
