package app

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"time"
)

// SocketName is the admin socket's file name in data_dir/socket.
const SocketName = "admin.sock"

// socketTemp is the name the admin socket listens under before it is
// renamed to SocketName (serveSocket).
const socketTemp = "admin.new"

// socketDir is the directory in data_dir that holds the admin socket.
const socketDir = "socket"

// SocketPath returns the admin socket's path for data directory dir:
// dir/socket/admin.sock.
func SocketPath(dir string) string { return filepath.Join(dir, socketDir, SocketName) }

// privateDir makes dir a directory that only this user can enter (mode
// 0700): created so, or, when it exists, a real directory (a symbolic
// link is refused) set to 0700, which fails unless this user owns it. A
// socket made inside it can be reached by nobody else from the moment it
// exists, whatever the umask; a chmod after creation leaves a moment in
// which anyone the umask lets in can connect.
func privateDir(dir string) error {
	if err := os.Mkdir(dir, 0o700); err != nil && !errors.Is(err, fs.ErrExist) {
		return err
	}
	st, err := os.Lstat(dir)
	if err != nil {
		return err
	}
	if !st.IsDir() {
		return fmt.Errorf("%s is not a directory", dir)
	}
	return os.Chmod(dir, 0o700)
}

// adminSocket is the unix socket the CLI uses to act on the running
// service; nil when it could not be opened.
type adminSocket struct {
	srv  *http.Server
	path string
	done chan struct{}
}

// serveSocket opens data_dir/socket/admin.sock, mode 0600 in a directory
// of mode 0700, and serves the admin socket API on it. A socket file left
// by a crash is replaced: the bbolt lock this process holds proves no
// other optin uses the directory. The socket is bound and listening
// under a temporary name before it is renamed into place, so a command
// that finds admin.sock can connect to it (bound under its own name, it
// exists a moment before it listens, and a command that came then found
// the database locked and nobody answering). If the socket cannot be
// opened the service runs without it and says so.
func (a *App) serveSocket() *adminSocket {
	path := SocketPath(a.cfg.DataDir)
	// No longer than SocketName: a unix socket's path has at most 107
	// bytes, and a data_dir whose admin.sock fits must not lose it.
	tmp := filepath.Join(filepath.Dir(path), socketTemp)
	err := privateDir(filepath.Dir(path))
	for _, p := range []string{path, tmp} {
		if err == nil {
			if err = os.Remove(p); errors.Is(err, fs.ErrNotExist) {
				err = nil
			}
		}
	}
	if err != nil {
		a.log.Warn("admin socket disabled", "path", path, "err", err)
		return nil
	}
	ln, err := net.Listen("unix", tmp)
	if err == nil {
		if err = os.Chmod(tmp, 0o600); err == nil {
			err = os.Rename(tmp, path)
		}
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
