package mail

import (
	"errors"
	"strings"

	"optin/internal/consent"
	"optin/internal/i18n"
	"optin/internal/token"
)

// reawaken fills in a reawaken campaign's mail. It is marketing in every
// respect (CASL s. 1(3)): one-click List-Unsubscribe for the campaign's
// topic with List-Unsubscribe-Post, its List-Id, a visible unsubscribe link, the
// sender's postal address and a note on the right to object. The
// marketer's subject and body are plain text: their placeholders are
// replaced as strings, never run as a template, and the HTML part shows
// the body escaped, one paragraph per blank-line-separated block. The
// "keep me subscribed" link names the campaign and the subscriber only.
func (r *Renderer) reawaken(job consent.Job, topics []consent.Topic, l i18n.Localizer, data map[string]any, m *Message) error {
	if job.Campaign == "" || job.Topic == "" || job.Subject == "" || job.Body == "" {
		return errors.New("mail: reawaken job without campaign, topic, subject or body")
	}
	topicName := job.Topic
	if len(topics) > 0 {
		topicName = topics[0].Name
	}
	keepTok, err := r.tokens.Issue(token.Reawaken, token.Claims{Subject: consent.ReawakenSubject(job.Campaign, job.Subscriber),
		Topic: job.Topic, ExpiresAt: job.TokenExpires})
	if err != nil {
		return err
	}
	unsubURL, err := r.UnsubscribeURL(job.Subscriber, job.Topic)
	if err != nil {
		return err
	}
	prefTok, err := r.tokens.Issue(token.Preferences, token.Claims{Subject: job.Subscriber, ExpiresAt: r.now().Add(token.PreferencesTTL)})
	if err != nil {
		return err
	}
	name, _ := data["Name"].(string)
	m.Subject = consent.FillPlaceholders(job.Subject, name, topicName)
	if job.Reminder {
		m.Subject = l.T("mail.reawaken.reminder", m.Subject)
	}
	body := consent.FillPlaceholders(job.Body, name, topicName)
	var paragraphs [][]string
	for _, p := range strings.Split(body, "\n\n") {
		if p = strings.TrimSpace(p); p != "" {
			paragraphs = append(paragraphs, strings.Split(p, "\n"))
		}
	}
	data["Body"] = body
	data["Paragraphs"] = paragraphs
	data["TopicName"] = topicName
	data["KeepURL"] = r.baseURL + "/reawaken/" + keepTok
	data["UnsubscribeURL"] = unsubURL
	data["PreferencesURL"] = r.baseURL + "/preferences/" + prefTok
	data["Why"] = l.T("mail.reawaken.why"+consent.ReawakenWording(job.Basis), topicName, data["Brand"].(consent.Brand).SiteName)
	data["Button"] = l.T("mail.reawaken.button" + consent.ReawakenWording(job.Basis))
	data["Deadline"] = job.TokenExpires.Add(-consent.ReawakenLinkGrace).UTC().Format(l.T("mail.date_layout"))
	r.setUnsubscribe(m, unsubURL)
	m.Link = data["KeepURL"].(string)
	m.ListID = r.ListID(job.Topic)
	return nil
}
