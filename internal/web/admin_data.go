package web

import (
	"context"
	"fmt"
	"io"
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
	if f := formatOfType(c.GetHeader("Content-Type")); f != "" {
		return f, nil
	}
	return "", consent.Errorf(consent.EInvalid, "Content-Type must be text/csv or application/x-ndjson")
}

// formatOfType returns the import format a Content-Type names, "" for
// any other type.
func formatOfType(contentType string) string {
	mt, _, _ := mime.ParseMediaType(contentType)
	switch mt {
	case "text/csv":
		return transfer.FormatCSV
	case "application/x-ndjson", "application/ndjson", "application/jsonl":
		return transfer.FormatNDJSON
	}
	return ""
}

// importOptions reads the batch's choice of information notices (GDPR
// Art. 14): notice is "" or "true" (the default: send them) or "false".
func importOptions(notice string) (consent.ImportOptions, error) {
	switch notice {
	case "", "true":
		return consent.ImportOptions{}, nil
	case "false":
		return consent.ImportOptions{SkipNotice: true}, nil
	}
	return consent.ImportOptions{}, consent.Errorf(consent.EInvalid, "notice must be true or false")
}

// handleImport streams a CSV or NDJSON file into the store, 1000 rows per
// transaction, and answers with the report.
func (s *Server) handleImport(c *gin.Context) {
	format, err := importFormat(c)
	if err != nil {
		s.fail(c, err)
		return
	}
	opts, err := importOptions(c.Query("notice"))
	if err != nil {
		s.fail(c, err)
		return
	}
	extendDeadlines(c, true)
	rep, err := s.importFile(c.Request.Context(), actor(c), c.Request.Body, format, opts)
	if err != nil {
		s.fail(c, err)
		return
	}
	c.JSON(http.StatusOK, rep)
}

// importFile reads an import file of format from r into the store under
// a with opts and wakes the outbox for the mails it queued. Valid rows
// land even when others are refused; when a problem stops the import
// midway (a broken file), the error says which rows were stored, and the
// report counts them.
func (s *Server) importFile(ctx context.Context, a consent.Actor, r io.Reader, format string, opts consent.ImportOptions) (consent.ImportReport, error) {
	ir, err := transfer.NewReader(r, format)
	if err != nil {
		return consent.ImportReport{}, err
	}
	rep, err := s.store.Import(ctx, a, ir, opts)
	if rep.Queued > 0 && s.cfg.Outbox != nil {
		s.cfg.Outbox.Notify()
	}
	if err != nil {
		if code := consent.ErrorCode(err); code != consent.EInternal && rep.Imported+rep.Updated+rep.Pending > 0 {
			err = consent.Errorf(code, "%s; the import stopped there, the rows before it were stored as batch %s (%d imported, %d updated)",
				consent.ErrorMessage(err), rep.Batch, rep.Imported, rep.Updated)
		}
	}
	return rep, err
}

// handleSubscriberExport streams the exportable subscribers that match
// the listing's filter (status, topic, lifecycle, q; none: all) as CSV or
// NDJSON.
func (s *Server) handleSubscriberExport(c *gin.Context) { s.exportSubscribers(c, c.Query, s.fail) }

// exportSubscribers streams every exportable subscriber that matches the
// filter read through get (with the field format, csv by default) from
// one read transaction; suppressed addresses never appear. fail answers
// errors found before the first byte; a failure after it can only cut the
// stream short, and is logged. The export is audited under the request's
// key.
func (s *Server) exportSubscribers(c *gin.Context, get func(string) string, fail func(*gin.Context, error)) {
	format := get("format")
	if format == "" {
		format = transfer.FormatCSV
	}
	f, err := s.subscriberFilter(get)
	if err != nil {
		fail(c, err)
		return
	}
	now := s.store.Now()
	match, err := s.exportMatch(c.Request.Context(), f, now)
	if err != nil {
		fail(c, err)
		return
	}
	ex, err := transfer.NewExporter(c.Writer, format, now, s.cfg.DormantAfter)
	if err != nil {
		fail(c, err)
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
			if !match(sub) {
				return nil
			}
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

// exportMatch returns the test of filter f at now for an export. As in a
// listing, a q that is a whole address matches exactly the subscriber
// holding it, not every address that contains it.
func (s *Server) exportMatch(ctx context.Context, f consent.SubscriberFilter, now time.Time) (func(*consent.Subscriber) bool, error) {
	addr, err := consent.ParseAddress(f.Query)
	if err != nil {
		return func(sub *consent.Subscriber) bool { return f.Match(sub, now) }, nil
	}
	holder, err := s.store.SubscriberByAddress(ctx, addr)
	if consent.ErrorCode(err) == consent.ENotFound {
		return func(*consent.Subscriber) bool { return false }, nil
	}
	if err != nil {
		return nil, err
	}
	f.Query = ""
	return func(sub *consent.Subscriber) bool { return sub.ID == holder.ID && f.Match(sub, now) }, nil
}

// handleBackup streams a consistent snapshot of the store while the
// service keeps writing.
func (s *Server) handleBackup(c *gin.Context) {
	extendDeadlines(c, false)
	name := fmt.Sprintf("optin-%s.db", s.store.Now().Format("20060102T150405Z"))
	started := false
	var err error
	defer func() {
		// Audited whether or not it was made: an attempt that sent
		// nothing names no file and counts nothing.
		target, n := name, 1
		if !started {
			target, n = "failed", 0
			if consent.ErrorCode(err) == consent.EConflict {
				target = "refused" // a store without file backups
			}
		}
		if aerr := s.store.AuditRead(context.WithoutCancel(c.Request.Context()), actor(c), "backup", target, n); aerr != nil {
			s.cfg.Log.Error("auditing a backup", "err", aerr)
		}
	}()
	err = s.store.Backup(c.Request.Context(), c.Writer, func(size int64) {
		started = true
		c.Header("Content-Type", "application/octet-stream")
		c.Header("Content-Disposition", `attachment; filename="`+name+`"`)
		c.Header("Content-Length", strconv.FormatInt(size, 10))
		c.Header("Cache-Control", "no-store")
		c.Status(http.StatusOK)
	})
	if err != nil && !started {
		s.fail(c, err) // refused before the first byte (a store without file backups, say)
		return
	}
	if err != nil {
		s.cfg.Log.Warn("backup cut short", "err", err)
		return
	}
	s.cfg.Log.Info("backup", "key", actor(c).Name, "file", name)
}
