package bench

import (
	"bufio"
	"context"
	"fmt"
	"net/http"
	"regexp"
	"strconv"
	"strings"

	"optin/internal/memstat"
)

// memoryLine matches one optin_memory_bytes sample of /metrics.
var memoryLine = regexp.MustCompile(`^optin_memory_bytes\{kind="([a-z_]+)"\} ([0-9.e+]+)$`)

// ServiceMemory reads the memory of the optin at base from its /metrics:
// the Go heap, and the resident memory split into anonymous memory and
// the mapped database file's pages (see package memstat).
func ServiceMemory(ctx context.Context, base string) (memstat.Usage, error) {
	var u memstat.Usage
	req, err := http.NewRequestWithContext(ctx, "GET", strings.TrimSuffix(base, "/")+"/metrics", nil)
	if err != nil {
		return u, err
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		return u, err
	}
	defer res.Body.Close()
	if res.StatusCode != http.StatusOK {
		return u, fmt.Errorf("GET /metrics: %s", res.Status)
	}
	fields := map[string]*uint64{"go_heap": &u.GoHeap, "go_runtime": &u.GoRuntime, "rss_anon": &u.RSSAnon,
		"rss_file": &u.RSSFile, "rss_shmem": &u.RSSShmem}
	found := 0
	s := bufio.NewScanner(res.Body)
	for s.Scan() {
		m := memoryLine.FindStringSubmatch(s.Text())
		if m == nil || fields[m[1]] == nil {
			continue
		}
		v, err := strconv.ParseFloat(m[2], 64)
		if err != nil {
			return u, fmt.Errorf("optin_memory_bytes{kind=%q}: %w", m[1], err)
		}
		*fields[m[1]] = uint64(v)
		found++
	}
	if err := s.Err(); err != nil {
		return u, err
	}
	if found == 0 {
		return u, fmt.Errorf("no optin_memory_bytes in /metrics")
	}
	u.RSS = u.RSSAnon + u.RSSFile + u.RSSShmem
	return u, nil
}
