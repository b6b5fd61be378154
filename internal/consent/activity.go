package consent

import (
	"slices"
	"strings"
	"time"
)

// ActivityKind is what a person did that the shop records: the trail
// behind the customer state (and a soft opt-in), and behind a legitimate
// interest, which must be shown when challenged (GDPR Art. 5(2), 6(1)(f)).
type ActivityKind string

// Activity kinds.
const (
	ActivityPurchase    ActivityKind = "purchase"
	ActivityReservation ActivityKind = "reservation"
	ActivityEnquiry     ActivityKind = "enquiry"
	ActivityLogin       ActivityKind = "login"
	ActivityNote        ActivityKind = "note"
)

// ActivityKinds lists every activity kind.
var ActivityKinds = []ActivityKind{ActivityPurchase, ActivityReservation, ActivityEnquiry, ActivityLogin, ActivityNote}

// DefaultCustomerActivities are the kinds that make a customer unless the
// operator chooses others: a purchase or a reservation.
var DefaultCustomerActivities = []ActivityKind{ActivityPurchase, ActivityReservation}

// maxActivityReason caps an activity's reason text.
const maxActivityReason = 500

// Activity is one recorded action of a person: what, when, and why the
// shop recorded it.
type Activity struct {
	Kind   ActivityKind
	At     time.Time
	Reason string
	// Assessment is the legitimate-interest assessment the activity
	// cites, if any (see Assessments.Cite).
	Assessment string
}

// NewActivity validates an activity reported at now: a known kind, a time
// not in the future (kept to the millisecond, UTC) and a reason of at most
// 500 printable characters on one line. Problems are EInvalid.
func NewActivity(kind ActivityKind, at time.Time, reason string, now time.Time) (Activity, error) {
	if !slices.Contains(ActivityKinds, kind) {
		return Activity{}, Errorf(EInvalid, "kind must be purchase, reservation, enquiry, login or note")
	}
	at = at.UTC().Truncate(time.Millisecond)
	if at.After(now) {
		return Activity{}, Errorf(EInvalid, "at must not be in the future")
	}
	reason = strings.TrimSpace(reason)
	if !PlainText(reason, maxActivityReason, false) {
		return Activity{}, Errorf(EInvalid, "reason must be at most %d characters on one line", maxActivityReason)
	}
	return Activity{Kind: kind, At: at, Reason: reason}, nil
}

// PlanActivity records act on sub at now, by source (admin:<key>): when
// customer is true (the operator counts this kind as making a customer)
// and act is the latest such activity, it moves sub's last purchase, which
// drives the lifecycle. It returns the activity ledger event, whose
// personal record carries the reason, so the trail shows what, when, why
// and by whom, and erasure removes the reason with the rest.
func PlanActivity(sub *Subscriber, act Activity, customer bool, source string, now time.Time, ids IDs) (*Event, Personal) {
	if customer && act.At.After(sub.LastPurchase) {
		sub.LastPurchase = act.At
	}
	ev := &Event{Time: now, Type: EventActivity, Subscriber: sub.ID, Source: source, Activity: act.Kind, OccurredAt: act.At,
		Assessment: act.Assessment}
	return ev, Personal{Salt: ids.ID(), Email: sub.Email, Note: act.Reason}
}
