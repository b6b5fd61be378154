package consent

import (
	"fmt"
	"slices"
	"strings"
	"time"
)

// StatsDays is how many days of daily counts Stats reports unless asked
// for another number; MaxStatsDays is the most it reports.
const (
	StatsDays    = 30
	MaxStatsDays = 366
)

// Counts are the running totals a store keeps beside its records and
// updates in the same transaction as every write, so that Stats, the
// console's overview and a campaign preview never walk the records. Each
// is a name and a count. The names sort so that a store can read a group
// as one key range:
//
//	n/subscribers, n/requests, n/requests_confirmed
//	l/prospect                 subscribers who never bought
//	p/YYYY-MM-DD               customers by the UTC day of their last purchase
//	s/STATUS                   subscriptions by status
//	t/TOPIC/STATUS             subscriptions by topic and status
//	d/YYYY-MM-DD/EVENT         ledger events by UTC day and type
//
// The p/ counters make the lifecycle counts exact without a walk: a
// customer is dormant once the last purchase lies dormant_after behind,
// so Stats sums the days before the cut-off day and needs from the store
// only the customers whose last purchase falls on that one day.
type Counts map[string]int64

// Counter names and prefixes (see Counts).
const (
	CounterSubscribers       = "n/subscribers"
	CounterRequests          = "n/requests"
	CounterConfirmedRequests = "n/requests_confirmed"
	CounterProspects         = "l/prospect"
	CounterPurchasePrefix    = "p/"
	CounterDayPrefix         = "d/"
)

// TopicCounter names the count of topic's subscriptions in status s.
func TopicCounter(topic string, s Status) string { return "t/" + topic + "/" + string(s) }

// StatusCounter names the count of subscriptions in status s.
func StatusCounter(s Status) string { return "s/" + string(s) }

// dayCounter names the count of ledger events of type typ on at's UTC day.
func dayCounter(at time.Time, typ EventType) string {
	return CounterDayPrefix + at.UTC().Format(time.DateOnly) + "/" + string(typ)
}

// purchaseCounter names the count of customers whose last purchase was
// on at's UTC day.
func purchaseCounter(at time.Time) string {
	return CounterPurchasePrefix + at.UTC().Format(time.DateOnly)
}

// add adds n to counter name, dropping it at zero.
func (c Counts) add(name string, n int64) {
	if c[name] += n; c[name] == 0 {
		delete(c, name)
	}
}

// Add adds every count of d to c.
func (c Counts) Add(d Counts) {
	for k, n := range d {
		c.add(k, n)
	}
}

// AddSubscriber counts sub n times: +1 for a subscriber stored, -1 for
// the version a write replaces or deletes. A nil sub counts nothing.
func (c Counts) AddSubscriber(sub *Subscriber, n int64) {
	if sub == nil {
		return
	}
	c.add(CounterSubscribers, n)
	if sub.LastPurchase.IsZero() {
		c.add(CounterProspects, n)
	} else {
		c.add(purchaseCounter(sub.LastPurchase), n)
	}
	for t, s := range sub.Subscriptions {
		c.add(StatusCounter(s.Status), n)
		c.add(TopicCounter(t, s.Status), n)
	}
}

// AddRequest counts a double-opt-in request n times, as AddSubscriber.
func (c Counts) AddRequest(r *Request, n int64) {
	if r == nil {
		return
	}
	c.add(CounterRequests, n)
	if !r.Confirmed.IsZero() {
		c.add(CounterConfirmedRequests, n)
	}
}

// AddEvent counts a ledger event; events are never removed.
func (c Counts) AddEvent(ev *Event) { c.add(dayCounter(ev.Time, ev.Type), 1) }

// Events sums the d/ counters of c by event type: every event counted.
func (c Counts) Events() map[EventType]uint64 {
	out := map[EventType]uint64{}
	for name, n := range c {
		if rest, ok := strings.CutPrefix(name, CounterDayPrefix); ok {
			if _, typ, ok := strings.Cut(rest, "/"); ok {
				out[EventType(typ)] += uint64(n)
			}
		}
	}
	return out
}

// EventDelta is what appending ev to the ledger changes in the counts.
func EventDelta(ev *Event) Counts { return Counts{dayCounter(ev.Time, ev.Type): 1} }

// SubscriberDelta is what replacing old by sub (either nil: a new or a
// deleted subscriber) changes in the counts.
func SubscriberDelta(old, sub *Subscriber) Counts {
	d := Counts{}
	d.AddSubscriber(old, -1)
	d.AddSubscriber(sub, 1)
	return d
}

// RequestDelta is what replacing old by r changes in the counts.
func RequestDelta(old, r *Request) Counts {
	d := Counts{}
	d.AddRequest(old, -1)
	d.AddRequest(r, 1)
	return d
}

// DayRange returns the names from and to (exclusive) that hold the
// d/ counters of the days days up to now's.
func DayRange(now time.Time, days int) (from, to string) {
	first := firstDay(now, days)
	last := now.UTC().Truncate(Day)
	return CounterDayPrefix + first.Format(time.DateOnly), CounterDayPrefix + last.Format(time.DateOnly) + "0" // '0' sorts after '/'
}

// firstDay is the UTC midnight starting the first of days days up to now's.
func firstDay(now time.Time, days int) time.Time {
	return now.UTC().Truncate(Day).AddDate(0, 0, -(days - 1))
}

// DormantCutoff returns when a last purchase makes a customer dormant at
// now (at or before cutoff) and the UTC midnight that starts cutoff's day:
// the customers whose last purchase lies in [dayStart, cutoff] are the
// ones Stats needs from the store besides the counts.
func DormantCutoff(now time.Time, dormantAfter time.Duration) (dayStart, cutoff time.Time) {
	cutoff = now.Add(-dormantAfter).UTC()
	return cutoff.Truncate(Day), cutoff
}

// Stats returns the overview that counts c (the p/ and d/ counters for
// the days asked included) give at now: days of daily counts, and
// lifecycle stages with dormantAfter, where lastDay is the number of
// customers whose last purchase falls on the cut-off's day at or before
// the cut-off (DormantCutoff).
func (c Counts) Stats(now time.Time, dormantAfter time.Duration, days int, lastDay int64) Stats {
	st := Stats{Subscribers: int(c[CounterSubscribers]), ByStatus: map[Status]int{}, ByTopic: map[string]map[Status]int{},
		ByLifecycle: map[Lifecycle]int{}, Requests: int(c[CounterRequests]), ConfirmedRequests: int(c[CounterConfirmedRequests])}
	dayStart, _ := DormantCutoff(now, dormantAfter)
	cutDay := purchaseCounter(dayStart)
	first := firstDay(now, days)
	st.Daily = make([]DayStats, days)
	for i := range st.Daily {
		st.Daily[i].Date = first.AddDate(0, 0, i).Format(time.DateOnly)
	}
	var customers, dormant int64
	for name, n := range c {
		group, rest, _ := strings.Cut(name, "/")
		switch group {
		case "l":
			st.ByLifecycle[LifecycleProspect] += int(n)
		case "p":
			customers += n
			if name < cutDay {
				dormant += n
			}
		case "s":
			st.ByStatus[Status(rest)] += int(n)
		case "t":
			topic, status, _ := strings.Cut(rest, "/")
			if st.ByTopic[topic] == nil {
				st.ByTopic[topic] = map[Status]int{}
			}
			st.ByTopic[topic][Status(status)] += int(n)
		case "d":
			date, typ, _ := strings.Cut(rest, "/")
			at, err := time.Parse(time.DateOnly, date)
			if err != nil || at.Before(first) {
				continue
			}
			i := int(at.Sub(first) / Day)
			if i >= days {
				continue
			}
			switch EventType(typ) {
			case EventRequested:
				st.Daily[i].Signups += int(n)
			case EventConfirmed:
				st.Daily[i].Confirmations += int(n)
			case EventUnsubscribed:
				st.Daily[i].Unsubscribes += int(n)
			}
		}
	}
	dormant += lastDay
	if customers > 0 {
		st.ByLifecycle[LifecycleCustomer] = int(customers - dormant)
		st.ByLifecycle[LifecycleDormant] = int(dormant)
	}
	for l, n := range st.ByLifecycle {
		if n == 0 {
			delete(st.ByLifecycle, l)
		}
	}
	if st.Requests > 0 {
		st.ConfirmationRate = float64(st.ConfirmedRequests) / float64(st.Requests)
	}
	return st
}

// CounterDiff is one counter that differs from a full walk of the records.
type CounterDiff struct {
	Name   string `json:"name"`
	Kept   int64  `json:"kept"`
	Walked int64  `json:"walked"`
}

// String formats d for people.
func (d CounterDiff) String() string {
	return fmt.Sprintf("%s: kept %d, walk counts %d", d.Name, d.Kept, d.Walked)
}

// DiffCounts returns the counters whose kept count differs from the
// walked one, by name.
func DiffCounts(kept, walked Counts) []CounterDiff {
	var out []CounterDiff
	for name, n := range kept {
		if walked[name] != n {
			out = append(out, CounterDiff{Name: name, Kept: n, Walked: walked[name]})
		}
	}
	for name, n := range walked {
		if _, ok := kept[name]; !ok && n != 0 {
			out = append(out, CounterDiff{Name: name, Walked: n})
		}
	}
	slices.SortFunc(out, func(a, b CounterDiff) int { return strings.Compare(a.Name, b.Name) })
	return out
}

// Unwalked returns, by reason, the subscribers a reawaken campaign on
// topic leaves out without being looked at one by one: those with no
// subscription to the topic, and those whose subscription is in any
// status but confirmed, each with the reason Eligibility gives for that
// status alone. A store walks only the topic's confirmed subscriptions
// (an index) and takes these from its counts; c needs CounterSubscribers
// and the topic's t/ counters.
func (c Counts) Unwalked(topic string, now time.Time, p CampaignPolicy) map[string]int {
	out := map[string]int{}
	prefix := TopicCounter(topic, "")
	held := int64(0)
	for name, n := range c {
		status, ok := strings.CutPrefix(name, prefix)
		if !ok {
			continue
		}
		held += n
		if Status(status) == StatusConfirmed {
			continue
		}
		sub := &Subscriber{Subscriptions: map[string]*Subscription{topic: {Topic: topic, Status: Status(status)}}}
		if ok, reason := Eligibility(sub, topic, false, false, now, p); !ok {
			out[reason] += int(n)
		}
	}
	if none := c[CounterSubscribers] - held; none > 0 {
		_, reason := Eligibility(&Subscriber{}, topic, false, false, now, p)
		out[reason] += int(none)
	}
	return out
}
