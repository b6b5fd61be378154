package web

import (
	"math"
	"net/http"
	"slices"
	"strconv"

	"github.com/gin-gonic/gin"

	"optin/internal/consent"
)

// dashboardPage is the data of the console's overview.
type dashboardPage struct {
	Stats          consent.Stats
	Rate           int // confirmation rate, in whole percent
	Queued, Parked int
	Chart          dailyChart
	// Days is how many days the chart shows (30 or 90); Spans the
	// choices offered.
	Days       int
	Spans      []int
	Statuses   []statusCount
	Lifecycles []lifecycleCount
	Topics     []topicCounts
	// Relay is why the mail server refuses optin's settings (as /readyz
	// says it); "" while mail goes out. RelayFails is the mail server's
	// last error while it fails otherwise (it is down, say). Warnings are
	// the startup warnings.
	Relay, RelayFails string
	Warnings          []string
}

type statusCount struct {
	Status consent.Status
	N      int
}

type lifecycleCount struct {
	Lifecycle consent.Lifecycle
	N         int
}

// topicCounts is one topic's subscriptions by status, in the order of
// dashboardPage's statuses.
type topicCounts struct {
	Name string
	N    []int
}

// dashboardSpans are the periods the overview's chart offers, in days.
var dashboardSpans = []int{30, 90}

// handleConsoleDashboard shows the overview: counts by status, topic and
// lifecycle, the confirmation rate, the outbox and the mail server's
// refusal or last error if any, the startup warnings, and signups, confirmations and
// unsubscribes per day for 30 days (90 with ?days=90) as a chart drawn on
// the server. Everything comes from the store's counters: no walk.
func (s *Server) handleConsoleDashboard(c *gin.Context) {
	ctx := c.Request.Context()
	days := dashboardSpans[0]
	if n, err := strconv.Atoi(c.Query("days")); err == nil && slices.Contains(dashboardSpans, n) {
		days = n
	}
	st, err := s.store.Stats(ctx, s.cfg.DormantAfter, days)
	if err != nil {
		s.consoleFail(c, err)
		return
	}
	queued, parked, err := s.store.OutboxDepth(ctx)
	if err != nil {
		s.consoleFail(c, err)
		return
	}
	topics, _, err := s.topicNames(ctx)
	if err != nil {
		s.consoleFail(c, err)
		return
	}
	d := s.consoleBase(c, "console.home.title", "home")
	p := dashboardPage{Stats: st, Rate: int(math.Round(st.ConfirmationRate * 100)), Queued: queued, Parked: parked,
		Days: days, Spans: dashboardSpans,
		Chart: newDailyChart(st.Daily, func(day consent.DayStats) string {
			return d.L.T("console.dash.day_title", day.Date, day.Signups, day.Confirmations, day.Unsubscribes)
		})}
	for _, x := range statuses() {
		p.Statuses = append(p.Statuses, statusCount{x, st.ByStatus[x]})
	}
	for _, x := range lifecycles() {
		p.Lifecycles = append(p.Lifecycles, lifecycleCount{x, st.ByLifecycle[x]})
	}
	for _, t := range topics {
		row := topicCounts{Name: t.Name}
		for _, x := range statuses() {
			row.N = append(row.N, st.ByTopic[t.ID][x])
		}
		p.Topics = append(p.Topics, row)
	}
	if s.cfg.Ready != nil {
		if err := s.cfg.Ready(ctx); err != nil {
			p.Relay = err.Error()
		}
	}
	if s.cfg.RelayError != nil && p.Relay == "" {
		if err := s.cfg.RelayError(); err != nil {
			p.RelayFails = err.Error()
		}
	}
	p.Warnings = s.cfg.Warnings
	d.P = p
	s.consolePage(c, http.StatusOK, "dashboard", d)
}

// dailyChart is a bar chart of signups, confirmations and unsubscribes
// per day, laid
// out on the server so that the page draws it as SVG with no script.
// Coordinates are in the SVG's viewBox, rounded to a tenth.
type dailyChart struct {
	Width, Height float64
	// Left, Bottom are the x of the value axis and the y of the day axis.
	Left, Bottom float64
	Days         []chartDay
	Ticks        []chartTick // value axis
	Labels       []chartLabel
}

// chartDay is one day: its tooltip and its three bars, signups,
// confirmations, then unsubscribes.
type chartDay struct {
	Title string
	Bars  [3]chartBar
}

type chartBar struct{ X, Y, W, H float64 }

type chartTick struct {
	Y     float64
	Label string
}

// chartLabel is a day label, centred under its day; the last one ends at
// the drawing's right edge (End) so that it is not cut off.
type chartLabel struct {
	X    float64
	Text string
	End  bool
}

// Chart geometry, in viewBox units.
const (
	chartWidth  = 600
	chartHeight = 240
	chartLeft   = 48 // room for the value labels
	chartTop    = 10
	chartBottom = 212 // the day axis; the day labels go under it
)

// newDailyChart lays out days (oldest first); title gives each day's
// tooltip. The value axis runs to a round number at or above the largest
// count (1, 2 or 5 times a power of ten), with a tick halfway.
func newDailyChart(days []consent.DayStats, title func(consent.DayStats) string) dailyChart {
	c := dailyChart{Width: chartWidth, Height: chartHeight, Left: chartLeft, Bottom: chartBottom}
	top := 0
	for _, d := range days {
		top = max(top, d.Signups, d.Confirmations, d.Unsubscribes)
	}
	top = roundUp(top)
	scale := float64(chartBottom-chartTop) / float64(top)
	values := []int{0, top}
	if top%2 == 0 {
		values = []int{0, top / 2, top}
	}
	for _, v := range values {
		c.Ticks = append(c.Ticks, chartTick{Y: tenth(chartBottom - float64(v)*scale), Label: strconv.Itoa(v)})
	}
	if len(days) == 0 {
		return c
	}
	slot := float64(chartWidth-chartLeft) / float64(len(days))
	barW := tenth(slot * 0.8 / 3)
	for i, d := range days {
		x := tenth(chartLeft + float64(i)*slot + slot*0.1)
		day := chartDay{Title: title(d)}
		for j, v := range []int{d.Signups, d.Confirmations, d.Unsubscribes} {
			h := tenth(float64(v) * scale)
			day.Bars[j] = chartBar{X: tenth(x + float64(j)*barW), Y: tenth(chartBottom - h), W: barW, H: h}
		}
		c.Days = append(c.Days, day)
	}
	// A day label every week and on the last day, which replaces the
	// weekly one before it when the two would run into each other.
	last := len(days) - 1
	for i := 0; i <= last; i++ {
		if i%7 != 0 && i != last || i%7 == 0 && i != last && last-i < 4 {
			continue
		}
		label := days[i].Date
		if len(label) == len("2006-01-02") {
			label = label[5:] // MM-DD
		}
		l := chartLabel{X: tenth(chartLeft + (float64(i)+0.5)*slot), Text: label}
		if i == last && i > 0 {
			l.X, l.End = chartWidth, true
		}
		c.Labels = append(c.Labels, l)
	}
	return c
}

// roundUp returns the smallest of 1, 2, 5, 10, 20, 50, ... that is at
// least n.
func roundUp(n int) int {
	for p := 1; ; p *= 10 {
		for _, m := range []int{1, 2, 5} {
			if m*p >= n {
				return m * p
			}
		}
	}
}

// tenth rounds x to one decimal.
func tenth(x float64) float64 { return math.Round(x*10) / 10 }
