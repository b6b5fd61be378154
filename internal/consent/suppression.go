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

// CheckDeletable says whether an operator's delete of an address's
// suppressions may go ahead, given how many entries it names (found) and
// how many of those an operator added (removable): ENotFound without
// entries, EConflict when none is the operator's (the person's own
// opt-outs and erasures are never removed this way: only a new double
// opt-in by the person lifts them), nil otherwise.
func CheckDeletable(found, removable int) error {
	switch {
	case found == 0:
		return Errorf(ENotFound, "no suppression for this hash")
	case removable == 0:
		return Errorf(EConflict, "only suppressions added by an operator can be removed; this one records the person's own opt-out")
	}
	return nil
}

// DeleteTarget is how the audit log names a delete of the suppressions of
// the address with hash h, for scope ("" for every scope).
func DeleteTarget(h, scope string) string {
	if scope == "" {
		return KeyID(h)
	}
	return KeyID(h) + "/" + scope
}
