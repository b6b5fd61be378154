package web

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"
)

func TestSameOrigin(t *testing.T) {
	tests := []struct {
		a, b string
		want bool
	}{
		{"https://shop.example", "https://shop.example", true},
		{"http://localhost:8080", "http://127.0.0.1:8080", true},
		{"http://127.0.0.1:8080", "http://localhost:8080", true},
		{"http://[::1]:8080", "http://127.0.0.1:8080", true},
		{"http://127.0.0.2:8080", "http://LOCALHOST:8080", true},
		{"http://localhost", "http://127.0.0.1:80", true},
		{"http://localhost:8081", "http://127.0.0.1:8080", false}, // another port is another server
		{"https://localhost:8080", "http://127.0.0.1:8080", false},
		{"http://localhost.evil.example:8080", "http://127.0.0.1:8080", false},
		{"http://10.0.0.1:8080", "http://127.0.0.1:8080", false},
		{"https://shop.example", "https://127.0.0.1", false},
		{"http://localhost:8080/x", "http://127.0.0.1:8080", false},
		{"null", "http://127.0.0.1:8080", false},
	}
	for _, tt := range tests {
		if got := sameOrigin(tt.a, tt.b); got != tt.want {
			t.Errorf("sameOrigin(%q, %q) = %v, want %v", tt.a, tt.b, got, tt.want)
		}
	}
}

// logLines decodes the JSON log lines in b.
func logLines(t *testing.T, b *bytes.Buffer) []map[string]any {
	t.Helper()
	var out []map[string]any
	for _, line := range strings.Split(strings.TrimSpace(b.String()), "\n") {
		if line == "" {
			continue
		}
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatalf("log line %q: %v", line, err)
		}
		out = append(out, m)
	}
	return out
}

// TestOriginLogOnePerMinute: refused origins are logged at most once per
// form per minute; the next line counts those left out.
func TestOriginLogOnePerMinute(t *testing.T) {
	var buf bytes.Buffer
	l := newOriginLog(slog.New(slog.NewJSONHandler(&buf, nil)))
	t0 := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	allowed := []string{"https://optin.example"}
	l.refused(t0, "a", "https://evil.example", allowed)                      // logged
	l.refused(t0.Add(time.Second), "a", "https://evil.example", allowed)     // left out
	l.refused(t0.Add(59*time.Second), "a", "https://other.example", allowed) // left out
	l.refused(t0.Add(2*time.Second), "b", "https://evil.example", allowed)   // another form: logged
	l.refused(t0.Add(time.Minute), "a", "https://third.example", allowed)    // logged, 2 left out
	lines := logLines(t, &buf)
	want := []struct {
		form, origin string
		skipped      float64
	}{{"a", "https://evil.example", 0}, {"b", "https://evil.example", 0}, {"a", "https://third.example", 2}}
	if len(lines) != len(want) {
		t.Fatalf("got %d log lines, want %d:\n%s", len(lines), len(want), buf.String())
	}
	for i, w := range want {
		if lines[i]["form"] != w.form || lines[i]["origin"] != w.origin || lines[i]["refused_since_last_line"] != w.skipped {
			t.Errorf("line %d: got %v, want form %s origin %s refused_since_last_line %v", i, lines[i], w.form, w.origin, w.skipped)
		}
	}
}

// TestLoopbackOriginsAlike: with a loopback base_url, a form opened at
// localhost posts to 127.0.0.1 (and the reverse); other origins are still
// refused, and each refusal is logged with what was seen and allowed.
func TestLoopbackOriginsAlike(t *testing.T) {
	var buf bytes.Buffer
	s, _ := newPublicServer(t, nil, func(c *Config) {
		c.BaseURL = "http://127.0.0.1:8080"
		c.Log = slog.New(slog.NewJSONHandler(&buf, nil))
	})
	signup := func(origin string) int {
		return serve(s, "POST", "/f/newsletter", "application/x-www-form-urlencoded", "email=o@example.com&topics=news",
			"Origin", origin, "Accept", "application/json").Code
	}
	for origin, want := range map[string]int{
		"http://127.0.0.1:8080": http.StatusAccepted,
		"http://localhost:8080": http.StatusAccepted,
		"http://[::1]:8080":     http.StatusAccepted,
		"http://localhost:3000": http.StatusForbidden,
		"https://evil.example":  http.StatusForbidden,
	} {
		if got := signup(origin); got != want {
			t.Errorf("signup from %s: got %d, want %d", origin, got, want)
		}
	}
	lines := logLines(t, &buf)
	if len(lines) != 1 {
		t.Fatalf("got %d log lines, want 1 (one per form per minute):\n%s", len(lines), buf.String())
	}
	l := lines[0]
	allowed, _ := l["allowed"].([]any)
	if l["msg"] != "origin refused" || l["form"] != "newsletter" || l["level"] != "WARN" ||
		(l["origin"] != "http://localhost:3000" && l["origin"] != "https://evil.example") ||
		len(allowed) != 2 || allowed[0] != "http://127.0.0.1:8080" || allowed[1] != "https://shop.example" {
		t.Errorf("log line: got %v", l)
	}
}
