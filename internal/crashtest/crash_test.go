// Package crashtest kills optin with SIGKILL under load, again and again,
// and checks that nothing it acknowledged was lost. The server runs in a
// child process: this test binary re-executed with OPTIN_CRASH_CHILD set.
package crashtest

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"optin/internal/app"
	"optin/internal/config"
	"optin/internal/postgres/pgtest"
	"optin/internal/smtptest"
)

// testPG is the private PostgreSQL server of the tests that run several
// instances on one database.
var testPG *pgtest.Server

func TestMain(m *testing.M) {
	if os.Getenv("OPTIN_CRASH_CHILD") == "1" {
		os.Exit(child())
	}
	os.Exit(pgtest.Main(m, &testPG))
}

// child runs optin on the config named by OPTIN_CONFIG until SIGTERM (or
// SIGKILL, which is the point).
func child() int {
	cfg, err := config.Load(os.Getenv("OPTIN_CONFIG"))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	a, err := app.Open(app.Options{Config: cfg, BootstrapKey: "crash-test-admin-key-0123456789abcdef"})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	ctx, stop := signalContext()
	defer stop()
	if err := a.Serve(ctx, ln); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return 0
}

func signalContext() (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithCancel(context.Background())
	ch := make(chan os.Signal, 1)
	signalNotify(ch)
	go func() { <-ch; cancel() }()
	return ctx, cancel
}

// TestKill9 kills the server 10 times while 16 clients sign up, restarts
// it each time on the same data, and then checks every acknowledged
// signup: stored, confirmation mail sent at least once, ledger intact.
// Mail delivery is at-least-once: a mail the SMTP server accepted just
// before the kill, whose job was not yet removed, is sent again after the
// restart; duplicates are counted and reported.
func TestKill9(t *testing.T) {
	if testing.Short() {
		t.Skip("kills processes; skipped in -short mode")
	}
	sink := smtptest.Start(t, smtptest.Options{})
	sink.Discard(true)
	cfgPath, addr := writeBoltConfig(t, sink)

	var mu sync.Mutex
	var acked []string
	const rounds = 10
	for round := range rounds {
		cmd := startChild(t, cfgPath, addr)
		ctx, cancel := context.WithCancel(context.Background())
		var wg sync.WaitGroup
		for w := range 16 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := 0; ctx.Err() == nil; i++ {
					email := fmt.Sprintf("r%d-w%d-%d@crash.example", round, w, i)
					if signup(ctx, addr, email) {
						mu.Lock()
						acked = append(acked, email)
						mu.Unlock()
					}
				}
			}()
		}
		time.Sleep(time.Duration(300+round*50) * time.Millisecond)
		if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		cmd.Wait()
		cancel()
		wg.Wait()
	}
	t.Logf("%d signups acknowledged across %d kills", len(acked), rounds)
	if len(acked) == 0 {
		t.Fatal("no signup was acknowledged")
	}

	// A last start drains the outbox; then a clean stop.
	cmd := startChild(t, cfgPath, addr)
	got := checkDelivered(t, sink, acked, 60*time.Second)
	cmd.Process.Signal(syscall.SIGTERM)
	if err := cmd.Wait(); err != nil {
		t.Errorf("clean stop: %v", err)
	}
	dups := 0
	for _, e := range acked {
		dups += max(0, len(got[e])-1)
	}
	t.Logf("confirmation mails: %d for %d acknowledged signups, %d duplicates (at-least-once)", len(sink.Messages()), len(acked), dups)
	checkStored(t, cfgPath, acked)
}

func startChild(t *testing.T, cfgPath, addr string) *exec.Cmd {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), "OPTIN_CRASH_CHILD=1", "OPTIN_CONFIG="+cfgPath)
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	// A safety net against a child that never comes up: a -race child
	// on a loaded machine can take many seconds to open its store.
	deadline := time.Now().Add(2 * time.Minute)
	for {
		resp, err := http.Get("http://" + addr + "/healthz")
		if err == nil {
			resp.Body.Close()
			return cmd
		}
		if time.Now().After(deadline) {
			cmd.Process.Kill()
			t.Fatalf("child did not come up: %v", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

var client = &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 32}}

// signup reports whether optin acknowledged the signup with 202.
func signup(ctx context.Context, addr, email string) bool {
	status, err := signupStatus(ctx, addr, email)
	return err == nil && status == http.StatusAccepted
}

// signupStatus signs email up at the optin listening on addr and returns
// the answer's status.
func signupStatus(ctx context.Context, addr, email string) (int, error) {
	req, err := http.NewRequestWithContext(ctx, "POST", "http://"+addr+"/f/newsletter",
		strings.NewReader(`{"email":"`+email+`","topics":["news"]}`))
	if err != nil {
		return 0, err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json")
	resp, err := client.Do(req)
	if err != nil {
		return 0, err
	}
	io.Copy(io.Discard, resp.Body) // drain, so the connection is reused
	resp.Body.Close()
	return resp.StatusCode, nil
}
