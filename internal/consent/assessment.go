package consent

import (
	"strings"
	"time"
)

// Assessment is a legitimate-interest assessment (GDPR Art. 6(1)(f),
// Recital 47): the three tests an operator weighed before relying on
// legitimate interest (purpose, necessity, balancing), when and by whom.
// It is evidence, so it is never edited once recorded: a revised
// assessment is a new one that names the one it Supersedes, and from
// then on only the new one may be cited.
type Assessment struct {
	// ID is the operator's slug, cited by imports and activities.
	ID string `json:"id"`
	// Purpose is the interest pursued; Necessity why the processing is
	// needed for it; Balancing why the person's interests and
	// expectations do not override it.
	Purpose   string `json:"purpose"`
	Necessity string `json:"necessity"`
	Balancing string `json:"balancing"`
	// Date is the day the assessment was made (UTC midnight); Author who
	// made it.
	Date   time.Time `json:"date"`
	Author string    `json:"author"`
	// Supersedes is the assessment this one revises, if any.
	Supersedes string `json:"supersedes,omitempty"`
	// Recorded is when it was stored, RecordedBy the API key's name.
	Recorded   time.Time `json:"recorded"`
	RecordedBy string    `json:"recorded_by"`
}

// AssessmentInput is an assessment as the admin API receives it.
type AssessmentInput struct {
	ID         string `json:"id"`
	Purpose    string `json:"purpose"`
	Necessity  string `json:"necessity"`
	Balancing  string `json:"balancing"`
	Date       string `json:"date"`
	Author     string `json:"author"`
	Supersedes string `json:"supersedes"`
}

// maxAssessmentText caps each of an assessment's three tests.
const maxAssessmentText = 10000

// NewAssessment validates in against the register reg and returns the
// assessment recorded at now by a: an id of the topic-id shape not taken
// yet (else EConflict), purpose, necessity and balancing of 1-10000
// characters of plain text, a date (YYYY-MM-DD or RFC 3339) not in the
// future, an author of 1-200 characters on one line, and, when it
// supersedes another, one that exists and was not superseded already
// (else EConflict). Other problems are EInvalid.
func NewAssessment(in AssessmentInput, reg Assessments, a Actor, now time.Time) (*Assessment, error) {
	as := &Assessment{ID: strings.TrimSpace(in.ID), Author: strings.TrimSpace(in.Author),
		Supersedes: strings.TrimSpace(in.Supersedes), Recorded: now, RecordedBy: a.Name}
	if !slugRE.MatchString(as.ID) {
		return nil, Errorf(EInvalid, "id must match %s, e.g. lia-customers-2026", slugRE)
	}
	if reg.byID[as.ID] != nil {
		return nil, Errorf(EConflict, "assessment %s exists; an assessment is never changed: record a new one that supersedes it", as.ID)
	}
	for _, f := range []struct {
		name string
		in   string
		out  *string
	}{{"purpose", in.Purpose, &as.Purpose}, {"necessity", in.Necessity, &as.Necessity}, {"balancing", in.Balancing, &as.Balancing}} {
		*f.out = strings.TrimSpace(strings.ReplaceAll(f.in, "\r\n", "\n"))
		if *f.out == "" || !PlainText(*f.out, maxAssessmentText, true) {
			return nil, Errorf(EInvalid, "%s is required: plain text of at most %d characters", f.name, maxAssessmentText)
		}
	}
	date, err := parseImportTime(in.Date, now)
	if err != nil || date.IsZero() {
		return nil, Errorf(EInvalid, "date is required: the day of the assessment, YYYY-MM-DD, not in the future")
	}
	as.Date = date.Truncate(Day)
	if as.Author == "" || !PlainText(as.Author, maxNameRunes*2, false) {
		return nil, Errorf(EInvalid, "author is required: who made the assessment, at most %d characters on one line", maxNameRunes*2)
	}
	if as.Supersedes != "" {
		old := reg.byID[as.Supersedes]
		switch {
		case old == nil:
			return nil, Errorf(EInvalid, "supersedes: no assessment %s", Truncate(as.Supersedes, 64))
		case reg.next[old.ID] != "":
			return nil, Errorf(EConflict, "assessment %s was superseded already by %s", old.ID, reg.next[old.ID])
		}
	}
	return as, nil
}

// Assessments is the register of legitimate-interest assessments as the
// citing rule sees it.
type Assessments struct {
	byID map[string]*Assessment
	next map[string]string // id -> the id that supersedes it
}

// NewAssessments indexes list, the whole register.
func NewAssessments(list []*Assessment) Assessments {
	reg := Assessments{byID: make(map[string]*Assessment, len(list)), next: map[string]string{}}
	for _, a := range list {
		reg.byID[a.ID] = a
		if a.Supersedes != "" {
			reg.next[a.Supersedes] = a.ID
		}
	}
	return reg
}

// Get returns assessment id, or nil.
func (r Assessments) Get(id string) *Assessment { return r.byID[id] }

// SupersededBy returns the id of the assessment that replaced id, "" for
// a current one.
func (r Assessments) SupersededBy(id string) string { return r.next[id] }

// Cite decides whether a record (an import row, an activity) may cite
// assessment id: the rule of the register. A cited assessment must exist
// and be current (not superseded: records made from now on cite the
// revision). A record under legitimate interest (underLI) must cite one
// as soon as the register holds any; while it is empty, records are
// accepted without, as before assessments existed. Problems are EInvalid.
func (r Assessments) Cite(id string, underLI bool) error {
	switch {
	case id != "" && r.byID[id] == nil:
		return Errorf(EInvalid, "assessment: no assessment %s", Truncate(id, 64))
	case id != "" && r.next[id] != "":
		return Errorf(EInvalid, "assessment: %s was superseded by %s; cite that one", id, r.next[id])
	case id == "" && underLI && len(r.byID) > 0:
		return Errorf(EInvalid, "assessment: legitimate interest needs the id of a current legitimate-interest assessment")
	}
	return nil
}

// UnderLegitimateInterest reports whether sub holds a confirmed
// subscription on legitimate interest: an activity recorded for them is
// part of that interest's trail and cites its assessment.
func (s *Subscriber) UnderLegitimateInterest() bool {
	for _, sub := range s.Subscriptions {
		if sub.Status == StatusConfirmed && sub.Basis == BasisLegitimateInterest {
			return true
		}
	}
	return false
}
