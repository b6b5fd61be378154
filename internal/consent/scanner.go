package consent

import "time"

// ConfirmClass says who most likely pressed a confirmation or "keep me
// subscribed" button: a person, or a mail security scanner that opens
// every link of a mail when it is delivered and submits the forms it
// finds. A consent that no person gave is worse than none (GDPR Art.
// 7(1): the controller must be able to show the person consented).
type ConfirmClass string

// Confirmation classes.
const (
	ClassPerson             ConfirmClass = "person"
	ClassLikelyPerson       ConfirmClass = "likely_person"
	ClassSuspectedAutomated ConfirmClass = "suspected_automated"
)

// ConfirmClasses lists every class, in order of confidence that a person
// acted: a fixed set, safe as metric labels.
var ConfirmClasses = []ConfirmClass{ClassPerson, ClassLikelyPerson, ClassSuspectedAutomated}

// Reasons a Check gives for its class; a fixed set.
const (
	// ReasonScannerNetwork: the client is on a known scanner network
	// (positive scanner signal).
	ReasonScannerNetwork = "scanner_network"
	// ReasonAutomationAgent: the client presents a headless or automation
	// browser's user agent (positive scanner signal).
	ReasonAutomationAgent = "automation_agent"
	// ReasonSoonAfterMail: the click came within the window after the
	// mail was handed to the relay, when scanners open links.
	ReasonSoonAfterMail = "soon_after_mail"
	// ReasonOtherNetwork: the client's network is not the signup's.
	ReasonOtherNetwork = "other_network"
	// ReasonNoInteraction: the page saw no trusted pointer or keyboard
	// event before the button was submitted (or ran no script).
	ReasonNoInteraction = "no_interaction"
	// ReasonSignupAddress: the click came from the very address that
	// signed up, so it is never suspected.
	ReasonSignupAddress = "signup_address"
)

// Signals are what optin observed about one click on a confirmation or
// "keep me subscribed" button.
type Signals struct {
	// SinceMail is the time from the mail being handed to the relay to
	// the click.
	SinceMail time.Duration
	// ScannerNetwork names the known scanner network the client is on;
	// "" when none.
	ScannerNetwork string
	// AutomationAgent: the user agent is a headless or automation
	// browser's.
	AutomationAgent bool
	// SignupAddress: the client address is the signup's; OtherNetwork:
	// its network is not the signup's (false when the signup's address
	// is unknown).
	SignupAddress bool
	OtherNetwork  bool
	// Interaction: the page's script saw a trusted pointer or keyboard
	// event before the submit.
	Interaction bool
}

// Check is the decision about one click, recorded in its ledger event.
type Check struct {
	Class   ConfirmClass `json:"class"`
	Reasons []string     `json:"reasons,omitempty"`
	// AfterMail is the whole seconds from the mail being handed to the
	// relay to the click.
	AfterMail int64 `json:"after_mail_s"`
	// ScannerNetwork names the known scanner network the client was on.
	ScannerNetwork string `json:"scanner_network,omitempty"`
	Interaction    bool   `json:"interaction"`
}

// ScannerPolicy is what the operator chose about scanners.
type ScannerPolicy struct {
	// Window is how long after the mail left a click counts as soon.
	Window time.Duration
	// Accept records a suspected-automated confirmation (flagged by its
	// class) instead of holding it.
	Accept bool
}

// DefaultScannerWindow is ScannerPolicy.Window's default: gateways open
// a mail's links while delivering it, within seconds; two minutes leaves
// room for a slow queue.
const DefaultScannerWindow = 2 * time.Minute

// Classify decides the class of a click from its signals. Only a positive
// scanner signal (a known scanner network, an automation user agent) makes
// it suspected_automated, and never when it came from the signup's own
// address; timing, another network and a missing interaction only lower a
// person to likely_person. Nothing here rests on a secret the scanner
// could read from the page: the interaction signal can only raise
// likely_person to person.
func Classify(s Signals, p ScannerPolicy) Check {
	c := Check{AfterMail: int64(max(s.SinceMail, 0) / time.Second), ScannerNetwork: s.ScannerNetwork, Interaction: s.Interaction}
	positive := false
	if s.ScannerNetwork != "" {
		c.Reasons, positive = append(c.Reasons, ReasonScannerNetwork), true
	}
	if s.AutomationAgent {
		c.Reasons, positive = append(c.Reasons, ReasonAutomationAgent), true
	}
	if s.SinceMail < p.Window {
		c.Reasons = append(c.Reasons, ReasonSoonAfterMail)
	}
	if s.OtherNetwork {
		c.Reasons = append(c.Reasons, ReasonOtherNetwork)
	}
	if !s.Interaction {
		c.Reasons = append(c.Reasons, ReasonNoInteraction)
	}
	lower := len(c.Reasons) > 0 // a positive signal lowers too
	if s.SignupAddress {
		c.Reasons = append(c.Reasons, ReasonSignupAddress)
	}
	switch {
	case positive && !s.SignupAddress:
		c.Class = ClassSuspectedAutomated
	case lower:
		c.Class = ClassLikelyPerson
	default:
		c.Class = ClassPerson
	}
	return c
}

// Holds reports whether the click c must not count: a suspected-automated
// click under the default policy. The request stays open and its link
// keeps working, so the person's own click later still confirms.
func (p ScannerPolicy) Holds(c Check) bool {
	return c.Class == ClassSuspectedAutomated && !p.Accept
}
