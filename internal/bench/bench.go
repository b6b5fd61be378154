// Package bench is optin's load generator ("optin-bench"): it drives a
// running optin over HTTP, can act as the SMTP server optin sends to, and
// measures the ceilings the results should be read against.
package bench

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

const usage = `usage:
  optin-bench signup  [--url U] [--form F] [--topic T] [--clients N] [--duration D] [--rate R] [--sink ADDR] [--drain D] [--confirm]
        POST signups with unique addresses for D with N clients; with --sink, also run
        the SMTP server optin sends to on ADDR and report confirmation-mail latency, and
        with --confirm then press Confirm on each mail's link (N clients) and count the
        confirmations optin recorded; then the service's memory from its /metrics: Go
        heap, anonymous RSS, database pages
  optin-bench ceiling [--clients N] [--duration D] [--dir DIR]
        the limits to compare with: the same load against a gin handler that does
        nothing, and raw fsynced bbolt commits per second
  optin-bench sink    [--listen ADDR] [--duration D]
        an SMTP server that counts what it receives
  optin-bench generate [--subscribers N] [--format csv|ndjson] [--seed S] [--now T]
        write an import file of N varied people to stdout (topics, bases with their
        evidence, customers' purchase dates, names), streamed in flat memory
`

// Run runs the bench subcommand args[0] with its flags; a mode's --help
// prints its flags and succeeds.
func Run(ctx context.Context, args []string, out io.Writer) error {
	err := run(ctx, args, out)
	if errors.Is(err, flag.ErrHelp) {
		return nil
	}
	return err
}

func run(ctx context.Context, args []string, out io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(out, usage)
		return errors.New("bench: no mode given")
	}
	switch args[0] {
	case "signup":
		return runSignup(ctx, args[1:], out)
	case "ceiling":
		return runCeiling(ctx, args[1:], out)
	case "sink":
		return runSink(ctx, args[1:], out)
	case "generate":
		return runGenerate(args[1:], out)
	case "help", "-h", "--help":
		fmt.Fprint(out, usage)
		return nil
	}
	fmt.Fprint(out, usage)
	return fmt.Errorf("bench: unknown mode %q", args[0])
}

// Result is what one load run measured.
type Result struct {
	Requests  int
	Errors    map[string]int
	Duration  time.Duration
	Latencies []time.Duration // sorted
}

// add adds one client's part to r: n requests, the latencies of those
// that succeeded and the others by error.
func (r *Result) add(n int, lat []time.Duration, errs map[string]int) {
	r.Requests += n
	r.Latencies = append(r.Latencies, lat...)
	for k, v := range errs {
		r.Errors[k] += v
	}
}

// Throughput is successful requests per second.
func (r Result) Throughput() float64 {
	ok := r.Requests
	for _, n := range r.Errors {
		ok -= n
	}
	return float64(ok) / r.Duration.Seconds()
}

// Percentile returns the p-th percentile latency (0 < p <= 100).
func Percentile(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := int(float64(len(sorted))*p/100+0.5) - 1
	return sorted[max(0, min(i, len(sorted)-1))]
}

func (r Result) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "requests %d in %.1fs: %.0f ok/s\n", r.Requests, r.Duration.Seconds(), r.Throughput())
	fmt.Fprintf(&b, "latency p50 %v  p95 %v  p99 %v  max %v\n", Percentile(r.Latencies, 50).Round(time.Microsecond),
		Percentile(r.Latencies, 95).Round(time.Microsecond), Percentile(r.Latencies, 99).Round(time.Microsecond),
		Percentile(r.Latencies, 100).Round(time.Microsecond))
	if len(r.Errors) > 0 {
		keys := make([]string, 0, len(r.Errors))
		for k := range r.Errors {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			fmt.Fprintf(&b, "errors %s: %d\n", k, r.Errors[k])
		}
	} else {
		b.WriteString("errors 0\n")
	}
	return b.String()
}

// Load sends requests built by next from clients goroutines for d and
// measures them. next(worker, i) returns the body of request i of a
// worker; ok tells a success status. onOK, if set, is called after each
// success with the worker, i and the time of the answer.
type Load struct {
	// URLs are the endpoints; client w posts to URLs[w % len(URLs)], so
	// the load spreads evenly over several instances.
	URLs    []string
	Clients int
	For     time.Duration
	Body    func(worker, i int) []byte
	Header  http.Header
	OK      func(status int) bool
	OnOK    func(worker, i int, at time.Time)
	// Rate caps requests per second over all clients; 0 is as fast as
	// the clients go.
	Rate int
}

// Run executes the load.
func (l Load) Run(ctx context.Context) Result {
	ctx, cancel := context.WithTimeout(ctx, l.For)
	defer cancel()
	var mu sync.Mutex
	res := Result{Errors: map[string]int{}}
	var wg sync.WaitGroup
	start := time.Now()
	var ticket chan struct{}
	if l.Rate > 0 {
		ticket = make(chan struct{}, l.Clients)
		go func() {
			// Every millisecond, release the tickets owed since the start:
			// a ticker per request loses ticks when the machine is busy,
			// and the load would fall short of the rate asked for.
			t := time.NewTicker(time.Millisecond)
			defer t.Stop()
			released := 0
			for {
				select {
				case <-ctx.Done():
					return
				case now := <-t.C:
					owed := int(now.Sub(start).Seconds()*float64(l.Rate)) - released
					for ; owed > 0; owed-- {
						released++
						select {
						case ticket <- struct{}{}:
						default: // the clients are behind; do not bank requests
						}
					}
				}
			}
		}()
	}
	for w := range l.Clients {
		cl, err := newClient(l.URLs[w%len(l.URLs)], l.Header, 30*time.Second)
		if err != nil {
			res.Errors[err.Error()]++
			break
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer cl.close()
			var lat []time.Duration
			errs := map[string]int{}
			n := 0
			for i := 0; ctx.Err() == nil; i++ {
				if ticket != nil {
					select {
					case <-ticket:
					case <-ctx.Done():
						continue
					}
				}
				body := l.Body(w, i)
				t0 := time.Now()
				status, err := cl.post(body)
				if err != nil {
					if ctx.Err() != nil {
						break // the run ended during this request: not counted
					}
					errs["transport"]++
					n++
					continue
				}
				now := time.Now()
				n++
				if !l.OK(status) {
					errs[fmt.Sprintf("status %d", status)]++
					continue
				}
				lat = append(lat, now.Sub(t0))
				if l.OnOK != nil {
					l.OnOK(w, i, now)
				}
			}
			mu.Lock()
			res.add(n, lat, errs)
			mu.Unlock()
		}()
	}
	wg.Wait()
	res.Duration = time.Since(start)
	slices.Sort(res.Latencies)
	return res
}

func runSignup(ctx context.Context, args []string, out io.Writer) error {
	fs := flag.NewFlagSet("optin-bench signup", flag.ContinueOnError)
	fs.SetOutput(out) // where --help shows the flags
	base := fs.String("url", "http://127.0.0.1:8080", "optin base URL; several, comma-separated, spread the clients over instances")
	form := fs.String("form", "newsletter", "form id")
	topic := fs.String("topic", "news", "topic to sign up for")
	clients := fs.Int("clients", 64, "concurrent clients")
	dur := fs.Duration("duration", 10*time.Second, "how long to send")
	sink := fs.String("sink", "", "run the SMTP server optin sends to on this address and measure mail latency")
	drain := fs.Duration("drain", 60*time.Second, "with --sink: how long to wait for the last mails")
	rate := fs.Int("rate", 0, "requests per second over all clients (0: as fast as they go)")
	cpuFlag := fs.String("cpu", "", "report the CPU of process trees: NAME=PID[+PID...],... (e.g. optin=4101+4102,postgres=3900)")
	confirm := fs.Bool("confirm", false, "with --sink: once the mails are in, press Confirm on each one's link, so the CPU is of whole double opt-ins")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *confirm && *sink == "" {
		return errors.New("bench: --confirm needs --sink, where the confirmation mails arrive")
	}
	cpu, err := parseCPUFlag(*cpuFlag)
	if err != nil {
		return err
	}
	var urls []string
	for _, u := range strings.Split(*base, ",") {
		urls = append(urls, strings.TrimSuffix(u, "/")+"/f/"+*form)
	}
	var srv *Sink
	if *sink != "" {
		newSink := NewSink
		if *confirm {
			newSink = NewLinkSink
		}
		if srv, err = newSink(*sink); err != nil {
			return err
		}
		defer srv.Close()
	}
	run := time.Now().UnixNano()
	addr := func(w, i int) string { return fmt.Sprintf("b%x-%d-%d@bench.example", run, w, i) }
	var acked sync.Map // address -> ack time
	var okCount atomic.Int64
	l := Load{URLs: urls, Clients: *clients, For: *dur, Rate: *rate,
		Header: http.Header{"Content-Type": {"application/json"}, "Accept": {"application/json"}},
		Body: func(w, i int) []byte {
			return fmt.Appendf(nil, `{"email":%q,"topics":[%q]}`, addr(w, i), *topic)
		},
		OK: func(s int) bool { return s == http.StatusAccepted },
		OnOK: func(w, i int, at time.Time) {
			okCount.Add(1)
			if srv != nil {
				acked.Store(addr(w, i), at)
			}
		},
	}
	if err := cpu.start(); err != nil {
		return err
	}
	res := l.Run(ctx)
	fmt.Fprintf(out, "signup: %d clients, %v against %s\n%s", *clients, *dur, strings.Join(urls, ", "), res)
	defer func() {
		if mem, err := ServiceMemory(ctx, strings.Split(*base, ",")[0]); err != nil {
			fmt.Fprintf(out, "memory: unknown (%v)\n", err)
		} else {
			fmt.Fprintf(out, "memory: %s\n", mem)
		}
	}()
	if srv == nil {
		return cpu.print(out, okCount.Load(), "signup")
	}
	want := int(okCount.Load())
	dctx, cancel := context.WithTimeout(ctx, *drain)
	defer cancel()
	var lat []time.Duration
	var links []string
	seen := map[string]int{}
	for _, d := range srv.Wait(dctx, want) {
		seen[d.To]++
		if v, ok := acked.Load(d.To); ok && seen[d.To] == 1 {
			lat = append(lat, d.At.Sub(v.(time.Time)))
			if d.Link != "" {
				links = append(links, d.Link)
			}
		}
	}
	dups := 0
	for _, n := range seen {
		dups += n - 1
	}
	slices.Sort(lat)
	fmt.Fprintf(out, "mail: %d of %d confirmation mails received, %d duplicates, %d SMTP sessions\n", len(seen), want, dups, srv.Sessions())
	fmt.Fprintf(out, "mail latency (signup answered -> mail at SMTP server) p50 %v  p99 %v  max %v\n",
		Percentile(lat, 50).Round(100*time.Microsecond), Percentile(lat, 99).Round(100*time.Microsecond), Percentile(lat, 100).Round(100*time.Microsecond))
	if !*confirm {
		// With the sink, the CPU counts until the last mail arrived: a
		// signup is done when its confirmation mail is out.
		return cpu.print(out, okCount.Load(), "signup")
	}
	bases := strings.Split(*base, ",")
	before, err := confirmationsRecorded(ctx, bases)
	if err != nil {
		return err
	}
	clicks := clickLinks(ctx, bases, links, *clients)
	after, err := confirmationsRecorded(ctx, bases)
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "confirm: %d of %d mails' links pressed, %d clients\n%s", len(links), len(seen), *clients, clicks)
	fmt.Fprintf(out, "confirmations recorded: %d of %d (optin_confirmation_clicks_total, outcome recorded)\n", after-before, len(links))
	// The CPU counts until the last click was answered: per signup is
	// then per whole double opt-in, the click included.
	if err := cpu.print(out, okCount.Load(), "signup confirmed"); err != nil {
		return err
	}
	if n := after - before; int64(n) != okCount.Load() {
		return fmt.Errorf("bench: %d of %d signups were confirmed, so the CPU per signup confirmed above is too low", n, okCount.Load())
	}
	return nil
}

// clickLinks presses Confirm on each of links (paths on optin) from
// clients connections spread over the instances at bases, as the
// confirmation page's form does: a form post of an empty interaction
// field from a browser's user agent. Each answer must be 200.
func clickLinks(ctx context.Context, bases, links []string, clients int) Result {
	res := Result{Errors: map[string]int{}}
	next := make(chan string)
	go func() {
		defer close(next)
		for _, l := range links {
			select {
			case next <- l:
			case <-ctx.Done():
				return
			}
		}
	}()
	header := http.Header{"Content-Type": {"application/x-www-form-urlencoded"},
		"User-Agent": {"Mozilla/5.0 (X11; Linux x86_64; rv:145.0) Gecko/20100101 Firefox/145.0"}}
	var mu sync.Mutex
	var wg sync.WaitGroup
	start := time.Now()
	for w := range clients {
		cl, err := newClient(strings.TrimSuffix(bases[w%len(bases)], "/"), header, 30*time.Second)
		if err != nil {
			res.Errors[err.Error()]++
			break
		}
		wg.Go(func() {
			defer cl.close()
			var lat []time.Duration
			errs := map[string]int{}
			for link := range next {
				t0 := time.Now()
				status, err := cl.postTo(link, []byte("interaction="))
				switch {
				case err != nil:
					errs["transport"]++
				case status != http.StatusOK:
					errs[fmt.Sprintf("status %d", status)]++
				default:
					lat = append(lat, time.Since(t0))
				}
			}
			n := len(lat)
			for _, v := range errs {
				n += v
			}
			mu.Lock()
			defer mu.Unlock()
			res.add(n, lat, errs)
		})
	}
	wg.Wait()
	res.Duration = time.Since(start)
	slices.Sort(res.Latencies)
	return res
}

func runSink(ctx context.Context, args []string, out io.Writer) error {
	fs := flag.NewFlagSet("optin-bench sink", flag.ContinueOnError)
	fs.SetOutput(out) // where --help shows the flags
	listen := fs.String("listen", "127.0.0.1:2525", "address to listen on")
	dur := fs.Duration("duration", time.Minute, "how long to run")
	if err := fs.Parse(args); err != nil {
		return err
	}
	srv, err := NewSink(*listen)
	if err != nil {
		return err
	}
	defer srv.Close()
	fmt.Fprintf(out, "sink listening on %s for %v\n", srv.Addr(), *dur)
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	end := time.After(*dur)
	last := 0
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-end:
			fmt.Fprintf(out, "total %d mails in %d sessions\n", srv.Count(), srv.Sessions())
			return nil
		case <-tick.C:
			n := srv.Count()
			if n != last {
				fmt.Fprintf(out, "%d mails (+%d/s)\n", n, n-last)
				last = n
			}
		}
	}
}
