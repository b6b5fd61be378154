package app

import (
	"context"
	"errors"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"time"
)

// SocketName is the admin socket's file name in data_dir.
const SocketName = "admin.sock"

// SocketPath returns the admin socket's path for data directory dir.
func SocketPath(dir string) string { return filepath.Join(dir, SocketName) }

// adminSocket is the unix socket the CLI uses to act on the running
// service; nil when it could not be opened.
type adminSocket struct {
	srv  *http.Server
	path string
	done chan struct{}
}

// serveSocket opens data_dir/admin.sock, mode 0600, and serves the admin
// socket API on it. A socket file left by a crash is replaced: the bbolt
// lock this process holds proves no other optin uses the directory. If
// the socket cannot be opened the service runs without it and says so.
func (a *App) serveSocket() *adminSocket {
	path := SocketPath(a.cfg.DataDir)
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		a.log.Warn("admin socket disabled", "path", path, "err", err)
		return nil
	}
	ln, err := net.Listen("unix", path)
	if err == nil {
		err = os.Chmod(path, 0o600)
		if err != nil {
			ln.Close()
		}
	}
	if err != nil {
		a.log.Warn("admin socket disabled", "path", path, "err", err)
		return nil
	}
	s := &adminSocket{path: path, done: make(chan struct{}), srv: &http.Server{Handler: a.Web.SocketHandler(),
		ReadHeaderTimeout: 5 * time.Second, IdleTimeout: time.Minute}}
	go func() {
		defer close(s.done)
		if err := s.srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			a.log.Error("admin socket", "err", err)
		}
	}()
	a.log.Info("admin socket listening", "path", path)
	return s
}

// shutdown stops the socket server, letting requests in flight finish,
// and removes the socket file.
func (s *adminSocket) shutdown(ctx context.Context) {
	if s == nil {
		return
	}
	_ = s.srv.Shutdown(ctx)
	<-s.done
	_ = os.Remove(s.path)
}
