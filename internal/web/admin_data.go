package web

import (
	"context"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"mime"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/gin-gonic/gin"

	"optin/internal/bolt"
	"optin/internal/consent"
)

// streamDeadline is how long an import, export or backup may take on the
// wire, instead of the server's default timeouts.
const streamDeadline = time.Hour

// extendDeadlines lets one long request outlive the server's read and
// write timeouts.
func extendDeadlines(c *gin.Context, read bool) {
	rc := http.NewResponseController(c.Writer)
	deadline := time.Now().Add(streamDeadline)
	if read {
		_ = rc.SetReadDeadline(deadline) // not every writer supports it; the default then applies
	}
	_ = rc.SetWriteDeadline(deadline)
}

// importFormat picks the import format from ?format= or the Content-Type.
func importFormat(c *gin.Context) (string, error) {
	if f := c.Query("format"); f != "" {
		return f, nil
	}
	mt, _, _ := mime.ParseMediaType(c.GetHeader("Content-Type"))
	switch mt {
	case "text/csv":
		return bolt.FormatCSV, nil
	case "application/x-ndjson", "application/ndjson", "application/jsonl":
		return bolt.FormatNDJSON, nil
	}
	return "", consent.Errorf(consent.EInvalid, "Content-Type must be text/csv or application/x-ndjson")
}

// handleImport streams a CSV or NDJSON file into the store, 1000 rows per
// transaction, and answers with the report.
func (s *Server) handleImport(c *gin.Context) {
	format, err := importFormat(c)
	if err != nil {
		s.fail(c, err)
		return
	}
	extendDeadlines(c, true)
	ir, err := bolt.NewImportReader(c.Request.Body, format)
	if err != nil {
		s.fail(c, err)
		return
	}
	rep, err := s.store.Import(c.Request.Context(), actor(c), ir)
	if rep.Queued > 0 && s.cfg.Outbox != nil {
		s.cfg.Outbox.Notify()
	}
	if err != nil {
		if code := consent.ErrorCode(err); code != consent.EInternal && rep.Imported+rep.Updated+rep.Pending > 0 {
			err = consent.Errorf(code, "%s; the import stopped there, the rows before it were stored as batch %s (%d imported, %d updated)",
				consent.ErrorMessage(err), rep.Batch, rep.Imported, rep.Updated)
		}
		s.fail(c, err)
		return
	}
	c.JSON(http.StatusOK, rep)
}

// exportColumns are the CSV export's columns: one row per subscription.
var exportColumns = []string{"id", "email", "name", "locale", "created", "lifecycle", "last_purchase_at",
	"topic", "status", "basis", "since"}

// exportRecord is one NDJSON export line.
type exportRecord struct {
	ID             string                  `json:"id"`
	Email          string                  `json:"email"`
	Name           string                  `json:"name,omitempty"`
	Locale         string                  `json:"locale,omitempty"`
	Created        time.Time               `json:"created"`
	Lifecycle      consent.Lifecycle       `json:"lifecycle"`
	LastPurchaseAt time.Time               `json:"last_purchase_at,omitzero"`
	Subscriptions  []*consent.Subscription `json:"subscriptions"`
}

// handleSubscriberExport streams every exportable subscriber as CSV or NDJSON from
// one read transaction. Suppressed addresses never appear. A failure after
// the first byte can only cut the stream short; it is logged.
func (s *Server) handleSubscriberExport(c *gin.Context) {
	format := c.DefaultQuery("format", bolt.FormatCSV)
	if format != bolt.FormatCSV && format != bolt.FormatNDJSON {
		s.fail(c, consent.Errorf(consent.EInvalid, "format must be csv or ndjson"))
		return
	}
	extendDeadlines(c, false)
	now := s.store.Now()
	name := "subscribers-" + now.Format("20060102T150405Z") + "." + format
	ct := "text/csv; charset=utf-8"
	if format == bolt.FormatNDJSON {
		ct = "application/x-ndjson"
	}
	c.Header("Content-Type", ct)
	c.Header("Content-Disposition", `attachment; filename="`+name+`"`)
	c.Header("Cache-Control", "no-store")
	c.Status(http.StatusOK)

	var write func(sub *consent.Subscriber) error
	cw := csv.NewWriter(c.Writer)
	enc := json.NewEncoder(c.Writer)
	if format == bolt.FormatCSV {
		if err := cw.Write(exportColumns); err != nil {
			return
		}
		write = func(sub *consent.Subscriber) error {
			head := []string{sub.ID, cell(sub.Email), cell(sub.Name), sub.Locale, stamp(sub.Created),
				string(sub.Lifecycle(now, s.cfg.DormantAfter)), stamp(sub.LastPurchase)}
			subs := sortedSubscriptions(sub)
			if len(subs) == 0 {
				return cw.Write(append(head, "", "", "", ""))
			}
			for _, ss := range subs {
				if err := cw.Write(append(head, ss.Topic, string(ss.Status), string(ss.Basis), stamp(ss.Since))); err != nil {
					return err
				}
			}
			return cw.Error()
		}
	} else {
		write = func(sub *consent.Subscriber) error {
			return enc.Encode(exportRecord{ID: sub.ID, Email: sub.Email, Name: sub.Name, Locale: sub.Locale,
				Created: sub.Created, Lifecycle: sub.Lifecycle(now, s.cfg.DormantAfter),
				LastPurchaseAt: sub.LastPurchase, Subscriptions: sortedSubscriptions(sub)})
		}
	}
	n := 0
	err := s.store.EachExportable(c.Request.Context(), func(sub *consent.Subscriber) error {
		n++
		return write(sub)
	})
	cw.Flush()
	if err == nil {
		err = cw.Error()
	}
	if aerr := s.store.AuditRead(context.WithoutCancel(c.Request.Context()), actor(c), "export", "subscribers."+format, n); aerr != nil {
		s.cfg.Log.Error("auditing an export", "err", aerr)
	}
	if err != nil {
		s.cfg.Log.Warn("export cut short", "format", format, "subscribers", n, "err", err)
		return
	}
	s.cfg.Log.Info("export", "key", actor(c).Name, "format", format, "subscribers", n)
}

// sortedSubscriptions returns sub's subscriptions by topic id.
func sortedSubscriptions(sub *consent.Subscriber) []*consent.Subscription {
	out := make([]*consent.Subscription, 0, len(sub.Subscriptions))
	for t, ss := range sub.Subscriptions {
		cp := *ss
		cp.Topic = t
		out = append(out, &cp)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Topic < out[j].Topic })
	return out
}

// cell defuses spreadsheet formulas: a text cell starting with = + - @ or
// a tab or CR gets a leading apostrophe (OWASP CSV injection advice).
func cell(v string) string {
	if v != "" && strings.ContainsRune("=+-@\t\r", rune(v[0])) {
		return "'" + v
	}
	return v
}

// stamp formats a time for CSV: RFC 3339 in UTC with milliseconds, or ""
// for the zero time.
func stamp(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format("2006-01-02T15:04:05.000Z07:00")
}

// handleBackup streams a consistent snapshot of the database (bbolt
// tx.WriteTo in a read transaction) while the service keeps writing.
func (s *Server) handleBackup(c *gin.Context) {
	extendDeadlines(c, false)
	name := fmt.Sprintf("optin-%s.db", s.store.Now().Format("20060102T150405Z"))
	defer func() {
		if aerr := s.store.AuditRead(context.WithoutCancel(c.Request.Context()), actor(c), "backup", name, 1); aerr != nil {
			s.cfg.Log.Error("auditing a backup", "err", aerr)
		}
	}()
	err := s.store.Backup(c.Request.Context(), c.Writer, func(size int64) {
		c.Header("Content-Type", "application/octet-stream")
		c.Header("Content-Disposition", `attachment; filename="`+name+`"`)
		c.Header("Content-Length", strconv.FormatInt(size, 10))
		c.Header("Cache-Control", "no-store")
		c.Status(http.StatusOK)
	})
	if err != nil {
		s.cfg.Log.Warn("backup cut short", "err", err)
		return
	}
	s.cfg.Log.Info("backup", "key", actor(c).Name, "file", name)
}
