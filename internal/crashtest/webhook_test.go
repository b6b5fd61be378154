package crashtest

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"optin/internal/smtptest"
	"optin/internal/webhooktest"
)

// crashAdminKey is the admin key child() bootstraps.
const crashAdminKey = "crash-test-admin-key-0123456789abcdef"

// admin posts body to the admin API path and returns the status and
// answer (0 when the request failed).
func admin(ctx context.Context, addr, path, body string) (int, []byte) {
	req, err := http.NewRequestWithContext(ctx, "POST", "http://"+addr+"/api/v1"+path, strings.NewReader(body))
	if err != nil {
		return 0, nil
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+crashAdminKey)
	resp, err := client.Do(req)
	if err != nil {
		return 0, nil
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

// TestKill9Webhooks kills the server 5 times while 8 clients sign up and
// have an operator suppress each address, restarting it each time on the
// same data; a receiver on loopback checks every delivery's signature.
// Every acknowledged suppression must reach the receiver at least once,
// naming its address (the endpoint's scope is contact), after the last
// start.
func TestKill9Webhooks(t *testing.T) {
	if testing.Short() {
		t.Skip("kills processes; skipped in -short mode")
	}
	sink := smtptest.Start(t, smtptest.Options{})
	sink.Discard(true)
	rcv := webhooktest.Start(t)
	cfgPath, addr := writeBoltConfig(t, sink)

	var mu sync.Mutex
	var acked []string
	const rounds = 5
	for round := range rounds {
		cmd := startChild(t, cfgPath, addr)
		if round == 0 {
			status, body := admin(context.Background(), addr, "/webhooks",
				fmt.Sprintf(`{"url":%q,"events":["suppressed"],"scope":"contact"}`, rcv.URL+"/hook"))
			var w struct{ Secret string }
			if err := json.Unmarshal(body, &w); status != http.StatusCreated || err != nil {
				cmd.Process.Kill()
				t.Fatalf("POST /webhooks: got %d %s", status, body)
			}
			rcv.SetSecret(w.Secret)
		}
		ctx, cancel := context.WithCancel(context.Background())
		var wg sync.WaitGroup
		for w := range 8 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := 0; ctx.Err() == nil; i++ {
					email := fmt.Sprintf("r%d-w%d-%d@hooks.example", round, w, i)
					if !signup(ctx, addr, email) {
						continue
					}
					if status, _ := admin(ctx, addr, "/suppressions", `{"email":"`+email+`"}`); status == http.StatusCreated {
						mu.Lock()
						acked = append(acked, email)
						mu.Unlock()
					}
				}
			}()
		}
		time.Sleep(time.Duration(300+round*100) * time.Millisecond)
		if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		cmd.Wait()
		cancel()
		wg.Wait()
	}
	t.Logf("%d suppressions acknowledged across %d kills", len(acked), rounds)
	if len(acked) == 0 {
		t.Fatal("no suppression was acknowledged")
	}

	// A last start drains the queue; then a clean stop.
	cmd := startChild(t, cfgPath, addr)
	got := map[string]int{}
	for deadline := time.Now().Add(60 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		clear(got)
		for _, m := range rcv.Messages() {
			if m.Type == "suppressed" {
				got[m.Data.Email]++
			}
		}
		missing := 0
		for _, e := range acked {
			if got[e] == 0 {
				missing++
			}
		}
		if missing == 0 || time.Now().After(deadline) {
			break
		}
	}
	cmd.Process.Signal(syscall.SIGTERM)
	if err := cmd.Wait(); err != nil {
		t.Errorf("clean stop: %v", err)
	}
	dups := 0
	for _, e := range acked {
		switch n := got[e]; {
		case n == 0:
			t.Errorf("acknowledged suppression of %s never reached the receiver", e)
		case n > 1:
			dups += n - 1
		}
	}
	if bad := rcv.Bad(); len(bad) > 0 {
		t.Errorf("the receiver refused deliveries: %q", bad)
	}
	t.Logf("suppressed deliveries: %d for %d acknowledged suppressions, %d duplicates (at-least-once)", len(rcv.Messages()), len(acked), dups)
}
