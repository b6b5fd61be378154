package consent

import (
	"slices"
	"time"
)

// DefaultNoticeWithin is how long after an import the information notice
// may go out at the latest unless the operator sets notices.art14_within.
const DefaultNoticeWithin = 72 * time.Hour

// MaxNoticeWithin is the latest the notice may go out: GDPR Art. 14(3)(a)
// allows a reasonable period, at the latest one month.
const MaxNoticeWithin = 30 * Day

// Notice is the information a person whose data optin did not get from
// them is owed (GDPR Art. 14): who the controller is, the purposes, the
// basis, where the data came from and how to object. It is sent once,
// through the outbox, to a person imported on soft opt-in or legitimate
// interest, and no reawaken mail goes to them before it went out (Art.
// 14(3)(b): at the latest at the first communication).
type Notice struct {
	// Source is the import that brought the person in (import:<batch>);
	// Origin where the data came from, as the import row said (its
	// source column), "" when it did not.
	Source string `json:"source"`
	Origin string `json:"origin,omitempty"`
	Basis  Basis  `json:"basis"`
	// Topics are the purposes the notice names.
	Topics []string `json:"topics"`
	// Queued is when the mail was put in the outbox, Due the latest it
	// is owed (Queued + notices.art14_within), Sent when the mail server
	// accepted it (zero until then).
	Queued    time.Time `json:"queued"`
	Due       time.Time `json:"due"`
	MessageID string    `json:"message_id"`
	Sent      time.Time `json:"sent,omitzero"`
}

// Pending reports whether the notice has not gone out yet.
func (n *Notice) Pending() bool { return n != nil && n.Sent.IsZero() }

// ImportOptions are an import's choices for its whole batch.
type ImportOptions struct {
	// SkipNotice leaves out the information notice (Notice) to the
	// people the batch brings in on soft opt-in or legitimate interest:
	// the operator told them otherwise. The imported events record it.
	SkipNotice bool
}

// planNotice gives sub, imported on row's basis for topics from source,
// the information notice when its basis calls for one, the batch asks for
// it and sub has none yet (it is sent once). It returns the outbox job,
// or nil.
func planNotice(sub *Subscriber, row *ImportRow, topics []string, source string, within time.Duration, now time.Time, ids IDs) *Job {
	if row.Basis != BasisSoftOptIn && row.Basis != BasisLegitimateInterest || sub.Notice != nil {
		return nil
	}
	if within <= 0 {
		within = DefaultNoticeWithin
	}
	n := &Notice{Source: source, Origin: row.Source, Basis: row.Basis, Topics: slices.Clone(topics), Queued: now,
		Due: now.Add(within), MessageID: ids.MessageID()}
	sub.Notice = n
	return &Job{Kind: JobNotice, To: sub.Email, Name: sub.MailName(), Locale: sub.Locale, Subscriber: sub.ID,
		Topics: slices.Clone(topics), MessageID: n.MessageID, Created: now, Basis: n.Basis, Origin: n.Origin}
}

// NoticeOwed reports whether notice job is still owed to sub at send
// time: sub holds a confirmed subscription to one of its topics. After an
// opt-out from all of them nothing is processed on those grounds any
// more, and the mail is held back.
func NoticeOwed(sub *Subscriber, job Job) bool {
	for _, t := range job.Topics {
		if s := sub.Subscriptions[t]; s != nil && s.Status == StatusConfirmed {
			return true
		}
	}
	return false
}

// PlanNoticeSent records that the notice job went out at now (the store
// calls it when the job leaves the outbox and is still deliverable): the
// subscriber's notice is marked sent and an informed ledger event, citing
// the mail's Message-ID, is returned. It returns nil when job is not
// sub's pending notice (sent already, or another mail).
func PlanNoticeSent(sub *Subscriber, job Job, now time.Time, ids IDs) (*Event, Personal) {
	n := sub.Notice
	if !n.Pending() || n.MessageID != job.MessageID {
		return nil, Personal{}
	}
	n.Sent = now
	ev := &Event{Time: now, Type: EventInformed, Subscriber: sub.ID, Topics: n.Topics, Basis: n.Basis,
		Source: n.Source, MessageID: n.MessageID}
	return ev, Personal{Salt: ids.ID(), Email: sub.Email}
}
