package bench

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
)

// TestLoadRun drives a real HTTP server on loopback: every request the
// load counts arrived once, with its headers and its own body, over
// reused connections, and also when the server closes each connection or
// answers with an unexpected status.
func TestLoadRun(t *testing.T) {
	for _, tt := range []struct {
		name       string
		closeEach  bool
		status     int
		wantErrors bool
	}{
		{name: "keep-alive", status: http.StatusAccepted},
		{name: "server closes each connection", closeEach: true, status: http.StatusAccepted},
		{name: "unexpected status", status: http.StatusTooManyRequests, wantErrors: true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var mu sync.Mutex
			bodies := map[string]int{}
			conns := 0 // counted as the server accepts them: a closed connection's port may come back
			srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				b, _ := io.ReadAll(r.Body)
				if r.Method != http.MethodPost || r.URL.Path != "/f/news" || r.Header.Get("Content-Type") != "application/json" {
					t.Errorf("got %s %s with Content-Type %q", r.Method, r.URL.Path, r.Header.Get("Content-Type"))
				}
				mu.Lock()
				bodies[string(b)]++
				mu.Unlock()
				if tt.closeEach {
					w.Header().Set("Connection", "close")
				}
				w.WriteHeader(tt.status)
				fmt.Fprint(w, `{"status":"ok"}`)
			}))
			srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
				if s == http.StateNew {
					mu.Lock()
					conns++
					mu.Unlock()
				}
			}
			srv.Start()
			defer srv.Close()

			l := Load{URLs: []string{srv.URL + "/f/news"}, Clients: 4, For: 300 * time.Millisecond,
				Header: http.Header{"Content-Type": {"application/json"}},
				Body:   func(w, i int) []byte { return fmt.Appendf(nil, `{"n":"%d-%d"}`, w, i) },
				OK:     func(s int) bool { return s == http.StatusAccepted }}
			res := l.Run(context.Background())

			mu.Lock()
			defer mu.Unlock()
			if res.Requests == 0 || res.Requests != len(bodies) {
				t.Fatalf("load counted %d requests, server saw %d distinct bodies", res.Requests, len(bodies))
			}
			for b, n := range bodies {
				if n != 1 {
					t.Errorf("body %s arrived %d times", b, n)
				}
			}
			failed := 0
			for _, n := range res.Errors {
				failed += n
			}
			if tt.wantErrors {
				if failed != res.Requests || len(res.Latencies) != 0 {
					t.Errorf("errors %v for %d requests, %d latencies: want every request an error", res.Errors, res.Requests, len(res.Latencies))
				}
				return
			}
			if failed != 0 || len(res.Latencies) != res.Requests {
				t.Errorf("errors %v, %d latencies for %d requests", res.Errors, len(res.Latencies), res.Requests)
			}
			if !tt.closeEach && conns > l.Clients {
				t.Errorf("%d connections for %d clients: connections are not reused", conns, l.Clients)
			}
			if tt.closeEach && conns != res.Requests {
				t.Errorf("%d connections for %d requests, each closed by the server", conns, res.Requests)
			}
		})
	}
}

// TestHelp: optin-bench's help and every mode's --help print a usage and
// succeed.
func TestHelp(t *testing.T) {
	for _, args := range [][]string{{"help"}, {"--help"}, {"signup", "--help"}, {"ceiling", "-h"}, {"sink", "--help"}} {
		var out strings.Builder
		if err := Run(context.Background(), args, &out); err != nil {
			t.Errorf("%v: got %v, want nil", args, err)
		}
		if !strings.Contains(strings.ToLower(out.String()), "usage") {
			t.Errorf("%v: no usage in %q", args, out.String())
		}
	}
}
