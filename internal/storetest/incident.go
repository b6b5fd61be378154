package storetest

import (
	"slices"
	"testing"
	"time"

	"optin/internal/consent"
)

// testIncidents: the breach register stores an incident with an id and
// audits it; EachAffected yields the subscribers created by the end of
// its window, suppressed ones included; NotifyIncident queues one notice
// each, deliverable to an unsubscribed person, once.
func testIncidents(t *testing.T, f *fixture) {
	ctx := t.Context()
	f.bootstrap()
	f.subscribe("in@example.com")
	gone := f.subscribe("gone@example.com")
	f.unsubscribe(gone.ID, "")
	end := f.now()
	f.clock.Advance(time.Hour)
	f.subscribe("later@example.com")
	for len(f.due(f.now())) > 0 {
		if err := f.s.FinishJobs(ctx, f.due(f.now())); err != nil {
			t.Fatal(err)
		}
	}

	in := consent.IncidentInput{DiscoveredAt: f.now().Format(time.RFC3339), Description: "laptop lost",
		DataCategories: []string{"email"}, From: end.Add(-consent.Day).Format(time.RFC3339), To: end.Add(time.Second).Format(time.RFC3339Nano)}
	_, err := f.s.CreateIncident(ctx, admin, consent.IncidentInput{})
	f.wantCode("CreateIncident(empty)", err, consent.EInvalid)
	inc, err := f.s.CreateIncident(ctx, admin, in)
	if err != nil || inc.ID == "" {
		t.Fatalf("CreateIncident: got %+v, %v", inc, err)
	}
	if got, err := f.s.Incident(ctx, inc.ID); err != nil || got.Description != "laptop lost" {
		t.Errorf("Incident: got %+v, %v", got, err)
	}
	_, err = f.s.Incident(ctx, "nope")
	f.wantCode("Incident(unknown)", err, consent.ENotFound)

	var affected []string
	if err := f.s.EachAffected(ctx, inc, func(s *consent.Subscriber) error { affected = append(affected, s.Email); return nil }); err != nil {
		t.Fatal(err)
	}
	slices.Sort(affected)
	if want := []string{"gone@example.com", "in@example.com"}; !slices.Equal(affected, want) {
		t.Errorf("EachAffected: got %q, want %q", affected, want)
	}

	n, err := f.s.NotifyIncident(ctx, admin, inc.ID, "Change your password.")
	if err != nil || n != 2 {
		t.Fatalf("NotifyIncident: got %d, %v, want 2", n, err)
	}
	notices := f.dueOf(consent.JobIncidentNotice, f.now())
	if got := emails(notices); len(got) != 2 || !slices.Equal(f.deliverable(notices...), []bool{true, true}) {
		t.Errorf("notices: got %q deliverable %v, want two, both deliverable (opted out or not)", got, f.deliverable(notices...))
	}
	_, err = f.s.NotifyIncident(ctx, admin, inc.ID, "again")
	f.wantCode("NotifyIncident twice", err, consent.EConflict)
	if got, _ := f.s.Incident(ctx, inc.ID); got.NoticesQueued != 2 || got.Notified.IsZero() {
		t.Errorf("incident after notifying: got %+v", got)
	}
	if acts := f.auditActions(); !slices.Contains(acts, "incident.create") || !slices.Contains(acts, "incident.notify") {
		t.Errorf("audit: got %q, want incident.create and incident.notify", acts)
	}
}
