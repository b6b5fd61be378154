package consent

import (
	"time"
)

// Rectification is a correction of a person's data (GDPR Art. 16): a new
// name, a new address, a new phone number or postal address, or several.
// A nil field is left as it is. Phone and PostalAddress are as ParsePhone
// and ParsePostalAddress return them.
type Rectification struct {
	Name          *string
	Email         *Address
	Phone         *string
	PostalAddress *string
}

// RectifyResult says what a rectification did.
type RectifyResult struct {
	// Renamed is true when the name changed; Contact when the phone
	// number or the postal address did.
	Renamed, Contact bool
	// AddressPending is true when a confirmation mail went to the new
	// address: the change waits for its double opt-in.
	AddressPending bool
}

// RectifyPlan is what a rectification changes; the store writes it in one
// transaction.
type RectifyPlan struct {
	// Events and Personals record the name, number and postal address
	// changes, one rectified event each; none when nothing changes.
	Events    []*Event
	Personals []Personal
	// Request and Mail start an address change: the request the new
	// address must confirm and the confirmation mail to it.
	Request *Request
	Mail    *Job
}

// PlanRectify plans ch on sub at now, from source (admin:<key> or
// preferences). A new name replaces the old one at once, with a
// rectified event. A new address never replaces the old one directly: the
// person must show they control it, so a request is made that the new
// address confirms by double opt-in (PlanAddressConfirm), valid for the
// policy's ConfirmTTL. A phone number or postal address replaces the old
// one at once too (its rectified event holds the new one and the old one
// as its note), but only while a confirmed subscription carries a channel
// that needs it: optin keeps no number the person's channels do not use
// (GDPR Art. 5(1)(c)), so correcting one they do not need, or removing
// one they do (""), is EInvalid and changes nothing. A value that does
// not change changes nothing.
func PlanRectify(sub *Subscriber, ch Rectification, source string, now time.Time, p Policy, ids IDs) (RectifyPlan, error) {
	var plan RectifyPlan
	phone, post := sub.contactNeeds()
	if ch.Phone != nil && (!phone || *ch.Phone == "") {
		if !phone {
			return plan, Errorf(EInvalid, "this person has no text messages or calls, which a phone number is for")
		}
		return plan, Errorf(EInvalid, "a phone number is needed for the text messages and calls this person has")
	}
	if ch.PostalAddress != nil && (!post || *ch.PostalAddress == "") {
		if !post {
			return plan, Errorf(EInvalid, "this person has no post, which a postal address is for")
		}
		return plan, Errorf(EInvalid, "a postal address is needed for the post this person has")
	}
	add := func(field string, p Personal) {
		plan.Events = append(plan.Events, &Event{Time: now, Type: EventRectified, Subscriber: sub.ID, Source: source, Field: field})
		p.Salt, p.Email = ids.ID(), sub.Email
		plan.Personals = append(plan.Personals, p)
	}
	if ch.Name != nil && *ch.Name != sub.Name {
		sub.Name = *ch.Name
		add(FieldName, Personal{Note: sub.Name})
	}
	if ch.Phone != nil && *ch.Phone != sub.Phone {
		add(FieldPhone, Personal{Phone: *ch.Phone, Note: sub.Phone})
		sub.Phone = *ch.Phone
	}
	if ch.PostalAddress != nil && *ch.PostalAddress != sub.PostalAddress {
		add(FieldPostalAddress, Personal{PostalAddress: *ch.PostalAddress, Note: sub.PostalAddress})
		sub.PostalAddress = *ch.PostalAddress
	}
	if ch.Email != nil && ch.Email.Key != AddressKey(sub.Email) {
		req := &Request{ID: ids.ID(), Subscriber: sub.ID, Source: source, NewEmail: ch.Email.Addr, Locale: sub.Locale,
			Created: now, Expires: now.Add(p.ConfirmTTL), MessageID: ids.MessageID()}
		plan.Request = req
		plan.Mail = &Job{Kind: JobAddressChange, To: req.NewEmail, Name: sub.MailName(), Locale: sub.Locale,
			Subscriber: sub.ID, Request: req.ID, MessageID: req.MessageID, Created: now, TokenExpires: req.Expires}
	}
	return plan, nil
}

// PlanAddressConfirm applies the address change req asked for, now that
// the new address confirmed it: the subscriber's address becomes the new
// one, a rectified event records it (with the new address in its personal
// record and the old one as its note), and a notice goes to the old
// address, so a change the person did not make does not go unnoticed. A
// second confirmation changes nothing (nil event); an expired or
// cancelled request is EExpired.
func PlanAddressConfirm(sub *Subscriber, req *Request, in ConfirmInput, ids IDs) (*Event, Personal, *Job, error) {
	if !req.Confirmed.IsZero() {
		return nil, Personal{}, nil, nil
	}
	if !req.Open(in.Now) {
		return nil, Personal{}, nil, Errorf(EExpired, "this confirmation link has expired")
	}
	old := sub.Email
	sub.Email = req.NewEmail
	req.Confirmed = in.Now
	ev := &Event{Time: in.Now, Type: EventRectified, Subscriber: sub.ID, Source: req.Source, Field: FieldEmail,
		Request: req.ID, MessageID: req.MessageID, Check: in.Check}
	notice := &Job{Kind: JobAddressChanged, To: old, Name: sub.MailName(), Locale: sub.Locale, Subscriber: sub.ID,
		Request: req.ID, MessageID: ids.MessageID(), Created: in.Now, NewEmail: sub.Email}
	return ev, Personal{Salt: ids.ID(), Email: sub.Email, IP: in.IP, UserAgent: in.UserAgent, Note: old}, notice, nil
}
