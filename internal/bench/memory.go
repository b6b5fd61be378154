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

// clickLine is a line of /metrics counting confirmation clicks.
var clickLine = regexp.MustCompile(`^optin_confirmation_clicks_total\{([^}]*)\} (\S+)$`)

// confirmationsRecorded returns how many confirm clicks the optin
// instances at bases have recorded as consent, by their
// optin_confirmation_clicks_total (outcome "recorded", every class).
func confirmationsRecorded(ctx context.Context, bases []string) (int, error) {
	total := 0
	for _, base := range bases {
		req, err := http.NewRequestWithContext(ctx, "GET", strings.TrimSuffix(base, "/")+"/metrics", nil)
		if err != nil {
			return 0, err
		}
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			return 0, err
		}
		s := bufio.NewScanner(res.Body)
		for s.Scan() {
			m := clickLine.FindStringSubmatch(s.Text())
			if m == nil || !strings.Contains(m[1], `kind="confirm"`) || !strings.Contains(m[1], `outcome="recorded"`) {
				continue
			}
			v, err := strconv.ParseFloat(m[2], 64)
			if err != nil {
				res.Body.Close()
				return 0, fmt.Errorf("optin_confirmation_clicks_total: %w", err)
			}
			total += int(v)
		}
		res.Body.Close()
		if err := s.Err(); err != nil {
			return 0, err
		}
	}
	return total, nil
}
