package consent

import (
	"slices"
	"strings"
	"time"
)

// BreachNotifyWithin is how long a controller has to notify the
// supervisory authority of a personal data breach after becoming aware of
// it (GDPR Art. 33(1)).
const BreachNotifyWithin = 72 * time.Hour

// DataCategories are the kinds of personal data optin holds, which an
// incident names as affected.
var DataCategories = []string{"email", "name", "ip", "user_agent", "consent_records", "activity_notes"}

// Incident is an entry of the breach register (GDPR Art. 33(5)): what
// happened, when it was discovered, which data and which time window it
// concerns, and whether the people affected were told (Art. 34).
type Incident struct {
	ID             string    `json:"id"`
	Created        time.Time `json:"created"`
	By             string    `json:"by"` // the admin key's name
	DiscoveredAt   time.Time `json:"discovered_at"`
	Description    string    `json:"description"`
	DataCategories []string  `json:"data_categories"`
	// From and To bound the window in which the data was exposed.
	From time.Time `json:"from"`
	To   time.Time `json:"to"`
	// Notified is when notices to the people affected were queued, and
	// NoticesQueued how many; zero until then.
	Notified      time.Time `json:"notified,omitzero"`
	NoticesQueued int       `json:"notices_queued"`
}

// IncidentInput is an incident as the admin API receives it.
type IncidentInput struct {
	DiscoveredAt   string   `json:"discovered_at"`
	Description    string   `json:"description"`
	DataCategories []string `json:"data_categories"`
	From           string   `json:"from"`
	To             string   `json:"to"`
}

// NewIncident validates in and returns the incident recorded at now by
// a: RFC 3339 times, discovered and the window not in the future, the
// window's start before its end, a description of 1-5000 characters and
// at least one known data category. Problems are EInvalid.
func NewIncident(in IncidentInput, id string, a Actor, now time.Time) (*Incident, error) {
	inc := &Incident{ID: id, Created: now, By: a.Name, Description: strings.TrimSpace(strings.ReplaceAll(in.Description, "\r\n", "\n"))}
	var err error
	for _, f := range []struct {
		name string
		s    string
		t    *time.Time
	}{{"discovered_at", in.DiscoveredAt, &inc.DiscoveredAt}, {"from", in.From, &inc.From}, {"to", in.To, &inc.To}} {
		if *f.t, err = time.Parse(time.RFC3339, f.s); err != nil {
			return nil, Errorf(EInvalid, "%s must be an RFC 3339 time such as 2026-11-30T08:00:00Z", f.name)
		}
		*f.t = f.t.UTC().Truncate(time.Millisecond)
		if f.t.After(now) {
			return nil, Errorf(EInvalid, "%s must not be in the future", f.name)
		}
	}
	if inc.From.After(inc.To) {
		return nil, Errorf(EInvalid, "from must not be after to")
	}
	if inc.Description == "" || !PlainText(inc.Description, 5000, true) {
		return nil, Errorf(EInvalid, "description is required: plain text of at most 5000 characters")
	}
	for _, c := range in.DataCategories {
		if !slices.Contains(DataCategories, c) {
			return nil, Errorf(EInvalid, "data_categories: %q is not one of %s", Truncate(c, 40), strings.Join(DataCategories, ", "))
		}
		if !slices.Contains(inc.DataCategories, c) {
			inc.DataCategories = append(inc.DataCategories, c)
		}
	}
	if len(inc.DataCategories) == 0 {
		return nil, Errorf(EInvalid, "data_categories is required: one or more of %s", strings.Join(DataCategories, ", "))
	}
	return inc, nil
}

// Deadline is when the supervisory authority must have been notified.
func (i *Incident) Deadline() time.Time { return i.DiscoveredAt.Add(BreachNotifyWithin) }

// Affects reports whether sub's data existed during the incident's window:
// the subscriber was created before its end. (An erased person's data is
// gone; they are not listed and get no notice.)
func (i *Incident) Affects(sub *Subscriber) bool { return !sub.Created.After(i.To) }

// maxNoticeText caps an incident notice's operator text.
const maxNoticeText = 5000

// ParseNoticeText validates the operator's text of a breach notice to the
// people affected (GDPR Art. 34(2): the nature of the breach, a contact,
// its likely consequences and the measures taken): plain text of 1-5000
// characters. Problems are EInvalid.
func ParseNoticeText(s string) (string, error) {
	s = strings.TrimSpace(strings.ReplaceAll(s, "\r\n", "\n"))
	if s == "" || !PlainText(s, maxNoticeText, true) {
		return "", Errorf(EInvalid, "message is required: plain text of at most %d characters saying what happened, its likely consequences, what you did and whom to contact", maxNoticeText)
	}
	return s, nil
}

// IncidentNotice is the outbox job of incident inc's notice to sub, with
// the operator's text. It is not marketing: it goes to suppressed
// addresses too (Art. 34), never to erased people.
func IncidentNotice(inc *Incident, sub *Subscriber, text string, now time.Time, ids IDs) *Job {
	return &Job{Kind: JobIncidentNotice, To: sub.Email, Name: sub.MailName(), Locale: sub.Locale, Subscriber: sub.ID,
		MessageID: ids.MessageID(), Created: now, Incident: inc.ID, Body: text}
}
