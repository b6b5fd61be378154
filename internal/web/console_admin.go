package web

import (
	"net/http"

	"github.com/gin-gonic/gin"

	"optin/internal/consent"
)

// suppressionsPage is the data of the suppression list.
type suppressionsPage struct {
	Rows   []suppressionRow
	Topics []consent.Topic
	// Email is the address looked up, when the list shows only its
	// entries.
	Email string
	// Cursor is where this page starts ("" on the first); Next where
	// the following one does ("" after the last).
	Cursor, Next string
}

// suppressionRow is one suppression as the list shows it.
type suppressionRow struct {
	consent.Suppression
	// ID is the public prefix of the hash; Topic the scope's name ("" for
	// every topic); Removable is set for an operator's block.
	ID, Topic string
	Removable bool
}

// handleConsoleSuppressions lists the suppression list a page at a time
// (?cursor=): keyed hashes of addresses, never the addresses.
func (s *Server) handleConsoleSuppressions(c *gin.Context) {
	s.suppressionsView(c, http.StatusOK, "", c.Query("cursor"), "")
}

// handleConsoleSuppressionFind lists one address's entries (field
// email). The address comes by POST, so it never lands in a URL.
func (s *Server) handleConsoleSuppressionFind(c *gin.Context) {
	s.suppressionsView(c, http.StatusOK, c.PostForm("email"), "", "")
}

// suppressionsView renders the suppression list with status: the entries
// of email when it is set, else a page from cursor; notice, when set, is
// an error.
func (s *Server) suppressionsView(c *gin.Context, status int, email, cursor, notice string) {
	ctx := c.Request.Context()
	var addr *consent.Address
	if email != "" {
		a, err := consent.ParseAddress(email)
		if err != nil {
			s.consoleFail(c, keyed(err, "console.suppressions.bad_address"))
			return
		}
		addr = &a
	}
	if len(cursor) > 200 {
		s.consoleFail(c, consent.Errorf(consent.EInvalid, "cursor too long"))
		return
	}
	page, err := s.store.Suppressions(ctx, addr, cursor, consolePageSize)
	if err != nil {
		s.consoleFail(c, err)
		return
	}
	topics, names, err := s.topicNames(ctx)
	if err != nil {
		s.consoleFail(c, err)
		return
	}
	p := suppressionsPage{Topics: topics, Email: email, Cursor: cursor, Next: page.NextCursor}
	for _, sup := range page.Items {
		row := suppressionRow{Suppression: sup, ID: consent.KeyID(sup.Hash), Removable: !sup.LiftedByOptIn()}
		if sup.Scope != consent.ScopeAll {
			row.Topic = names.name(sup.Scope)
		}
		p.Rows = append(p.Rows, row)
	}
	d := s.consoleBase(c, "console.suppressions.title", "suppressions")
	d.P = p
	if notice != "" {
		d.Notice, d.Error = notice, true
	} else if key := suppressionsNotice(c.Query("done")); key != "" {
		d.Notice = d.L.T(key)
	}
	s.consolePage(c, status, "suppressions", d)
}

// suppressionsNotice returns the message key of what the suppression list
// says after one of its writes (?done=), "" for anything else.
func suppressionsNotice(done string) string {
	switch done {
	case "added", "exists", "removed":
		return "console.suppressions.done_" + done
	}
	return ""
}

// handleConsoleSuppressionAdd blocks an address (fields email, topic: ""
// for every topic, note) as POST /api/v1/suppressions does.
func (s *Server) handleConsoleSuppressionAdd(c *gin.Context) {
	b := suppressionBody{Email: c.PostForm("email"), Topic: c.PostForm("topic"), Note: c.PostForm("note")}
	_, created, err := s.addSuppression(c.Request.Context(), actor(c), b)
	if consent.ErrorCode(err) == consent.EInvalid {
		s.suppressionsView(c, http.StatusBadRequest, "", "", s.refusal(c, "console.suppressions.refused", err))
		return
	}
	if err != nil {
		s.consoleFail(c, err)
		return
	}
	done := "exists"
	if created {
		done = "added"
	}
	c.Redirect(http.StatusSeeOther, "/admin/suppressions?done="+done)
}

// handleConsoleSuppressionDelete lifts an operator's block of a hash
// (field scope; "" for all its scopes) as DELETE
// /api/v1/suppressions/{hash} does; a person's own opt-out stays.
func (s *Server) handleConsoleSuppressionDelete(c *gin.Context) {
	_, err := s.store.DeleteSuppression(c.Request.Context(), actor(c), c.Param("hash"), c.PostForm("scope"))
	if consent.ErrorCode(err) == consent.EConflict {
		s.suppressionsView(c, http.StatusConflict, "", "", s.localizer(c).T("console.suppressions.not_admin"))
		return
	}
	if err != nil {
		s.consoleFail(c, err)
		return
	}
	c.Redirect(http.StatusSeeOther, "/admin/suppressions?done=removed")
}

// auditPage is the data of the audit log page.
type auditPage struct {
	Entries      []consent.AuditEntry
	Cursor, Next string
}

// handleConsoleAudit shows the audit log, newest first, a page at a time
// (?cursor=).
func (s *Server) handleConsoleAudit(c *gin.Context) {
	cursor := c.Query("cursor")
	if len(cursor) > 200 {
		s.consoleFail(c, consent.Errorf(consent.EInvalid, "cursor too long"))
		return
	}
	entries, next, err := s.store.Audit(c.Request.Context(), cursor, consolePageSize)
	if err != nil {
		s.consoleFail(c, err)
		return
	}
	d := s.consoleBase(c, "console.audit.title", "audit")
	d.P = auditPage{Entries: entries, Cursor: cursor, Next: next}
	s.consolePage(c, http.StatusOK, "audit", d)
}

// keysPage is the data of the API key page.
type keysPage struct {
	Keys  []consent.APIKeyInfo
	Roles []consent.Role
	// Mine is the id of the key signed in.
	Mine string
	// Secret is a key just made, shown this once, and Made its details.
	Secret string
	Made   consent.APIKeyInfo
	// Name and Role fill the form again after a refusal.
	Name string
	Role consent.Role
}

// handleConsoleKeys lists the API keys, revoked ones too.
func (s *Server) handleConsoleKeys(c *gin.Context) {
	notice := ""
	if c.Query("done") == "revoked" {
		notice = s.localizer(c).T("console.keys.done_revoked")
	}
	s.keysView(c, http.StatusOK, keysPage{Role: consent.RoleMarketer}, notice, false)
}

// keysView renders the key page with status from p, adding the keys,
// with notice (an error when bad).
func (s *Server) keysView(c *gin.Context, status int, p keysPage, notice string, bad bool) {
	keys, err := s.store.APIKeys(c.Request.Context())
	if err != nil {
		s.consoleFail(c, err)
		return
	}
	p.Keys, p.Roles = keys, []consent.Role{consent.RoleViewer, consent.RoleMarketer, consent.RoleAdmin}
	p.Mine = consent.KeyID(c.MustGet(ctxKey).(consent.APIKey).Hash)
	d := s.consoleBase(c, "console.keys.title", "keys")
	d.P, d.Notice, d.Error = p, notice, bad
	s.consolePage(c, status, "keys", d)
}

// handleConsoleKeyCreate makes an API key (fields name, role) as POST
// /api/v1/apikeys does and shows its secret, the only time it is shown.
// The page is not a redirect, so the secret is in no URL or history.
func (s *Server) handleConsoleKeyCreate(c *gin.Context) {
	p := keysPage{Name: c.PostForm("name"), Role: consent.Role(c.PostForm("role"))}
	secret, info, err := s.store.NewAPIKey(c.Request.Context(), actor(c), p.Name, p.Role)
	if consent.ErrorCode(err) == consent.EInvalid || consent.ErrorCode(err) == consent.EConflict {
		s.keysView(c, errorStatus(err), p, s.refusal(c, "console.keys.refused", err), true)
		return
	}
	if err != nil {
		s.consoleFail(c, err)
		return
	}
	s.keysView(c, http.StatusCreated, keysPage{Secret: secret, Made: info, Role: consent.RoleMarketer}, "", false)
}

// handleConsoleKeyRevoke revokes an API key as DELETE /api/v1/apikeys/{id}
// does: its sessions end at their next request, this one's too when it is
// the key signed in.
func (s *Server) handleConsoleKeyRevoke(c *gin.Context) {
	if err := s.store.RevokeAPIKey(c.Request.Context(), actor(c), c.Param("id")); err != nil {
		s.consoleFail(c, err)
		return
	}
	c.Redirect(http.StatusSeeOther, "/admin/keys?done=revoked")
}
