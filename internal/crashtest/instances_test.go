package crashtest

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"

	"optin/internal/app"
	"optin/internal/config"
	"optin/internal/consent"
	"optin/internal/postgres/pgtest"
	"optin/internal/smtptest"
)

// testLease is the outbox lease of the instances under test: how long a
// killed instance's mails wait before another instance takes them over.
const testLease = 10 * time.Second

// writeInstanceConfig writes the config of instance i of a service on the
// PostgreSQL database url that mails to sink, and returns its path and
// listen address. Every instance has its own port and data_dir; they
// share base_url, as behind a load balancer.
func writeInstanceConfig(t *testing.T, dir string, i int, url, baseURL string, sink *smtptest.Server) (cfgPath, addr string) {
	t.Helper()
	addr = freeAddr(t)
	if baseURL == "" {
		baseURL = "http://" + addr
	}
	cfgPath = filepath.Join(dir, fmt.Sprintf("optin-%d.yaml", i))
	text := fmt.Sprintf(`listen: %q
base_url: %q
data_dir: %q
store: postgres
postgres: {url: %q, outbox_lease: %q}
mail:
  transport: smtp
  from: "Crash <crash@example.com>"
  smtp: {host: %q, port: %d, tls: none, helo: "optin-%d.test"}
limits: {signup_per_ip: "off", manage_per_ip: "off", confirmations: "off"}
`, addr, baseURL, filepath.Join(dir, fmt.Sprintf("data-%d", i)), url, testLease.String(), sink.Host(), sink.Port(), i)
	if err := os.WriteFile(cfgPath, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	return cfgPath, addr
}

// freeAddr returns a loopback address that was free a moment ago.
func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// writeBoltConfig writes the config of one instance on a bbolt store in
// a temporary directory that mails to sink, without abuse limits, and
// returns its path and listen address.
func writeBoltConfig(t *testing.T, sink *smtptest.Server) (cfgPath, addr string) {
	t.Helper()
	dir := t.TempDir()
	addr = freeAddr(t)
	cfgPath = filepath.Join(dir, "optin.yaml")
	text := fmt.Sprintf(`listen: %q
data_dir: %q
mail:
  transport: smtp
  from: "Crash <crash@example.com>"
  smtp: {host: %q, port: %d, tls: none}
limits: {signup_per_ip: "off", manage_per_ip: "off"}
`, addr, filepath.Join(dir, "data"), sink.Host(), sink.Port())
	if err := os.WriteFile(cfgPath, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	return cfgPath, addr
}

// load signs up addresses named prefix-wW-N from workers clients, each
// spreading its requests over addrs in turn, until ctx ends; it returns
// the addresses acknowledged with 202.
func load(ctx context.Context, workers int, prefix string, addrs func(n int) string) []string {
	var mu sync.Mutex
	var acked []string
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ctx.Err() == nil; i++ {
				email := fmt.Sprintf("%s-w%d-%d@crash.example", prefix, w, i)
				if signup(ctx, addrs(w+i), email) {
					mu.Lock()
					acked = append(acked, email)
					mu.Unlock()
				}
			}
		}()
	}
	wg.Wait()
	return acked
}

// checkDelivered waits until every address in acked got a confirmation
// mail, then fails t for each that got none; it returns the mails per
// address.
func checkDelivered(t *testing.T, sink *smtptest.Server, acked []string, within time.Duration) map[string][]smtptest.Message {
	t.Helper()
	got := map[string][]smtptest.Message{}
	for deadline := time.Now().Add(within); ; {
		clear(got)
		for _, m := range sink.Messages() {
			for _, to := range m.To {
				got[to] = append(got[to], m)
			}
		}
		missing := 0
		for _, e := range acked {
			if len(got[e]) == 0 {
				missing++
			}
		}
		if missing == 0 || time.Now().After(deadline) {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	for _, e := range acked {
		if len(got[e]) == 0 {
			t.Errorf("acknowledged signup %s got no mail", e)
		}
	}
	return got
}

// checkStored opens the store of cfgPath and fails t for each address in
// acked that is not there, and for a ledger that does not verify.
func checkStored(t *testing.T, cfgPath string, acked []string) {
	t.Helper()
	cfg, err := config.Load(cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	db, err := app.OpenStore(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	for _, e := range acked {
		a, _ := consent.ParseAddress(e)
		if _, err := db.SubscriberByAddress(context.Background(), a); err != nil {
			t.Errorf("acknowledged signup %s lost: %v", e, err)
		}
	}
	if rep, err := db.VerifyLedger(context.Background()); err != nil || !rep.OK {
		t.Errorf("ledger: %+v %v", rep, err)
	}
}

// TestKill9Instances runs three instances on one PostgreSQL database with
// the load spread over them, and kills one of them with SIGKILL several
// times mid-load (restarting it each time). Every signup answered 202
// must exist afterwards and get its confirmation mail at least once. A
// mail sent twice (the killed instance handed it to the relay but died
// before noting so) may only be sent again after its lease ran out: two
// deliveries of one mail closer together than that would mean two
// instances sent it at the same time.
func TestKill9Instances(t *testing.T) {
	if testing.Short() {
		t.Skip("kills processes; skipped in -short mode")
	}
	url := testPG.Database(t)
	sink := smtptest.Start(t, smtptest.Options{})
	sink.Discard(true)
	dir := t.TempDir()
	const n = 3
	cfgs, addrs := make([]string, n), make([]string, n)
	cmds := make([]*exec.Cmd, n)
	for i := range n {
		base := ""
		if i > 0 {
			base = "http://" + addrs[0]
		}
		cfgs[i], addrs[i] = writeInstanceConfig(t, dir, i, url, base, sink)
		cmds[i] = startChild(t, cfgs[i], addrs[i])
	}

	ctx, endLoad := context.WithCancel(context.Background())
	var mu sync.Mutex
	up := [n]bool{true, true, true}
	pick := func(k int) string { // the next instance that is up, like a load balancer's health check
		mu.Lock()
		defer mu.Unlock()
		for j := range n {
			if i := (k + j) % n; up[i] {
				return addrs[i]
			}
		}
		return addrs[k%n]
	}
	acked := make(chan []string, 1)
	go func() { acked <- load(ctx, 12, "ha", pick) }()
	const kills = 5
	for k := range kills {
		time.Sleep(time.Duration(400+k*100) * time.Millisecond)
		i := k % n
		mu.Lock()
		up[i] = false
		mu.Unlock()
		if err := cmds[i].Process.Signal(syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		cmds[i].Wait()
		cmds[i] = startChild(t, cfgs[i], addrs[i])
		mu.Lock()
		up[i] = true
		mu.Unlock()
	}
	time.Sleep(300 * time.Millisecond)
	endLoad()
	all := <-acked
	t.Logf("%d signups acknowledged across %d kills of 3 instances", len(all), kills)
	if len(all) == 0 {
		t.Fatal("no signup was acknowledged")
	}
	got := checkDelivered(t, sink, all, 2*testLease+30*time.Second)
	for i := range n {
		cmds[i].Process.Signal(syscall.SIGTERM)
		if err := cmds[i].Wait(); err != nil {
			t.Errorf("clean stop of instance %d: %v", i, err)
		}
	}
	dups := 0
	for _, e := range all {
		ms := got[e]
		for j := 1; j < len(ms); j++ {
			dups++
			// The lease was taken before the first send, so the second
			// comes at least a lease minus that batch's sending time later.
			if gap := ms[j].Received.Sub(ms[j-1].Received); gap < testLease/2 {
				t.Errorf("%s mailed twice %v apart (by %s and %s): two instances sent it at once", e, gap, ms[j-1].Helo, ms[j].Helo)
			}
		}
	}
	t.Logf("confirmation mails: %d for %d acknowledged signups, %d sent again after a kill (at-least-once)", len(sink.Messages()), len(all), dups)
	checkStored(t, cfgs[0], all)
}

// TestPostgresCrash crashes the PostgreSQL server under two instances in
// the middle of a signup load and starts it again. While it is down,
// signups must be answered at once with 503 (not hang, not 2xx); after,
// the instances must recover by themselves; nothing acknowledged may be
// lost.
func TestPostgresCrash(t *testing.T) {
	if testing.Short() {
		t.Skip("load test; skipped in -short mode")
	}
	srv, err := pgtest.Start()
	if err != nil {
		if testPG == nil { // no binaries: Main skipped or failed already
			t.Skip(err)
		}
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Stop() })
	url := srv.Database(t)
	sink := smtptest.Start(t, smtptest.Options{})
	sink.Discard(true)
	dir := t.TempDir()
	cfgs, addrs := make([]string, 2), make([]string, 2)
	cmds := make([]*exec.Cmd, 2)
	for i := range 2 {
		base := ""
		if i > 0 {
			base = "http://" + addrs[0]
		}
		cfgs[i], addrs[i] = writeInstanceConfig(t, dir, i, url, base, sink)
		cmds[i] = startChild(t, cfgs[i], addrs[i])
	}

	// Phase 1: load, the database up.
	ctx, end := context.WithTimeout(context.Background(), time.Second)
	before := load(ctx, 8, "before", func(k int) string { return addrs[k%2] })
	end()

	// Phase 2: the database down. Every answer must be a quick refusal.
	if err := srv.Crash(); err != nil {
		t.Fatal(err)
	}
	statuses := map[int]int{}
	var slowest time.Duration
	for k := range 20 {
		start := time.Now()
		status, err := signupStatus(context.Background(), addrs[k%2], fmt.Sprintf("down-%d@crash.example", k))
		took := time.Since(start)
		slowest = max(slowest, took)
		if err != nil {
			t.Errorf("signup while the database is down: no answer after %v: %v", took, err)
			continue
		}
		statuses[status]++
	}
	t.Logf("while the database was down: answers %v, slowest %v", statuses, slowest)
	if statuses[503] != 20 {
		t.Errorf("answers while the database is down: got %v, want 503 for all 20", statuses)
	}
	// A load balancer asks /readyz: not ready while the database is down.
	for _, addr := range addrs {
		if status := readyStatus(t, addr); status != http.StatusServiceUnavailable {
			t.Errorf("/readyz of %s while the database is down: got %d, want 503", addr, status)
		}
	}

	// Phase 3: the database back; the instances recover by themselves.
	if err := srv.Recover(); err != nil {
		t.Fatal(err)
	}
	var after []string
	for deadline := time.Now().Add(30 * time.Second); len(after) == 0 && time.Now().Before(deadline); {
		ctx, end := context.WithTimeout(context.Background(), time.Second)
		after = load(ctx, 8, "after", func(k int) string { return addrs[k%2] })
		end()
	}
	if len(after) == 0 {
		t.Fatal("no signup acknowledged after the database came back")
	}
	for _, addr := range addrs {
		if status := readyStatus(t, addr); status != http.StatusOK {
			t.Errorf("/readyz of %s after the database came back: got %d, want 200", addr, status)
		}
	}
	all := append(before, after...)
	t.Logf("%d signups acknowledged before the crash, %d after", len(before), len(after))
	checkDelivered(t, sink, all, 2*testLease+30*time.Second)
	for i := range cmds {
		cmds[i].Process.Signal(syscall.SIGTERM)
		if err := cmds[i].Wait(); err != nil {
			t.Errorf("clean stop of instance %d: %v", i, err)
		}
	}
	checkStored(t, cfgs[0], all)
}

// readyStatus returns the status of GET /readyz of the optin at addr.
func readyStatus(t *testing.T, addr string) int {
	t.Helper()
	resp, err := client.Get("http://" + addr + "/readyz")
	if err != nil {
		t.Fatalf("/readyz of %s: %v", addr, err)
	}
	resp.Body.Close()
	return resp.StatusCode
}
