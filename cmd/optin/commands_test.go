package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"strings"
	"sync"
	"testing"
	"time"

	"optin/internal/app"
	"optin/internal/bolt/bolttest"
	"optin/internal/config"
	"optin/internal/postgres/pgtest"
)

// runCLIAll runs the CLI in-process and returns its stdout, stderr and
// error.
func runCLIAll(t *testing.T, args ...string) (string, string, error) {
	t.Helper()
	var out, errOut bytes.Buffer
	err := run(context.Background(), args, &out, &errOut)
	return out.String(), errOut.String(), err
}

// writeConfigYAML writes a config file with data_dir plus extra YAML
// lines, on the store the tests run on.
func writeConfigYAML(t *testing.T, dataDir, extra string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "optin.yaml")
	if err := os.WriteFile(path, []byte("data_dir: "+dataDir+"\n"+extra+storeYAML(t)), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// writeCSV writes an import file of n rows for topic news, each with
// evidence of consent.
func writeCSV(t *testing.T, n int) string {
	t.Helper()
	var b strings.Builder
	b.WriteString("email,topics,basis,consented_at,source\n")
	for i := range n {
		b.WriteString(string(rune('a'+i)) + "@example.com,news,consent,2024-01-01,shop\n")
	}
	path := filepath.Join(t.TempDir(), "people.csv")
	if err := os.WriteFile(path, []byte(b.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// importedDir returns the config of a data_dir into which n subscribers
// were imported, with the service stopped: n ledger events.
func importedDir(t *testing.T, n int) (string, config.Config) {
	t.Helper()
	path, cfg := writeConfig(t)
	if _, err := runCLI(t, "import", "--config", path, writeCSV(t, n)); err != nil {
		t.Fatalf("import: %v", err)
	}
	return path, cfg
}

// TestCLIVerifyCountsGoodEvents: with event 2 of 3 damaged in the file,
// verify names event 2 and counts the one good event before it.
func TestCLIVerifyCountsGoodEvents(t *testing.T) {
	boltOnly(t, "damages the database file")
	path, cfg := importedDir(t, 3)
	bolttest.TamperEvent(t, filepath.Join(cfg.DataDir, "optin.db"), 2, `"imported"`, `"confirmed"`)
	_, err := runCLI(t, "verify", "--config", path)
	if err == nil || !strings.Contains(err.Error(), "broken at event 2") || !strings.Contains(err.Error(), "1 good events") {
		t.Errorf("verify: got %v, want broken at event 2 after 1 good events", err)
	}
}

// TestCLICountersRebuild: --check agrees with a fresh database, fails
// naming a counter a hand edit dropped, and the rebuild restores it.
func TestCLICountersRebuild(t *testing.T) {
	path, cfg := importedDir(t, 3)
	out, err := runCLI(t, "counters", "rebuild", "--check", "--config", path)
	if err != nil || !strings.Contains(out, "counters ok") {
		t.Fatalf("counters rebuild --check: got %q, %v, want ok", out, err)
	}
	if pgtest.Asked() {
		return // the rest edits the bbolt file
	}
	bolttest.DropCounter(t, filepath.Join(cfg.DataDir, "optin.db"), "n/subscribers")
	out, err = runCLI(t, "counters", "rebuild", "--check", "--config", path)
	if err == nil || !strings.Contains(out, "n/subscribers: kept 0, walk counts 3") {
		t.Fatalf("counters rebuild --check after a dropped counter: got %q, %v, want an error naming it", out, err)
	}
	if out, err = runCLI(t, "counters", "rebuild", "--config", path); err != nil || !strings.Contains(out, "1 corrected") {
		t.Fatalf("counters rebuild: got %q, %v, want 1 corrected", out, err)
	}
	if out, err = runCLI(t, "counters", "rebuild", "--check", "--config", path); err != nil {
		t.Errorf("counters rebuild --check after the rebuild: got %q, %v, want ok", out, err)
	}
}

// lockedBuffer is a bytes.Buffer safe for a writer and a reader in
// different goroutines.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// serveCLI runs "optin serve --config path" until the admin socket of
// dataDir answers, then stops it; it returns what it wrote.
func serveCLI(t *testing.T, path, dataDir string) (stdout, stderr string) {
	t.Helper()
	var out, errOut lockedBuffer
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- run(ctx, []string{"serve", "--config", path}, &out, &errOut) }()
	for deadline := time.Now().Add(patience); ; time.Sleep(10 * time.Millisecond) {
		if _, err := os.Stat(app.SocketPath(dataDir)); err == nil {
			break
		}
		select {
		case err := <-done:
			cancel()
			t.Fatalf("serve ended: %v\n%s", err, errOut.String())
		default:
		}
		if time.Now().After(deadline) {
			cancel()
			t.Fatalf("admin socket did not appear\n%s", errOut.String())
		}
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("serve: %v", err)
	}
	return out.String(), errOut.String()
}

// TestServeKeyAfterListen: a first start that cannot bind its port uses up
// no admin key; the next start prints one; a later start, with no key
// used yet, says how to create one.
func TestServeKeyAfterListen(t *testing.T) {
	t.Setenv("OPTIN_BOOTSTRAP_ADMIN_KEY", "")
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	dataDir := filepath.Join(t.TempDir(), "data")
	path := writeConfigYAML(t, dataDir, "listen: "+taken.Addr().String()+"\n")
	out, _, err := runCLIAll(t, "serve", "--config", path)
	if err == nil {
		t.Fatal("serve on a taken port: got nil error")
	}
	if strings.Contains(out, "Admin API key") {
		t.Errorf("serve on a taken port printed a key:\n%s", out)
	}

	path = writeConfigYAML(t, dataDir, "listen: 127.0.0.1:0\n")
	out, _ = serveCLI(t, path, dataDir)
	if !strings.Contains(out, "Admin API key") || !strings.Contains(out, "optin_") {
		t.Errorf("first start on a free port: no key printed:\n%s", out)
	}
	out, logs := serveCLI(t, path, dataDir)
	if strings.Contains(out, "Admin API key") {
		t.Errorf("second start printed a key again:\n%s", out)
	}
	if !strings.Contains(logs, "optin apikey create") {
		t.Errorf("second start with no key used: log does not say how to create one:\n%s", logs)
	}
}

// TestCLIReadOnlyCommands: verify, apikey list and campaign status on a
// data_dir without a database fail clearly and create nothing.
func TestCLIReadOnlyCommands(t *testing.T) {
	boltOnly(t, "a data_dir without optin.db")
	dataDir := filepath.Join(t.TempDir(), "typo")
	path := writeConfigYAML(t, dataDir, "")
	want := "no database at " + filepath.Join(dataDir, "optin.db") + ": is data_dir right?"
	for _, args := range [][]string{
		{"verify", "--config", path},
		{"apikey", "list", "--config", path},
		{"campaign", "status", "--config", path, "c1"},
	} {
		_, _, err := runCLIAll(t, args...)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%v: got %v, want %q", args, err, want)
		}
		if _, err := os.Stat(dataDir); !errors.Is(err, os.ErrNotExist) {
			t.Fatalf("%v created %s (%v)", args, dataDir, err)
		}
	}
}

// TestCLIRestoreCheck follows the restore check of docs/operations.md: a
// backup copy of optin.db in an empty directory is verified there, and
// nothing is written: no new secrets.json, no change to the copy.
func TestCLIRestoreCheck(t *testing.T) {
	boltOnly(t, "a copy of optin.db and secrets.json")
	_, cfg := importedDir(t, 2)
	dir := t.TempDir()
	copyFile(t, filepath.Join(cfg.DataDir, "optin.db"), filepath.Join(dir, "optin.db"))
	t.Setenv("OPTIN_CONFIG", "")
	t.Setenv("OPTIN_DATA_DIR", dir)

	_, _, err := runCLIAll(t, "verify")
	if err == nil || !strings.Contains(err.Error(), filepath.Join(dir, "secrets.json")) {
		t.Errorf("verify without secrets.json: got %v, want an error naming it", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "secrets.json")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("verify wrote secrets.json (%v)", err)
	}

	copyFile(t, filepath.Join(cfg.DataDir, "secrets.json"), filepath.Join(dir, "secrets.json"))
	before := readDir(t, dir)
	out, _, err := runCLIAll(t, "verify")
	if err != nil || !strings.Contains(out, "ledger ok: 2 events") {
		t.Errorf("verify of the copy: %q %v", out, err)
	}
	after := readDir(t, dir)
	if len(after) != len(before) {
		t.Errorf("verify changed the directory: %d files before, %d after", len(before), len(after))
	}
	for name, b := range before {
		if !bytes.Equal(after[name], b) {
			t.Errorf("verify changed %s", name)
		}
	}
}

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	b, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(to, b, 0o600); err != nil {
		t.Fatal(err)
	}
}

// readDir returns the contents of every file in dir by name.
func readDir(t *testing.T, dir string) map[string][]byte {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	files := make(map[string][]byte, len(entries))
	for _, e := range entries {
		b, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		files[e.Name()] = b
	}
	return files
}

// TestCLIHelp: every command's --help (and -h) shows its usage and
// succeeds.
func TestCLIHelp(t *testing.T) {
	for _, cmd := range [][]string{
		{}, {"serve"}, {"apikey"}, {"apikey", "create"}, {"apikey", "list"}, {"apikey", "revoke"},
		{"verify"}, {"import"}, {"campaign"}, {"campaign", "status"}, {"version"}, {"mail"}, {"mail", "test"},
		{"bench"}, {"migrate"}, {"migrate", "status"}, {"dkim"}, {"dkim", "keygen"}, {"receipt"}, {"receipt", "verify"}, {"ledger"}, {"ledger", "rotate-key"}, {"counters"}, {"counters", "rebuild"},
	} {
		for _, h := range []string{"--help", "-h"} {
			args := append(append([]string{}, cmd...), h)
			out, errOut, err := runCLIAll(t, args...)
			if err != nil {
				t.Errorf("%v: got %v, want nil", args, err)
			}
			if !strings.Contains(strings.ToLower(out+errOut), "usage") {
				t.Errorf("%v: no usage shown:\n%s%s", args, out, errOut)
			}
		}
	}
}

// TestCLIErrorsOnePrefix: an error from the service does not carry its
// own "optin:" prefix (main adds one).
func TestCLIErrorsOnePrefix(t *testing.T) {
	path, cfg := writeConfig(t)
	_, stop := startApp(t, cfg)
	for _, when := range []string{"serving", "stopped"} {
		_, err := runCLI(t, "campaign", "status", "--config", path, "nope")
		if err == nil || strings.HasPrefix(err.Error(), "optin:") {
			t.Errorf("%s: got %v, want an error without the optin: prefix", when, err)
		}
		stop()
	}
}

// TestCLIVersion prints the Go version and "unknown" for what the build
// did not record (go test stamps no VCS data).
func TestCLIVersion(t *testing.T) {
	out, err := runCLI(t, "version")
	if err != nil || !strings.Contains(out, runtime.Version()) || !strings.Contains(out, "commit") {
		t.Errorf("version: %q %v", out, err)
	}
}

func TestVersionText(t *testing.T) {
	stamped := &debug.BuildInfo{GoVersion: "go1.26.8", Main: debug.Module{Path: "optin", Version: "v1.2.3"},
		Settings: []debug.BuildSetting{{Key: "vcs.revision", Value: "0123abcd"}, {Key: "vcs.time", Value: "2026-11-23T10:00:00Z"},
			{Key: "vcs.modified", Value: "true"}}}
	tests := []struct {
		name string
		bi   *debug.BuildInfo
		want []string
	}{
		{"stamped", stamped, []string{"optin v1.2.3", "commit      0123abcd (modified)", "commit time 2026-11-23T10:00:00Z", "go          go1.26.8"}},
		{"buildvcs=false", &debug.BuildInfo{GoVersion: "go1.26.8", Main: debug.Module{Path: "optin", Version: "(devel)"}},
			[]string{"optin (devel)", "commit      unknown", "commit time unknown", "go          go1.26.8"}},
		{"no build info", nil, []string{"optin unknown", "commit      unknown", "go          " + runtime.Version()}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := versionText(tt.bi)
			for _, w := range tt.want {
				if !strings.Contains(got, w+"\n") {
					t.Errorf("got\n%s\nwant a line %q", got, w)
				}
			}
		})
	}
}

// TestCLIAPIKeyCreateShowsID: apikey create prints the new key's id (the
// one apikey list and revoke use) besides the secret, through the socket
// and on the file.
func TestCLIAPIKeyCreateShowsID(t *testing.T) {
	path, cfg := writeConfig(t)
	_, stop := startApp(t, cfg)
	for _, when := range []string{"serving", "stopped"} {
		out, errOut, err := runCLIAll(t, "apikey", "create", "--name", "ci-"+when, "--role", "viewer", "--config", path)
		if err != nil {
			t.Fatalf("%s: apikey create: %v", when, err)
		}
		if f := strings.Fields(out); len(f) != 1 || !strings.HasPrefix(f[0], "optin_") {
			t.Errorf("%s: stdout %q, want the secret alone", when, out)
		}
		list, err := runCLI(t, "apikey", "list", "--config", path)
		if err != nil {
			t.Fatalf("%s: apikey list: %v", when, err)
		}
		var id string
		for _, line := range strings.Split(list, "\n") {
			if f := strings.Fields(line); len(f) > 2 && f[2] == "ci-"+when {
				id = f[0]
			}
		}
		if id == "" || !strings.Contains(errOut, id) {
			t.Errorf("%s: apikey create said %q, want the id %q", when, errOut, id)
		}
		stop()
	}
}

// TestCLIImportNeverServed: an import into a data_dir that was never
// served finds topic news, as after a first start.
func TestCLIImportNeverServed(t *testing.T) {
	path, _ := writeConfig(t)
	out, err := runCLI(t, "import", "--config", path, writeCSV(t, 2))
	if err != nil {
		t.Fatalf("import: %v", err)
	}
	var rep struct {
		Imported int `json:"imported"`
		Invalid  []struct {
			Reason string `json:"reason"`
		} `json:"invalid"`
	}
	if err := json.Unmarshal([]byte(out), &rep); err != nil || rep.Imported != 2 || len(rep.Invalid) != 0 {
		t.Errorf("import report: %+v %v\n%s", rep, err, out)
	}
}
