package web

import (
	"bufio"
	"fmt"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

// slowPost sends a POST to a real server on addr whose body comes in two
// parts with pause between them, and returns the response. With pause 0
// the rest never comes: the client stalls in the middle of its body.
func slowPost(t *testing.T, addr, path string, header []string, first, rest string, pause time.Duration) (*http.Response, error) {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	// A guard far above the deadlines under test: a server that waits
	// for the rest of the body makes the read fail instead of hanging.
	if err := conn.SetDeadline(time.Now().Add(10 * time.Second)); err != nil {
		t.Fatal(err)
	}
	req := fmt.Sprintf("POST %s HTTP/1.1\r\nHost: optin.example\r\nContent-Length: %d\r\n%s\r\n%s",
		path, len(first)+len(rest), strings.Join(header, "\r\n")+"\r\n", first)
	if _, err := conn.Write([]byte(req)); err != nil {
		t.Fatal(err)
	}
	if pause > 0 {
		time.Sleep(pause)
		if _, err := conn.Write([]byte(rest)); err != nil {
			t.Fatal(err)
		}
	}
	res, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err == nil {
		res.Body.Close()
	}
	return res, err
}

// TestPublicBodyTimeout: a public route gives a client BodyTimeout to
// send its body and then answers, instead of holding the connection for
// the server's ReadTimeout; an admin import, which may be a large upload,
// is not cut off by it.
func TestPublicBodyTimeout(t *testing.T) {
	const timeout = 200 * time.Millisecond
	s, _ := newPublicServer(t, nil, func(c *Config) { c.BodyTimeout = timeout })
	srv := s.HTTPServer()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })

	// The body never completes: the server answers once the deadline passed.
	res, err := slowPost(t, ln.Addr().String(), "/f/newsletter",
		[]string{"Content-Type: application/json", "Accept: application/json"}, `{"email":"slow@example.com",`, `"topics":["news"]}`, 0)
	if err != nil {
		t.Fatalf("slow signup body: no answer before the test's guard: %v", err)
	}
	if res.StatusCode != http.StatusBadRequest {
		t.Errorf("slow signup body: got %d, want 400", res.StatusCode)
	}

	// An import whose body pauses for longer than the public deadline.
	res, err = slowPost(t, ln.Addr().String(), "/api/v1/imports",
		[]string{"Content-Type: text/csv", "Authorization: Bearer " + strings.Repeat("k", 32)},
		"email,topics,basis\n", "imp@example.com,news,legitimate_interest\n", 2*timeout)
	if err != nil {
		t.Fatalf("slow import: %v", err)
	}
	if res.StatusCode != http.StatusOK {
		t.Errorf("slow import: got %d, want 200", res.StatusCode)
	}
}
