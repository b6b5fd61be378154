package consent

import "time"

// ScopeAll is the suppression scope that covers every topic.
const ScopeAll = "*"

// Suppression reasons.
const (
	ReasonUnsubscribed = "unsubscribed" // the person withdrew (one-click, page, preferences)
	ReasonErased       = "erased"       // the person's data was erased; only the hash remains
	ReasonAdmin        = "admin"        // added through the admin API (complaint, legal, bounce)
)

// Suppression says an address must not get mail for a scope: one topic, or
// ScopeAll. Only a keyed hash of the address is kept, so the entry survives
// erasure without holding personal data.
type Suppression struct {
	Hash    string    `json:"hash"`
	Scope   string    `json:"scope"`
	Reason  string    `json:"reason"`
	Source  string    `json:"source"`
	Created time.Time `json:"created"`
}

// LiftedByOptIn reports whether a completed double opt-in by the person
// lifts s: their own opt-outs yes, an operator's block no.
func (s Suppression) LiftedByOptIn() bool { return s.Reason != ReasonAdmin }
