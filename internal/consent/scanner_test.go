package consent_test

import (
	"slices"
	"strings"
	"testing"
	"time"

	"optin/internal/consent"
)

// TestClassify pins down the decision rules: only a positive scanner
// signal makes a click suspected, never from the signup's own address;
// timing, another network and no interaction only lower a person to
// likely_person; the interaction alone never rescues a scanner.
func TestClassify(t *testing.T) {
	p := consent.ScannerPolicy{Window: 2 * time.Minute}
	late := 10 * time.Minute
	person := consent.Signals{SinceMail: late, Interaction: true}
	with := func(f func(*consent.Signals)) consent.Signals { s := person; f(&s); return s }
	tests := []struct {
		name    string
		s       consent.Signals
		class   consent.ConfirmClass
		reasons []string
	}{
		{"a person, later, same network, with interaction", person, consent.ClassPerson, nil},
		{"soon after the mail", with(func(s *consent.Signals) { s.SinceMail = 5 * time.Second }),
			consent.ClassLikelyPerson, []string{consent.ReasonSoonAfterMail}},
		{"from another network", with(func(s *consent.Signals) { s.OtherNetwork = true }),
			consent.ClassLikelyPerson, []string{consent.ReasonOtherNetwork}},
		{"no script ran", with(func(s *consent.Signals) { s.Interaction = false }),
			consent.ClassLikelyPerson, []string{consent.ReasonNoInteraction}},
		{"every soft signal at once", consent.Signals{SinceMail: time.Second, OtherNetwork: true},
			consent.ClassLikelyPerson, []string{consent.ReasonSoonAfterMail, consent.ReasonOtherNetwork, consent.ReasonNoInteraction}},
		{"scanner network, even with an interaction", with(func(s *consent.Signals) { s.ScannerNetwork = "Microsoft Exchange Online Protection" }),
			consent.ClassSuspectedAutomated, []string{consent.ReasonScannerNetwork}},
		{"automation agent", with(func(s *consent.Signals) { s.AutomationAgent = true }),
			consent.ClassSuspectedAutomated, []string{consent.ReasonAutomationAgent}},
		{"typical scanner", consent.Signals{SinceMail: 3 * time.Second, ScannerNetwork: "Proofpoint", AutomationAgent: true, OtherNetwork: true},
			consent.ClassSuspectedAutomated, []string{consent.ReasonScannerNetwork, consent.ReasonAutomationAgent,
				consent.ReasonSoonAfterMail, consent.ReasonOtherNetwork, consent.ReasonNoInteraction}},
		{"automation agent from the signup's address", with(func(s *consent.Signals) { s.AutomationAgent, s.SignupAddress = true, true }),
			consent.ClassLikelyPerson, []string{consent.ReasonAutomationAgent, consent.ReasonSignupAddress}},
		{"the signup's address alone", with(func(s *consent.Signals) { s.SignupAddress = true }),
			consent.ClassPerson, []string{consent.ReasonSignupAddress}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := consent.Classify(tt.s, p)
			if c.Class != tt.class || !slices.Equal(c.Reasons, tt.reasons) {
				t.Errorf("Classify(%+v): got %s %v, want %s %v", tt.s, c.Class, c.Reasons, tt.class, tt.reasons)
			}
			if want := int64(tt.s.SinceMail / time.Second); c.AfterMail != want {
				t.Errorf("AfterMail: got %d, want %d", c.AfterMail, want)
			}
			held := c.Class == consent.ClassSuspectedAutomated
			if got := p.Holds(c); got != held {
				t.Errorf("Holds under hold: got %v, want %v", got, held)
			}
			if (consent.ScannerPolicy{Accept: true}).Holds(c) {
				t.Error("Holds under accept: got true, want false")
			}
		})
	}
}

// TestPlanConfirmCarriesCheck: the verdict lands in the confirmed event,
// and an event without one keeps its old encoding (and so its hash).
func TestPlanConfirmCarriesCheck(t *testing.T) {
	ids := &counterIDs{}
	sub, req := signupState(t, consent.DefaultPolicy(), ids, "news")
	check := consent.Classify(consent.Signals{SinceMail: time.Hour, Interaction: true}, consent.ScannerPolicy{Window: time.Minute})
	ev, _, err := consent.PlanConfirm(sub, req, consent.ConfirmInput{Now: t0.Add(time.Hour), Check: &check}, ids)
	if err != nil || ev == nil {
		t.Fatalf("PlanConfirm: got %v, %v", ev, err)
	}
	if ev.Check == nil || ev.Check.Class != consent.ClassPerson {
		t.Errorf("event check: got %+v, want class person", ev.Check)
	}
	ev.Check = nil
	if got := snapshot(t, ev); strings.Contains(got, `"check"`) {
		t.Errorf("event without a check encodes %s, want no check key", got)
	}
}
