package consent

import (
	"context"
	"io"
	"strings"
	"time"
)

// ImportInChunks is the loop of a store's Import: it reads rows from ir,
// each validated at now(), reports the refused ones and hands the others
// to store in chunks of size, adding up the chunks' reports into the
// import's report, batch batch. The next chunk is read and validated on
// another goroutine while store writes the last one, so the two use two
// cores. A read error (or
// ctx ending) aborts: the chunks stored before stay, and the report so far
// is returned with the error.
func ImportInChunks(ctx context.Context, ir ImportRows, batch string, size int, now func() time.Time,
	store func(chunk []ImportRow) (ImportReport, error)) (ImportReport, error) {
	rep := ImportReport{Batch: batch, Invalid: []ImportProblem{}}
	chunks := make(chan *readChunk)
	free := make(chan *readChunk, 2)
	free <- &readChunk{rows: make([]ImportRow, 0, size)}
	free <- &readChunk{rows: make([]ImportRow, 0, size)}
	stop := make(chan struct{})
	defer func() {
		// The reader must be done with ir before the caller closes it.
		close(stop)
		for range chunks {
		}
	}()
	go func() {
		defer close(chunks)
		for {
			var c *readChunk
			select {
			case c = <-free:
			case <-stop:
				return
			}
			c.read(ir, size, now())
			select {
			case chunks <- c:
			case <-stop:
				return
			}
			if c.done || c.err != nil {
				return
			}
		}
	}()
	for c := range chunks {
		for _, p := range c.problems {
			rep.AddInvalid(p.Line, p.Reason)
		}
		if c.err != nil {
			return rep, c.err
		}
		if len(c.rows) > 0 {
			if err := ctx.Err(); err != nil {
				return rep, err
			}
			part, err := store(c.rows)
			if err != nil {
				return rep, err
			}
			rep.add(part)
		}
		free <- c
	}
	return rep, nil
}

// readChunk is one chunk of an import file as read: the valid rows, the
// refused ones, and whether the file ended or failed after them.
type readChunk struct {
	rows     []ImportRow
	problems []ImportProblem
	done     bool
	err      error
}

// read fills c with up to size rows from ir, valid or refused, validated
// at at (refused ones count, so memory stays flat whatever the file).
func (c *readChunk) read(ir ImportRows, size int, at time.Time) {
	c.rows, c.problems = c.rows[:0], c.problems[:0]
	for len(c.rows)+len(c.problems) < size {
		row, problem, err := ir.Next(at)
		if err == io.EOF {
			c.done = true
			return
		}
		if err != nil {
			c.err = err
			return
		}
		if problem != "" {
			c.problems = append(c.problems, ImportProblem{Line: row.Line, Reason: problem})
			continue
		}
		c.rows = append(c.rows, row)
	}
}

// add adds the counts and refused rows of part, one chunk's report.
func (rep *ImportReport) add(part ImportReport) {
	rep.Imported += part.Imported
	rep.Updated += part.Updated
	rep.Unchanged += part.Unchanged
	rep.Pending += part.Pending
	rep.SkippedSuppressed += part.SkippedSuppressed
	rep.Queued += part.Queued
	rep.Notices += part.Notices
	for _, p := range part.Invalid {
		rep.AddInvalid(p.Line, p.Reason)
	}
	rep.InvalidCount += part.InvalidCount - len(part.Invalid)
}

// ImportPlan is what one import row does to its subscriber (PlanImport).
type ImportPlan struct {
	// Subscriber is the row's subscriber: the existing one, changed, or a
	// new one.
	Subscriber *Subscriber
	// New says Subscriber is new; Changed that the row changed it.
	New, Changed bool
	// Signup, when set, is the double opt-in the row gets instead of a
	// subscription: it claims consent without evidence. The store applies
	// PlanSignup to it with the subscriber's open request, and counts the
	// row as changed when that requested anything.
	Signup *SignupInput
	// Event, when set, is the imported event of the topics the row
	// subscribed on its basis, with its personal record.
	Event    *Event
	Personal Personal
	// Notice, when set, is the information notice the row's person is
	// owed (see Notice), to queue with the rest.
	Notice *Job
}

// PlanImport plans import row row for sub (nil when the address is new)
// at now; source is import:<batch>. The suppression check comes first and
// is the store's. An existing subscriber is never downgraded (a confirmed
// topic stays as it is) and an unsubscribed or lapsed topic is never
// re-enabled: only the person can do that. A row that subscribes on soft
// opt-in or legitimate interest gets the information notice, due within
// pol.NoticeWithin, unless opts skips it.
func PlanImport(sub *Subscriber, row *ImportRow, source string, opts ImportOptions, pol Policy, now time.Time, ids IDs) ImportPlan {
	p := ImportPlan{Subscriber: sub, New: sub == nil}
	if p.New {
		p.Subscriber = &Subscriber{ID: ids.ID(), Email: row.Address.Addr, Name: row.Name, Created: now,
			Subscriptions: map[string]*Subscription{}}
		sub = p.Subscriber
	}
	if sub.Name == "" && row.Name != "" {
		sub.Name, p.Changed = row.Name, true
	}
	if row.LastPurchaseAt.After(sub.LastPurchase) {
		sub.LastPurchase, p.Changed = row.LastPurchaseAt, true
	}
	// Topics the row may still add: never a confirmed one (no downgrade,
	// no basis swap) and never one the person left.
	var topics []string
	for _, t := range row.Topics {
		if s := sub.Subscriptions[t]; s == nil || s.Status == StatusPending {
			topics = append(topics, t)
		}
	}
	if len(topics) == 0 {
		return p
	}
	if row.Basis == BasisConsent && !row.HasEvidence() {
		locale := sub.Locale
		if locale == "" {
			locale = "en"
		}
		// No form: the request comes from the import.
		p.Signup = &SignupInput{Form: &Form{Topics: topics}, Address: row.Address, Name: row.Name,
			Locale: locale, Topics: topics, Source: source, Now: now}
		return p
	}
	since := now
	if row.Basis == BasisConsent {
		since = row.ConsentedAt
	}
	var assessment string
	if row.Basis == BasisLegitimateInterest {
		assessment = row.Assessment
	}
	for _, t := range topics {
		sub.Subscriptions[t] = &Subscription{Topic: t, Status: StatusConfirmed, Basis: row.Basis, Since: since, Assessment: assessment}
	}
	p.Event = &Event{Time: now, Type: EventImported, Subscriber: sub.ID, Topics: topics,
		Basis: row.Basis, Source: source, Page: row.Evidence(), Assessment: row.Assessment}
	if opts.SkipNotice {
		if row.Basis != BasisConsent {
			p.Event.Page = strings.TrimPrefix(p.Event.Page+"; art14_notice=skipped", "; ")
		}
	} else {
		p.Notice = planNotice(sub, row, topics, source, pol.NoticeWithin, now, ids)
	}
	p.Personal = Personal{Salt: ids.ID(), Email: sub.Email}
	p.Changed = true
	return p
}

// Count counts a planned row in r, once the store applied it, and
// reports whether the store must write its subscriber: not for a new
// address the row left as it was (the policy held its mail back, so
// nothing is stored), nor for an existing one it did not change.
func (r *ImportReport) Count(p ImportPlan) bool {
	switch {
	case p.New && !p.Changed:
		return false
	case p.New:
		r.Imported++
	case p.Changed:
		r.Updated++
	default:
		r.Unchanged++
		return false
	}
	return true
}

// ConfirmJob is the confirmation mail of request req to sub, queued at
// now, with the channels the request chose besides email.
func ConfirmJob(sub *Subscriber, req *Request, now time.Time) *Job {
	return &Job{Kind: JobConfirm, To: sub.Email, Name: sub.MailName(), Locale: req.Locale, Subscriber: sub.ID,
		Request: req.ID, Form: req.Form, Topics: req.Topics, MessageID: req.MessageID, Created: now, TokenExpires: req.Expires,
		Channels: req.Channels, Phone: req.Phone, PostalAddress: req.PostalAddress}
}
