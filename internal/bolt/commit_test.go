package bolt

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"go.etcd.io/bbolt"

	"optin/internal/consent"
)

// TestGroupCommit: concurrent writes all land, a failing write gets its own
// error without taking the others down, a panicking write becomes an
// error, and batches really share transactions.
func TestGroupCommit(t *testing.T) {
	db, err := Open(filepath.Join(t.TempDir(), "g.db"), Options{HMACKey: bytes.Repeat([]byte{2}, 32)})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	const n = 400
	errBad := errors.New("bad write")
	var mu sync.Mutex
	txs := map[int]bool{}
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = db.update(context.Background(), func(tx *bbolt.Tx) error {
				switch i {
				case 13:
					return errBad
				case 27:
					panic("boom")
				}
				mu.Lock()
				txs[tx.ID()] = true
				mu.Unlock()
				return tx.Bucket(bucketMeta).Put([]byte(fmt.Sprintf("k%03d", i)), []byte("v"))
			})
		}()
	}
	wg.Wait()
	for i, err := range errs {
		switch i {
		case 13:
			if !errors.Is(err, errBad) {
				t.Errorf("call 13: got %v, want errBad", err)
			}
		case 27:
			if err == nil {
				t.Error("call 27 panicked but got no error")
			}
		default:
			if err != nil {
				t.Errorf("call %d: %v", i, err)
			}
		}
	}
	stored := 0
	db.view(func(tx *bbolt.Tx) error {
		for i := range n {
			if tx.Bucket(bucketMeta).Get([]byte(fmt.Sprintf("k%03d", i))) != nil {
				stored++
			}
		}
		return nil
	})
	if got, want := stored, n-2; got != want {
		t.Errorf("stored: got %d, want %d", got, want)
	}
	t.Logf("%d writes committed in %d transactions", n-2, len(txs))
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	if err := db.update(context.Background(), func(*bbolt.Tx) error { return nil }); !errors.Is(err, ErrClosed) {
		t.Errorf("update after Close: got %v, want ErrClosed", err)
	}
}

// TestRetryJobSurvivesRerun: when another write in the same batch fails,
// the group commit runs RetryJob again; the job must still end up due at
// the new time with one more attempt (it once stayed due at once).
func TestRetryJobSurvivesRerun(t *testing.T) {
	ctx := context.Background()
	db, form := openBootstrappedDB(t)
	a, _ := consent.ParseAddress("retry@example.com")
	if _, err := db.Signup(ctx, consent.SignupInput{Form: &form, Address: a, Topics: []string{"news"}}, consent.Wording{}); err != nil {
		t.Fatal(err)
	}
	for round := range 10 {
		jobs, err := db.DueJobs(ctx, time.Now().Add(1000*time.Hour), 1, nil)
		if err != nil || len(jobs) != 1 {
			t.Fatalf("round %d: due jobs %d %v", round, len(jobs), err)
		}
		job := jobs[0]
		next := job.NextAt.Add(time.Hour)
		hold, release := make(chan struct{}), make(chan struct{})
		go db.update(context.Background(), func(*bbolt.Tx) error { close(hold); <-release; return nil })
		<-hold
		var wg sync.WaitGroup
		wg.Add(2)
		go func() { defer wg.Done(); db.RetryJob(ctx, job, next, "x") }()
		go func() {
			defer wg.Done()
			db.update(context.Background(), func(*bbolt.Tx) error { return errors.New("another write fails") })
		}()
		time.Sleep(20 * time.Millisecond) // both wait for the committer
		close(release)
		wg.Wait()
		got, err := db.DueJobs(ctx, time.Now().Add(1000*time.Hour), 1, nil)
		if err != nil || len(got) != 1 {
			t.Fatalf("round %d: %d jobs %v", round, len(got), err)
		}
		if !got[0].NextAt.Equal(next) || got[0].Attempts != job.Attempts+1 {
			t.Fatalf("round %d: job next %v attempts %d, want %v and %d", round, got[0].NextAt, got[0].Attempts, next, job.Attempts+1)
		}
	}
}

// TestGather: without a wait, a batch is the calls already queued; with
// one, calls arriving within it join, and the batch closes when it ends.
func TestGather(t *testing.T) {
	newCall := func() *call { return &call{done: make(chan error, 1)} }
	calls := make(chan *call, 10)
	calls <- newCall()
	calls <- newCall()
	if got := gather(newCall(), calls, 0); len(got) != 3 {
		t.Errorf("no wait: got %d calls, want the first and the 2 queued", len(got))
	}

	go func() {
		for range 3 {
			time.Sleep(5 * time.Millisecond)
			calls <- newCall()
		}
	}()
	start := time.Now()
	got := gather(newCall(), calls, 200*time.Millisecond)
	if took := time.Since(start); len(got) != 4 || took < 200*time.Millisecond {
		t.Errorf("200ms wait: got %d calls after %v, want 4 after the whole wait", len(got), took)
	}

	full := make(chan *call, maxBatch)
	for range maxBatch {
		full <- newCall()
	}
	start = time.Now()
	if got := gather(newCall(), full, time.Minute); len(got) != maxBatch || time.Since(start) > time.Second {
		t.Errorf("full channel: got %d calls after %v, want %d at once", len(got), time.Since(start), maxBatch)
	}
}

// TestUpdateHonoursContext: a write whose ctx ends while it waits for the
// committer returns ctx's error at once, and a write whose ctx ended
// before the committer reached it changes nothing.
func TestUpdateHonoursContext(t *testing.T) {
	db, err := Open(filepath.Join(t.TempDir(), "c.db"), Options{HMACKey: bytes.Repeat([]byte{2}, 32)})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	running, release := make(chan struct{}), make(chan struct{})
	blocker := make(chan error, 1)
	go func() {
		blocker <- db.update(context.Background(), func(tx *bbolt.Tx) error {
			close(running)
			<-release
			return nil
		})
	}()
	<-running // the committer is busy with the blocker

	ctx, cancel := context.WithCancel(context.Background())
	waiting := make(chan error, 1)
	go func() {
		waiting <- db.update(ctx, func(tx *bbolt.Tx) error {
			return tx.Bucket(bucketMeta).Put([]byte("cancelled"), []byte("v"))
		})
	}()
	cancel()
	if err := <-waiting; !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled write: got %v, want context.Canceled", err)
	}
	close(release)
	if err := <-blocker; err != nil {
		t.Fatal(err)
	}
	// A later write goes through the same committer, after anything the
	// cancelled call could have left in the queue.
	if err := db.update(context.Background(), func(tx *bbolt.Tx) error { return nil }); err != nil {
		t.Fatal(err)
	}
	err = db.view(func(tx *bbolt.Tx) error {
		if tx.Bucket(bucketMeta).Get([]byte("cancelled")) != nil {
			return errors.New("the cancelled write was committed")
		}
		return nil
	})
	if err != nil {
		t.Error(err)
	}
}
