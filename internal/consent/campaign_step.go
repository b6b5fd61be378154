package consent

import (
	"context"
	"slices"
	"strings"
	"time"
)

// PerTick is how many mails campaign c queues in one tick: its rate per
// second times the tick, at least one.
func (c *Campaign) PerTick(tick time.Duration) int {
	return max(int(float64(c.Rate)*tick.Seconds()), 1)
}

// CampaignSteps are a store's transactions of one CampaignStep, which Run
// drives the same way for every store. K is the store's key of a timed
// follow-up (a reminder or a deadline), in the order they fall due.
type CampaignSteps[K any] struct {
	// Look reports, without writing, whether first mails wait in the
	// outbox and whether follow-ups are due: an idle runner must not
	// cost a write every tick.
	Look func(ctx context.Context) (queuedMail, dueNow bool, err error)
	// Settle records the first mails that left the outbox and returns,
	// per campaign, how many still wait in it.
	Settle func(ctx context.Context) (waiting map[string]int, err error)
	// Campaigns returns every campaign.
	Campaigns func(ctx context.Context) ([]*Campaign, error)
	// Walk examines subscribers after campaign id's cursor and queues the
	// first mail to at most budget of them; waiting counts its first
	// mails still in the outbox (a walk that is over with none waiting
	// ends the campaign). It reports how many it queued and examined,
	// and whether the walk has more to do.
	Walk func(ctx context.Context, id string, budget, waiting int) (queued, examined int, more bool, err error)
	// FollowUps handles reminders and deadlines due after key after, and
	// reports where to go on from, the mails queued, the subscriptions
	// lapsed and whether more may be due.
	FollowUps func(ctx context.Context, after K) (next K, queued, lapsed int, more bool, err error)
}

// Run does one CampaignStep (see CampaignStore): it settles the first
// mails that left the outbox, walks each running campaign on by at most
// its rate times tick (fewer while earlier mails wait in the outbox, and
// at most walkPerStep subscribers) when mayQueue, and handles the due
// follow-ups.
func (s CampaignSteps[K]) Run(ctx context.Context, tick time.Duration, mayQueue bool, walkPerStep int) (StepResult, error) {
	var res StepResult
	queuedMail, dueNow, err := s.Look(ctx)
	if err != nil {
		return res, err
	}
	waiting := map[string]int{}
	if queuedMail {
		if waiting, err = s.Settle(ctx); err != nil {
			return res, err
		}
	}
	campaigns, err := s.Campaigns(ctx)
	if err != nil {
		return res, err
	}
	for _, c := range campaigns {
		if c.State != CampaignRunning || !mayQueue {
			continue
		}
		budget := c.PerTick(tick) - waiting[c.ID]
		if (c.Walked && waiting[c.ID] > 0) || (!c.Walked && budget <= 0) {
			continue // nothing to do until mail leaves the outbox
		}
		for scanned := 0; ; {
			if err := ctx.Err(); err != nil {
				return res, err
			}
			n, examined, more, err := s.Walk(ctx, c.ID, budget, waiting[c.ID])
			res.Queued += n
			budget -= n
			scanned += examined
			if err != nil {
				return res, err
			}
			if !more || budget <= 0 || scanned >= walkPerStep {
				break
			}
			waiting[c.ID] += n
		}
	}
	var after K
	for dueNow {
		if err := ctx.Err(); err != nil {
			return res, err
		}
		var q, l int
		if after, q, l, dueNow, err = s.FollowUps(ctx, after); err != nil {
			return res, err
		}
		res.Queued += q
		res.Lapsed += l
	}
	return res, nil
}

// ExclusionReasons lists every reason a subscriber is left out of a
// campaign, the campaign's own choices first, then the rule's.
func ExclusionReasons() []string {
	return []string{ExcludedFiltered, ExcludedNotDormant, ExcludedNotSubscribed, ExcludedPending, ExcludedUnsubscribed,
		ExcludedLapsed, ExcludedSuppressed, ExcludedNoBasis, ExcludedSoftOptInExpiry, ExcludedRecent,
		ExcludedNoticePending, ExcludedAlreadyAsked, ExcludedNew}
}

// NewCampaignPreview returns a preview with nothing counted yet, every
// exclusion reason at zero.
func NewCampaignPreview() CampaignPreview {
	pv := CampaignPreview{Excluded: map[string]int{}}
	for _, r := range ExclusionReasons() {
		pv.Excluded[r] = 0
	}
	return pv
}

// Count counts one subscriber the campaign would ask (ok), or leaves
// out for reason.
func (pv *CampaignPreview) Count(ok bool, reason string) {
	if ok {
		pv.Audience++
	} else {
		pv.Excluded[reason]++
	}
}

// AudienceScan caps the subscribers one page of a campaign's audience
// list examines, so a rare reason cannot make one request walk the whole
// store: a page may then hold fewer entries than asked, or none, and
// still carry a next cursor.
const AudienceScan = 10000

// AudienceQuery asks for one page of a campaign's audience list.
type AudienceQuery struct {
	// Cursor is the next_cursor of the previous page: the page starts
	// after that subscriber id; "" starts at the first.
	Cursor string
	// Limit is the page size (1-500).
	Limit int
	// Only keeps those in the audience ("in"), those left out ("out"),
	// or those left out for one reason (an Excluded constant); "" keeps
	// everyone.
	Only string
}

// CheckOnly reports an EInvalid error for an Only the list does not know.
func (q AudienceQuery) CheckOnly() error {
	if q.Only == "" || q.Only == "in" || q.Only == "out" || slices.Contains(ExclusionReasons(), q.Only) {
		return nil
	}
	return Errorf(EInvalid, "only must be in, out or an exclusion reason (%s)", strings.Join(ExclusionReasons(), ", "))
}

// Keeps reports whether a subscriber the campaign would ask (ok), or
// leaves out for reason, belongs on the page.
func (q AudienceQuery) Keeps(ok bool, reason string) bool {
	switch q.Only {
	case "":
		return true
	case "in":
		return ok
	case "out":
		return !ok
	}
	return !ok && reason == q.Only
}

// AudienceEntry is one subscriber in a campaign's audience list: in the
// audience, or left out and why.
type AudienceEntry struct {
	Subscriber string    `json:"subscriber"`
	Email      string    `json:"email"`
	Name       string    `json:"name,omitempty"`
	Lifecycle  Lifecycle `json:"lifecycle"`
	// Status and Basis are the subscription to the campaign's topic
	// (empty without one).
	Status Status `json:"status,omitempty"`
	Basis  Basis  `json:"basis,omitempty"`
	In     bool   `json:"in"`
	Reason string `json:"reason,omitempty"`
}

// AudiencePage is one page of a campaign's audience list and the cursor
// of the next ("" after the last).
type AudiencePage struct {
	Items      []AudienceEntry `json:"items"`
	NextCursor string          `json:"next_cursor"`
}

// AudienceLister gathers one page of campaign c's audience list from
// subscribers a store hands it in id order, with the rule's answer for
// each (Campaign.SelectLooking).
type AudienceLister struct {
	c        *Campaign
	q        AudienceQuery
	now      time.Time
	p        CampaignPolicy
	page     AudiencePage
	examined int
	last     string
}

// NewAudienceLister starts a page of c's audience list for q at now.
func NewAudienceLister(c *Campaign, q AudienceQuery, now time.Time, p CampaignPolicy) *AudienceLister {
	return &AudienceLister{c: c, q: q, now: now, p: p, page: AudiencePage{Items: []AudienceEntry{}}}
}

// Add takes the next subscriber and whether the campaign would ask them
// (else why not), and reports whether the page wants more. A store that
// knows the answer before reading the record may call Pass instead for a
// subscriber the page does not keep (AudienceQuery.Keeps).
func (l *AudienceLister) Add(sub *Subscriber, ok bool, reason string) bool {
	l.examined++
	l.last = sub.ID
	if l.q.Keeps(ok, reason) {
		e := AudienceEntry{Subscriber: sub.ID, Email: sub.Email, Name: sub.Name, Lifecycle: sub.Lifecycle(l.now, l.p.DormantAfter),
			In: ok, Reason: reason}
		if s := sub.Subscriptions[l.c.Topic]; s != nil {
			e.Status, e.Basis = s.Status, s.Basis
		}
		l.page.Items = append(l.page.Items, e)
	}
	return len(l.page.Items) < l.q.Limit && l.examined < AudienceScan
}

// Pass takes the next subscriber, id, whom the page does not keep, and
// reports whether the page wants more.
func (l *AudienceLister) Pass(id string) bool {
	l.examined++
	l.last = id
	return len(l.page.Items) < l.q.Limit && l.examined < AudienceScan
}

// Page returns the page gathered; ended says the store handed over its
// last subscriber, else the next page starts after the last one Add took.
func (l *AudienceLister) Page(ended bool) AudiencePage {
	if !ended {
		l.page.NextCursor = l.last
	}
	return l.page
}
