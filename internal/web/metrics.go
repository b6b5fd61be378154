package web

import (
	"context"
	"net/http"
	"sync"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"optin/internal/consent"
	"optin/internal/memstat"
)

// Metrics is optin's Prometheus instrumentation on its own registry. Its
// labels are route templates, event types, mail kinds and results: never
// an address, a token or any other request data.
//
// Signups, confirmations and unsubscribes are counted from the consent
// ledger itself (requested, confirmed and unsubscribed events), read
// incrementally at each scrape, so they count what was recorded, not
// requests, and survive restarts.
type Metrics struct {
	store   MetricsStore
	reg     *prometheus.Registry
	latency *prometheus.HistogramVec
	mail    *prometheus.CounterVec
	hooks   *prometheus.CounterVec
	clicks  *prometheus.CounterVec

	ledgerDesc, signupsDesc, confirmsDesc, unsubsDesc, outboxDesc, hookQueueDesc, memoryDesc *prometheus.Desc

	mu     sync.Mutex
	seq    uint64
	counts map[consent.EventType]uint64
}

// MetricsStore is what the metrics read from the store at each scrape.
type MetricsStore interface {
	consent.LedgerStore
	consent.OutboxStore
	WebhookDepth(ctx context.Context) (queued, parked int, err error)
}

// NewMetrics builds the metrics of the service around store. It also
// implements the mail worker's and the webhook worker's Metrics
// interfaces.
func NewMetrics(store MetricsStore) *Metrics {
	m := &Metrics{store: store, reg: prometheus.NewRegistry(), counts: map[consent.EventType]uint64{},
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "optin_http_request_duration_seconds", Help: "HTTP request latency by route template.",
			Buckets: prometheus.DefBuckets}, []string{"method", "route", "code"}),
		mail: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "optin_mail_sends_total", Help: "Outbox send attempts by mail kind and result."}, []string{"kind", "result"}),
		hooks: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "optin_webhook_deliveries_total", Help: "Webhook delivery attempts by event and result."}, []string{"event", "result"}),
		clicks: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "optin_confirmation_clicks_total",
			Help: "Presses of confirm, not-me and keep-me-subscribed buttons by kind, scanner-check class and outcome (recorded or held)."},
			[]string{"kind", "class", "outcome"}),
		ledgerDesc:   prometheus.NewDesc("optin_ledger_events_total", "Consent ledger events by type.", []string{"type"}, nil),
		signupsDesc:  prometheus.NewDesc("optin_signups_total", "Double-opt-in requests recorded (requested events).", nil, nil),
		confirmsDesc: prometheus.NewDesc("optin_confirmations_total", "Confirmations recorded (confirmed events).", nil, nil),
		unsubsDesc:   prometheus.NewDesc("optin_unsubscribes_total", "Withdrawals recorded (unsubscribed events).", nil, nil),
		outboxDesc:   prometheus.NewDesc("optin_outbox_depth", "Mails in the outbox, queued or parked after failing for good.", []string{"state"}, nil),
		hookQueueDesc: prometheus.NewDesc("optin_webhook_queue_depth", "Webhook deliveries queued, or parked after failing for good.",
			[]string{"state"}, nil),
		memoryDesc: prometheus.NewDesc("optin_memory_bytes", "Memory by kind: go_heap (live Go objects), go_runtime (all the Go runtime "+
			"mapped), rss_anon (anonymous resident memory: what optin holds), rss_file (resident pages of mapped files: the bbolt "+
			"database, page cache the kernel reclaims), rss_shmem. ps's RSS is rss_anon + rss_file + rss_shmem.", []string{"kind"}, nil),
	}
	m.reg.MustRegister(m.latency, m.mail, m.hooks, m.clicks, m, collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	for _, kind := range []string{"confirm", "not_me", "reawaken"} {
		for _, class := range consent.ConfirmClasses {
			for _, outcome := range []string{"recorded", "held"} {
				m.clicks.WithLabelValues(kind, string(class), outcome) // every series from the start, at 0
			}
		}
	}
	return m
}

// click counts one press of a button a mail links to (see countClick).
func (m *Metrics) click(kind string, class consent.ConfirmClass, outcome string) {
	m.clicks.WithLabelValues(kind, string(class), outcome).Inc()
}

// MailResult counts one send outcome; the outbox worker calls it.
func (m *Metrics) MailResult(kind consent.JobKind, result string) {
	m.mail.WithLabelValues(string(kind), result).Inc()
}

// WebhookResult counts one delivery outcome; the webhook worker calls
// it with an event and a result from fixed sets.
func (m *Metrics) WebhookResult(event consent.WebhookEvent, result string) {
	m.hooks.WithLabelValues(string(event), result).Inc()
}

// Handler serves the metrics in the Prometheus text format.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{Registry: m.reg})
}

// observe times every request by its route template. Every label comes
// from a fixed set, so no client can add series: the method is one of
// methodLabel's, the route a registered pattern or "unmatched", the code
// its class.
func (m *Metrics) observe(c *gin.Context) {
	start := time.Now()
	c.Next()
	route := c.FullPath()
	if route == "" {
		route = "unmatched"
	}
	m.latency.WithLabelValues(methodLabel(c.Request.Method), route, codeClass(c.Writer.Status())).Observe(time.Since(start).Seconds())
}

// codeClasses are the code labels, by the status code's first digit.
var codeClasses = [...]string{"0xx", "1xx", "2xx", "3xx", "4xx", "5xx"}

// codeClass returns the label of status: its class, such as "2xx" (a
// status net/http would not send counts as "0xx"), without building a
// string for each request.
func codeClass(status int) string {
	if status < 100 || status > 599 {
		return codeClasses[0]
	}
	return codeClasses[status/100]
}

// methodLabel returns method when it is one of the methods optin serves,
// else "other".
func methodLabel(method string) string {
	switch method {
	case http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodPatch, http.MethodDelete, http.MethodOptions:
		return method
	}
	return "other"
}

// Describe implements prometheus.Collector.
func (m *Metrics) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{m.ledgerDesc, m.signupsDesc, m.confirmsDesc, m.unsubsDesc, m.outboxDesc, m.hookQueueDesc, m.memoryDesc} {
		ch <- d
	}
}

// Collect implements prometheus.Collector: it reads the ledger events
// appended since the last scrape, the depths of the outbox and the
// webhook queue, and the memory (the RSS kinds only where
// /proc/self/status is there).
func (m *Metrics) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	m.mu.Lock()
	defer m.mu.Unlock()
	if counts, last, err := m.store.LedgerCounts(ctx, m.seq); err == nil {
		for t, n := range counts {
			m.counts[t] += n
		}
		m.seq = last
	}
	for t, n := range m.counts {
		ch <- prometheus.MustNewConstMetric(m.ledgerDesc, prometheus.CounterValue, float64(n), string(t))
	}
	ch <- prometheus.MustNewConstMetric(m.signupsDesc, prometheus.CounterValue, float64(m.counts[consent.EventRequested]))
	ch <- prometheus.MustNewConstMetric(m.confirmsDesc, prometheus.CounterValue, float64(m.counts[consent.EventConfirmed]))
	ch <- prometheus.MustNewConstMetric(m.unsubsDesc, prometheus.CounterValue, float64(m.counts[consent.EventUnsubscribed]))
	if queued, parked, err := m.store.OutboxDepth(ctx); err == nil {
		ch <- prometheus.MustNewConstMetric(m.outboxDesc, prometheus.GaugeValue, float64(queued), "queued")
		ch <- prometheus.MustNewConstMetric(m.outboxDesc, prometheus.GaugeValue, float64(parked), "parked")
	}
	if queued, parked, err := m.store.WebhookDepth(ctx); err == nil {
		ch <- prometheus.MustNewConstMetric(m.hookQueueDesc, prometheus.GaugeValue, float64(queued), "queued")
		ch <- prometheus.MustNewConstMetric(m.hookQueueDesc, prometheus.GaugeValue, float64(parked), "parked")
	}
	mem, err := memstat.Self()
	kinds := map[string]uint64{"go_heap": mem.GoHeap, "go_runtime": mem.GoRuntime}
	if err == nil {
		kinds["rss_anon"], kinds["rss_file"], kinds["rss_shmem"] = mem.RSSAnon, mem.RSSFile, mem.RSSShmem
	}
	for kind, n := range kinds {
		ch <- prometheus.MustNewConstMetric(m.memoryDesc, prometheus.GaugeValue, float64(n), kind)
	}
}
