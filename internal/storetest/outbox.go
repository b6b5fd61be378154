package storetest

import (
	"slices"
	"testing"
	"time"

	"optin/internal/consent"
)

// jobIDs returns the ids of jobs in order.
func jobIDs(jobs []consent.Job) []uint64 {
	var ids []uint64
	for _, j := range jobs {
		ids = append(ids, j.ID)
	}
	return ids
}

// testOutbox: DueJobs hands out due jobs in due order within limit and
// skip; RetryJob makes a job due later, ParkJob takes it out for good,
// FinishJobs removes it, and ExpediteRetries makes waiting retries due.
func testOutbox(t *testing.T, f *fixture) {
	ctx := t.Context()
	f.bootstrap()
	if next, err := f.s.NextDue(ctx); err != nil || !next.IsZero() {
		t.Errorf("NextDue of an empty outbox: got %v, %v, want zero, nil", next, err)
	}
	for _, email := range []string{"c@example.com", "a@example.com", "b@example.com"} {
		f.signup(email)
		f.clock.Advance(time.Second)
	}
	now := f.now()
	jobs := f.due(now)
	if got := emails(jobs); len(jobs) != 3 || jobs[0].To != "c@example.com" || jobs[1].To != "a@example.com" {
		t.Fatalf("DueJobs: got %q, want c@, a@, b@ in the order they were queued", got)
	}
	c, a, b := jobs[0], jobs[1], jobs[2]
	if !c.NextAt.Before(a.NextAt) || !a.NextAt.Before(b.NextAt) || a.ID == c.ID || b.ID == a.ID {
		t.Errorf("jobs: got NextAt %v, %v, %v and ids %v, want increasing due times and distinct ids",
			c.NextAt, a.NextAt, b.NextAt, jobIDs(jobs))
	}
	if got := f.due(c.NextAt.Add(-time.Millisecond)); len(got) != 0 {
		t.Errorf("DueJobs before the first is due: got %d jobs, want 0", len(got))
	}
	if got := jobIDs(f.due(a.NextAt)); !slices.Equal(got, []uint64{c.ID, a.ID}) {
		t.Errorf("DueJobs when the second is due: got %v, want %v", got, []uint64{c.ID, a.ID})
	}
	limited, err := f.s.DueJobs(ctx, now, 2, nil)
	if err != nil || !slices.Equal(jobIDs(limited), []uint64{c.ID, a.ID}) {
		t.Errorf("DueJobs limit 2: got %v, %v, want %v", jobIDs(limited), err, []uint64{c.ID, a.ID})
	}
	skipped, err := f.s.DueJobs(ctx, now, 2, func(id uint64) bool { return id == c.ID })
	if err != nil || !slices.Equal(jobIDs(skipped), []uint64{a.ID, b.ID}) {
		t.Errorf("DueJobs skipping the first: got %v, %v, want %v", jobIDs(skipped), err, []uint64{a.ID, b.ID})
	}
	if next, err := f.s.NextDue(ctx); err != nil || !next.Equal(c.NextAt) {
		t.Errorf("NextDue: got %v, %v, want %v", next, err, c.NextAt)
	}

	later := now.Add(5 * time.Minute)
	if err := f.s.RetryJob(ctx, c, later, "421 try again later"); err != nil {
		t.Fatalf("RetryJob: got err %v, want nil", err)
	}
	if got := jobIDs(f.due(now)); !slices.Equal(got, []uint64{a.ID, b.ID}) {
		t.Errorf("DueJobs after RetryJob: got %v, want %v (the retry waits)", got, []uint64{a.ID, b.ID})
	}
	if got := jobIDs(f.due(later.Add(-time.Millisecond))); slices.Contains(got, c.ID) {
		t.Errorf("DueJobs just before the retry: got %v, want it without %d", got, c.ID)
	}
	retried := f.due(later)
	if got := jobIDs(retried); !slices.Equal(got, []uint64{a.ID, b.ID, c.ID}) {
		t.Fatalf("DueJobs at the retry: got %v, want %v", got, []uint64{a.ID, b.ID, c.ID})
	}
	if r := retried[2]; r.Attempts != 1 || r.LastError != "421 try again later" || !r.NextAt.Equal(later) || r.MessageID != c.MessageID {
		t.Errorf("retried job: got Attempts %d, LastError %q, NextAt %v, want 1, the reason, %v, same Message-ID",
			r.Attempts, r.LastError, r.NextAt, later)
	}
	if next, err := f.s.NextDue(ctx); err != nil || !next.Equal(a.NextAt) {
		t.Errorf("NextDue after RetryJob: got %v, %v, want %v", next, err, a.NextAt)
	}
	evenLater := later.Add(time.Hour)
	if err := f.s.RetryJob(ctx, retried[2], evenLater, "timeout"); err != nil {
		t.Fatalf("second RetryJob: got err %v, want nil", err)
	}
	if got := f.due(evenLater); len(got) != 3 || got[2].ID != c.ID || got[2].Attempts != 2 || got[2].LastError != "timeout" {
		t.Errorf("after a second RetryJob: got %+v, want job %d last with 2 attempts", got, c.ID)
	}
	f.wantOutbox(3, 0)

	if err := f.s.ParkJob(ctx, a, "550 no such user"); err != nil {
		t.Fatalf("ParkJob: got err %v, want nil", err)
	}
	if got := jobIDs(f.due(now.Add(365 * consent.Day))); slices.Contains(got, a.ID) {
		t.Errorf("DueJobs after ParkJob: got %v, want it without %d", got, a.ID)
	}
	f.wantOutbox(2, 1)

	if err := f.s.FinishJobs(ctx, []consent.Job{b}); err != nil {
		t.Fatalf("FinishJobs: got err %v, want nil", err)
	}
	if got := jobIDs(f.due(now.Add(365 * consent.Day))); !slices.Equal(got, []uint64{c.ID}) {
		t.Errorf("DueJobs after FinishJobs: got %v, want %v", got, []uint64{c.ID})
	}
	f.wantOutbox(1, 1)

	// A job being sent keeps its place: skip names it.
	beingSent := func(id uint64) bool { return id == c.ID }
	if n, err := f.s.ExpediteRetries(ctx, beingSent); err != nil || n != 0 {
		t.Errorf("ExpediteRetries skipping the only retry: got %d, %v, want 0, nil", n, err)
	}
	if got := f.due(f.now()); len(got) != 0 {
		t.Errorf("DueJobs after ExpediteRetries skipped the job: got %+v, want none due", got)
	}
	if n, err := f.s.ExpediteRetries(ctx, nil); err != nil || n != 1 {
		t.Errorf("ExpediteRetries: got %d, %v, want 1, nil", n, err)
	}
	expedited := f.due(f.now())
	if len(expedited) != 1 || expedited[0].ID != c.ID || expedited[0].Attempts != 2 || expedited[0].NextAt.After(f.now()) {
		t.Fatalf("DueJobs after ExpediteRetries: got %+v, want job %d due now", expedited, c.ID)
	}
	if n, err := f.s.ExpediteRetries(ctx, nil); err != nil || n != 0 {
		t.Errorf("ExpediteRetries with nothing waiting: got %d, %v, want 0, nil", n, err)
	}
	if err := f.s.FinishJobs(ctx, expedited); err != nil {
		t.Fatalf("FinishJobs: got err %v, want nil", err)
	}
	f.wantOutbox(0, 1)
	if next, err := f.s.NextDue(ctx); err != nil || !next.IsZero() {
		t.Errorf("NextDue after the last job: got %v, %v, want zero, nil", next, err)
	}
}
