package crashtest

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"optin/internal/app"
	"optin/internal/config"
	"optin/internal/smtptest"
)

// TestSMTPOutageUnderLoad stops the SMTP server in the middle of a signup
// load and starts it again: no mail may be lost, the backlog must drain,
// and duplicates are counted. OPTIN_OUTAGE sets the outage length (60s for
// the full run; 3s by default, the short form CI runs).
func TestSMTPOutageUnderLoad(t *testing.T) {
	if testing.Short() {
		t.Skip("load test; skipped in -short mode")
	}
	outage := 3 * time.Second
	if v := os.Getenv("OPTIN_OUTAGE"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil {
			t.Fatal(err)
		}
		outage = d
	}
	sink := smtptest.Start(t, smtptest.Options{})
	sink.Discard(true)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	cfg := config.Default()
	cfg.Listen = ln.Addr().String()
	cfg.BaseURL = "http://" + cfg.Listen
	cfg.DataDir = filepath.Join(t.TempDir(), "data")
	cfg.Mail.Transport = config.TransportSMTP
	cfg.Mail.SMTP = config.SMTP{Host: sink.Host(), Port: sink.Port(), TLS: config.TLSNone}
	cfg.Limits.SignupPerIP = config.Rate{}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	a, err := app.Open(app.Options{Config: cfg})
	if err != nil {
		t.Fatal(err)
	}
	ctx, stop := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Serve(ctx, ln) }()
	defer func() { stop(); <-done }()

	var mu sync.Mutex
	var acked []string
	loadCtx, endLoad := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	for w := range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; loadCtx.Err() == nil; i++ {
				email := fmt.Sprintf("w%d-%d@outage.example", w, i)
				if signup(loadCtx, cfg.Listen, email) {
					mu.Lock()
					acked = append(acked, email)
					mu.Unlock()
				}
				time.Sleep(5 * time.Millisecond)
			}
		}()
	}
	time.Sleep(outage / 3)
	if err := sink.Stop(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(outage)
	if err := sink.Restart(); err != nil {
		t.Fatal(err)
	}
	recovered := time.Now()
	mu.Lock()
	backlog := append([]string(nil), acked...) // acknowledged before the relay came back
	mu.Unlock()
	var drained time.Duration
	for deadline := recovered.Add(outage + 2*time.Minute); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		if mailedAll(sink, backlog) {
			drained = time.Since(recovered)
			break
		}
	}
	if rest := outage/3 - time.Since(recovered); rest > 0 {
		time.Sleep(rest) // the load goes on a while after the recovery
	}
	endLoad()
	wg.Wait()

	got := map[string]int{}
	missing := len(acked)
	for deadline := time.Now().Add(outage + 2*time.Minute); missing > 0 && time.Now().Before(deadline); {
		time.Sleep(100 * time.Millisecond)
		clear(got)
		for _, m := range sink.Messages() {
			for _, to := range m.To {
				got[to]++
			}
		}
		missing = 0
		for _, e := range acked {
			if got[e] == 0 {
				missing++
			}
		}
	}
	dups := 0
	for _, n := range got {
		dups += n - 1
	}
	t.Logf("outage %v: %d signups acknowledged (%d before the relay came back), %d mails lost, %d duplicates, backlog drained %v after recovery",
		outage, len(acked), len(backlog), missing, dups, drained.Round(100*time.Millisecond))
	if drained == 0 {
		t.Error("the backlog from the outage did not drain")
	}
	if missing > 0 {
		t.Errorf("%d acknowledged signups got no mail", missing)
	}
}

// mailedAll reports whether every address in addrs received a mail.
func mailedAll(sink *smtptest.Server, addrs []string) bool {
	got := map[string]bool{}
	for _, m := range sink.Messages() {
		for _, to := range m.To {
			got[to] = true
		}
	}
	for _, a := range addrs {
		if !got[a] {
			return false
		}
	}
	return true
}
