package app

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"optin/internal/bench"
	"optin/internal/config"
	"optin/internal/testclock"
)

// BenchmarkSignup measures one double-opt-in signup end to end, as
// `optin-bench signup --sink` does from outside: a JSON POST over
// loopback HTTP to the whole service on a real store (bbolt, or
// PostgreSQL with OPTIN_TEST_STORE=postgres), answered 202 once durable,
// and its confirmation mail rendered, signed and sent over SMTP to the
// load tests' sink. The limits are off, as in the load test. Besides the
// wall time and allocations it reports the process's CPU time per signup
// (cpu-ns/op), which includes the HTTP client and the sink in this
// process, and counts the mails only after the last one arrived.
func BenchmarkSignup(b *testing.B) {
	sink, err := bench.NewSink("127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	defer sink.Close()
	host, port, _ := net.SplitHostPort(sink.Addr())
	var smtpPort int
	fmt.Sscan(port, &smtpPort)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	cfg := config.Default()
	cfg.Listen, cfg.BaseURL, cfg.DataDir = ln.Addr().String(), "http://"+ln.Addr().String(), b.TempDir()
	cfg.Mail.Transport, cfg.Mail.From = config.TransportSMTP, "Bench <bench@example.com>"
	cfg.Mail.SMTP = config.SMTP{Host: host, Port: smtpPort, TLS: config.TLSNone}
	cfg.Limits = config.Limits{} // all off
	useTestStore(b, &cfg)
	if err := cfg.Validate(); err != nil {
		b.Fatal(err)
	}
	a, err := Open(Options{Config: cfg, BootstrapKey: testAdminKey, Now: testclock.Real().Now, Log: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		b.Fatal(err)
	}
	ctx, stop := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Serve(ctx, ln) }()
	defer func() {
		stop()
		if err := <-done; err != nil {
			b.Error(err)
		}
	}()
	client := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 1024}}
	url := cfg.BaseURL + "/f/newsletter"
	var n atomic.Int64
	b.SetParallelism(32) // 64 clients on the two cores of docs/performance.md
	b.ReportAllocs()
	start := processCPU(b)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			body := fmt.Appendf(nil, `{"email":"s%d@bench.example","topics":["news"]}`, n.Add(1))
			req, _ := http.NewRequest(http.MethodPost, url, bytes.NewReader(body))
			req.Header.Set("Content-Type", "application/json")
			req.Header.Set("Accept", "application/json")
			res, err := client.Do(req)
			if err != nil {
				b.Error(err)
				return
			}
			io.Copy(io.Discard, res.Body)
			res.Body.Close()
			if res.StatusCode != http.StatusAccepted {
				b.Errorf("status %d", res.StatusCode)
				return
			}
		}
	})
	wctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if got := len(sink.Wait(wctx, int(n.Load()))); got < int(n.Load()) {
		b.Fatalf("%d of %d mails arrived", got, n.Load())
	}
	b.StopTimer()
	b.ReportMetric(float64((processCPU(b)-start).Nanoseconds())/float64(b.N), "cpu-ns/op")
}

// processCPU returns the CPU time (user and system) this process has used.
func processCPU(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
