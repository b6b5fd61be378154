package postgres

import (
	"context"
	"fmt"

	"optin/internal/consent"
)

// importChunk is how many rows one import transaction writes: large
// enough to amortise the commit, small enough to keep memory flat.
const importChunk = 1000

// Import reads rows from ir and stores them in transactions of 1000 rows,
// so memory stays flat however long the file is. Each valid row lands
// even when others are refused. Per row:
//   - an address suppressed for any of its topics or for every topic is
//     skipped;
//   - basis consent with evidence (consented_at and source), soft_opt_in
//     (with last_purchase_at) and legitimate_interest subscribe the topics
//     on that basis with an imported ledger event citing import:<batch>
//     and the evidence;
//   - a row citing an assessment that does not exist or was superseded,
//     or a legitimate_interest row citing none while the register holds
//     any, is refused (consent.Assessments.Cite);
//   - a row subscribed on soft_opt_in or legitimate_interest queues the
//     information notice (GDPR Art. 14) unless opts skips it or the
//     person had one;
//   - basis consent without evidence gets a double opt-in instead: a
//     pending request, a requested event and a confirmation mail;
//   - an existing subscriber is never downgraded (a confirmed topic stays
//     as it is) and an unsubscribed or lapsed topic is never re-enabled:
//     only the person can do that.
//
// A read error aborts the import; the chunks stored before stay, and the
// report so far is returned with the error.
func (db *DB) Import(ctx context.Context, a consent.Actor, ir consent.ImportRows, opts consent.ImportOptions) (consent.ImportReport, error) {
	batch := db.ID()[:10]
	return consent.ImportInChunks(ctx, ir, batch, importChunk, db.Now, func(chunk []consent.ImportRow) (consent.ImportReport, error) {
		var part consent.ImportReport
		err := db.update(ctx, func(t *tx) error {
			part = consent.ImportReport{}
			reg, err := register(t.conn)
			if err != nil {
				return err
			}
			for i := range chunk {
				if err := db.importRow(t, &part, batch, opts, reg, chunk[i]); err != nil {
					return fmt.Errorf("postgres: import line %d: %w", chunk[i].Line, err)
				}
			}
			return db.audit(t, a, "import", "import:"+batch, part.Imported+part.Updated)
		})
		return part, err
	})
}

// importRow stores one validated row in t and counts it in rep. row is a
// copy: a write may run more than once.
func (db *DB) importRow(t *tx, rep *consent.ImportReport, batch string, opts consent.ImportOptions, reg consent.Assessments, row consent.ImportRow) error {
	if err := reg.Cite(row.Assessment, row.Basis == consent.BasisLegitimateInterest); err != nil {
		rep.AddInvalid(row.Line, consent.ErrorMessage(err))
		return nil
	}
	if err := checkTopics(t.conn, row.Topics); err != nil {
		if consent.ErrorCode(err) != consent.EInvalid {
			return err
		}
		rep.AddInvalid(row.Line, consent.ErrorMessage(err))
		return nil
	}
	h := db.AddressHash(row.Address)
	for _, topic := range row.Topics {
		s, err := suppressed(t.conn, h, topic)
		if err != nil {
			return err
		}
		if s != nil {
			rep.SkippedSuppressed++
			return nil
		}
	}
	sub, err := subscriberByKey(t.conn, row.Address.Key)
	if err != nil {
		return err
	}
	plan := consent.PlanImport(sub, &row, "import:"+batch, opts, db.policy, db.Now(), db)
	// The subscriber is stored before its events are appended, as a
	// signup's is, so their personal records leave the address to it
	// (encodePersonal).
	type event struct {
		ev *consent.Event
		p  consent.Personal
	}
	var events []event
	if plan.Signup != nil {
		requested, mailed, err := db.importDoubleOptIn(t, plan.Subscriber, *plan.Signup, func(ev *consent.Event, p consent.Personal) {
			events = append(events, event{ev, p})
		})
		if err != nil {
			return err
		}
		if requested {
			rep.Pending++
			plan.Changed = true
		}
		if mailed {
			rep.Queued++
		}
	}
	if plan.Event != nil {
		events = append(events, event{plan.Event, plan.Personal})
	}
	if plan.Notice != nil {
		if err := enqueue(t, plan.Notice); err != nil {
			return err
		}
		rep.Notices++
		rep.Queued++
	}
	if rep.Count(plan) {
		if sub == nil {
			// A new subscriber's row goes in with the bases its events
			// prove, rather than updated for them when they are
			// appended (markEvidence then finds them set): an update
			// would leave the inserted version dead in the table until
			// vacuum.
			for _, e := range events {
				if topics, bit := provenTopics(e.ev); len(topics) > 0 {
					t.noteProven(plan.Subscriber.ID, topics, bit)
				}
			}
		}
		if err := putSubscriber(t, plan.Subscriber); err != nil {
			return err
		}
	}
	for _, e := range events {
		if err := appendEvent(t, e.ev, e.p); err != nil {
			return err
		}
	}
	return nil
}

// importDoubleOptIn gives a row that claims consent without evidence the
// same double opt-in as a form signup (in, from consent.PlanImport): a
// pending request, the requested event (handed to appendLater, for the
// caller to append once the subscriber is stored) and the confirmation
// mail, under the signup rules (an open request is joined, the
// per-address mail cap and a not-me block apply). It reports whether
// topics were requested and whether a mail was queued.
func (db *DB) importDoubleOptIn(t *tx, sub *consent.Subscriber, in consent.SignupInput,
	appendLater func(*consent.Event, consent.Personal)) (requested, mailed bool, err error) {
	open, err := openRequest(t.conn, sub)
	if err != nil {
		return false, false, err
	}
	plan := consent.PlanSignup(sub, open, in, db.policy, db)
	if plan.Subscriber == nil {
		return false, false, nil
	}
	if err := putRequest(t, plan.Request); err != nil {
		return false, false, err
	}
	appendLater(plan.Event, plan.Personal)
	if !plan.Mail {
		return true, false, nil
	}
	return true, true, enqueue(t, consent.ConfirmJob(sub, plan.Request, in.Now))
}
