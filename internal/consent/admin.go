package consent

import (
	"strings"
	"time"
)

// Actor is who performs an admin write: an API key, or the local CLI
// through the admin socket. It is recorded in the audit log and, as
// admin:<name>, in the source of ledger events the write causes.
type Actor struct {
	// Name is the API key's name, or "cli".
	Name string `json:"key"`
	// KeyID is the first 16 hex digits of the key's hash; empty for the CLI.
	KeyID string `json:"key_id,omitempty"`
}

// ActorOf returns the actor for an authenticated API key.
func ActorOf(k APIKey) Actor { return Actor{Name: k.Name, KeyID: KeyID(k.Hash)} }

// CLIActor returns the actor of commands run through the admin socket or
// on the database file directly.
func CLIActor() Actor { return Actor{Name: "cli"} }

// Source returns the ledger source of events caused by a.
func (a Actor) Source() string { return "admin:" + a.Name }

// KeyID returns the public identifier of an API key: the first 16 hex
// digits of its hash. It names the key in the audit log and in revocation.
func KeyID(hash string) string {
	if len(hash) > 16 {
		return hash[:16]
	}
	return hash
}

// AuditEntry records one admin write: who, what, on what, how many records.
type AuditEntry struct {
	Seq    uint64    `json:"seq"`
	Time   time.Time `json:"time"`
	Key    string    `json:"key"`
	KeyID  string    `json:"key_id,omitempty"`
	Action string    `json:"action"`
	Target string    `json:"target,omitempty"`
	Count  int       `json:"count"`
}

// APIKeyPrefix starts every API key secret optin makes.
const APIKeyPrefix = "optin_"

// APIKeyInfo is an API key as the admin API lists it: never the hash, only
// its public prefix.
type APIKeyInfo struct {
	ID       string    `json:"id"`
	Name     string    `json:"name"`
	Role     Role      `json:"role"`
	Created  time.Time `json:"created"`
	LastUsed time.Time `json:"last_used,omitzero"`
	Revoked  time.Time `json:"revoked,omitzero"`
}

// KeyInfo returns k as the admin API lists it.
func KeyInfo(k APIKey) APIKeyInfo {
	return APIKeyInfo{ID: KeyID(k.Hash), Name: k.Name, Role: k.Role, Created: k.Created, LastUsed: k.LastUsed, Revoked: k.Revoked}
}

// SubscriberFilter selects subscribers. Zero fields match everything.
type SubscriberFilter struct {
	// Status matches subscribers with a subscription in this status (on
	// Topic, when Topic is set).
	Status Status
	// Topic matches subscribers with a subscription to this topic.
	Topic string
	// Channel matches subscribers with a subscription (to Topic, when
	// set) that the channel carries (Subscription.Carries): a confirmed
	// one, so a filter on a channel sets Status to StatusConfirmed.
	Channel Channel
	// Lifecycle matches the stage at the store's clock, with DormantAfter.
	Lifecycle    Lifecycle
	DormantAfter time.Duration
	// Query matches a case-insensitive substring of the email or name; a
	// whole address finds exactly the subscriber holding it.
	Query string
	// CreatedSince and CreatedBefore, when set, match subscribers created
	// at or after CreatedSince and before CreatedBefore: a range of ids,
	// which start with their creation time (see FirstIDAt).
	CreatedSince, CreatedBefore time.Time
	// Newest lists the newest subscribers first (descending ids, which
	// start with the creation time); otherwise the oldest come first.
	Newest bool
	// Cursor is the last id of the previous page; "" starts at the top.
	Cursor string
	// Limit is the page size (1-500).
	Limit int
}

// Match reports whether s passes the filter at time now (the cursor and
// limit aside).
func (f SubscriberFilter) Match(s *Subscriber, now time.Time) bool {
	if lo, hi := f.IDRange(); s.ID < lo || hi != "" && s.ID >= hi {
		return false
	}
	if f.Topic != "" || f.Status != "" || f.Channel != "" {
		found := false
		for t, sub := range s.Subscriptions {
			if (f.Topic == "" || t == f.Topic) && (f.Status == "" || sub.Status == f.Status) &&
				(f.Channel == "" || sub.Carries(f.Channel)) {
				found = true
				break
			}
		}
		if !found {
			return false
		}
	}
	if f.Lifecycle != "" && s.Lifecycle(now, f.DormantAfter) != f.Lifecycle {
		return false
	}
	if f.Query != "" {
		q := strings.ToLower(f.Query)
		if !strings.Contains(strings.ToLower(s.Email), q) && !strings.Contains(strings.ToLower(s.Name), q) {
			return false
		}
	}
	return true
}

// IDRange returns the ids the filter's creation times allow: from lo
// (inclusive) to hi (exclusive; "" for no end).
func (f SubscriberFilter) IDRange() (lo, hi string) {
	if !f.CreatedSince.IsZero() {
		lo = FirstIDAt(f.CreatedSince)
	}
	if !f.CreatedBefore.IsZero() {
		hi = FirstIDAt(f.CreatedBefore)
	}
	return lo, hi
}

// SuppressionPage is one page of the suppression list.
type SuppressionPage struct {
	Items []Suppression `json:"items"`
	// NextCursor continues the listing; "" after the last entry.
	NextCursor string `json:"next_cursor"`
}

// Stats is an overview of the store, read from the counters it keeps
// beside its records (see Counts).
type Stats struct {
	Subscribers int `json:"subscribers"`
	// ByStatus counts subscriptions (subscriber x topic) by status.
	ByStatus map[Status]int `json:"by_status"`
	// ByTopic counts subscriptions by topic, then status.
	ByTopic map[string]map[Status]int `json:"by_topic"`
	// ByLifecycle counts subscribers by lifecycle stage.
	ByLifecycle map[Lifecycle]int `json:"by_lifecycle"`
	// Requests counts double-opt-in requests; ConfirmedRequests those
	// confirmed; ConfirmationRate is their ratio (0 without requests).
	Requests          int     `json:"requests"`
	ConfirmedRequests int     `json:"confirmed_requests"`
	ConfirmationRate  float64 `json:"confirmation_rate"`
	// Daily has one entry per UTC day for the days asked for (30 by
	// default), oldest first, today included: requested, confirmed and
	// unsubscribed ledger events.
	Daily []DayStats `json:"daily"`
}

// DayStats counts one UTC day's signups, confirmations and unsubscribes.
type DayStats struct {
	Date          string `json:"date"` // YYYY-MM-DD
	Signups       int    `json:"signups"`
	Confirmations int    `json:"confirmations"`
	Unsubscribes  int    `json:"unsubscribes"`
}
