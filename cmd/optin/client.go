package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"time"

	"optin/internal/app"
	"optin/internal/bolt"
	"optin/internal/config"
)

// socketClient talks to the admin socket API: a running service's
// socket, or its handler served in-process (withAdmin).
type socketClient struct {
	http *http.Client
	// running is true for a running service's socket, false for the
	// handler served in-process.
	running bool
}

// dialSocket returns a client for the admin socket of the service using
// cfg's data directory, or nil when no service answers there.
func dialSocket(cfg config.Config) *socketClient {
	path := app.SocketPath(cfg.DataDir)
	conn, err := net.DialTimeout("unix", path, time.Second)
	if err != nil {
		return nil
	}
	conn.Close()
	dial := func(ctx context.Context, _, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "unix", path)
	}
	return &socketClient{http: &http.Client{Transport: &http.Transport{DialContext: dial}}, running: true}
}

// do sends a request to the socket API and decodes a JSON answer into out
// (when non-nil; a *[]byte takes the answer as it is). Error answers become errors with the service's message.
func (c *socketClient) do(ctx context.Context, method, path, contentType string, body io.Reader, out any) error {
	req, err := http.NewRequestWithContext(ctx, method, "http://optin"+path, body)
	if err != nil {
		return err
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	res, err := c.http.Do(req)
	if err != nil {
		return fmt.Errorf("admin socket: %w", err)
	}
	defer res.Body.Close()
	if res.StatusCode >= 300 {
		var e struct {
			Error struct{ Code, Message string }
		}
		if json.NewDecoder(res.Body).Decode(&e) == nil && e.Error.Message != "" {
			return errors.New(e.Error.Message)
		}
		return fmt.Errorf("admin socket: %s", res.Status)
	}
	switch out := out.(type) {
	case nil:
		return nil
	case *[]byte: // a text answer
		*out, err = io.ReadAll(res.Body)
		return err
	}
	return json.NewDecoder(res.Body).Decode(out)
}

// jsonBody encodes v for a request body.
func jsonBody(v any) io.Reader {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err) // plain structs always encode
	}
	return strings.NewReader(string(b))
}

// Whether a command opens the database file to write or only to read.
const (
	readWrite = false
	readOnly  = true
)

// withAdmin runs fn against the admin socket API: the running service's
// socket when it answers, else the same handler served in-process over
// the database file opened directly (with readOnly, opened only to read
// and never created). Either way a command takes one code path.
func withAdmin(cfg config.Config, readOnly bool, fn func(*socketClient) error) error {
	if c := dialSocket(cfg); c != nil {
		return fn(c)
	}
	a, err := app.OpenAdmin(cfg, readOnly)
	if errors.Is(err, bolt.ErrLocked) {
		return fmt.Errorf("%w; its admin socket %s does not answer", err, app.SocketPath(cfg.DataDir))
	}
	if err != nil {
		return err
	}
	defer a.Close()
	return fn(&socketClient{http: &http.Client{Transport: handlerTransport{a.Handler}}})
}

// handlerTransport answers requests by running a handler in-process.
type handlerTransport struct{ h http.Handler }

// RoundTrip serves req with the handler and returns its recorded answer.
func (t handlerTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	rec := httptest.NewRecorder()
	t.h.ServeHTTP(rec, req)
	return rec.Result(), nil
}
