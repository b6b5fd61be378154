package main

import (
	"bytes"
	"context"
	"encoding/json"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"optin/internal/app"
	"optin/internal/config"
)

const testKey = "cli-test-admin-key-0123456789abcdefghijkl"

// writeConfig writes a config file for a service in a temp data dir.
func writeConfig(t *testing.T) (string, config.Config) {
	t.Helper()
	dir := t.TempDir()
	path := filepath.Join(dir, "optin.yaml")
	if err := os.WriteFile(path, []byte("data_dir: "+filepath.Join(dir, "data")+"\n"+storeYAML(t)), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	return path, cfg
}

// startApp runs the service on a loopback port until the test ends or
// stop is called; it returns the base URL.
func startApp(t *testing.T, cfg config.Config) (string, func()) {
	t.Helper()
	a, err := app.Open(app.Options{Config: cfg, BootstrapKey: testKey})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Serve(ctx, ln) }()
	stopped := false
	stop := func() {
		if !stopped {
			stopped = true
			cancel()
			if err := <-done; err != nil {
				t.Errorf("Serve: %v", err)
			}
		}
	}
	t.Cleanup(stop)
	// Wait for the admin socket; it must answer once it exists.
	for deadline := time.Now().Add(patience); ; time.Sleep(10 * time.Millisecond) {
		if _, err := os.Stat(app.SocketPath(cfg.DataDir)); err == nil {
			if dialSocket(cfg) == nil {
				t.Fatal("admin socket exists but does not answer")
			}
			break
		} else if time.Now().After(deadline) {
			t.Fatal("admin socket did not appear")
		}
	}
	return "http://" + ln.Addr().String(), stop
}

// patience is how long a test waits for the service to come up before
// it gives up: a safety net against a hung start, long because under
// -race on a loaded machine a start can take many seconds.
const patience = 2 * time.Minute

func runCLI(t *testing.T, args ...string) (string, error) {
	t.Helper()
	var out, errOut bytes.Buffer
	err := run(context.Background(), args, &out, &errOut)
	return out.String(), err
}

// TestCLIWhileServing: apikey create, list, revoke, verify and import
// work against the running service through its admin socket, which has
// mode 0600 and is gone after shutdown; then they work on the file.
func TestCLIWhileServing(t *testing.T) {
	path, cfg := writeConfig(t)
	base, stop := startApp(t, cfg)
	sock := app.SocketPath(cfg.DataDir)
	if st, err := os.Stat(sock); err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("socket mode: %v %v, want 0600", st.Mode(), err)
	}

	out, err := runCLI(t, "apikey", "create", "--name", "ci", "--role", "viewer", "--config", path)
	if err != nil {
		t.Fatalf("apikey create while serving: %v", err)
	}
	key := strings.TrimSpace(out)
	req, _ := http.NewRequest("GET", base+"/api/v1/topics", nil)
	req.Header.Set("Authorization", "Bearer "+key)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusOK {
		t.Errorf("new key: got %d, want 200", res.StatusCode)
	}

	csvPath := filepath.Join(t.TempDir(), "people.csv")
	csv := "email,topics,basis,consented_at,source\nc1@example.com,news,consent,2024-01-01,shop\nbad,news,consent,,\n"
	if err := os.WriteFile(csvPath, []byte(csv), 0o600); err != nil {
		t.Fatal(err)
	}
	out, err = runCLI(t, "import", "--config", path, csvPath)
	if err != nil {
		t.Fatalf("import while serving: %v", err)
	}
	var rep struct {
		Imported     int `json:"imported"`
		InvalidCount int `json:"invalid_count"`
	}
	if err := json.Unmarshal([]byte(out), &rep); err != nil || rep.Imported != 1 || rep.InvalidCount != 1 {
		t.Errorf("import report: %+v %v\n%s", rep, err, out)
	}
	if out, err := runCLI(t, "verify", "--config", path); err != nil || !strings.Contains(out, "ledger ok: 1 events") {
		t.Errorf("verify while serving: %q %v", out, err)
	}
	out, err = runCLI(t, "apikey", "list", "--config", path)
	if err != nil || !strings.Contains(out, "ci") {
		t.Fatalf("apikey list: %q %v", out, err)
	}
	var id string
	for _, line := range strings.Split(out, "\n") {
		if f := strings.Fields(line); len(f) > 2 && f[2] == "ci" {
			id = f[0]
		}
	}
	if _, err := runCLI(t, "apikey", "revoke", "--id", id, "--config", path); err != nil {
		t.Fatalf("apikey revoke: %v", err)
	}
	res, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusUnauthorized {
		t.Errorf("revoked key: got %d, want 401", res.StatusCode)
	}

	stop()
	if _, err := os.Stat(sock); !os.IsNotExist(err) {
		t.Errorf("socket left after shutdown: %v", err)
	}
	if _, err := runCLI(t, "apikey", "create", "--name", "offline", "--role", "admin", "--config", path); err != nil {
		t.Errorf("apikey create on the file: %v", err)
	}
	if out, err := runCLI(t, "verify", "--config", path); err != nil || !strings.Contains(out, "ledger ok") {
		t.Errorf("verify on the file: %q %v", out, err)
	}
}

// TestUsageListsTheREADMECommands: each command line of the README's
// "Command line" block is in the usage text as written, flags included
// (the usage lacked --no-notice, --interval and --consistency).
func TestUsageListsTheREADMECommands(t *testing.T) {
	b, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	_, block, ok := strings.Cut(string(b), "## Command line\n\n```\n")
	if !ok {
		t.Fatal("README has no Command line block")
	}
	block, _, _ = strings.Cut(block, "```")
	lines := strings.Split(strings.TrimSpace(block), "\n")
	if len(lines) < 10 {
		t.Fatalf("README's Command line block has %d lines", len(lines))
	}
	for _, line := range lines {
		if !strings.Contains(usage, strings.TrimSpace(line)) {
			t.Errorf("usage lacks the README's %q", line)
		}
	}
}
