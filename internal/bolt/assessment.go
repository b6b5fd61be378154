package bolt

import (
	"context"

	"go.etcd.io/bbolt"

	"optin/internal/consent"
)

// CreateAssessment validates in against the register and stores the
// assessment, audited under a. There is no way to change it afterwards.
func (db *DB) CreateAssessment(ctx context.Context, a consent.Actor, in consent.AssessmentInput) (*consent.Assessment, error) {
	var as *consent.Assessment
	err := db.update(ctx, func(tx *bbolt.Tx) error {
		reg, err := register(tx)
		if err != nil {
			return err
		}
		if as, err = consent.NewAssessment(in, reg, a, db.Now()); err != nil {
			return err
		}
		if err := put(tx, bucketAssessments, []byte(as.ID), as); err != nil {
			return err
		}
		return db.audit(tx, a, "assessment.create", as.ID, 1)
	})
	if err != nil {
		return nil, err
	}
	return as, nil
}

// Assessments returns the register in id order.
func (db *DB) Assessments(ctx context.Context) ([]*consent.Assessment, error) {
	var list []*consent.Assessment
	err := db.view(func(tx *bbolt.Tx) error {
		var err error
		list, err = assessments(tx)
		return err
	})
	return list, err
}

// assessments reads the register in tx; a database opened read-only that
// predates it has none.
func assessments(tx *bbolt.Tx) ([]*consent.Assessment, error) {
	b := tx.Bucket(bucketAssessments)
	if b == nil {
		return nil, nil
	}
	var list []*consent.Assessment
	err := b.ForEach(func(_, v []byte) error {
		as := new(consent.Assessment)
		if err := decode(v, as); err != nil {
			return err
		}
		list = append(list, as)
		return nil
	})
	return list, err
}

// register is the register as the citing rule sees it, read in tx.
func register(tx *bbolt.Tx) (consent.Assessments, error) {
	list, err := assessments(tx)
	return consent.NewAssessments(list), err
}
