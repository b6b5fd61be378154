package postgres_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"optin/internal/postgres"
)

// leadRecord notes which store leads a task and whether two ever led it
// at once.
type leadRecord struct {
	mu      sync.Mutex
	running int
	overlap bool
	started chan int // the store that began to lead
	ended   chan int // the store whose run ended
}

func (r *leadRecord) fn(store int) func(ctx context.Context) {
	return func(ctx context.Context) {
		r.mu.Lock()
		r.running++
		r.overlap = r.overlap || r.running > 1
		r.mu.Unlock()
		r.started <- store
		<-ctx.Done()
		r.mu.Lock()
		r.running--
		r.mu.Unlock()
		r.ended <- store
	}
}

// wait waits for a store on ch: one that began or ended leading.
func wait(t *testing.T, ch chan int, what string) int {
	t.Helper()
	select {
	case i := <-ch:
		return i
	case <-time.After(30 * time.Second):
		t.Fatalf("no store %s within 30 s", what)
		return -1
	}
}

// TestLeadOneAtATime: of two stores leading one task, one runs it; when
// that one stops, and when its lock's connection is cut, the other takes
// over; they never both run it at once, but for the moment a cut leader
// takes to notice (documented on Lead).
func TestLeadOneAtATime(t *testing.T) {
	url := pg.Database(t)
	stores := []*postgres.DB{open(t, url, nil, testHMACKey), open(t, url, nil, testHMACKey)}
	rec := &leadRecord{started: make(chan int, 4), ended: make(chan int, 4)}
	ctxs := make([]context.Context, 2)
	stops := make([]context.CancelFunc, 2)
	var wg sync.WaitGroup
	for i, db := range stores {
		ctxs[i], stops[i] = context.WithCancel(context.Background())
		wg.Add(1)
		go func() {
			defer wg.Done()
			db.Lead(ctxs[i], "sweep", rec.fn(i))
		}()
	}
	defer func() {
		for _, stop := range stops {
			stop()
		}
		wg.Wait()
	}()

	first := wait(t, rec.started, "took the lead")
	// The leader's lock connection is cut, as when its host loses the
	// network or PostgreSQL restarts: its run ends, and a store (either)
	// leads again.
	if err := pg.Exec("postgres", `SELECT pg_terminate_backend(pid) FROM pg_locks
		WHERE locktype = 'advisory' AND granted AND pid <> pg_backend_pid()`); err != nil {
		t.Fatal(err)
	}
	if ended := wait(t, rec.ended, "ended its run"); ended != first {
		t.Fatalf("after the lock connection was cut: got store %d's run ended, want store %d's", ended, first)
	}
	// Until the cut leader notices (its next check, within leadEvery),
	// the other may already lead: Lead documents that moment. From here
	// on the two must never overlap.
	rec.mu.Lock()
	rec.overlap = false
	rec.mu.Unlock()
	leader := wait(t, rec.started, "took the lead again")

	// The leader stops: the other one takes over.
	stops[leader]()
	if ended := wait(t, rec.ended, "ended its run"); ended != leader {
		t.Fatalf("after store %d stopped: got store %d's run ended", leader, ended)
	}
	if next := wait(t, rec.started, "took over"); next != 1-leader {
		t.Errorf("after store %d stopped: got store %d leading, want store %d", leader, next, 1-leader)
	}
	rec.mu.Lock()
	defer rec.mu.Unlock()
	if rec.overlap {
		t.Error("two stores ran the task at once")
	}
}
