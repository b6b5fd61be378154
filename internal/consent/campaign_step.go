package consent

import (
	"context"
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

// NewCampaignPreview returns a preview with nothing counted yet, every
// exclusion reason at zero.
func NewCampaignPreview() CampaignPreview {
	pv := CampaignPreview{Excluded: map[string]int{}}
	for _, r := range []string{ExcludedNotSubscribed, ExcludedPending, ExcludedUnsubscribed, ExcludedLapsed,
		ExcludedSuppressed, ExcludedNoBasis, ExcludedSoftOptInExpiry, ExcludedAlreadyAsked, ExcludedNew,
		ExcludedFiltered, ExcludedNoticePending} {
		pv.Excluded[r] = 0
	}
	return pv
}
