package postgres

import (
	"context"

	"optin/internal/consent"
)

// Topic and Form answer from this instance's cache of the rows (see
// catalog); the lists and the writes' own reads go to the database.

// Bootstrap prepares a database for first use. When it has no topic yet,
// it creates topic and form. When keyHash is not empty and the database has
// no API key (revoked ones included), it creates the admin API key whose
// hash is keyHash. It reports whether it created the key.
func (db *DB) Bootstrap(ctx context.Context, topic consent.Topic, form consent.Form, keyHash string) (bool, error) {
	created := false
	err := db.update(ctx, func(t *tx) error {
		created = false
		now := db.Now()
		if some, err := t.exists("SELECT 1 FROM topics"); err != nil {
			return err
		} else if !some {
			topic.Created, form.Created, form.Updated = now, now, now
			if err := putJSON(t, "topics", topic.ID, topic); err != nil {
				return err
			}
			if err := putJSON(t, "forms", form.ID, form); err != nil {
				return err
			}
		}
		if keyHash == "" {
			return nil
		}
		if some, err := t.exists("SELECT 1 FROM api_keys"); err != nil || some {
			return err
		}
		key := consent.APIKey{Hash: keyHash, Name: "bootstrap", Role: consent.RoleAdmin, Created: now}
		if err := putAPIKey(t, key); err != nil {
			return err
		}
		created = true
		return nil
	})
	return created, err
}

// Topic returns the topic id, or an ENotFound *Error.
func (db *DB) Topic(ctx context.Context, id string) (consent.Topic, error) {
	topic, ok, err := catalogGet(ctx, db, "topics", id, consent.Topic.Clone)
	if err == nil && !ok {
		err = consent.Errorf(consent.ENotFound, "%s %q not found", "topic", id)
	}
	return topic, err
}

// Topics returns all topics ordered by id.
func (db *DB) Topics(ctx context.Context) ([]consent.Topic, error) {
	var ts []consent.Topic
	var b []byte
	err := db.read(ctx).each("SELECT data FROM topics ORDER BY id", nil, []any{&b}, func() error {
		var topic consent.Topic
		if err := decode(b, &topic); err != nil {
			return err
		}
		ts = append(ts, topic)
		return nil
	})
	return ts, err
}

// Form returns the form id, or an ENotFound *Error.
func (db *DB) Form(ctx context.Context, id string) (consent.Form, error) {
	f, ok, err := catalogGet(ctx, db, "forms", id, consent.Form.Clone)
	if err == nil && !ok {
		err = consent.Errorf(consent.ENotFound, "%s %q not found", "form", id)
	}
	return f, err
}

// Forms returns all forms ordered by id.
func (db *DB) Forms(ctx context.Context) ([]consent.Form, error) {
	return forms(db.read(ctx))
}

func forms(c conn) ([]consent.Form, error) {
	fs := []consent.Form{}
	var b []byte
	err := c.each("SELECT data FROM forms ORDER BY id", nil, []any{&b}, func() error {
		var f consent.Form
		if err := decode(b, &f); err != nil {
			return err
		}
		fs = append(fs, f)
		return nil
	})
	return fs, err
}

// checkTopics returns an EInvalid *Error unless every topic exists.
func checkTopics(c conn, topics []string) error {
	for _, topic := range topics {
		ok, err := c.exists("SELECT 1 FROM topics WHERE id = $1", topic)
		if err != nil {
			return err
		}
		if !ok {
			return consent.Errorf(consent.EInvalid, "topic %q does not exist", topic)
		}
	}
	return nil
}

// CreateTopic stores a new topic; its ID must be unused (EConflict). The
// caller validates the fields.
func (db *DB) CreateTopic(ctx context.Context, a consent.Actor, topic consent.Topic) (consent.Topic, error) {
	err := db.update(ctx, func(t *tx) error {
		if ok, err := t.exists("SELECT 1 FROM topics WHERE id = $1", topic.ID); err != nil {
			return err
		} else if ok {
			return consent.Errorf(consent.EConflict, "topic %q exists", topic.ID)
		}
		topic.Created = db.Now()
		if err := putJSON(t, "topics", topic.ID, topic); err != nil {
			return err
		}
		return db.audit(t, a, "topic.create", topic.ID, 1)
	})
	return topic, err
}

// UpdateTopic changes the name, description and translations of topic upd.ID (ENotFound if
// unknown). A topic's name is part of the consent wording of every form
// offering it, so a new name gives each of those forms a new wording
// version; consents given before keep citing the wording they saw.
func (db *DB) UpdateTopic(ctx context.Context, a consent.Actor, upd consent.Topic) (consent.Topic, error) {
	id := upd.ID
	var topic consent.Topic
	err := db.update(ctx, func(t *tx) error {
		if err := mustGet(t.conn, "topics", id, &topic, "topic"); err != nil {
			return err
		}
		renamed := topic.Update(upd)
		if err := putJSON(t, "topics", id, topic); err != nil {
			return err
		}
		if renamed {
			now := db.Now()
			fs, err := forms(t.conn)
			if err != nil {
				return err
			}
			for _, f := range fs {
				if !f.Offers(id) {
					continue
				}
				f.WordingVersion++
				f.Updated = now
				if err := putJSON(t, "forms", f.ID, f); err != nil {
					return err
				}
			}
		}
		return db.audit(t, a, "topic.update", id, 1)
	})
	return topic, err
}

// CreateForm stores a new form at wording version 1. Its ID must be unused
// (EConflict) and its topics must exist (EInvalid). The caller validates
// the other fields.
func (db *DB) CreateForm(ctx context.Context, a consent.Actor, f consent.Form) (consent.Form, error) {
	err := db.update(ctx, func(t *tx) error {
		if ok, err := t.exists("SELECT 1 FROM forms WHERE id = $1", f.ID); err != nil {
			return err
		} else if ok {
			return consent.Errorf(consent.EConflict, "form %q exists", f.ID)
		}
		if err := checkTopics(t.conn, f.Topics); err != nil {
			return err
		}
		f.Created, f.Updated, f.WordingVersion = db.Now(), db.Now(), 1
		if err := putJSON(t, "forms", f.ID, f); err != nil {
			return err
		}
		return db.audit(t, a, "form.create", f.ID, 1)
	})
	return f, err
}

// UpdateForm replaces the settings of form upd.ID (ENotFound if unknown).
// A change to what a person sees next to the checkboxes (the wording, the
// topics offered or the default locale) starts a new wording version;
// consents given before keep citing the wording they saw, which is stored
// by hash.
func (db *DB) UpdateForm(ctx context.Context, a consent.Actor, upd consent.Form) (consent.Form, error) {
	var f consent.Form
	err := db.update(ctx, func(t *tx) error {
		f = consent.Form{}
		if err := mustGet(t.conn, "forms", upd.ID, &f, "form"); err != nil {
			return err
		}
		if err := checkTopics(t.conn, upd.Topics); err != nil {
			return err
		}
		f.Update(upd, db.Now())
		if err := putJSON(t, "forms", f.ID, f); err != nil {
			return err
		}
		return db.audit(t, a, "form.update", f.ID, 1)
	})
	return f, err
}

// DeleteForm deletes form id (ENotFound if unknown). Signups through it
// stop; its stored wordings stay, so past consents still prove what was
// shown, and open requests made through it can still be confirmed.
func (db *DB) DeleteForm(ctx context.Context, a consent.Actor, id string) error {
	return db.update(ctx, func(t *tx) error {
		t.catalogChanged = true
		n, err := t.execN("DELETE FROM forms WHERE id = $1", id)
		if err != nil {
			return err
		}
		if n == 0 {
			return consent.Errorf(consent.ENotFound, "form %q not found", id)
		}
		return db.audit(t, a, "form.delete", id, 1)
	})
}
