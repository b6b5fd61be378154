package web

import (
	"net/http"

	"github.com/gin-gonic/gin"

	"optin/internal/consent"
)

// assessmentView is a legitimate-interest assessment as the admin API
// shows it: as recorded, and which revision replaced it, if any.
type assessmentView struct {
	*consent.Assessment
	SupersededBy string `json:"superseded_by,omitempty"`
}

// assessmentViews returns the register with each assessment's successor.
func assessmentViews(list []*consent.Assessment) []assessmentView {
	reg := consent.NewAssessments(list)
	out := make([]assessmentView, len(list))
	for i, as := range list {
		out[i] = assessmentView{as, reg.SupersededBy(as.ID)}
	}
	return out
}

// handleAssessmentCreate records a legitimate-interest assessment (GDPR
// Art. 6(1)(f)). It is evidence: there is no route that changes or
// deletes one; a revision is a new assessment that supersedes it.
func (s *Server) handleAssessmentCreate(c *gin.Context) {
	var in consent.AssessmentInput
	if err := bindJSON(c, &in); err != nil {
		s.fail(c, err)
		return
	}
	as, err := s.store.CreateAssessment(c.Request.Context(), actor(c), in)
	if err != nil {
		s.fail(c, err)
		return
	}
	c.JSON(http.StatusCreated, assessmentView{Assessment: as})
}

func (s *Server) handleAssessments(c *gin.Context) {
	list, err := s.store.Assessments(c.Request.Context())
	if err != nil {
		s.fail(c, err)
		return
	}
	c.JSON(http.StatusOK, gin.H{"items": assessmentViews(list)})
}

func (s *Server) handleAssessment(c *gin.Context) {
	list, err := s.store.Assessments(c.Request.Context())
	if err != nil {
		s.fail(c, err)
		return
	}
	for _, v := range assessmentViews(list) {
		if v.ID == c.Param("id") {
			c.JSON(http.StatusOK, v)
			return
		}
	}
	s.fail(c, consent.Errorf(consent.ENotFound, "assessment %q not found", c.Param("id")))
}
