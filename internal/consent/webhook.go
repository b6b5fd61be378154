package consent

import (
	"encoding/base64"
	"fmt"
	"io"
	"net/url"
	"slices"
	"strings"
	"time"
)

// WebhookEvent is what a webhook tells a receiver about.
type WebhookEvent string

// Webhook events. All but WebhookSuppressed are ledger events of the same
// name; WebhookSuppressed reports an entry of the suppression list that
// the person did not cause by opting out (an operator's block, a bounce,
// a complaint).
const (
	WebhookConfirmed          WebhookEvent = "confirmed"
	WebhookUnsubscribed       WebhookEvent = "unsubscribed"
	WebhookPreferencesUpdated WebhookEvent = "preferences_updated"
	WebhookReconfirmed        WebhookEvent = "reconfirmed"
	WebhookLapsed             WebhookEvent = "lapsed"
	WebhookErased             WebhookEvent = "erased"
	WebhookSuppressed         WebhookEvent = "suppressed"
	// WebhookLedgerHead carries each signed head of the consent ledger
	// to a receiver that keeps it: a witness outside optin, so a later
	// rewrite of the ledger cannot match a head it already holds.
	WebhookLedgerHead WebhookEvent = "ledger_head"
	// WebhookChannelConsented, WebhookChannelWithdrawn and
	// WebhookFrequencyChosen report a person's choice of channels
	// besides email and of frequency, so the shop's SMS, call or mailing
	// tools follow it; the evidence names the channel or frequency.
	WebhookChannelConsented WebhookEvent = "channel_consented"
	WebhookChannelWithdrawn WebhookEvent = "channel_withdrawn"
	WebhookFrequencyChosen  WebhookEvent = "frequency_chosen"
)

// WebhookEvents lists every webhook event, in the order documented.
var WebhookEvents = []WebhookEvent{WebhookConfirmed, WebhookUnsubscribed, WebhookPreferencesUpdated,
	WebhookReconfirmed, WebhookLapsed, WebhookErased, WebhookSuppressed, WebhookLedgerHead,
	WebhookChannelConsented, WebhookChannelWithdrawn, WebhookFrequencyChosen}

// WebhookEventOf returns the webhook event a ledger event of type t
// causes, and false for the types no webhook reports (requested,
// imported, canceled, activity, rectified, informed).
func WebhookEventOf(t EventType) (WebhookEvent, bool) {
	e := WebhookEvent(t)
	return e, e != WebhookSuppressed && e != WebhookLedgerHead && slices.Contains(WebhookEvents, e)
}

// WebhookScope is how much personal data a webhook endpoint receives (GDPR
// Art. 5(1)(c), data minimisation).
type WebhookScope string

// Webhook scopes.
const (
	// ScopeEvidence sends the subscriber's opaque id and the consent
	// evidence, never an address or a name.
	ScopeEvidence WebhookScope = "evidence"
	// ScopeContact adds the address and the name, as optin holds them
	// when the delivery is sent (nothing once the person is erased).
	ScopeContact WebhookScope = "contact"
)

// MaxWebhooks caps how many endpoints a store keeps: every event is
// queued once per endpoint that takes it, in the event's transaction.
const MaxWebhooks = 20

// WebhookSecretPrefix starts every webhook signing secret (Standard
// Webhooks): whsec_ and the base64 of the key.
const WebhookSecretPrefix = "whsec_"

// Webhook is an endpoint that receives signed event deliveries. Secret is
// the signing secret; it is shown once, when the endpoint is created.
type Webhook struct {
	ID      string         `json:"id"`
	URL     string         `json:"url"`
	Events  []WebhookEvent `json:"events"`
	Scope   WebhookScope   `json:"scope"`
	Secret  string         `json:"secret"`
	Created time.Time      `json:"created"`
}

// Takes reports whether w receives event e.
func (w *Webhook) Takes(e WebhookEvent) bool { return slices.Contains(w.Events, e) }

// Key returns the HMAC key of w's secret.
func (w *Webhook) Key() ([]byte, error) {
	return base64.StdEncoding.DecodeString(strings.TrimPrefix(w.Secret, WebhookSecretPrefix))
}

// WebhookInput is what an operator gives to register an endpoint.
type WebhookInput struct {
	URL    string         `json:"url"`
	Events []WebhookEvent `json:"events"`
	Scope  WebhookScope   `json:"scope"`
}

// WebhookInfo is an endpoint as listings show it: no secret, and how many
// of its deliveries wait (queued) or failed for good (parked).
type WebhookInfo struct {
	ID      string         `json:"id"`
	URL     string         `json:"url"`
	Events  []WebhookEvent `json:"events"`
	Scope   WebhookScope   `json:"scope"`
	Created time.Time      `json:"created"`
	Queued  int            `json:"queued"`
	Parked  int            `json:"parked"`
}

// Info returns w without its secret, with the given counts.
func (w *Webhook) Info(queued, parked int) WebhookInfo {
	return WebhookInfo{ID: w.ID, URL: w.URL, Events: w.Events, Scope: w.Scope, Created: w.Created, Queued: queued, Parked: parked}
}

// NewWebhook validates in and returns the endpoint to store, with a new
// secret of 32 bytes read from r (the store sets ID and Created). The URL
// must be absolute https (http only on a loopback host, for local
// receivers) without user info or fragment; events must name at least one
// webhook event; the scope defaults to ScopeEvidence. Bad input is
// EInvalid.
func NewWebhook(r io.Reader, in WebhookInput) (Webhook, error) {
	raw := strings.TrimSpace(in.URL)
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" || u.User != nil || u.Fragment != "" || len(raw) > 2048 || !SecureURL(u) {
		return Webhook{}, Errorf(EInvalid, "url must be an absolute https URL (http only on a loopback host) without user info or fragment")
	}
	if len(in.Events) == 0 {
		return Webhook{}, Errorf(EInvalid, "events must name at least one of %s", webhookEventList())
	}
	var events []WebhookEvent
	for _, e := range in.Events {
		if !slices.Contains(WebhookEvents, e) {
			return Webhook{}, Errorf(EInvalid, "event %q is not one of %s", Truncate(string(e), 64), webhookEventList())
		}
		if !slices.Contains(events, e) {
			events = append(events, e)
		}
	}
	slices.Sort(events)
	scope := in.Scope
	switch scope {
	case "":
		scope = ScopeEvidence
	case ScopeEvidence, ScopeContact:
	default:
		return Webhook{}, Errorf(EInvalid, "scope must be evidence (no address or name) or contact")
	}
	key := make([]byte, 32)
	if _, err := io.ReadFull(r, key); err != nil {
		return Webhook{}, fmt.Errorf("webhook secret: %w", err)
	}
	return Webhook{URL: u.String(), Events: events, Scope: scope,
		Secret: WebhookSecretPrefix + base64.StdEncoding.EncodeToString(key)}, nil
}

func webhookEventList() string {
	s := make([]string, len(WebhookEvents))
	for i, e := range WebhookEvents {
		s[i] = string(e)
	}
	return strings.Join(s, ", ")
}

// Delivery is one event waiting to reach one endpoint, written in the
// same transaction as the event. Deliveries of one endpoint about one
// subscriber go out one at a time in the order they were committed: a
// delivery is due only once the one before it was delivered or parked.
// It holds references, not the message: the message is rendered when it
// is sent (RenderWebhook), from what optin still holds then, so a
// delivery queued before an erasure carries no personal data.
type Delivery struct {
	ID      uint64       `json:"id"`
	Webhook string       `json:"webhook"`
	Event   WebhookEvent `json:"event"`
	// Subscriber is whom the event is about; "" for a suppression of an
	// address no subscriber holds.
	Subscriber string `json:"subscriber,omitempty"`
	// Seq is the ledger event's sequence number; 0 for WebhookSuppressed.
	Seq uint64 `json:"seq,omitempty"`
	// Suppression is what WebhookSuppressed reports.
	Suppression *Suppression `json:"suppression,omitempty"`
	// Head is the signed note WebhookLedgerHead carries (no personal data).
	Head string `json:"head,omitempty"`
	// Msg is set when a redelivery gave the delivery a new id: the
	// message id it keeps (see MessageID).
	Msg       string    `json:"msg,omitempty"`
	Created   time.Time `json:"created"`
	Attempts  int       `json:"attempts"`
	NextAt    time.Time `json:"next_at,omitzero"`
	LastError string    `json:"last_error,omitempty"`
}

// MessageID returns d's message id (the webhook-id header): the same on
// every attempt and redelivery, so receivers can drop duplicates.
func (d *Delivery) MessageID() string {
	if d.Msg != "" {
		return d.Msg
	}
	return fmt.Sprintf("msg_%d", d.ID)
}

// Queue returns the deliveries of ev, one per endpoint in hooks that takes
// its webhook event (none for a ledger event no webhook reports), created
// at ev.Time. The store sets ID and NextAt.
func (ev *Event) Queue(hooks []Webhook) []Delivery {
	e, ok := WebhookEventOf(ev.Type)
	if !ok {
		return nil
	}
	return queue(hooks, Delivery{Event: e, Subscriber: ev.Subscriber, Seq: ev.Seq, Created: ev.Time})
}

// Reported reports whether suppression s is one a WebhookSuppressed event
// tells receivers about: every one but the person's own opt-outs and
// erasures, which their unsubscribed and erased events report.
func (s Suppression) Reported() bool {
	return s.Reason != ReasonUnsubscribed && s.Reason != ReasonErased
}

// QueueSuppressed returns the WebhookSuppressed deliveries of s for the
// endpoints in hooks that take it, about subscriber ("" when no
// subscriber holds the address); none when s is not Reported.
func QueueSuppressed(hooks []Webhook, s Suppression, subscriber string) []Delivery {
	if !s.Reported() {
		return nil
	}
	return queue(hooks, Delivery{Event: WebhookSuppressed, Subscriber: subscriber, Suppression: &s, Created: s.Created})
}

// QueueHead returns the WebhookLedgerHead deliveries of the signed head
// note, made at, for the endpoints in hooks that take it.
func QueueHead(hooks []Webhook, note string, at time.Time) []Delivery {
	return queue(hooks, Delivery{Event: WebhookLedgerHead, Head: note, Created: at})
}

func queue(hooks []Webhook, d Delivery) []Delivery {
	var ds []Delivery
	for i := range hooks {
		if hooks[i].Takes(d.Event) {
			d.Webhook = hooks[i].ID
			ds = append(ds, d)
		}
	}
	return ds
}

// WebhookMessage is the JSON body of a delivery, in the Standard Webhooks
// shape: type, timestamp and data.
type WebhookMessage struct {
	Type      WebhookEvent `json:"type"`
	Timestamp time.Time    `json:"timestamp"`
	Data      WebhookData  `json:"data"`
}

// WebhookData is what a delivery says: whom it is about, the consent
// evidence of its ledger event (or the suppression), and, for an endpoint
// with ScopeContact, the address and name optin holds at send time.
type WebhookData struct {
	Subscriber  string              `json:"subscriber,omitempty"`
	Evidence    *WebhookEvidence    `json:"evidence,omitempty"`
	Suppression *WebhookSuppression `json:"suppression,omitempty"`
	// Head is a ledger_head's signed note (C2SP tlog-checkpoint text and
	// its signature lines), as GET /ledger/head serves it.
	Head  string `json:"head,omitempty"`
	Email string `json:"email,omitempty"`
	Name  string `json:"name,omitempty"`
	// Phone and PostalAddress come with ScopeContact on the channel
	// events, where optin holds them, so the tool that texts, calls or
	// posts knows where to.
	Phone         string `json:"phone,omitempty"`
	PostalAddress string `json:"postal_address,omitempty"`
}

// WebhookEvidence is the proof of a ledger event: when, which topics, on
// which basis, from which source and page, the SHA-256 of the wording
// shown, and the event's place in the hash chain (its sequence number and
// hash), which GET /api/v1/ledger/verify and the subscriber's consents
// confirm.
type WebhookEvidence struct {
	Seq     uint64    `json:"seq"`
	Hash    string    `json:"hash"`
	Time    time.Time `json:"time"`
	Topics  []string  `json:"topics,omitempty"`
	Basis   Basis     `json:"basis,omitempty"`
	Source  string    `json:"source"`
	Page    string    `json:"page,omitempty"`
	Wording string    `json:"wording,omitempty"`
	// Channel is a channel event's channel; Frequency a
	// frequency_chosen event's choice ("" for none).
	Channel   Channel   `json:"channel,omitempty"`
	Frequency Frequency `json:"frequency,omitempty"`
}

// WebhookSuppression is what a suppressed event reports: the scope (a
// topic or "*"), the reason and when. The operator's note is left out:
// it is free text and may name the person.
type WebhookSuppression struct {
	Scope  string    `json:"scope"`
	Reason string    `json:"reason"`
	Time   time.Time `json:"time"`
}

// WebhookReason is how webhooks name a suppression reason: ReasonAdmin is
// "operator"; the others keep their names.
func WebhookReason(reason string) string {
	if reason == ReasonAdmin {
		return "operator"
	}
	return reason
}

// RenderWebhook returns the message of delivery d for an endpoint with
// scope: ev is d's ledger event (nil for a suppression), sub the
// subscriber as optin holds them now (nil once erased, or when no
// subscriber holds a suppressed address). Only ScopeContact gets an
// address or a name, and only from sub, so a delivery sent after an
// erasure carries none whatever its scope.
func RenderWebhook(d Delivery, ev *Event, sub *Subscriber, scope WebhookScope) WebhookMessage {
	m := WebhookMessage{Type: d.Event, Timestamp: d.Created, Data: WebhookData{Subscriber: d.Subscriber}}
	if ev != nil {
		m.Data.Evidence = &WebhookEvidence{Seq: ev.Seq, Hash: ev.Hash, Time: ev.Time, Topics: ev.Topics, Basis: ev.Basis,
			Source: ev.Source, Page: ev.Page, Wording: ev.Wording, Channel: ev.Channel, Frequency: ev.Frequency}
	}
	if s := d.Suppression; s != nil {
		m.Data.Suppression = &WebhookSuppression{Scope: s.Scope, Reason: WebhookReason(s.Reason), Time: s.Created}
	}
	m.Data.Head = d.Head
	if scope == ScopeContact && sub != nil && sub.ID == d.Subscriber {
		m.Data.Email, m.Data.Name = sub.Email, sub.Name
		if d.Event == WebhookChannelConsented || d.Event == WebhookChannelWithdrawn {
			m.Data.Phone, m.Data.PostalAddress = sub.Phone, sub.PostalAddress
		}
	}
	return m
}
