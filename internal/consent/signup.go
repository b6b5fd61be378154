package consent

import (
	"slices"
	"time"
)

// Policy holds the double-opt-in rules the operator can tune.
type Policy struct {
	// ConfirmTTL is how long a confirmation link works.
	ConfirmTTL time.Duration
	// MailGap is the least time between two confirmation mails to one
	// address (one per 24 h: a burst of signups sends one mail).
	MailGap time.Duration
	// MailsWhilePending caps confirmation mails to an address that never
	// confirms (three) within MailCapWindow.
	MailsWhilePending int
	// MailCapWindow is how long a confirmation mail counts against
	// MailsWhilePending, so someone submitting another person's address
	// cannot lock them out for good.
	MailCapWindow time.Duration
	// NotMeBlock is how long "this was not me" blocks confirmation mails
	// (30 days).
	NotMeBlock time.Duration
	// NoticeWithin is how long after an import its information notice
	// may go out at the latest (notices.art14_within; see Notice).
	NoticeWithin time.Duration
}

// DefaultPolicy returns the policy optin ships with.
func DefaultPolicy() Policy {
	return Policy{ConfirmTTL: 72 * time.Hour, MailGap: 24 * time.Hour, MailsWhilePending: 3,
		MailCapWindow: 30 * 24 * time.Hour, NotMeBlock: 30 * 24 * time.Hour, NoticeWithin: DefaultNoticeWithin}
}

// IDs makes the random identifiers a plan needs.
type IDs interface {
	// ID returns a new random identifier of at least 128 bits.
	ID() string
	// MessageID returns a new globally unique Message-ID, without brackets.
	MessageID() string
}

// SignupInput is one signup as the form received it, already validated.
type SignupInput struct {
	Form    *Form
	Address Address
	Name    string
	Locale  string
	Topics  []string
	// Channels are the optional channels chosen per topic, checked
	// (ChannelChoice.Check); they take effect with the confirmation.
	Channels  ChannelChoice
	Page      string
	IP        string
	UserAgent string
	// Wording is the hash of the consent wording the person saw.
	Wording string
	// Source overrides the ledger source "form:<Form.ID>", e.g. with
	// "import:<batch>".
	Source string
	Now    time.Time
}

// SignupPlan is what a signup changes. The store writes all of it in one
// transaction. The zero plan changes nothing.
type SignupPlan struct {
	Subscriber *Subscriber
	Request    *Request
	Event      *Event
	Personal   Personal
	// Mail says a confirmation mail for Request must be queued.
	Mail bool
}

// PlanSignup applies a signup to sub, the subscriber already known under
// the address (nil for a new one), and open, sub's pending request (nil if
// none). Topics already confirmed are left alone. While an open request
// exists, a signup changes nothing: no second mail, and no topic joins the
// request, whose link confirms only what its mail listed. A new request gets
// a mail only within the policy's mail cap and outside a not-me block;
// otherwise the signup changes nothing. The caller answers the same in
// every case, so the outcome reveals nothing about the address.
func PlanSignup(sub *Subscriber, open *Request, in SignupInput, p Policy, ids IDs) SignupPlan {
	now := in.Now
	isNew := sub == nil
	if isNew {
		sub = &Subscriber{ID: ids.ID(), Email: in.Address.Addr, Name: in.Name, Locale: in.Locale,
			Created: now, Subscriptions: map[string]*Subscription{}}
	}
	if now.Before(sub.BlockedUntil) {
		return SignupPlan{}
	}
	var want []string
	for _, t := range in.Topics {
		if s := sub.Subscriptions[t]; (s == nil || s.Status != StatusConfirmed) && !slices.Contains(want, t) {
			want = append(want, t)
		}
	}
	if len(want) == 0 {
		return SignupPlan{}
	}
	source := in.Source
	if source == "" {
		source = "form:" + in.Form.ID
	}
	ev := &Event{Time: now, Type: EventRequested, Subscriber: sub.ID, Basis: BasisConsent,
		Source: source, Page: in.Page, Wording: in.Wording}
	personal := Personal{Salt: ids.ID(), Email: in.Address.Addr, IP: in.IP, UserAgent: in.UserAgent}

	if open != nil && open.Open(now) {
		// The open request's mail lists its topics, and its link confirms
		// exactly those: nobody may add to what a click there confirms.
		// New topics wait for a request of their own.
		return SignupPlan{}
	}

	if !mayMail(sub, now, p) {
		return SignupPlan{}
	}
	req := &Request{ID: ids.ID(), Subscriber: sub.ID, Form: in.Form.ID, Source: source, Topics: want, Locale: in.Locale,
		Created: now, Expires: now.Add(p.ConfirmTTL), MessageID: ids.MessageID(), Page: in.Page, Wording: in.Wording, IP: in.IP}
	if ch := in.Channels.only(want); len(ch.Channels) > 0 {
		req.Channels, req.Phone, req.PostalAddress = ch.Channels, ch.Phone, ch.PostalAddress
	}
	sub.PendingRequest = req.ID
	sub.ConfirmMails = append(sub.ConfirmMails, now)
	markPending(sub, want, now)
	ev.Topics, ev.Request, ev.MessageID = want, req.ID, req.MessageID
	return SignupPlan{Subscriber: sub, Request: req, Event: ev, Personal: personal, Mail: true}
}

// mayMail applies the per-address confirmation mail cap, forgetting mails
// older than the policy's window.
func mayMail(sub *Subscriber, now time.Time, p Policy) bool {
	sub.ConfirmMails = slices.DeleteFunc(sub.ConfirmMails, func(t time.Time) bool { return now.Sub(t) >= p.MailCapWindow })
	if len(sub.ConfirmMails) >= p.MailsWhilePending {
		return false
	}
	if n := len(sub.ConfirmMails); n > 0 && now.Sub(sub.ConfirmMails[n-1]) < p.MailGap {
		return false
	}
	return true
}

// markPending gives topics the subscriber never had a pending subscription.
// A topic the person unsubscribed from or that lapsed keeps that status
// until the confirm click: an opt-out is only lifted by a completed double
// opt-in.
func markPending(sub *Subscriber, topics []string, now time.Time) {
	for _, t := range topics {
		if sub.Subscriptions[t] == nil {
			sub.Subscriptions[t] = &Subscription{Topic: t, Status: StatusPending, Basis: BasisConsent, Since: now}
		}
	}
}

// ConfirmInput is a click on a confirmation link, or on another link or
// button by which a person acts.
type ConfirmInput struct {
	IP        string
	UserAgent string
	Now       time.Time
	// Note goes into the event's personal record: the reason an operator
	// gave for acting on the person's behalf.
	Note string
	// Check, on a confirmation or a "keep me subscribed", is the verdict
	// on who clicked; it goes into the event.
	Check *Check
}

// PlanConfirm confirms req for sub. It returns a nil event and no error when
// req was confirmed before (the click is idempotent), an EExpired *Error when
// the request expired or was cancelled, and otherwise the confirmed event,
// after moving every requested topic to StatusConfirmed on the consent
// basis, with the channels the request chose for it and the phone number
// and postal address they need (ConfirmedChannels makes their events).
func PlanConfirm(sub *Subscriber, req *Request, in ConfirmInput, ids IDs) (*Event, Personal, error) {
	if !req.Confirmed.IsZero() {
		return nil, Personal{}, nil
	}
	if !req.Open(in.Now) {
		return nil, Personal{}, Errorf(EExpired, "this confirmation link has expired")
	}
	for _, t := range req.Topics {
		sub.Subscriptions[t] = &Subscription{Topic: t, Status: StatusConfirmed, Basis: BasisConsent, Since: in.Now,
			Channels: req.Channels[t]}
	}
	if req.Phone != "" {
		sub.Phone = req.Phone
	}
	if req.PostalAddress != "" {
		sub.PostalAddress = req.PostalAddress
	}
	req.Confirmed = in.Now
	sub.PendingRequest = ""
	sub.ConfirmMails = nil
	source := req.Source
	if source == "" {
		source = "form:" + req.Form
	}
	ev := &Event{Time: in.Now, Type: EventConfirmed, Subscriber: sub.ID, Topics: req.Topics, Basis: BasisConsent,
		Source: source, Request: req.ID, MessageID: req.MessageID, Check: in.Check}
	return ev, Personal{Salt: ids.ID(), Email: sub.Email, IP: in.IP, UserAgent: in.UserAgent}, nil
}

// PlanNotMe cancels req after its recipient said they never asked for it:
// pending-only subscriptions of its topics are dropped and confirmation
// mails to the address stop for the policy's NotMeBlock. It returns nil when
// req was already cancelled or confirmed.
func PlanNotMe(sub *Subscriber, req *Request, in ConfirmInput, p Policy, ids IDs) (*Event, Personal) {
	if !req.Canceled.IsZero() || !req.Confirmed.IsZero() {
		return nil, Personal{}
	}
	req.Canceled = in.Now
	for _, t := range req.Topics {
		if s := sub.Subscriptions[t]; s != nil && s.Status == StatusPending {
			delete(sub.Subscriptions, t)
		}
	}
	if sub.PendingRequest == req.ID {
		sub.PendingRequest = ""
	}
	sub.BlockedUntil = in.Now.Add(p.NotMeBlock)
	ev := &Event{Time: in.Now, Type: EventCanceled, Subscriber: sub.ID, Topics: req.Topics,
		Source: "not_me", Request: req.ID, MessageID: req.MessageID}
	return ev, Personal{Salt: ids.ID(), Email: sub.Email, IP: in.IP, UserAgent: in.UserAgent}
}
