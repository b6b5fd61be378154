// Package memstat reports a process's memory the way it is really spent:
// the Go heap, the anonymous memory the kernel holds for the process
// (heap, stacks, runtime), and the pages of mapped files, which for optin
// are the bbolt database file. ps and top show the sum as RSS; the file's
// pages in it are the kernel's page cache, shared, clean, and dropped
// under memory pressure without any swapping, so a large RSS after a
// walk over the database is not memory optin holds.
package memstat

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"runtime/metrics"
	"strconv"
	"strings"
)

// Usage is a process's memory in bytes.
type Usage struct {
	// GoHeap is the Go heap's live and not yet swept objects; GoRuntime
	// all the memory the Go runtime has mapped (heap, stacks, its own).
	GoHeap, GoRuntime uint64
	// RSS is the resident set as ps shows it: RSSAnon (anonymous memory)
	// plus RSSFile (pages of mapped files: the database) plus RSSShmem.
	// They are zero where /proc/self/status is not there (not Linux).
	RSS, RSSAnon, RSSFile, RSSShmem uint64
}

// Self returns the calling process's usage. The Go figures always come;
// the RSS figures need Linux's /proc, and err says when they are missing.
func Self() (Usage, error) {
	samples := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}, {Name: "/memory/classes/total:bytes"}}
	metrics.Read(samples)
	u := Usage{GoHeap: samples[0].Value.Uint64(), GoRuntime: samples[1].Value.Uint64()}
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return u, fmt.Errorf("memstat: %w", err)
	}
	defer f.Close()
	err = u.readStatus(f)
	return u, err
}

// readStatus reads the VmRSS, RssAnon, RssFile and RssShmem lines of a
// /proc/PID/status file (proc(5); values in kB).
func (u *Usage) readStatus(r io.Reader) error {
	fields := map[string]*uint64{"VmRSS": &u.RSS, "RssAnon": &u.RSSAnon, "RssFile": &u.RSSFile, "RssShmem": &u.RSSShmem}
	s := bufio.NewScanner(r)
	found := 0
	for s.Scan() {
		name, value, ok := strings.Cut(s.Text(), ":")
		dst := fields[name]
		if !ok || dst == nil {
			continue
		}
		kb, err := strconv.ParseUint(strings.TrimSuffix(strings.TrimSpace(value), " kB"), 10, 64)
		if err != nil {
			return fmt.Errorf("memstat: %s: %w", name, err)
		}
		*dst = kb * 1024
		found++
	}
	if err := s.Err(); err != nil {
		return fmt.Errorf("memstat: %w", err)
	}
	if found < len(fields) {
		return fmt.Errorf("memstat: /proc/self/status lacks the RSS lines (Linux 4.5 or later has them)")
	}
	return nil
}

// MiB formats n bytes in mebibytes with one decimal.
func MiB(n uint64) string { return strconv.FormatFloat(float64(n)/(1<<20), 'f', 1, 64) + " MiB" }

// String reports u in one line.
func (u Usage) String() string {
	return fmt.Sprintf("Go heap %s (runtime %s); RSS %s = anonymous %s + mapped files (the database) %s + shared %s",
		MiB(u.GoHeap), MiB(u.GoRuntime), MiB(u.RSS), MiB(u.RSSAnon), MiB(u.RSSFile), MiB(u.RSSShmem))
}
