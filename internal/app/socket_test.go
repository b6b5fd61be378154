package app

import (
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"optin/internal/config"
)

// waitSocket waits until the admin socket of dataDir exists, and fails
// if it does not take a connection the moment it exists.
func waitSocket(t *testing.T, dataDir string) {
	t.Helper()
	for deadline := time.Now().Add(patience); ; time.Sleep(time.Millisecond) {
		if _, err := os.Stat(SocketPath(dataDir)); err == nil {
			conn, err := net.Dial("unix", SocketPath(dataDir))
			if err != nil {
				t.Fatalf("admin socket exists but refuses: %v", err)
			}
			conn.Close()
			return
		} else if time.Now().After(deadline) {
			t.Fatalf("admin socket did not appear: %v", err)
		}
	}
}

// TestAdminSocketPrivateDir: the admin socket is created inside a
// directory only optin's user can enter, so nobody else can connect in
// the moment between its creation and its chmod, whatever the umask and
// the data directory's mode. A directory left with a looser mode is
// tightened before the socket is made.
func TestAdminSocketPrivateDir(t *testing.T) {
	for name, prepare := range map[string]func(t *testing.T, dataDir string){
		"fresh": func(*testing.T, string) {},
		"existing loose directory": func(t *testing.T, dataDir string) {
			dir := filepath.Dir(SocketPath(dataDir))
			if err := os.MkdirAll(dir, 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.Chmod(dir, 0o777); err != nil {
				t.Fatal(err)
			}
		},
	} {
		t.Run(name, func(t *testing.T) {
			dataDir := t.TempDir()
			if err := os.Chmod(dataDir, 0o755); err != nil {
				t.Fatal(err)
			}
			prepare(t, dataDir)
			startService(t, func(c *config.Config) { c.DataDir = dataDir })
			waitSocket(t, dataDir)
			dir := filepath.Dir(SocketPath(dataDir))
			st, err := os.Lstat(dir)
			if err != nil {
				t.Fatal(err)
			}
			if !st.IsDir() || st.Mode().Perm() != 0o700 {
				t.Errorf("socket directory %s: mode %v, want a directory with mode 0700", dir, st.Mode())
			}
		})
	}
}

// TestAdminSocketRefusesLinkedDir: a socket directory that is a symbolic
// link is not followed; the service runs without its socket.
func TestAdminSocketRefusesLinkedDir(t *testing.T) {
	dataDir, elsewhere := t.TempDir(), t.TempDir()
	if err := os.Symlink(elsewhere, filepath.Dir(SocketPath(dataDir))); err != nil {
		t.Fatal(err)
	}
	s := startService(t, func(c *config.Config) { c.DataDir = dataDir })
	if r := s.signupJSON("up@example.com", "news"); r.status != 202 {
		t.Errorf("signup without the socket: got %d %s, want 202", r.status, r.body)
	}
	s.shutdown() // serveSocket has run by now
	if entries, _ := os.ReadDir(elsewhere); len(entries) != 0 {
		t.Errorf("socket made through a link: %v", entries)
	}
}

// TestAdminSocketLongDataDir: a data_dir as long as admin.sock allows
// (a unix socket's path has at most 107 bytes) still gets its socket: the
// name it listens under before its rename is no longer.
func TestAdminSocketLongDataDir(t *testing.T) {
	dataDir := t.TempDir()
	if pad := 107 - len(SocketPath(dataDir)); pad > 1 {
		dataDir = filepath.Join(dataDir, strings.Repeat("d", pad-1))
	}
	if len(SocketPath(dataDir)) != 107 {
		t.Skipf("temporary directory too long for this test: %s", dataDir)
	}
	startService(t, func(c *config.Config) { c.DataDir = dataDir })
	waitSocket(t, dataDir)
}
