package consent

import "time"

// StatsDays is how many days of daily counts Stats reports.
const StatsDays = 30

// NewStats returns Stats with nothing counted yet.
func NewStats() Stats {
	return Stats{ByStatus: map[Status]int{}, ByTopic: map[string]map[Status]int{}, ByLifecycle: map[Lifecycle]int{}}
}

// CountSubscriber counts sub and its subscriptions in st, its lifecycle
// stage at now with dormantAfter.
func (st *Stats) CountSubscriber(sub *Subscriber, now time.Time, dormantAfter time.Duration) {
	st.Subscribers++
	st.ByLifecycle[sub.Lifecycle(now, dormantAfter)]++
	for t, s := range sub.Subscriptions {
		st.ByStatus[s.Status]++
		if st.ByTopic[t] == nil {
			st.ByTopic[t] = map[Status]int{}
		}
		st.ByTopic[t][s.Status]++
	}
}

// SetRate sets ConfirmationRate from Requests and ConfirmedRequests.
func (st *Stats) SetRate() {
	if st.Requests > 0 {
		st.ConfirmationRate = float64(st.ConfirmedRequests) / float64(st.Requests)
	}
}

// DailyCounter counts requested and confirmed ledger events per UTC day
// of the StatsDays days up to today, for a walk from the ledger's end.
type DailyCounter struct {
	first time.Time
	days  []DayStats
}

// NewDailyCounter returns a counter for the StatsDays days up to now's.
func NewDailyCounter(now time.Time) *DailyCounter {
	today := now.UTC().Truncate(24 * time.Hour)
	d := &DailyCounter{first: today.AddDate(0, 0, -(StatsDays - 1)), days: make([]DayStats, StatsDays)}
	for i := range d.days {
		d.days[i].Date = d.first.AddDate(0, 0, i).Format(time.DateOnly)
	}
	return d
}

// Count counts an event of type typ at at, and reports whether the walk
// goes on: it ends at the first event before the first day.
func (d *DailyCounter) Count(typ EventType, at time.Time) bool {
	if at.Before(d.first) {
		return false
	}
	i := int(at.Sub(d.first) / (24 * time.Hour))
	if i >= StatsDays {
		return true // a clock step back left a later event behind
	}
	switch typ {
	case EventRequested:
		d.days[i].Signups++
	case EventConfirmed:
		d.days[i].Confirmations++
	}
	return true
}

// Days returns the counts, oldest day first.
func (d *DailyCounter) Days() []DayStats { return d.days }
