package bolt

import (
	"context"
	"sort"

	"go.etcd.io/bbolt"

	"optin/internal/consent"
)

// CreateTopic stores a new topic; its ID must be unused (EConflict). The
// caller validates the fields.
func (db *DB) CreateTopic(ctx context.Context, a consent.Actor, t consent.Topic) (consent.Topic, error) {
	err := db.updateCatalog(ctx, func(tx *bbolt.Tx) error {
		if tx.Bucket(bucketTopics).Get([]byte(t.ID)) != nil {
			return consent.Errorf(consent.EConflict, "topic %q exists", t.ID)
		}
		t.Created = db.Now()
		if err := put(tx, bucketTopics, []byte(t.ID), t); err != nil {
			return err
		}
		return db.audit(tx, a, "topic.create", t.ID, 1)
	})
	return t, err
}

// UpdateTopic changes the name, description and translations of topic upd.ID (ENotFound if
// unknown). A topic's name is part of the consent wording of every form
// offering it, so a new name gives each of those forms a new wording
// version; consents given before keep citing the wording they saw.
func (db *DB) UpdateTopic(ctx context.Context, a consent.Actor, upd consent.Topic) (consent.Topic, error) {
	id := upd.ID
	var t consent.Topic
	err := db.updateCatalog(ctx, func(tx *bbolt.Tx) error {
		if err := mustGet(tx, bucketTopics, id, &t, "topic"); err != nil {
			return err
		}
		renamed := t.Update(upd)
		if err := put(tx, bucketTopics, []byte(id), t); err != nil {
			return err
		}
		if renamed {
			now := db.Now()
			err := eachForm(tx, func(f *consent.Form) (bool, error) {
				if !f.Offers(id) {
					return false, nil
				}
				f.WordingVersion++
				f.Updated = now
				return true, nil
			})
			if err != nil {
				return err
			}
		}
		return db.audit(tx, a, "topic.update", id, 1)
	})
	return t, err
}

// eachForm calls fn for every form and stores those fn reports changed.
func eachForm(tx *bbolt.Tx, fn func(f *consent.Form) (bool, error)) error {
	var changed []consent.Form
	err := tx.Bucket(bucketForms).ForEach(func(_, v []byte) error {
		var f consent.Form
		if err := decode(v, &f); err != nil {
			return err
		}
		ok, err := fn(&f)
		if ok {
			changed = append(changed, f)
		}
		return err
	})
	if err != nil {
		return err
	}
	for _, f := range changed {
		if err := put(tx, bucketForms, []byte(f.ID), f); err != nil {
			return err
		}
	}
	return nil
}

// Forms returns all forms ordered by id.
func (db *DB) Forms(ctx context.Context) ([]consent.Form, error) {
	fs := []consent.Form{}
	err := db.view(func(tx *bbolt.Tx) error {
		return tx.Bucket(bucketForms).ForEach(func(_, v []byte) error {
			var f consent.Form
			if err := decode(v, &f); err != nil {
				return err
			}
			fs = append(fs, f)
			return nil
		})
	})
	sort.Slice(fs, func(i, j int) bool { return fs[i].ID < fs[j].ID })
	return fs, err
}

// checkTopics returns an EInvalid *Error unless every topic exists.
func checkTopics(tx *bbolt.Tx, topics []string) error {
	for _, t := range topics {
		if tx.Bucket(bucketTopics).Get([]byte(t)) == nil {
			return consent.Errorf(consent.EInvalid, "topic %q does not exist", t)
		}
	}
	return nil
}

// CreateForm stores a new form at wording version 1. Its ID must be unused
// (EConflict) and its topics must exist (EInvalid). The caller validates
// the other fields.
func (db *DB) CreateForm(ctx context.Context, a consent.Actor, f consent.Form) (consent.Form, error) {
	err := db.updateCatalog(ctx, func(tx *bbolt.Tx) error {
		if tx.Bucket(bucketForms).Get([]byte(f.ID)) != nil {
			return consent.Errorf(consent.EConflict, "form %q exists", f.ID)
		}
		if err := checkTopics(tx, f.Topics); err != nil {
			return err
		}
		f.Created, f.Updated, f.WordingVersion = db.Now(), db.Now(), 1
		if err := put(tx, bucketForms, []byte(f.ID), f); err != nil {
			return err
		}
		return db.audit(tx, a, "form.create", f.ID, 1)
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
	err := db.updateCatalog(ctx, func(tx *bbolt.Tx) error {
		if err := mustGet(tx, bucketForms, upd.ID, &f, "form"); err != nil {
			return err
		}
		if err := checkTopics(tx, upd.Topics); err != nil {
			return err
		}
		f.Update(upd, db.Now())
		if err := put(tx, bucketForms, []byte(f.ID), f); err != nil {
			return err
		}
		return db.audit(tx, a, "form.update", f.ID, 1)
	})
	return f, err
}

// DeleteForm deletes form id (ENotFound if unknown). Signups through it
// stop; its stored wordings stay, so past consents still prove what was
// shown, and open requests made through it can still be confirmed.
func (db *DB) DeleteForm(ctx context.Context, a consent.Actor, id string) error {
	return db.updateCatalog(ctx, func(tx *bbolt.Tx) error {
		var f consent.Form
		if err := mustGet(tx, bucketForms, id, &f, "form"); err != nil {
			return err
		}
		if err := tx.Bucket(bucketForms).Delete([]byte(id)); err != nil {
			return err
		}
		return db.audit(tx, a, "form.delete", id, 1)
	})
}
