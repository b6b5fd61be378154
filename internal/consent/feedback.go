package consent

import (
	"strings"
	"time"
)

// Suppression reasons of mail feedback.
const (
	ReasonBounce    = "bounce"    // mail to the address failed for good (a 5.x.x status, RFC 3463)
	ReasonComplaint = "complaint" // the recipient reported the mail as unwanted (RFC 5965)
)

// Channels mail feedback arrives through, recorded as the suppression's
// source. ChannelEmail also names a mailto: unsubscribe (RFC 2369), and
// email as the Channel every subscription has.
const (
	ChannelEmail = "email" // optin's inbound SMTP listener
	ChannelRelay = "relay" // the sending relay's webhook
)

// EventSuppressed records that an address was suppressed because mail to
// it bounced or its holder complained; Source is ReasonBounce or
// ReasonComplaint and MessageID the mail the report names.
const EventSuppressed EventType = "suppressed"

// FeedbackKind is what a report says about mail to an address.
type FeedbackKind string

// Feedback kinds.
const (
	FeedbackBounce     FeedbackKind = "bounce"      // permanent failure (5.x.x)
	FeedbackSoftBounce FeedbackKind = "soft_bounce" // temporary failure (4.x.x)
	FeedbackComplaint  FeedbackKind = "complaint"   // abuse report
)

// Feedback is one report about mail optin sent: a delivery status
// notification (RFC 3464) or an abuse report (RFC 5965), from optin's
// inbound listener or the relay.
type Feedback struct {
	Kind    FeedbackKind
	Address Address
	// MessageID is the Message-ID of the mail the report is about,
	// without brackets; "" when the report does not say.
	MessageID string
	// Status is the DSN status ("5.1.1") or the ARF feedback type
	// ("abuse"), kept in the event's personal record.
	Status string
	// Channel is ChannelEmail or ChannelRelay.
	Channel string
}

// SoftBouncePolicy turns soft bounces into a suppression: Limit of them
// within Window suppress the address like a hard bounce. Limit 0 never
// does.
type SoftBouncePolicy struct {
	Limit  int
	Window time.Duration
}

// FeedbackResult says what a report changed.
type FeedbackResult struct {
	// Suppressed is true when the report suppressed the address now (not
	// when it was suppressed for every topic before).
	Suppressed bool
	// SoftBounces is the address's count of soft bounces in the window,
	// this one included.
	SoftBounces int
}

// maxFeedbackStatus caps the status text a report brings in.
const maxFeedbackStatus = 64

// CheckFeedback validates fb: a known kind and channel, a Message-ID and
// a status of printable text without angle brackets.
func CheckFeedback(fb Feedback) error {
	switch fb.Kind {
	case FeedbackBounce, FeedbackSoftBounce, FeedbackComplaint:
	default:
		return Errorf(EInvalid, "type must be bounce, soft_bounce or complaint")
	}
	if fb.Channel != ChannelEmail && fb.Channel != ChannelRelay {
		return Errorf(EInvalid, "unknown feedback channel")
	}
	if !PlainText(fb.MessageID, 250, false) || strings.ContainsAny(fb.MessageID, "<> ") {
		return Errorf(EInvalid, "message_id must be a Message-ID without angle brackets")
	}
	if !PlainText(fb.Status, maxFeedbackStatus, false) {
		return Errorf(EInvalid, "status must be at most %d printable characters", maxFeedbackStatus)
	}
	return nil
}

// PlanFeedback applies fb to sub (nil when no subscriber holds the
// address) at now. It returns the suppression reason when the address is
// to be suppressed for every topic ("" when not), and the ledger event
// with its personal record when sub exists and the address is newly
// suppressed (already tells that it was suppressed for every topic
// before, so a repeated report adds nothing). A soft bounce is counted
// on sub within p's window and suppresses once p's limit is reached; a
// complaint also unsubscribes sub from every topic, as an objection to
// direct marketing (GDPR Art. 21(3)).
func PlanFeedback(sub *Subscriber, fb Feedback, p SoftBouncePolicy, already bool, now time.Time, ids IDs) (reason string, ev *Event, personal Personal, soft int) {
	switch fb.Kind {
	case FeedbackComplaint:
		reason = ReasonComplaint
	case FeedbackBounce:
		reason = ReasonBounce
	case FeedbackSoftBounce:
		if sub == nil {
			return "", nil, Personal{}, 0
		}
		kept := sub.SoftBounces[:0]
		for _, t := range sub.SoftBounces {
			if now.Sub(t) < p.Window {
				kept = append(kept, t)
			}
		}
		sub.SoftBounces = append(kept, now)
		soft = len(sub.SoftBounces)
		if p.Limit <= 0 || soft < p.Limit {
			return "", nil, Personal{}, soft
		}
		reason = ReasonBounce
	}
	if sub == nil || already {
		return reason, nil, Personal{}, soft
	}
	sub.SoftBounces = nil
	var changed []string
	if fb.Kind == FeedbackComplaint {
		for _, t := range sortedTopics(sub) {
			if s := sub.Subscriptions[t]; s.Status != StatusUnsubscribed {
				s.Status, s.Since = StatusUnsubscribed, now
				changed = append(changed, t)
			}
		}
	}
	ev = &Event{Time: now, Type: EventSuppressed, Subscriber: sub.ID, Topics: changed, Source: reason, MessageID: fb.MessageID}
	return reason, ev, Personal{Salt: ids.ID(), Email: sub.Email, Note: fb.Channel + " " + fb.Status}, soft
}
