package mail

import (
	"context"
	"crypto/rand"
	"fmt"

	"optin/internal/consent"
)

// Sampler renders a reawaken campaign's mail for the console's preview
// and sends test copies of it. A sample is written for a sample person
// (consent.SampleSubscriber), so its links change nothing, and a test
// copy goes straight to the transport: no outbox job, no recipient
// record, nothing recorded for any subscriber.
type Sampler struct {
	Renderer  *Renderer
	Transport Transport
	From      string
}

// Sample renders campaign c's first mail, about topic, as a sample person
// writing in locale and holding the topic on basis would get it.
func (s *Sampler) Sample(c *consent.Campaign, topic consent.Topic, locale string, basis consent.Basis) (subject, text, html string, err error) {
	m, err := s.render(c, topic, locale, basis, "")
	return m.Subject, m.Text, m.HTML, err
}

// SendTest sends the sample to the address to, marked as a test in its
// subject and first line, and reports the transport's refusal.
func (s *Sampler) SendTest(ctx context.Context, c *consent.Campaign, topic consent.Topic, locale string, basis consent.Basis, to string) error {
	m, err := s.render(c, topic, locale, basis, to)
	if err != nil {
		return err
	}
	out, err := Build(s.From, m, s.Renderer.now())
	if err != nil {
		return err
	}
	if errs := s.Transport.SendBatch(ctx, []*Outgoing{out}, []Message{m}); errs[0] != nil {
		return fmt.Errorf("mail: test send: %w", errs[0])
	}
	return nil
}

// render renders the sample; to, when set, makes it a test copy to that
// address.
func (s *Sampler) render(c *consent.Campaign, topic consent.Topic, locale string, basis consent.Basis, to string) (Message, error) {
	r := s.Renderer
	now := r.now()
	rcpt := to
	if rcpt == "" {
		rcpt = consent.SampleSubscriber + "@" + r.listDomain
	}
	l := r.cat.For(r.cat.Pick(locale))
	job := c.SampleJob(rcpt, l.T("mail.sample.name"), locale, basis, now, consent.NewID(now, rand.Reader)+"@"+r.listDomain)
	if to != "" {
		l = r.cat.For(r.cat.Pick(job.Locale)) // the language the mail is written in
		job.Subject = l.T("mail.sample.test_subject", job.Subject)
		job.Body = l.T("mail.sample.test_note", c.Name) + "\n\n" + job.Body
	}
	return r.Render(*job, []consent.Topic{topic}, consent.Brand{})
}
