package bolt

import (
	"context"

	"go.etcd.io/bbolt"

	"optin/internal/consent"
)

// CreateIncident validates in and stores the incident in the breach
// register, audited under a.
func (db *DB) CreateIncident(ctx context.Context, a consent.Actor, in consent.IncidentInput) (*consent.Incident, error) {
	id := db.ID()
	var inc *consent.Incident
	err := db.update(ctx, func(tx *bbolt.Tx) error {
		var err error
		if inc, err = consent.NewIncident(in, id, a, db.Now()); err != nil {
			return err
		}
		if err := put(tx, bucketIncidents, []byte(inc.ID), inc); err != nil {
			return err
		}
		return db.audit(tx, a, "incident.create", inc.ID, 1)
	})
	if err != nil {
		return nil, err
	}
	return inc, nil
}

// Incident returns incident id, or ENotFound.
func (db *DB) Incident(ctx context.Context, id string) (*consent.Incident, error) {
	inc := new(consent.Incident)
	if err := db.view(func(tx *bbolt.Tx) error { return mustGet(tx, bucketIncidents, id, inc, "incident") }); err != nil {
		return nil, err
	}
	return inc, nil
}

// EachAffected calls fn for every subscriber inc affects, in id order,
// from one read transaction. Subscriber ids begin with their creation
// time, but imports may carry older creation times, so every subscriber
// is read.
func (db *DB) EachAffected(ctx context.Context, inc *consent.Incident, fn func(*consent.Subscriber) error) error {
	return db.view(func(tx *bbolt.Tx) error {
		return eachSubscriber(ctx, tx, func(sub *consent.Subscriber) error {
			if !inc.Affects(sub) {
				return nil
			}
			return fn(sub)
		})
	})
}

// NotifyIncident queues the notice with text to every subscriber incident
// id affects, in one transaction, once; it records when and how many on
// the incident and audits it under a. A second call is EConflict.
func (db *DB) NotifyIncident(ctx context.Context, a consent.Actor, id, text string) (int, error) {
	n := 0
	err := db.update(ctx, func(tx *bbolt.Tx) error {
		n = 0
		inc := new(consent.Incident)
		if err := mustGet(tx, bucketIncidents, id, inc, "incident"); err != nil {
			return err
		}
		if !inc.Notified.IsZero() {
			return consent.Errorf(consent.EConflict, "the people affected were told already, at %s", inc.Notified.Format("2006-01-02 15:04 MST"))
		}
		now := db.Now()
		var jobs []*consent.Job
		err := eachSubscriber(ctx, tx, func(sub *consent.Subscriber) error {
			if inc.Affects(sub) {
				jobs = append(jobs, consent.IncidentNotice(inc, sub, text, now, db))
			}
			return nil
		})
		if err != nil {
			return err
		}
		for _, job := range jobs {
			if err := enqueue(tx, job); err != nil {
				return err
			}
		}
		n = len(jobs)
		inc.Notified, inc.NoticesQueued = now, n
		if err := put(tx, bucketIncidents, []byte(id), inc); err != nil {
			return err
		}
		return db.audit(tx, a, "incident.notify", id, n)
	})
	return n, err
}
