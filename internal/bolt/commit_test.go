package bolt

import (
	"bytes"
	"errors"
	"fmt"
	"path/filepath"
	"sync"
	"testing"

	"go.etcd.io/bbolt"
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
			errs[i] = db.update(func(tx *bbolt.Tx) error {
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
	if err := db.update(func(*bbolt.Tx) error { return nil }); !errors.Is(err, ErrClosed) {
		t.Errorf("update after Close: got %v, want ErrClosed", err)
	}
}
