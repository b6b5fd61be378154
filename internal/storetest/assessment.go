package storetest

import (
	"slices"
	"testing"
	"time"

	"optin/internal/consent"
)

// testAssessments: the register of legitimate-interest assessments keeps
// each assessment as recorded (a second one under its id is EConflict, a
// revision supersedes it once); an import row or an activity under
// legitimate interest must cite a current assessment once the register
// holds any; the imported and activity events record the one cited, and
// Events and Export carry it whole.
func testAssessments(t *testing.T, f *fixture) {
	ctx := t.Context()
	f.bootstrap()
	// An empty register refuses nothing: imports made before assessments
	// existed keep working.
	f.importCSV("email,topics,basis\nearly@example.com,news,legitimate_interest\n")

	in := consent.AssessmentInput{ID: "lia-2029", Purpose: "Tell customers about products like those they bought.",
		Necessity: "Mail is the only channel they gave us.", Balancing: "They expect it; one click stops it.",
		Date: "2029-12-01", Author: "Data protection officer"}
	_, err := f.s.CreateAssessment(ctx, admin, consent.AssessmentInput{ID: "x"})
	f.wantCode("CreateAssessment(incomplete)", err, consent.EInvalid)
	v1, err := f.s.CreateAssessment(ctx, admin, in)
	if err != nil || v1.ID != "lia-2029" || v1.RecordedBy != admin.Name || !v1.Date.Equal(time.Date(2029, 12, 1, 0, 0, 0, 0, time.UTC)) {
		t.Fatalf("CreateAssessment: got %+v, %v", v1, err)
	}
	changed := in
	changed.Balancing = "edited afterwards"
	_, err = f.s.CreateAssessment(ctx, admin, changed)
	f.wantCode("CreateAssessment(same id)", err, consent.EConflict)

	rev := in
	rev.ID, rev.Supersedes, rev.Balancing = "lia-2030", "lia-2029", "Reviewed: still expected."
	if _, err := f.s.CreateAssessment(ctx, admin, rev); err != nil {
		t.Fatalf("CreateAssessment(revision): %v", err)
	}
	again := rev
	again.ID = "lia-2030b"
	_, err = f.s.CreateAssessment(ctx, admin, again)
	f.wantCode("CreateAssessment(superseding twice)", err, consent.EConflict)
	list, err := f.s.Assessments(ctx)
	if err != nil || len(list) != 2 || list[0].ID != "lia-2029" || list[0].Balancing != in.Balancing || list[1].Supersedes != "lia-2029" {
		t.Errorf("Assessments: got %+v, %v, want lia-2029 as first recorded and its revision, in id order", list, err)
	}

	rep := f.importCSV(`email,topics,basis,assessment
none@example.com,news,legitimate_interest,
old@example.com,news,legitimate_interest,lia-2029
unknown@example.com,news,legitimate_interest,lia-1999
cited@example.com,news,legitimate_interest,lia-2030
`)
	var lines []int
	for _, p := range rep.Invalid {
		lines = append(lines, p.Line)
	}
	if rep.Imported != 1 || !slices.Equal(lines, []int{2, 3, 4}) {
		t.Errorf("import citing assessments: got %+v, want lines 2-4 refused (none, superseded, unknown), one imported", rep)
	}
	cited := f.sub("cited@example.com")
	if s := cited.Subscriptions["news"]; s == nil || s.Assessment != "lia-2030" {
		t.Errorf("subscription imported citing lia-2030: got %+v", s)
	}
	if evs := f.events(cited.ID); len(evs) != 1 || evs[0].Assessment != "lia-2030" || evs[0].AssessmentRecord == nil ||
		evs[0].AssessmentRecord.Balancing != "Reviewed: still expected." {
		t.Errorf("imported event: got %+v, want it citing lia-2030 with the assessment attached", evs)
	}

	act, err := consent.NewActivity(consent.ActivityEnquiry, f.now(), "asked about delivery", f.now())
	if err != nil {
		t.Fatal(err)
	}
	_, err = f.s.RecordActivity(ctx, admin, cited.ID, act, false)
	f.wantCode("RecordActivity(legitimate interest, no assessment)", err, consent.EInvalid)
	act.Assessment = "lia-2029"
	_, err = f.s.RecordActivity(ctx, admin, cited.ID, act, false)
	f.wantCode("RecordActivity(superseded assessment)", err, consent.EInvalid)
	act.Assessment = "lia-2030"
	if _, err := f.s.RecordActivity(ctx, admin, cited.ID, act, false); err != nil {
		t.Fatalf("RecordActivity(citing lia-2030): %v", err)
	}
	exp, err := f.s.Export(ctx, cited.ID)
	if err != nil {
		t.Fatal(err)
	}
	if last := exp.Events[len(exp.Events)-1]; last.Type != consent.EventActivity || last.Assessment != "lia-2030" || last.AssessmentRecord == nil {
		t.Errorf("export's activity event: got %+v, want it citing lia-2030 with the assessment", last)
	}
	f.wantLedgerOK(3)
	if acts := f.auditActions(); !slices.Contains(acts, "assessment.create") {
		t.Errorf("audit: got %q, want assessment.create", acts)
	}
}
