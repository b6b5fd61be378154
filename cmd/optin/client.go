package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"time"

	"optin/internal/app"
	"optin/internal/config"
	"optin/internal/consent"
)

// socketClient talks to a running service over its admin socket.
type socketClient struct{ http *http.Client }

// dialSocket returns a client for the admin socket of the service using
// cfg's data directory, or nil when no service answers there (then the
// command opens the database file itself).
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
	return &socketClient{http: &http.Client{Transport: &http.Transport{DialContext: dial}}}
}

// do sends a request to the socket API and decodes a JSON answer into out
// (when non-nil). Error answers become errors with the service's message.
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
	if out == nil {
		return nil
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

// withStore runs fn on the service through its admin socket when it runs,
// else on the database file opened directly (with readOnly, only opened
// to read, and never created).
func withStore(cfg config.Config, readOnly bool, viaSocket func(*socketClient) error, direct func(consent.Store) error) error {
	if c := dialSocket(cfg); c != nil {
		return viaSocket(c)
	}
	db, err := openDB(cfg, readOnly)
	if err != nil {
		return err
	}
	defer db.Close()
	return direct(db)
}
