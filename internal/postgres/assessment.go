package postgres

import (
	"context"

	"optin/internal/consent"
)

// CreateAssessment validates in against the register and stores the
// assessment, audited under a. There is no way to change it afterwards.
func (db *DB) CreateAssessment(ctx context.Context, a consent.Actor, in consent.AssessmentInput) (*consent.Assessment, error) {
	var as *consent.Assessment
	err := db.update(ctx, func(t *tx) error {
		reg, err := register(t.conn)
		if err != nil {
			return err
		}
		if as, err = consent.NewAssessment(in, reg, a, db.Now()); err != nil {
			return err
		}
		b, err := encode(as)
		if err != nil {
			return err
		}
		if err := t.exec("INSERT INTO assessments (id, data) VALUES ($1, $2)", as.ID, b); err != nil {
			return err
		}
		return db.audit(t, a, "assessment.create", as.ID, 1)
	})
	if err != nil {
		return nil, err
	}
	return as, nil
}

// Assessments returns the register in id order.
func (db *DB) Assessments(ctx context.Context) ([]*consent.Assessment, error) {
	return assessments(db.read(ctx))
}

// assessments reads the register on c in id order.
func assessments(c conn) ([]*consent.Assessment, error) {
	var list []*consent.Assessment
	var b []byte
	err := c.each("SELECT data FROM assessments ORDER BY id", nil, []any{&b}, func() error {
		as := new(consent.Assessment)
		if err := decode(b, as); err != nil {
			return err
		}
		list = append(list, as)
		return nil
	})
	return list, err
}

// register is the register as the citing rule sees it, read on c.
func register(c conn) (consent.Assessments, error) {
	list, err := assessments(c)
	return consent.NewAssessments(list), err
}
