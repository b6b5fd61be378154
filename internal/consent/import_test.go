package consent

import (
	"context"
	"errors"
	"io"
	"sync/atomic"
	"testing"
	"time"
)

// rowList yields rows 1..n; every seventh is refused, and with failAt > 0
// reading line failAt fails. It counts reads made after closed is set.
type rowList struct {
	n, failAt, line int
	closed          atomic.Bool
	lateReads       atomic.Int32
}

func (r *rowList) Next(time.Time) (ImportRow, string, error) {
	if r.closed.Load() {
		r.lateReads.Add(1)
	}
	if r.line == r.n {
		return ImportRow{}, "", io.EOF
	}
	r.line++
	if r.line == r.failAt {
		return ImportRow{}, "", errors.New("disk on fire")
	}
	if r.line%7 == 0 {
		return ImportRow{Line: r.line}, "refused", nil
	}
	return ImportRow{Line: r.line}, "", nil
}

// TestImportInChunks: every valid row is stored once, in order, in chunks
// of at most size rows; refused rows are reported in order; a read error
// returns the report of the chunks stored before it and stores nothing
// of the chunk it cut; the rows are not read after ImportInChunks
// returns.
func TestImportInChunks(t *testing.T) {
	for _, tt := range []struct {
		name            string
		n, failAt, size int
		wantStored      int
		wantErr         bool
	}{
		{"whole file", 1000, 0, 64, 1000 - 1000/7, false},
		{"read error", 1000, 500, 64, 448 - 448/7, true}, // chunks of 64 read lines: 7 of them before line 500
		{"empty", 0, 0, 64, 0, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			ir := &rowList{n: tt.n, failAt: tt.failAt}
			var stored []int
			rep, err := ImportInChunks(context.Background(), ir, "b1", tt.size, time.Now, func(chunk []ImportRow) (ImportReport, error) {
				if len(chunk) > tt.size {
					t.Errorf("a chunk of %d rows, want at most %d", len(chunk), tt.size)
				}
				for _, r := range chunk {
					stored = append(stored, r.Line)
				}
				return ImportReport{Imported: len(chunk)}, nil
			})
			ir.closed.Store(true)
			if (err != nil) != tt.wantErr {
				t.Fatalf("err %v, want error %v", err, tt.wantErr)
			}
			if len(stored) != tt.wantStored || rep.Imported != tt.wantStored {
				t.Errorf("stored %d rows, report %d, want %d", len(stored), rep.Imported, tt.wantStored)
			}
			for i := 1; i < len(stored); i++ {
				if stored[i] <= stored[i-1] || stored[i]%7 == 0 {
					t.Fatalf("stored lines out of order or refused: %v", stored[max(0, i-2):i+1])
				}
			}
			for i, p := range rep.Invalid {
				if p.Line != 7*(i+1) || p.Reason != "refused" {
					t.Fatalf("invalid[%d] = %+v, want line %d", i, p, 7*(i+1))
				}
			}
			if rep.Batch != "b1" || rep.InvalidCount != len(rep.Invalid) {
				t.Errorf("report %+v", rep)
			}
			if n := ir.lateReads.Load(); n != 0 {
				t.Errorf("%d rows read after ImportInChunks returned", n)
			}
		})
	}
}

// TestImportInChunksStoreFails: a failing store stops the import with
// its error, and reading stops too.
func TestImportInChunksStoreFails(t *testing.T) {
	ir := &rowList{n: 100_000}
	boom := errors.New("store failed")
	calls := 0
	_, err := ImportInChunks(context.Background(), ir, "b", 100, time.Now, func([]ImportRow) (ImportReport, error) {
		calls++
		return ImportReport{}, boom
	})
	ir.closed.Store(true)
	if !errors.Is(err, boom) || calls != 1 {
		t.Errorf("err %v after %d calls, want %v after 1", err, calls, boom)
	}
	if ir.line >= 1000 || ir.lateReads.Load() != 0 {
		t.Errorf("%d lines read, %d after return: reading went on", ir.line, ir.lateReads.Load())
	}
}
