package web

import (
	"net/http"
	"time"

	"github.com/gin-gonic/gin"

	"optin/internal/consent"
)

// consolePageSize is how many subscribers one console page lists.
const consolePageSize = 50

// subscribersPage is the data of the subscriber list.
type subscribersPage struct {
	// The filter: Q is the search for an address or a name; Since and
	// Until the creation dates, as typed.
	Q, Status, Topic, Lifecycle, Since, Until, Channel string
	Topics                                             []consent.Topic
	Channels                                           []consent.Channel
	Statuses                                           []consent.Status
	Lifecycles                                         []consent.Lifecycle
	Rows                                               []subscriberRow
	// Cursor is where this page starts ("" on the first); Next where
	// the following one does ("" after the last).
	Cursor, Next string
}

// subscriberRow is one subscriber in the list.
type subscriberRow struct {
	ID, Email, Name string
	Created         time.Time
	Lifecycle       consent.Lifecycle
	Subscriptions   []topicStatus
}

// topicStatus is one subscription in the list: the topic's name and its
// status.
type topicStatus struct {
	Topic  string
	Status consent.Status
}

// handleConsoleSubscribers lists subscribers, newest first, a page at a
// time. A search for an address or a name comes by POST, so it never
// appears in a URL, a server log or the browser's history; the other
// filters and the cursor are no personal data and may come by GET.
func (s *Server) handleConsoleSubscribers(c *gin.Context) {
	get := c.PostForm
	if c.Request.Method != http.MethodPost {
		get = func(k string) string {
			if k == "q" {
				return ""
			}
			return c.Query(k)
		}
	}
	f, err := s.subscriberFilter(get)
	if err != nil {
		s.consoleFail(c, err)
		return
	}
	if f.Cursor = get("cursor"); len(f.Cursor) > 200 {
		s.consoleFail(c, consent.Errorf(consent.EInvalid, "cursor too long"))
		return
	}
	f.Limit, f.Newest = consolePageSize, true
	ctx := c.Request.Context()
	subs, next, err := s.store.FindSubscribers(ctx, f)
	if err != nil {
		s.consoleFail(c, err)
		return
	}
	topics, names, err := s.topicNames(ctx)
	if err != nil {
		s.consoleFail(c, err)
		return
	}
	p := subscribersPage{Q: f.Query, Status: string(f.Status), Topic: f.Topic, Lifecycle: string(f.Lifecycle),
		Since: get("created_since"), Until: get("created_until"), Topics: topics,
		Statuses: statuses(), Lifecycles: lifecycles(), Cursor: f.Cursor, Next: next, Channel: string(f.Channel),
		Channels: append([]consent.Channel{consent.ChannelEmail}, consent.OptionalChannels...)}
	now := s.store.Now()
	for _, sub := range subs {
		row := subscriberRow{ID: sub.ID, Email: sub.Email, Name: sub.Name, Created: sub.Created,
			Lifecycle: sub.Lifecycle(now, s.cfg.DormantAfter)}
		for _, id := range sortedKeys(sub.Subscriptions) {
			row.Subscriptions = append(row.Subscriptions, topicStatus{Topic: names.name(id), Status: sub.Subscriptions[id].Status})
		}
		p.Rows = append(p.Rows, row)
	}
	d := s.consoleBase(c, "console.subscribers.title", "subscribers")
	d.P = p
	if c.Query("done") == "erased" {
		d.Notice = d.L.T("console.person.done_erased")
	}
	s.consolePage(c, http.StatusOK, "subscribers", d)
}

// handleConsoleExport downloads the listed subscribers (the filter of
// the form it comes from) through the admin API's export.
func (s *Server) handleConsoleExport(c *gin.Context) {
	s.exportSubscribers(c, c.PostForm, s.consoleFail)
}
