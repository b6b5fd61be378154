package web

import (
	"net/http"

	"github.com/gin-gonic/gin"

	"optin/internal/consent"
)

// assessmentsPage is the data of the register of legitimate-interest
// assessments: each as recorded, the form to record one (refilled after
// a refusal) and the current ones a revision may supersede.
type assessmentsPage struct {
	Items   []assessmentView
	Current []*consent.Assessment
	Input   consent.AssessmentInput
	// Today bounds the date field.
	Today string
}

// handleConsoleAssessments shows the register.
func (s *Server) handleConsoleAssessments(c *gin.Context) {
	notice := ""
	if c.Query("done") == "recorded" {
		notice = s.localizer(c).T("console.assessments.recorded")
	}
	s.assessmentsView(c, http.StatusOK, consent.AssessmentInput{}, notice, false)
}

// assessmentsView renders the register with status and notice (an error
// when bad), the form refilled with in.
func (s *Server) assessmentsView(c *gin.Context, status int, in consent.AssessmentInput, notice string, bad bool) {
	list, err := s.store.Assessments(c.Request.Context())
	if err != nil {
		s.consoleFail(c, err)
		return
	}
	p := assessmentsPage{Items: assessmentViews(list), Input: in, Today: s.store.Now().Format("2006-01-02")}
	for _, v := range p.Items {
		if v.SupersededBy == "" {
			p.Current = append(p.Current, v.Assessment)
		}
	}
	d := s.consoleBase(c, "console.assessments.title", "assessments")
	d.P, d.Notice, d.Error = p, notice, bad
	s.consolePage(c, status, "assessments", d)
}

// handleConsoleAssessmentCreate records an assessment (fields as the
// API's body) under the signed-in admin key, as POST
// /api/v1/assessments does.
func (s *Server) handleConsoleAssessmentCreate(c *gin.Context) {
	in := consent.AssessmentInput{ID: c.PostForm("id"), Purpose: c.PostForm("purpose"), Necessity: c.PostForm("necessity"),
		Balancing: c.PostForm("balancing"), Date: c.PostForm("date"), Author: c.PostForm("author"), Supersedes: c.PostForm("supersedes")}
	if _, err := s.store.CreateAssessment(c.Request.Context(), actor(c), in); err != nil {
		if code := consent.ErrorCode(err); code == consent.EInvalid || code == consent.EConflict {
			s.assessmentsView(c, errorStatus(err), in, s.refusal(c, "console.assessments.refused", err), true)
			return
		}
		s.consoleFail(c, err)
		return
	}
	c.Redirect(http.StatusSeeOther, "/admin/assessments?done=recorded")
}
