package web

import (
	"context"
	"fmt"
	"mime"
	"net/http"
	"strconv"
	"time"

	"github.com/gin-gonic/gin"

	"optin/internal/consent"
	"optin/internal/transfer"
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
		return transfer.FormatCSV, nil
	case "application/x-ndjson", "application/ndjson", "application/jsonl":
		return transfer.FormatNDJSON, nil
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
	ir, err := transfer.NewReader(c.Request.Body, format)
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

// handleSubscriberExport streams every exportable subscriber as CSV or NDJSON from
// one read transaction. Suppressed addresses never appear. A failure after
// the first byte can only cut the stream short; it is logged.
func (s *Server) handleSubscriberExport(c *gin.Context) {
	format := c.DefaultQuery("format", transfer.FormatCSV)
	now := s.store.Now()
	ex, err := transfer.NewExporter(c.Writer, format, now, s.cfg.DormantAfter)
	if err != nil {
		s.fail(c, err)
		return
	}
	extendDeadlines(c, false)
	name := "subscribers-" + now.Format("20060102T150405Z") + "." + format
	c.Header("Content-Type", ex.ContentType())
	c.Header("Content-Disposition", `attachment; filename="`+name+`"`)
	c.Header("Cache-Control", "no-store")
	c.Status(http.StatusOK)

	n := 0
	if err = ex.Begin(); err == nil {
		err = s.store.EachExportable(c.Request.Context(), func(sub *consent.Subscriber) error {
			n++
			return ex.Write(sub)
		})
	}
	if ferr := ex.Flush(); err == nil {
		err = ferr
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

// handleBackup streams a consistent snapshot of the store while the
// service keeps writing.
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
