package web

import (
	"encoding/base64"
	"encoding/json"
	"html/template"
	"mime/multipart"
	"net/http"
	"path"
	"strings"

	"github.com/gin-gonic/gin"

	"optin/internal/consent"
	"optin/internal/transfer"
)

// importPage is the data of the import page: the upload form, and after
// an upload its report.
type importPage struct {
	Report *consent.ImportReport
	// More counts the refused rows the report does not list.
	More int
	// Download is the report as a data: URL of JSON, and File its name:
	// the report is not kept, so the page carries it.
	Download template.URL
	File     string
}

// handleConsoleImportPage shows the upload form.
func (s *Server) handleConsoleImportPage(c *gin.Context) {
	s.consolePage(c, http.StatusOK, "import", s.consoleBase(c, "console.import.title", "import"))
}

// handleConsoleImport reads an uploaded CSV or NDJSON file (multipart
// field file, after the csrf field and the notice checkbox) through the
// admin API's import, as it streams in, and shows the report. The
// information notices (GDPR Art. 14) go out when the checkbox, ticked by
// default, came ticked: a field sent before the file. The file is
// imported as it arrives, so the upload's progress, which console.js
// shows, is the import's.
func (s *Server) handleConsoleImport(c *gin.Context) {
	d := s.consoleBase(c, "console.import.title", "import")
	v, ok := c.Get(ctxUpload)
	if !ok {
		s.consolePage(c, http.StatusBadRequest, "import", d, d.L.T("console.import.no_file"))
		return
	}
	mr := v.(*multipart.Reader)
	opts := consent.ImportOptions{SkipNotice: true}
	part, err := mr.NextPart()
	if err == nil && part.FormName() == "notice" {
		opts.SkipNotice = false
		part, err = mr.NextPart()
	}
	if err != nil || part.FormName() != "file" || part.FileName() == "" {
		s.consolePage(c, http.StatusBadRequest, "import", d, d.L.T("console.import.no_file"))
		return
	}
	format := uploadFormat(part.FileName(), part.Header.Get("Content-Type"))
	if format == "" {
		s.consolePage(c, http.StatusBadRequest, "import", d, d.L.T("console.import.format"))
		return
	}
	extendDeadlines(c, true)
	rep, err := s.importFile(c.Request.Context(), actor(c), part, format, opts)
	status := http.StatusOK
	if err != nil {
		if consent.ErrorCode(err) == consent.EInternal {
			s.consoleFail(c, err)
			return
		}
		status, d.Notice, d.Error = errorStatus(err), d.L.T("console.import.failed", consent.ErrorMessage(err)), true
		if rep.Batch == "" {
			s.consolePage(c, status, "import", d)
			return
		}
	}
	b, err := json.MarshalIndent(rep, "", "  ")
	if err != nil {
		s.consoleFail(c, err)
		return
	}
	d.P = importPage{Report: &rep, More: rep.InvalidCount - len(rep.Invalid), File: "import-" + rep.Batch + ".json",
		Download: template.URL("data:application/json;base64," + base64.StdEncoding.EncodeToString(b))}
	s.consolePage(c, status, "import", d)
}

// uploadFormat is the import format of an uploaded file: by its name's
// extension, else by the Content-Type the browser gave it; "" when
// neither says.
func uploadFormat(name, contentType string) string {
	switch strings.ToLower(path.Ext(name)) {
	case ".csv":
		return transfer.FormatCSV
	case ".ndjson", ".jsonl":
		return transfer.FormatNDJSON
	}
	return formatOfType(contentType)
}
