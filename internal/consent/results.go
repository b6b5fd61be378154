package consent

import (
	"time"

	"golang.org/x/mod/sumdb/tlog"
)

// SignupResult tells the caller what a signup did. The web layer must not
// let it change the HTTP answer (no enumeration); it only wakes the outbox.
type SignupResult struct {
	Queued bool
}

// ConfirmResult is the outcome of a confirmation click.
type ConfirmResult struct {
	// Topics are the topics the request covers.
	Topics []string
	// Already is true when the request had been confirmed before.
	Already bool
	// NewEmail is set when the request was an address change: the
	// subscriber's address is now this one.
	NewEmail string
}

// EventRecord is a ledger event with its personal record; Personal is nil
// once erased.
type EventRecord struct {
	Event
	Personal *Personal `json:"personal,omitempty"`
	// WordingText is the consent wording the event's hash refers to.
	WordingText *Wording `json:"wording_text,omitempty"`
	// AssessmentRecord is the legitimate-interest assessment the event
	// cites.
	AssessmentRecord *Assessment `json:"assessment_record,omitempty"`
}

// LedgerReport is the result of a ledger walk.
type LedgerReport struct {
	// Events counts the events that verify: all of them when OK, else
	// those before the broken one.
	Events uint64      `json:"events"`
	OK     bool        `json:"ok"`
	Broken *ChainError `json:"broken,omitempty"`
	// Root is the Merkle tree hash of the events that verify (RFC 6962).
	Root tlog.Hash `json:"root"`
	// Heads are the verdicts on the saved heads the walk was given.
	Heads []HeadCheck `json:"heads,omitempty"`
}

// Export is everything optin holds about one person (GDPR Art. 15 and 20).
type Export struct {
	Schema     string      `json:"schema"`
	Generated  time.Time   `json:"generated"`
	Subscriber *Subscriber `json:"subscriber"`
	// Request is the person's open double-opt-in request, if any: the
	// topics, channels, phone number and postal address it waits to
	// confirm are data held about them too.
	Request *Request      `json:"request,omitempty"`
	Events  []EventRecord `json:"events"`
}

// ExportSchema names the export format; see docs/api.md. v2 added
// activity events (activity, occurred_at) and the personal note; v3 the
// legitimate-interest assessment events cite (assessment,
// assessment_record) and subscriptions rest on; v4 the channels and
// frequency of subscriptions, the phone number and postal address, the
// open request, and the channel_consented, channel_withdrawn and frequency_chosen events.
const ExportSchema = "optin.export/v4"

// CampaignPreview is the audience a campaign would reach now and who it
// leaves out, by reason (the Excluded constants).
type CampaignPreview struct {
	Audience int            `json:"audience"`
	Excluded map[string]int `json:"excluded"`
}

// StepResult says what one CampaignStep did.
type StepResult struct {
	// Queued counts mails put in the outbox (first mails and reminders).
	Queued int
	// Lapsed counts subscriptions that lapsed at their deadline.
	Lapsed int
}

// ReawakenLink is what a reawaken link's page needs to know.
type ReawakenLink struct {
	Campaign   *Campaign
	Recipient  *Recipient
	Subscriber *Subscriber
}
