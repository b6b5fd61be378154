package bolt

import (
	"encoding/binary"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"time"

	"go.etcd.io/bbolt"
)

// CommitCeiling measures fsynced bbolt commits per second with plain
// Update, one 128-byte record per commit, from writers goroutines, in a
// scratch file in dir: the ceiling optin's group commit is read against
// (optin-bench ceiling).
func CommitCeiling(dir string, writers int, d time.Duration) (float64, error) {
	path := filepath.Join(dir, fmt.Sprintf("optin-bench-%d.db", time.Now().UnixNano()))
	db, err := bbolt.Open(path, 0o600, &bbolt.Options{Timeout: time.Second})
	if err != nil {
		return 0, err
	}
	defer os.Remove(path)
	defer db.Close()
	if err := db.Update(func(tx *bbolt.Tx) error { _, err := tx.CreateBucketIfNotExists([]byte("b")); return err }); err != nil {
		return 0, err
	}
	val := make([]byte, 128)
	var mu sync.Mutex
	total := 0
	var wg sync.WaitGroup
	start := time.Now()
	deadline := start.Add(d)
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			n := 0
			key := make([]byte, 16)
			for time.Now().Before(deadline) {
				binary.BigEndian.PutUint64(key, uint64(w))
				binary.BigEndian.PutUint64(key[8:], uint64(n))
				if err := db.Update(func(tx *bbolt.Tx) error { return tx.Bucket([]byte("b")).Put(key, val) }); err != nil {
					return
				}
				n++
			}
			mu.Lock()
			total += n
			mu.Unlock()
		}()
	}
	wg.Wait()
	return float64(total) / time.Since(start).Seconds(), nil
}
