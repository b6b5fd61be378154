package consent

import (
	"context"
	"io"
	"time"

	"golang.org/x/mod/sumdb/tlog"
)

// Store is the storage contract of optin: everything the web server, the
// mail worker, the campaign runner and the command line keep or read.
// Every implementation (the embedded bbolt store, a database server) must
// behave as these comments promise and pass the conformance suite in
// internal/storetest, which also pins down what the comments leave open:
// topics and forms list in id order and API keys in creation order; audit
// actions are named like "topic.create" and "subscriber.erase";
// unsubscribing an erased or unknown subscriber succeeds; erasure drops
// the person's queued and parked mail; a sweep forgets addresses that
// never confirmed; Events of an unknown id is empty, not an error.
//
// Each write is one use case applied in one transaction: the record, its
// indexes, its ledger events and any outbox job commit together or not at
// all, and a method that returns nil has made its write durable. Errors
// are *Error values with a code (ENotFound, EConflict, EInvalid, ...)
// where the caller can act on them.
type Store interface {
	Clock
	CatalogStore
	SignupStore
	PersonStore
	AdminStore
	CampaignStore
	IncidentStore
	AssessmentStore
	OutboxStore
	WebhookStore
	LedgerStore
	SessionStore
	LimitStore
	// Close releases the store; nothing may be called after it.
	Close() error
}

// Clock is the store's time: UTC, truncated to the millisecond, the time
// every record and event it writes carries.
type Clock interface {
	Now() time.Time
}

// CatalogStore keeps topics, forms and API keys.
type CatalogStore interface {
	// Bootstrap prepares an empty store for first use: topic, form and the
	// admin API key whose hash is keyHash. It returns false and changes
	// nothing when the store already has a topic or an API key.
	Bootstrap(ctx context.Context, topic Topic, form Form, keyHash string) (bool, error)
	Topic(ctx context.Context, id string) (Topic, error)
	Topics(ctx context.Context) ([]Topic, error)
	CreateTopic(ctx context.Context, a Actor, t Topic) (Topic, error)
	// UpdateTopic replaces the name, description and translations of
	// topic upd.ID (see Topic.Update).
	UpdateTopic(ctx context.Context, a Actor, upd Topic) (Topic, error)
	Form(ctx context.Context, id string) (Form, error)
	Forms(ctx context.Context) ([]Form, error)
	CreateForm(ctx context.Context, a Actor, f Form) (Form, error)
	UpdateForm(ctx context.Context, a Actor, upd Form) (Form, error)
	DeleteForm(ctx context.Context, a Actor, id string) error

	// APIKey returns the live key with the given hash, or EUnauthorized.
	APIKey(ctx context.Context, hash string) (APIKey, error)
	NewAPIKey(ctx context.Context, a Actor, name string, role Role) (secret string, info APIKeyInfo, err error)
	APIKeys(ctx context.Context) ([]APIKeyInfo, error)
	RevokeAPIKey(ctx context.Context, a Actor, id string) error
	// TouchAPIKey records that key was used (at most once a minute).
	TouchAPIKey(ctx context.Context, key APIKey) error
}

// SignupStore applies the double opt-in: signup, confirmation, "not me".
type SignupStore interface {
	// Signup applies PlanSignup's plan in one transaction: the wording
	// version, the subscriber, the pending request, the requested event
	// and the confirmation mail. in.Now is set by the store.
	Signup(ctx context.Context, in SignupInput, wording Wording) (SignupResult, error)
	// Confirm confirms the pending request id once; a second call
	// succeeds with Already set and changes nothing.
	Confirm(ctx context.Context, id string, in ConfirmInput) (ConfirmResult, error)
	// NotMe cancels request id and blocks confirmation mail to its
	// address for a while.
	NotMe(ctx context.Context, id string, in ConfirmInput) error
	Request(ctx context.Context, id string) (*Request, error)
	// SweepRequests deletes requests whose link expired more than
	// retention ago, and returns how many.
	SweepRequests(ctx context.Context, retention time.Duration) (int, error)
}

// PersonStore is what a person does through their signed links:
// unsubscribe, preferences, access and erasure.
type PersonStore interface {
	Subscriber(ctx context.Context, id string) (*Subscriber, error)
	SubscriberByAddress(ctx context.Context, a Address) (*Subscriber, error)
	// Unsubscribe withdraws subscriber id from topic ("" = every topic)
	// and suppresses the address for that scope at once; it is idempotent
	// and returns the topics that changed.
	Unsubscribe(ctx context.Context, id, topic, channel string, in ConfirmInput) ([]string, error)
	// UpdatePreferences applies PlanPreferences; a topic that does not
	// exist or a bad choice (channel, number, address, frequency) is
	// EInvalid and changes nothing.
	UpdatePreferences(ctx context.Context, id string, ch PreferenceChoice, wording Wording, in ConfirmInput) error
	// RequestPreferencesMail queues a preferences mail to a if it is a
	// subscriber; the answer must not reach the person (no enumeration).
	RequestPreferencesMail(ctx context.Context, a Address) (bool, error)
	// Erase removes the person and their personal data, keeping only the
	// suppression hash and the ledger's events without personal records.
	Erase(ctx context.Context, id, source string) error
	// Rectify applies PlanRectify to subscriber id from source, audited
	// under a when a is not nil. A new address that another subscriber
	// holds is EConflict; one suppressed for every topic by an operator
	// EForbidden. Confirm completes an address change.
	Rectify(ctx context.Context, a *Actor, id string, ch Rectification, source string) (RectifyResult, error)
	// ForgetOptedOut erases, as Erase does, every subscriber who opted out
	// of everything more than retention ago (Subscriber.Forgettable), and
	// returns how many.
	ForgetOptedOut(ctx context.Context, retention time.Duration) (int, error)
	// Export returns everything held about subscriber id (GDPR Art. 15, 20).
	Export(ctx context.Context, id string) (Export, error)
	// Suppressed reports whether a is suppressed for topic or for all.
	Suppressed(ctx context.Context, a Address, topic string) (bool, error)
	// RecordFeedback applies a bounce or complaint report about mail to
	// fb.Address (PlanFeedback): a hard bounce, a complaint, or p.Limit
	// soft bounces within p.Window suppress the address for every topic
	// with reason bounce or complaint and source fb.Channel, and record a
	// suppressed event citing fb.MessageID when a subscriber holds the
	// address. A report about an address suppressed for every topic
	// already adds no suppression and no event. It is audited under a
	// (action "feedback.<kind>") when a is not nil. Invalid fb is EInvalid.
	RecordFeedback(ctx context.Context, a *Actor, fb Feedback, p SoftBouncePolicy) (FeedbackResult, error)
}

// AdminStore is the marketer's and operator's side: listings, imports,
// exports, suppressions, the audit log, statistics and backups. Every
// write is audited under its actor in the same transaction.
type AdminStore interface {
	// FindSubscribers returns one page of subscribers matching f in id
	// order (descending with f.Newest), and the cursor of the next page
	// ("" after the last).
	FindSubscribers(ctx context.Context, f SubscriberFilter) ([]*Subscriber, string, error)
	// RecordActivity applies PlanActivity to subscriber id with a as the
	// source, audited. The activity's assessment must pass
	// Assessments.Cite, under legitimate interest when the subscriber
	// holds a subscription on it (Subscriber.UnderLegitimateInterest).
	RecordActivity(ctx context.Context, a Actor, id string, act Activity, customer bool) (*Subscriber, error)
	EraseSubscriber(ctx context.Context, a Actor, id string) error
	// WithdrawFor unsubscribes subscriber id from topic ("" = every
	// topic) on the person's word, as Unsubscribe does, with channel
	// ChannelOperator and reason (OperatorReason) in the event's personal
	// record, audited under a. An unknown subscriber is ENotFound, an
	// unknown topic or a bad reason EInvalid. It returns the topics that
	// changed.
	WithdrawFor(ctx context.Context, a Actor, id, topic, reason string) ([]string, error)
	// Import stores validated rows in chunks; each valid row lands even
	// when others are refused. A row whose assessment fails
	// Assessments.Cite (under legitimate interest when its basis is) is
	// refused.
	// Each row's plan (PlanImport) follows opts and the store's Policy.
	Import(ctx context.Context, a Actor, rows ImportRows, opts ImportOptions) (ImportReport, error)
	// EachExportable calls fn for every subscriber that may leave optin in
	// a bulk export (never a suppressed address), from one snapshot.
	EachExportable(ctx context.Context, fn func(sub *Subscriber) error) error
	Suppressions(ctx context.Context, addr *Address, cursor string, limit int) (SuppressionPage, error)
	AddSuppression(ctx context.Context, a Actor, addr Address, topic, note string) (Suppression, bool, error)
	DeleteSuppression(ctx context.Context, a Actor, hash, scope string) (int, error)
	// AuditRead records a read worth auditing (exports, backups).
	AuditRead(ctx context.Context, a Actor, action, target string, count int) error
	Audit(ctx context.Context, cursor string, limit int) (entries []AuditEntry, next string, err error)
	// Stats reads the overview from the counters (see Counts), with
	// lifecycle stages at the store's clock with dormantAfter and days
	// (1 to MaxStatsDays) of daily counts; it walks no records.
	Stats(ctx context.Context, dormantAfter time.Duration, days int) (Stats, error)
	// CheckCounters compares every counter with a full walk of the
	// records (from one snapshot) and returns those that differ.
	CheckCounters(ctx context.Context) ([]CounterDiff, error)
	// RebuildCounters recounts every counter and the indexes audiences
	// and filtered listings read from a full walk, in one transaction,
	// and returns the counters it corrected.
	RebuildCounters(ctx context.Context) ([]CounterDiff, error)
	// Backup writes a consistent snapshot of the store to w, calling size
	// with its length before the first byte.
	Backup(ctx context.Context, w io.Writer, size func(int64)) error
}

// IncidentStore keeps the breach register (GDPR Art. 33(5), 34).
type IncidentStore interface {
	// CreateIncident validates in (NewIncident) and stores the incident
	// with a new id, audited under a.
	CreateIncident(ctx context.Context, a Actor, in IncidentInput) (*Incident, error)
	// Incident returns incident id, or ENotFound.
	Incident(ctx context.Context, id string) (*Incident, error)
	// EachAffected calls fn for every subscriber incident inc affects
	// (Incident.Affects), in id order, from one snapshot.
	EachAffected(ctx context.Context, inc *Incident, fn func(*Subscriber) error) error
	// NotifyIncident queues the notice with text to every subscriber
	// incident id affects, once (a second call is EConflict), records
	// when and how many on the incident, and audits it under a.
	NotifyIncident(ctx context.Context, a Actor, id, text string) (int, error)
}

// AssessmentStore keeps the register of legitimate-interest assessments.
// An assessment is never changed or deleted once recorded.
type AssessmentStore interface {
	// CreateAssessment validates in against the register (NewAssessment)
	// and stores it, audited under a.
	CreateAssessment(ctx context.Context, a Actor, in AssessmentInput) (*Assessment, error)
	// Assessments returns the whole register in id order.
	Assessments(ctx context.Context) ([]*Assessment, error)
}

// CampaignStore keeps reawaken campaigns and runs them.
type CampaignStore interface {
	CreateCampaign(ctx context.Context, a Actor, in CampaignInput) (*Campaign, error)
	Campaign(ctx context.Context, id string) (*Campaign, error)
	Campaigns(ctx context.Context) ([]*Campaign, error)
	StartCampaign(ctx context.Context, a Actor, id string) (*Campaign, error)
	PauseCampaign(ctx context.Context, a Actor, id string) (*Campaign, error)
	// CancelCampaign ends campaign id for good (Campaign.Cancel), audited
	// under a: its first mails still in the outbox are not sent, and no
	// reminder or deadline follows; a second call changes nothing.
	CancelCampaign(ctx context.Context, a Actor, id string) (*Campaign, error)
	// PreviewCampaign counts the audience and the exclusions by reason;
	// it changes nothing.
	PreviewCampaign(ctx context.Context, id string, p CampaignPolicy) (CampaignPreview, error)
	// CampaignAudience lists one page of campaign id's audience as
	// PreviewCampaign counts it, in subscriber id order: who is in, who
	// is left out and why (an AudienceLister gathers it); it changes
	// nothing.
	CampaignAudience(ctx context.Context, id string, p CampaignPolicy, q AudienceQuery) (AudiencePage, error)
	// CampaignStep does one tick of campaign work: records first mails
	// that went out, queues the next ones at the campaign's rate (none
	// when mayQueue is false) and handles due reminders and deadlines.
	CampaignStep(ctx context.Context, p CampaignPolicy, tick time.Duration, mayQueue bool) (StepResult, error)
	Reawaken(ctx context.Context, campaign, subscriber string) (ReawakenLink, error)
	// Reconfirm records the recipient's "keep me subscribed" once.
	Reconfirm(ctx context.Context, campaign, subscriber string, wording Wording, in ConfirmInput) (already bool, err error)
}

// OutboxStore is the durable mail queue the mail worker drains.
type OutboxStore interface {
	// DueJobs returns up to limit jobs due at now, in due order, leaving
	// out those skip names (jobs being sent).
	DueJobs(ctx context.Context, now time.Time, limit int, skip func(id uint64) bool) ([]Job, error)
	// NextDue is when the earliest job is due; the zero time when none.
	NextDue(ctx context.Context) (time.Time, error)
	OutboxDepth(ctx context.Context) (queued, parked int, err error)
	// DeliverableBatch checks each job again at send time (suppression,
	// unsubscription, erasure); false means drop it. A JobNotice is
	// deliverable while NoticeOwed and its address is not suppressed by
	// an operator for every topic.
	DeliverableBatch(ctx context.Context, jobs []Job) ([]bool, error)
	// FinishJobs removes jobs the relay accepted (or dropped ones). A
	// JobNotice that leaves the outbox still deliverable went out: its
	// subscriber's notice is marked sent with an informed ledger event
	// (PlanNoticeSent), in the same transaction.
	FinishJobs(ctx context.Context, jobs []Job) error
	RetryJob(ctx context.Context, job Job, next time.Time, reason string) error
	ParkJob(ctx context.Context, job Job, reason string) error
	// ExpediteRetries makes every waiting retry due now, except the jobs
	// skip names (nil: none); jobs being sent keep their place, so their
	// outcome finds them.
	ExpediteRetries(ctx context.Context, skip func(id uint64) bool) (int, error)
}

// WebhookStore keeps webhook endpoints and their deliveries. Every ledger
// event a webhook reports (Event.Queue) and every suppression it reports
// (QueueSuppressed) is queued, once per endpoint that takes it, in the
// transaction that records it. Deliveries of one endpoint about one
// subscriber are due one at a time in commit order: the next becomes due
// when the one before it is finished or parked. Erasure keeps a person's
// deliveries (their messages are rendered at send time, without personal
// data once the person is gone).
type WebhookStore interface {
	// CreateWebhook stores w (from NewWebhook) with a new id, audited
	// under a; more than MaxWebhooks endpoints is EConflict.
	CreateWebhook(ctx context.Context, a Actor, w Webhook) (Webhook, error)
	// Webhook returns endpoint id with its secret, or ENotFound.
	Webhook(ctx context.Context, id string) (Webhook, error)
	// Webhooks lists the endpoints in id order, without secrets.
	Webhooks(ctx context.Context) ([]WebhookInfo, error)
	// DeleteWebhook deletes endpoint id and its queued and parked
	// deliveries, audited; an unknown id is ENotFound.
	DeleteWebhook(ctx context.Context, a Actor, id string) error
	// RedeliverWebhook queues endpoint id's parked deliveries again, in
	// the order they were first queued, behind the deliveries waiting
	// now, with their message ids, and returns how many; audited.
	RedeliverWebhook(ctx context.Context, a Actor, id string) (int, error)
	// QueueHead queues a ledger_head delivery of the signed head note to
	// every endpoint that takes them.
	QueueHead(ctx context.Context, note string) error
	// DueDeliveries returns up to limit deliveries due at now, in due
	// order, leaving out those skip names (deliveries being sent, or of
	// an endpoint busy enough).
	DueDeliveries(ctx context.Context, now time.Time, limit int, skip func(d Delivery) bool) ([]Delivery, error)
	// NextDelivery is when the earliest delivery is due; zero when none.
	NextDelivery(ctx context.Context) (time.Time, error)
	// DeliveryContent returns what d is rendered from at send time: its
	// ledger event (nil for a suppression) and its subscriber (nil when
	// erased or unknown).
	DeliveryContent(ctx context.Context, d Delivery) (*Event, *Subscriber, error)
	// FinishDelivery removes d after the endpoint took it (or when it
	// cannot be sent) and makes the next delivery of its group due.
	FinishDelivery(ctx context.Context, d Delivery) error
	// RetryDelivery records a failed attempt and makes d due at next.
	RetryDelivery(ctx context.Context, d Delivery, next time.Time, reason string) error
	// ParkDelivery sets d aside after its last attempt, keeping reason,
	// and makes the next delivery of its group due.
	ParkDelivery(ctx context.Context, d Delivery, reason string) error
	// WebhookDepth counts the queued and the parked deliveries.
	WebhookDepth(ctx context.Context) (queued, parked int, err error)
}

// LedgerStore reads the consent ledger.
type LedgerStore interface {
	// Events returns subscriber id's events in order with their personal
	// records, wordings and assessments: the proof of consent.
	Events(ctx context.Context, id string) ([]EventRecord, error)
	// VerifyLedger walks the whole chain with a Chain and reports the
	// first break, including stored tree hashes that do not match the
	// events, and whether the ledger extends each of heads (saved signed
	// heads).
	VerifyLedger(ctx context.Context, heads ...tlog.Tree) (LedgerReport, error)
	// LedgerTree returns the Merkle tree of every committed event: its
	// size and root hash, from the stored hashes.
	LedgerTree(ctx context.Context) (tlog.Tree, error)
	// LedgerHashes returns the stored tree hashes at indexes
	// (tlog.StoredHashIndex), all within the committed tree; it is the
	// tlog.HashReader proofs are made from. A hash not stored is an error.
	LedgerHashes(ctx context.Context, indexes []int64) ([]tlog.Hash, error)
	// LedgerCounts counts events by type after sequence number after, and
	// returns the last sequence number counted; from the start (after 0)
	// it reads the counters (see Counts) instead of the events.
	LedgerCounts(ctx context.Context, after uint64) (map[EventType]uint64, uint64, error)
}
