package web

import (
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"testing"
)

// TestMetricsLabelsBounded: whatever method and path clients send, the
// request metrics' labels come from fixed sets: the route patterns
// (never the raw path), "unmatched", a list of methods and "other".
func TestMetricsLabelsBounded(t *testing.T) {
	s, _ := newPublicServer(t, nil, func(c *Config) { c.Metrics = NewMetrics(c.Store) })
	requests := []struct{ method, path string }{
		{"GET", "/f/newsletter"},
		{"FOO1", "/f/newsletter"},
		{"FOO2", "/f/newsletter"},
		{"PROPFIND", "/"},
		{"BREW", "/no/such/path"},
		{"GET", "/no/such/path/ann@example.com"},
		{"GET", "/confirm/some.token.value"},
		{"PATCH", "/confirm/some.token.value"},
	}
	for _, r := range requests {
		serve(s, r.method, r.path, "", "")
	}
	body := serve(s, "GET", "/metrics", "", "").Body.String()

	methods := map[string]bool{"GET": true, "HEAD": true, "POST": true, "PUT": true, "PATCH": true, "DELETE": true,
		"OPTIONS": true, "other": true}
	routes := []string{"unmatched"}
	for _, r := range s.engine.Routes() {
		routes = append(routes, r.Path)
	}
	series := regexp.MustCompile(`optin_http_request_duration_seconds_count\{code="[^"]*",method="([^"]*)",route="([^"]*)"\}`).
		FindAllStringSubmatch(body, -1)
	if len(series) == 0 {
		t.Fatalf("no request series in /metrics:\n%s", body)
	}
	seen := map[string]bool{}
	for _, m := range series {
		seen[m[1]] = true
		if !methods[m[1]] {
			t.Errorf("method label %q is not one of the fixed set", m[1])
		}
		if !slices.Contains(routes, m[2]) {
			t.Errorf("route label %q is not a route pattern", m[2])
		}
	}
	if !seen["other"] {
		t.Error(`made-up methods are not counted as "other"`)
	}
}

// TestMetricsMemory: /metrics reports the Go heap and, on Linux, the
// anonymous memory apart from the mapped database file's pages.
func TestMetricsMemory(t *testing.T) {
	s, _ := newPublicServer(t, nil, func(c *Config) { c.Metrics = NewMetrics(c.Store) })
	body := serve(s, "GET", "/metrics", "", "").Body.String()
	kinds := []string{"go_heap", "go_runtime"}
	if runtime.GOOS == "linux" {
		kinds = append(kinds, "rss_anon", "rss_file", "rss_shmem")
	}
	for _, kind := range kinds {
		m := regexp.MustCompile(`(?m)^optin_memory_bytes\{kind="` + kind + `"\} ([0-9.e+]+)$`).FindStringSubmatch(body)
		if m == nil {
			t.Errorf("no optin_memory_bytes{kind=%q} in /metrics", kind)
			continue
		}
		if n, err := strconv.ParseFloat(m[1], 64); err != nil || n <= 0 && kind != "rss_shmem" {
			t.Errorf("optin_memory_bytes{kind=%q}: got %s, want a positive number", kind, m[1])
		}
	}
}

// TestCodeClass: the code label is the status class from a fixed set,
// whatever status a handler wrote.
func TestCodeClass(t *testing.T) {
	for status, want := range map[int]string{0: "0xx", 99: "0xx", 100: "1xx", 202: "2xx", 303: "3xx", 429: "4xx", 599: "5xx",
		600: "0xx", 1000: "0xx"} {
		if got := codeClass(status); got != want {
			t.Errorf("codeClass(%d) = %q, want %q", status, got, want)
		}
	}
}
