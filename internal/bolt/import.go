package bolt

import (
	"context"
	"fmt"

	"go.etcd.io/bbolt"

	"optin/internal/consent"
)

// importChunk is how many rows one import transaction writes: large
// enough to amortise the fsync and to write each page of the random-keyed
// buckets (addresses, purchases) once for several rows, small enough to
// keep memory flat and to let signups in between. 5000 rows wrote half
// the bytes per row that 1000 did (3.6 against 7.4 KB at 200k rows,
// docs/performance.md) at the same CPU, but an import through the running
// service would then hold the write lock about 0.5 s per chunk, and every
// signup would wait that long.
const importChunk = 1000

// importChunkOffline is importChunk when nothing else writes (Options.
// Offline: optin import with the service stopped), where no signup
// waits. In a large database nearly every row lands on a page of the
// addresses index no other row of its transaction touches, and half the
// rows on one of purchases; what a larger transaction saves is the
// branch pages above those leaves, each rewritten once per transaction,
// and the fsyncs: at 10M rows, 20000 rows a transaction took 534 s of
// CPU and 542 s of wall against 622 s and 785 s for 5000 (whose wall
// time exceeded its CPU time by a fifth: the writer waited on the disk),
// docs/performance.md. What
// such a transaction keeps alive (at 10M rows at most 412 MB after a
// collection) fits the import's memory limit (cmd/optin,
// importMemoryLimit).
const importChunkOffline = 20000

// Import reads rows from ir and stores them in transactions of importChunk
// rows (importChunkOffline when the database was opened Offline),
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
//     only the person can do that, and a lawful basis is never swapped
//     after the fact (GDPR Art. 6(1)).
//
// A read error aborts the import; the chunks stored before stay, and the
// report so far is returned with the error.
func (db *DB) Import(ctx context.Context, a consent.Actor, ir consent.ImportRows, opts consent.ImportOptions) (consent.ImportReport, error) {
	batch := db.ID()[:10]
	return consent.ImportInChunks(ctx, ir, batch, db.importChunk, db.Now, func(chunk []consent.ImportRow) (consent.ImportReport, error) {
		var part consent.ImportReport
		err := db.update(ctx, func(tx *bbolt.Tx) error {
			part = consent.ImportReport{}
			reg, err := register(tx)
			if err != nil {
				return err
			}
			err = batchCounts(tx, func() error {
				for i := range chunk {
					if err := db.importRow(tx, &part, batch, opts, reg, &chunk[i]); err != nil {
						return fmt.Errorf("bolt: import line %d: %w", chunk[i].Line, err)
					}
				}
				return nil
			})
			if err != nil {
				return err
			}
			return db.audit(tx, a, "import", "import:"+batch, part.Imported+part.Updated)
		})
		return part, err
	})
}

// importRow stores one validated row in tx and counts it in rep.
func (db *DB) importRow(tx *bbolt.Tx, rep *consent.ImportReport, batch string, opts consent.ImportOptions, reg consent.Assessments, row *consent.ImportRow) error {
	if err := reg.Cite(row.Assessment, row.Basis == consent.BasisLegitimateInterest); err != nil {
		rep.AddInvalid(row.Line, consent.ErrorMessage(err))
		return nil
	}
	if err := checkTopics(tx, row.Topics); err != nil {
		rep.AddInvalid(row.Line, consent.ErrorMessage(err))
		return nil
	}
	h := db.AddressHash(row.Address)
	for _, t := range row.Topics {
		s, err := suppressed(tx, h, t)
		if err != nil {
			return err
		}
		if s != nil {
			rep.SkippedSuppressed++
			return nil
		}
	}
	sub, err := subscriberByKey(tx, row.Address.Key)
	if err != nil {
		return err
	}
	plan := consent.PlanImport(sub, row, "import:"+batch, opts, db.policy, db.Now(), db)
	// A new subscriber is stored after its events (appendEventOf).
	var fresh *consent.Subscriber
	if plan.New {
		fresh = plan.Subscriber
	}
	if plan.Signup != nil {
		requested, mailed, err := db.importDoubleOptIn(tx, plan.Subscriber, fresh, *plan.Signup)
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
		if err := appendEventOf(tx, plan.Event, plan.Personal, fresh); err != nil {
			return err
		}
	}
	if plan.Notice != nil {
		if err := enqueue(tx, plan.Notice); err != nil {
			return err
		}
		rep.Notices++
		rep.Queued++
	}
	if !rep.Count(plan) {
		return nil
	}
	if fresh != nil {
		return db.putFreshSubscriber(tx, fresh, row.Address.Key)
	}
	return db.putSubscriber(tx, plan.Subscriber, row.Address.Key)
}

// importDoubleOptIn gives a row that claims consent without evidence the
// same double opt-in as a form signup (in, from consent.PlanImport): a
// pending request, the requested event and the confirmation mail, under
// the signup rules (an open request is joined, the per-address mail cap
// and a not-me block apply). It reports whether topics were requested and
// whether a mail was queued. fresh is sub when it is new (see
// appendEventOf), else nil.
func (db *DB) importDoubleOptIn(tx *bbolt.Tx, sub, fresh *consent.Subscriber, in consent.SignupInput) (requested, mailed bool, err error) {
	var open *consent.Request
	if sub.PendingRequest != "" {
		open = new(consent.Request)
		if ok, err := get(tx, bucketRequests, []byte(sub.PendingRequest), open); err != nil {
			return false, false, err
		} else if !ok {
			open = nil
		}
	}
	plan := consent.PlanSignup(sub, open, in, db.policy, db)
	if plan.Subscriber == nil {
		return false, false, nil
	}
	if err := putRequest(tx, plan.Request, plan.Event); err != nil {
		return false, false, err
	}
	if err := appendEventOf(tx, plan.Event, plan.Personal, fresh); err != nil {
		return false, false, err
	}
	if !plan.Mail {
		return true, false, nil
	}
	return true, true, enqueue(tx, consent.ConfirmJob(sub, plan.Request, in.Now))
}
