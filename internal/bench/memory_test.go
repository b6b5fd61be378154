package bench

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"testing"
)

// TestServiceMemory reads the memory kinds of a /metrics page and adds
// the resident ones up as ps would.
func TestServiceMemory(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/metrics" {
			http.NotFound(w, r)
			return
		}
		fmt.Fprint(w, "# HELP optin_memory_bytes Memory by kind.\n# TYPE optin_memory_bytes gauge\n"+
			"optin_memory_bytes{kind=\"go_heap\"} 3.5e+06\noptin_memory_bytes{kind=\"go_runtime\"} 1.2e+07\n"+
			"optin_memory_bytes{kind=\"rss_anon\"} 2.0971520e+07\noptin_memory_bytes{kind=\"rss_file\"} 8.388608e+08\n"+
			"optin_memory_bytes{kind=\"rss_shmem\"} 0\ngo_goroutines 12\n")
	}))
	defer srv.Close()
	u, err := ServiceMemory(t.Context(), srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	if u.GoHeap != 3_500_000 || u.RSSAnon != 20<<20 || u.RSSFile != 800<<20 || u.RSS != 820<<20 {
		t.Errorf("ServiceMemory: got %+v", u)
	}
	if _, err := ServiceMemory(t.Context(), srv.URL+"/nothing"); err == nil {
		t.Error("ServiceMemory without /metrics: got nil error, want one")
	}
}
