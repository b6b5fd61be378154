package consent

import "time"

// StoreRecord is one record of a store as `optin migrate` carries it from one
// store to another; exactly one of its pointer fields is set. A store
// dumps its records in an order a load can write them in: the catalog
// first, then subscribers before their requests, the ledger in sequence
// order, campaigns before their recipients.
type StoreRecord struct {
	Topic *Topic
	Form  *Form
	// Wording comes with the hash ledger events cite it by.
	Wording     *Wording
	WordingHash string
	Subscriber  *Subscriber
	Request     *Request
	// Event comes with its personal record as the store keeps it
	// (Personal.Encode), nil when erased.
	Event    *Event
	Personal []byte
	// Job is a queued mail; with Parked, a mail that failed for good.
	Job         *Job
	Parked      bool // of a Job or a Delivery
	APIKey      *APIKey
	Suppression *Suppression
	Audit       *AuditEntry
	Campaign    *Campaign
	Recipient   *Recipient
	// Queued is a campaign's first mail not yet out of the outbox.
	Queued *CampaignQueued
	// Due is a campaign's timed follow-up.
	Due        *CampaignDue
	Incident   *Incident
	Webhook    *Webhook
	Assessment *Assessment
	// Delivery is a webhook delivery waiting; with Parked, one that
	// failed for good. Deliveries of one endpoint about one subscriber
	// come in id order.
	Delivery *Delivery
}

// CampaignQueued is a campaign's first mail to Subscriber, queued as
// outbox job Job and not yet sent.
type CampaignQueued struct {
	Campaign   string
	Job        uint64
	Subscriber string
}

// CampaignDue is a campaign's follow-up for Subscriber due at Due: Kind
// 'r' is the reminder, 'd' the deadline.
type CampaignDue struct {
	Due        time.Time
	Kind       byte
	Campaign   string
	Subscriber string
}

// Kind names the record's kind, for counts and messages.
func (r StoreRecord) Kind() string {
	switch {
	case r.Topic != nil:
		return "topics"
	case r.Form != nil:
		return "forms"
	case r.Wording != nil:
		return "wordings"
	case r.Subscriber != nil:
		return "subscribers"
	case r.Request != nil:
		return "requests"
	case r.Event != nil:
		return "ledger events"
	case r.Job != nil && r.Parked:
		return "parked mails"
	case r.Job != nil:
		return "queued mails"
	case r.APIKey != nil:
		return "API keys"
	case r.Suppression != nil:
		return "suppressions"
	case r.Audit != nil:
		return "audit entries"
	case r.Campaign != nil:
		return "campaigns"
	case r.Recipient != nil:
		return "campaign recipients"
	case r.Queued != nil:
		return "campaign first mails queued"
	case r.Due != nil:
		return "campaign follow-ups due"
	case r.Incident != nil:
		return "incidents"
	case r.Webhook != nil:
		return "webhook endpoints"
	case r.Assessment != nil:
		return "assessments"
	case r.Delivery != nil && r.Parked:
		return "webhook deliveries parked"
	case r.Delivery != nil:
		return "webhook deliveries queued"
	}
	return "nothing"
}
