package mail

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	netmail "net/mail"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"optin/internal/bolt"
	"optin/internal/consent"
	"optin/internal/i18n"
	"optin/internal/smtptest"
	"optin/internal/token"
	"optin/templates"
)

// waitTimeout bounds every wait in these tests; they normally finish in
// milliseconds.
const waitTimeout = 10 * time.Second

// fastBackoff keeps retries quick in tests.
func fastBackoff(int) time.Duration { return 50 * time.Millisecond }

// outboxEnv is a real bbolt store with a topic and a form, and a real SMTP
// server.
type outboxEnv struct {
	db      *bolt.DB
	srv     *smtptest.Server
	form    consent.Form
	wording consent.Wording
	results *results
}

func newOutboxEnv(t *testing.T) *outboxEnv {
	t.Helper()
	e := &outboxEnv{srv: smtptest.Start(t, smtptest.Options{}), results: &results{}}
	db, err := bolt.Open(filepath.Join(t.TempDir(), "optin.db"), bolt.Options{MessageIDDomain: "optin.test",
		HMACKey: []byte("suppression-key-0123456789abcdef")})
	if err != nil {
		t.Fatalf("bolt.Open: %v", err)
	}
	t.Cleanup(func() {
		if err := db.Close(); err != nil {
			t.Errorf("closing db: %v", err)
		}
	})
	e.db = db
	e.form = consent.Form{ID: "newsletter", Topics: []string{"news"}, Locale: "en",
		Wording: map[string]string{"en": "Tick each topic you would like to receive by email:"}, WordingVersion: 1}
	e.wording = consent.Wording{Form: e.form.ID, Version: 1, Locale: "en", Text: e.form.Wording["en"],
		Topics: map[string]string{"news": "News"}}
	created, err := db.Bootstrap(context.Background(), consent.Topic{ID: "news", Name: "News"}, e.form,
		strings.Repeat("ab", 32))
	if err != nil || !created {
		t.Fatalf("Bootstrap: got %v, %v, want true, nil", created, err)
	}
	return e
}

// signup signs addr up for "news", which queues one confirmation mail, and
// returns the request it opened.
func (e *outboxEnv) signup(t *testing.T, addr string) *consent.Request {
	t.Helper()
	ctx := context.Background()
	a, err := consent.ParseAddress(addr)
	if err != nil {
		t.Fatalf("ParseAddress(%q): %v", addr, err)
	}
	res, err := e.db.Signup(ctx, consent.SignupInput{Form: &e.form, Address: a, Topics: []string{"news"},
		Locale: "en", IP: "192.0.2.1", UserAgent: "test"}, e.wording)
	if err != nil || !res.Queued {
		t.Fatalf("Signup(%s): got %+v, %v, want a queued mail", addr, res, err)
	}
	sub, err := e.db.SubscriberByAddress(ctx, a)
	if err != nil {
		t.Fatalf("SubscriberByAddress(%s): %v", addr, err)
	}
	req, err := e.db.Request(ctx, sub.PendingRequest)
	if err != nil {
		t.Fatalf("Request(%s): %v", sub.PendingRequest, err)
	}
	return req
}

// signupMany signs up n addresses and returns their requests by address.
func (e *outboxEnv) signupMany(t *testing.T, prefix string, n int) map[string]*consent.Request {
	t.Helper()
	reqs := make(map[string]*consent.Request, n)
	for i := range n {
		addr := fmt.Sprintf("%s%02d@example.com", prefix, i)
		reqs[addr] = e.signup(t, addr)
	}
	return reqs
}

// transport returns an SMTP transport to the test server, closed at the end
// of the test.
func (e *outboxEnv) transport(t *testing.T) *SMTPTransport {
	t.Helper()
	return newTransport(t, SMTPConfig{Host: e.srv.Host(), Port: e.srv.Port(), TLS: "none", Conns: 2,
		Timeout: 5 * time.Second})
}

// worker returns a worker over the env's store and the given transport,
// tuned for fast tests.
func (e *outboxEnv) worker(t *testing.T, tr Transport) *Worker {
	t.Helper()
	iss, err := token.NewIssuer(testBaseURL, []token.Key{{ID: "k1", Secret: testSecret}}, nil)
	if err != nil {
		t.Fatalf("token.NewIssuer: %v", err)
	}
	cat, err := i18n.Load(templates.FS, "locales")
	if err != nil {
		t.Fatalf("i18n.Load: %v", err)
	}
	r, err := NewRenderer(RendererConfig{Templates: templates.FS, Catalog: cat, Tokens: iss,
		BaseURL: testBaseURL, From: testFrom, Postal: testPostal})
	if err != nil {
		t.Fatalf("NewRenderer: %v", err)
	}
	return &Worker{Outbox: e.db, Renderer: r, Transport: tr, From: testFrom, Metrics: e.results,
		Senders: 4, Backoff: fastBackoff, Poll: 20 * time.Millisecond}
}

// waitAllFailed waits until the outbox holds n jobs that each failed at
// least attempts times.
func (e *outboxEnv) waitAllFailed(t *testing.T, n, attempts int) {
	t.Helper()
	waitFor(t, fmt.Sprintf("every job to fail %d times", attempts), func() bool {
		jobs := e.queuedJobs(t)
		for _, j := range jobs {
			if j.Attempts < attempts {
				return false
			}
		}
		return len(jobs) == n
	})
}

// depth returns the store's queued and parked job counts.
func (e *outboxEnv) depth(t *testing.T) (queued, parked int) {
	t.Helper()
	queued, parked, err := e.db.OutboxDepth(context.Background())
	if err != nil {
		t.Fatalf("OutboxDepth: %v", err)
	}
	return queued, parked
}

// queuedJobs returns every job still in the outbox, due or not.
func (e *outboxEnv) queuedJobs(t *testing.T) []consent.Job {
	t.Helper()
	jobs, err := e.db.DueJobs(context.Background(), time.Now().Add(24*time.Hour), 1<<20, nil)
	if err != nil {
		t.Fatalf("DueJobs: %v", err)
	}
	return jobs
}

// waitDepth waits until the outbox holds exactly queued and parked jobs.
func (e *outboxEnv) waitDepth(t *testing.T, queued, parked int) {
	t.Helper()
	waitFor(t, fmt.Sprintf("outbox depth %d queued, %d parked", queued, parked), func() bool {
		q, p := e.depth(t)
		return q == queued && p == parked
	})
}

// waitMessages waits for at least n messages at the SMTP server.
func (e *outboxEnv) waitMessages(t *testing.T, n int) []smtptest.Message {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	msgs, err := e.srv.Wait(ctx, n)
	if err != nil {
		t.Fatalf("waiting for %d messages: got %d: %v", n, len(msgs), err)
	}
	return msgs
}

// waitFor polls cond until it holds, failing the test after waitTimeout.
// It is for store state, which has no notification to wait on.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(waitTimeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", waitTimeout, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// start runs w until the returned stop is called (or the test ends); stop
// cancels Run's context and fails the test unless Run returns in time.
func start(t *testing.T, w *Worker) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		w.Run(ctx)
	}()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			select {
			case <-done:
			case <-time.After(waitTimeout):
				t.Errorf("Worker.Run did not return within %v of cancel", waitTimeout)
			}
		})
	}
	t.Cleanup(stop)
	return stop
}

// results counts the worker's send outcomes; an optional hook sees each.
type results struct {
	mu   sync.Mutex
	n    map[string]int
	hook func(result string)
}

func (r *results) MailResult(kind consent.JobKind, result string) {
	r.mu.Lock()
	if r.n == nil {
		r.n = map[string]int{}
	}
	r.n[result]++
	hook := r.hook
	r.mu.Unlock()
	if hook != nil {
		hook(result)
	}
}

func (r *results) get(result string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.n[result]
}

// received is one mail at the SMTP server, taken apart.
type received struct {
	envelopeTo []string
	to         string // the To header's address
	messageID  string // without brackets
}

func parseReceived(t *testing.T, msgs []smtptest.Message) []received {
	t.Helper()
	out := make([]received, 0, len(msgs))
	for _, m := range msgs {
		pm, err := netmail.ReadMessage(bytes.NewReader(m.Data))
		if err != nil {
			t.Fatalf("received message does not parse: %v\n%s", err, m.Data)
		}
		to, err := pm.Header.AddressList("To")
		if err != nil || len(to) != 1 {
			t.Fatalf("received To: got %v (%v), want one address", to, err)
		}
		id := pm.Header.Get("Message-Id")
		if !strings.HasPrefix(id, "<") || !strings.HasSuffix(id, ">") {
			t.Errorf("received Message-ID %q: want angle brackets", id)
		}
		out = append(out, received{envelopeTo: m.To, to: to[0].Address, messageID: strings.Trim(id, "<>")})
	}
	return out
}

// byMessageID counts the received mails per Message-ID.
func byMessageID(rs []received) map[string]int {
	n := map[string]int{}
	for _, r := range rs {
		n[r.messageID]++
	}
	return n
}

// duplicates returns how many received mails repeat an earlier Message-ID.
func duplicates(rs []received) int {
	return len(rs) - len(byMessageID(rs))
}

// checkAllDelivered checks that rs holds exactly one mail per request, to
// the right address under the request's Message-ID.
func checkAllDelivered(t *testing.T, rs []received, reqs map[string]*consent.Request) {
	t.Helper()
	if got, want := len(rs), len(reqs); got != want {
		t.Errorf("received mails: got %d, want %d", got, want)
	}
	if d := duplicates(rs); d != 0 {
		t.Errorf("duplicate deliveries (same Message-ID): got %d, want 0", d)
	}
	byID := map[string]string{}
	for addr, req := range reqs {
		byID[req.MessageID] = addr
	}
	seen := map[string]bool{}
	for _, r := range rs {
		addr, ok := byID[r.messageID]
		if !ok {
			t.Errorf("received Message-ID %q: want one of the stored requests' Message-IDs", r.messageID)
			continue
		}
		seen[addr] = true
		if r.to != addr {
			t.Errorf("Message-ID %s: To header got %q, want %q", r.messageID, r.to, addr)
		}
		if len(r.envelopeTo) != 1 || r.envelopeTo[0] != addr {
			t.Errorf("Message-ID %s: envelope recipients got %q, want [%s]", r.messageID, r.envelopeTo, addr)
		}
	}
	for addr := range reqs {
		if !seen[addr] {
			t.Errorf("no mail to %s", addr)
		}
	}
}

func TestWorkerDelivers(t *testing.T) {
	e := newOutboxEnv(t)
	reqs := e.signupMany(t, "user", 5)
	w := e.worker(t, e.transport(t))
	stop := start(t, w)

	e.waitMessages(t, 5)
	e.waitDepth(t, 0, 0)
	stop()

	msgs := e.srv.Messages()
	for _, m := range msgs {
		if got, want := m.From, "noreply@optin.test"; got != want {
			t.Errorf("envelope sender: got %q, want %q", got, want)
		}
	}
	checkAllDelivered(t, parseReceived(t, msgs), reqs)
	if got := e.srv.Sessions(); got >= 5 {
		t.Errorf("SMTP sessions for 5 mails: got %d, want fewer than 5 (connections are reused)", got)
	}
	if got, want := e.results.get("sent"), 5; got != want {
		t.Errorf(`results "sent": got %d, want %d`, got, want)
	}
}

// TestWorkerNotify checks that Notify wakes an idle worker at once, long
// before its poll interval.
func TestWorkerNotify(t *testing.T) {
	e := newOutboxEnv(t)
	w := e.worker(t, e.transport(t))
	w.Poll = time.Hour
	start(t, w)

	reqs := e.signupMany(t, "late", 1)
	w.Notify()
	e.waitMessages(t, 1)
	e.waitDepth(t, 0, 0)
	checkAllDelivered(t, parseReceived(t, e.srv.Messages()), reqs)
}

// TestWorkerOutage checks that no mail is lost or sent twice while the
// relay is down and after it comes back.
func TestWorkerOutage(t *testing.T) {
	e := newOutboxEnv(t)
	if err := e.srv.Stop(); err != nil {
		t.Fatalf("Stop: %v", err)
	}
	reqs := e.signupMany(t, "outage", 10)
	w := e.worker(t, e.transport(t))
	stop := start(t, w)

	e.waitAllFailed(t, 10, 1)
	for _, j := range e.queuedJobs(t) {
		if j.LastError == "" {
			t.Errorf("job %d: failed attempt without LastError", j.ID)
		}
	}
	if got := e.srv.Count(); got != 0 {
		t.Fatalf("messages during outage: got %d, want 0", got)
	}
	if err := e.srv.Restart(); err != nil {
		t.Fatalf("Restart: %v", err)
	}

	e.waitMessages(t, 10)
	e.waitDepth(t, 0, 0)
	stop() // let any send still in flight finish before counting
	rs := parseReceived(t, e.srv.Messages())
	t.Logf("outage: %d mails for 10 jobs, %d duplicates, %d retries", len(rs), duplicates(rs), e.results.get("retry"))
	checkAllDelivered(t, rs, reqs)
	if e.results.get("retry") < 10 {
		t.Errorf(`results "retry": got %d, want at least 10`, e.results.get("retry"))
	}
}

// TestWorkerExpeditesAfterRecovery: jobs backed off for an hour during an
// outage are sent as soon as one send succeeds again, not an hour later.
func TestWorkerExpeditesAfterRecovery(t *testing.T) {
	e := newOutboxEnv(t)
	if err := e.srv.Stop(); err != nil {
		t.Fatalf("Stop: %v", err)
	}
	reqs := e.signupMany(t, "backoff", 5)
	w := e.worker(t, e.transport(t))
	w.Backoff = func(int) time.Duration { return time.Hour }
	stop := start(t, w)
	e.waitAllFailed(t, 5, 1)
	if err := e.srv.Restart(); err != nil {
		t.Fatalf("Restart: %v", err)
	}
	for addr, r := range e.signupMany(t, "fresh", 1) { // due now: its success shows the relay is back
		reqs[addr] = r
	}
	w.Notify()
	e.waitMessages(t, 6)
	e.waitDepth(t, 0, 0)
	stop()
	checkAllDelivered(t, parseReceived(t, e.srv.Messages()), reqs)
}

func TestWorkerPermanentFailure(t *testing.T) {
	e := newOutboxEnv(t)
	reqs := e.signupMany(t, "perm", 4)
	e.srv.FailNext(1, 550, "no such user")
	w := e.worker(t, e.transport(t))
	stop := start(t, w)

	e.waitDepth(t, 0, 1)
	e.waitMessages(t, 3)
	stop()

	rs := parseReceived(t, e.srv.Messages())
	if got, want := len(rs), 3; got != want {
		t.Errorf("received mails: got %d, want %d", got, want)
	}
	if d := duplicates(rs); d != 0 {
		t.Errorf("duplicate deliveries: got %d, want 0", d)
	}
	delivered := map[string]bool{}
	for _, r := range rs {
		delivered[r.to] = true
	}
	for addr := range reqs {
		if !delivered[addr] {
			t.Logf("parked: the mail to %s", addr)
		}
	}
	if got, want := e.results.get("parked"), 1; got != want {
		t.Errorf(`results "parked": got %d, want %d`, got, want)
	}
	if got := e.results.get("retry"); got != 0 {
		t.Errorf(`results "retry": got %d, want 0 (a 550 is not retried)`, got)
	}
}

func TestWorkerTemporaryFailure(t *testing.T) {
	tests := []struct {
		name  string
		fails int
	}{
		{name: "451 once", fails: 1},
		// More failures than one attempt's send and redial: the job must
		// go back to the outbox and be retried after its backoff.
		{name: "451 three times", fails: 3},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newOutboxEnv(t)
			reqs := e.signupMany(t, "temp", 1)
			e.srv.FailNext(tt.fails, 451, "try again later")
			w := e.worker(t, e.transport(t))
			w.Senders = 1
			stop := start(t, w)

			e.waitMessages(t, 1)
			e.waitDepth(t, 0, 0)
			stop()
			checkAllDelivered(t, parseReceived(t, e.srv.Messages()), reqs)
			if tt.fails >= 3 && e.results.get("retry") < 1 {
				t.Errorf(`results "retry": got %d, want at least 1`, e.results.get("retry"))
			}
			if got := e.results.get("parked"); got != 0 {
				t.Errorf(`results "parked": got %d, want 0`, got)
			}
		})
	}
}

// TestWorkerMaxAttempts checks that a job failing temporarily for ever is
// parked after MaxAttempts and not retried without end.
func TestWorkerMaxAttempts(t *testing.T) {
	e := newOutboxEnv(t)
	e.signupMany(t, "max", 1)
	e.srv.FailNext(1000, 451, "try again later")
	w := e.worker(t, e.transport(t))
	w.MaxAttempts = 3
	w.Backoff = func(int) time.Duration { return 10 * time.Millisecond }
	stop := start(t, w)

	e.waitDepth(t, 0, 1)
	stop()
	if got := e.srv.Count(); got != 0 {
		t.Errorf("received mails: got %d, want 0", got)
	}
	if got, want := e.results.get("retry"), 2; got != want {
		t.Errorf(`results "retry": got %d, want %d`, got, want)
	}
	if got, want := e.results.get("parked"), 1; got != want {
		t.Errorf(`results "parked": got %d, want %d`, got, want)
	}
}

// TestWorkerConfigErrorParksNothing: a relay that refuses optin's
// configuration (here: no STARTTLS) keeps the mail queued past
// MaxAttempts, and the worker is not ready meanwhile, saying why.
func TestWorkerConfigErrorParksNothing(t *testing.T) {
	e := newOutboxEnv(t)
	e.signupMany(t, "config", 1)
	w := e.worker(t, newTransport(t, SMTPConfig{Host: e.srv.Host(), Port: e.srv.Port(), TLS: "starttls", Conns: 1}))
	w.MaxAttempts = 3
	w.Backoff = func(int) time.Duration { return 10 * time.Millisecond }
	stop := start(t, w)

	e.waitAllFailed(t, 1, 6)
	err := w.Ready()
	stop()
	if q, p := e.depth(t); q != 1 || p != 0 {
		t.Errorf("outbox: got %d queued, %d parked, want the mail still queued", q, p)
	}
	if err == nil || !strings.Contains(err.Error(), "the relay does not offer STARTTLS") {
		t.Errorf("Ready: got %v, want the relay's refusal of the TLS mode", err)
	}
}

// TestWorkerDropsClosedRequest checks that a confirmation mail whose
// request was confirmed or cancelled after queuing is never sent.
func TestWorkerDropsClosedRequest(t *testing.T) {
	tests := []struct {
		name  string
		close func(ctx context.Context, db *bolt.DB, id string) error
	}{
		{name: "confirmed", close: func(ctx context.Context, db *bolt.DB, id string) error {
			_, err := db.Confirm(ctx, id, consent.ConfirmInput{IP: "192.0.2.1"})
			return err
		}},
		{name: "not me", close: func(ctx context.Context, db *bolt.DB, id string) error {
			return db.NotMe(ctx, id, consent.ConfirmInput{IP: "192.0.2.1"})
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newOutboxEnv(t)
			req := e.signup(t, "closed@example.com")
			if err := tt.close(context.Background(), e.db, req.ID); err != nil {
				t.Fatalf("closing request: %v", err)
			}
			w := e.worker(t, e.transport(t))
			stop := start(t, w)

			e.waitDepth(t, 0, 0)
			stop()
			if got := e.srv.Count(); got != 0 {
				t.Errorf("received mails: got %d, want 0", got)
			}
			if got, want := e.results.get("dropped"), 1; got != want {
				t.Errorf(`results "dropped": got %d, want %d`, got, want)
			}
		})
	}
}

// TestWorkerShutdown cancels Run while sends are in flight, then lets a new
// worker take over: every mail arrives at least once.
func TestWorkerShutdown(t *testing.T) {
	const n = 30
	e := newOutboxEnv(t)
	reqs := e.signupMany(t, "shutdown", n)
	tr := e.transport(t)

	w1 := e.worker(t, tr)
	w1.Senders = 2
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var once sync.Once
	e.results.hook = func(string) { once.Do(cancel) } // shut down right after the first outcome
	done := make(chan struct{})
	go func() {
		defer close(done)
		w1.Run(ctx)
	}()
	select {
	case <-done:
	case <-time.After(waitTimeout):
		t.Fatalf("Worker.Run did not return within %v of cancel", waitTimeout)
	}
	e.results.mu.Lock()
	e.results.hook = nil
	e.results.mu.Unlock()

	queued, parked := e.depth(t)
	first := e.srv.Count()
	t.Logf("shutdown: %d mails sent before Run returned, %d jobs still queued", first, queued)
	if parked != 0 {
		t.Errorf("parked jobs after shutdown: got %d, want 0", parked)
	}
	if queued == 0 {
		t.Logf("every job finished before shutdown; the takeover below is trivial")
	}
	if got := first + queued; got < n {
		t.Errorf("sent + queued after shutdown: got %d, want at least %d (a job was lost)", got, n)
	}

	w2 := e.worker(t, tr)
	stop := start(t, w2)
	e.waitMessages(t, n)
	e.waitDepth(t, 0, 0)
	stop()

	rs := parseReceived(t, e.srv.Messages())
	got := byMessageID(rs)
	for addr, req := range reqs {
		if got[req.MessageID] < 1 {
			t.Errorf("no mail to %s", addr)
		}
	}
	t.Logf("shutdown: %d mails for %d jobs, %d duplicates (at-least-once delivery)", len(rs), n, duplicates(rs))
}

func TestFileTransport(t *testing.T) {
	r, _ := newTestRenderer(t)
	tests := []struct {
		name      string
		messageID string
		wantFile  string
	}{
		{name: "plain", messageID: "abc123@optin.test", wantFile: "abc123_at_optin.test.eml"},
		{name: "slash cannot leave the directory", messageID: "../../x/y@optin.test",
			wantFile: ".._.._x_y_at_optin.test.eml"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			job := testJob()
			job.MessageID = tt.messageID
			m, err := r.Render(job, testTopics, consent.Brand{})
			if err != nil {
				t.Fatalf("Render: %v", err)
			}
			msg, err := Build(testFrom, m, testDate)
			if err != nil {
				t.Fatalf("Build: %v", err)
			}
			var logBuf bytes.Buffer
			dir := filepath.Join(t.TempDir(), "mail") // created by Send
			ft := &FileTransport{Dir: dir, Log: slog.New(slog.NewTextHandler(&logBuf, nil))}
			if err := ft.Send(context.Background(), msg, m); err != nil {
				t.Fatalf("Send: %v", err)
			}
			if err := ft.Close(); err != nil {
				t.Errorf("Close: %v", err)
			}

			entries, err := os.ReadDir(dir)
			if err != nil {
				t.Fatal(err)
			}
			var names []string
			for _, de := range entries {
				names = append(names, de.Name())
			}
			if len(names) != 1 || names[0] != tt.wantFile {
				t.Fatalf("files in %s: got %q, want [%s] (and no temporary file)", dir, names, tt.wantFile)
			}
			raw, err := os.ReadFile(filepath.Join(dir, tt.wantFile))
			if err != nil {
				t.Fatal(err)
			}
			pm, err := netmail.ReadMessage(bytes.NewReader(raw))
			if err != nil {
				t.Fatalf(".eml file does not parse: %v", err)
			}
			if got, want := pm.Header.Get("Message-Id"), "<"+tt.messageID+">"; got != want {
				t.Errorf(".eml Message-ID: got %q, want %q", got, want)
			}
			if got, err := pm.Header.AddressList("To"); err != nil || len(got) != 1 || got[0].Address != job.To {
				t.Errorf(".eml To: got %v (%v), want [%s]", got, err, job.To)
			}
			if !strings.Contains(logBuf.String(), m.Link) {
				t.Errorf("log: got %q, want the mail's link %q", logBuf.String(), m.Link)
			}
			if strings.Contains(logBuf.String(), job.To) {
				t.Errorf("log: got %q, want no email address in it", logBuf.String())
			}
		})
	}
}

// TestWorkerFileTransport runs the worker against the file transport: the
// development setup.
func TestWorkerFileTransport(t *testing.T) {
	e := newOutboxEnv(t)
	req := e.signup(t, "dev@example.com")
	dir := t.TempDir()
	w := e.worker(t, &FileTransport{Dir: dir})
	stop := start(t, w)
	e.waitDepth(t, 0, 0)
	stop()

	raw, err := os.ReadFile(filepath.Join(dir, strings.ReplaceAll(req.MessageID, "@", "_at_")+".eml"))
	if err != nil {
		t.Fatalf("reading the .eml file: %v", err)
	}
	pm, err := netmail.ReadMessage(bytes.NewReader(raw))
	if err != nil {
		t.Fatalf(".eml file does not parse: %v", err)
	}
	if got, want := pm.Header.Get("Message-Id"), "<"+req.MessageID+">"; got != want {
		t.Errorf(".eml Message-ID: got %q, want %q", got, want)
	}
}

// staleScanOutbox is the real store with its timing pinned down. It makes
// a DueJobs read transaction start while a job is being delivered, and ask
// skip about that job only after the delivery has finished: the target's
// FinishJob waits until a scan holding the job in its snapshot lets it go
// on, and that scan then waits (briefly) until the worker no longer counts
// the job as in flight. In production the same interleaving happens by
// chance.
type staleScanOutbox struct {
	*bolt.DB
	w *Worker

	target    uint64 // the job whose FinishJob is held back
	held      atomic.Bool
	finishing chan uint64   // the target's id while its FinishJob waits, cap 1
	scanned   chan struct{} // closed when a scan lets FinishJob go on
}

func (o *staleScanOutbox) FinishJobs(ctx context.Context, jobs []consent.Job) error {
	for _, job := range jobs {
		if job.ID == o.target && o.held.CompareAndSwap(false, true) {
			o.finishing <- job.ID
			select {
			case <-o.scanned:
			case <-time.After(waitTimeout):
			}
		}
	}
	return o.DB.FinishJobs(ctx, jobs)
}

func (o *staleScanOutbox) DueJobs(ctx context.Context, now time.Time, limit int, skip func(id uint64) bool) ([]consent.Job, error) {
	return o.DB.DueJobs(ctx, now, limit, func(id uint64) bool {
		select {
		case fid := <-o.finishing:
			if fid != id {
				o.finishing <- fid // not this job; keep it for a later scan
				break
			}
			// This snapshot still holds the job: let its removal commit
			// and its delivery end, then ask.
			close(o.scanned)
			deadline := time.Now().Add(200 * time.Millisecond)
			for o.w.inflight.Has(id) && time.Now().Before(deadline) {
				time.Sleep(time.Millisecond)
			}
		default:
		}
		return skip(id)
	})
}

// TestWorkerNoResendFromStaleScan checks that a job delivered while the
// worker was reading the outbox is not handed out again from that read's
// stale snapshot, which would send the mail twice.
func TestWorkerNoResendFromStaleScan(t *testing.T) {
	e := newOutboxEnv(t)
	// bbolt cannot grow its memory map while a read transaction is open,
	// so a commit that needs to grow it would wait for the scan below and
	// hide the race. Grow the file first with one large record, and take
	// its job out of the outbox again.
	ctx := context.Background()
	ballast, err := consent.ParseAddress("ballast@example.com")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.db.Signup(ctx, consent.SignupInput{Form: &e.form, Address: ballast, Topics: []string{"news"},
		Locale: "en", UserAgent: strings.Repeat("x", 1<<20)}, e.wording); err != nil {
		t.Fatalf("Signup: %v", err)
	}
	for _, j := range e.queuedJobs(t) {
		if err := e.db.FinishJobs(ctx, []consent.Job{j}); err != nil {
			t.Fatalf("FinishJob: %v", err)
		}
	}
	reqs := e.signupMany(t, "stale", 1)
	jobs := e.queuedJobs(t)
	if len(jobs) != 1 {
		t.Fatalf("queued jobs: got %d, want 1", len(jobs))
	}
	w := e.worker(t, e.transport(t))
	o := &staleScanOutbox{DB: e.db, w: w, target: jobs[0].ID, finishing: make(chan uint64, 1),
		scanned: make(chan struct{})}
	w.Outbox = o
	stop := start(t, w)

	e.waitMessages(t, 1)
	e.waitDepth(t, 0, 0)
	select {
	case <-o.scanned:
	case <-time.After(waitTimeout):
		t.Fatalf("no scan overlapped the delivery; the test did not exercise the race")
	}
	stop() // waits for any send a stale snapshot started
	rs := parseReceived(t, e.srv.Messages())
	if d := duplicates(rs); d != 0 {
		t.Errorf("duplicate deliveries: got %d, want 0 (a stale outbox snapshot re-sent a delivered job)", d)
	}
	checkAllDelivered(t, rs, reqs)
}

// logRecorder is a slog.Handler that keeps every record.
type logRecorder struct {
	mu   sync.Mutex
	recs []slog.Record
}

func (h *logRecorder) Enabled(context.Context, slog.Level) bool { return true }
func (h *logRecorder) Handle(_ context.Context, r slog.Record) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.recs = append(h.recs, r.Clone())
	return nil
}
func (h *logRecorder) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h *logRecorder) WithGroup(string) slog.Handler      { return h }

// at returns the records at level or above.
func (h *logRecorder) at(level slog.Level) []slog.Record {
	h.mu.Lock()
	defer h.mu.Unlock()
	var out []slog.Record
	for _, r := range h.recs {
		if r.Level >= level {
			out = append(out, r)
		}
	}
	return out
}

// attr returns the value of r's attribute key.
func attr(r slog.Record, key string) slog.Value {
	var v slog.Value
	r.Attrs(func(a slog.Attr) bool {
		if a.Key == key {
			v = a.Value
			return false
		}
		return true
	})
	return v
}

// TestWorkerLogsRelayChanges: an outage is logged once when the relay
// goes down and once when it is back, with the number of mails that
// failed in between, not once per mail and attempt; RelayError tells the
// reason while it lasts, and nothing after.
func TestWorkerLogsRelayChanges(t *testing.T) {
	const n = 10
	e := newOutboxEnv(t)
	if err := e.srv.Stop(); err != nil {
		t.Fatalf("Stop: %v", err)
	}
	reqs := e.signupMany(t, "logged", n)
	w := e.worker(t, e.transport(t))
	logs := &logRecorder{}
	w.Log = slog.New(logs)
	if err := w.RelayError(); err != nil {
		t.Errorf("RelayError before any send: got %v, want nil", err)
	}
	stop := start(t, w)
	e.waitAllFailed(t, n, 2)
	if err := w.RelayError(); err == nil || !strings.Contains(err.Error(), "connect") {
		t.Errorf("RelayError while the relay is down: got %v, want the refused connection", err)
	}
	if err := w.Ready(); err != nil {
		t.Errorf("Ready while the relay is down: got %v, want nil (not optin's configuration)", err)
	}
	if err := e.srv.Restart(); err != nil {
		t.Fatalf("Restart: %v", err)
	}
	e.waitMessages(t, n)
	e.waitDepth(t, 0, 0)
	stop()
	checkAllDelivered(t, parseReceived(t, e.srv.Messages()), reqs)
	if err := w.RelayError(); err != nil {
		t.Errorf("RelayError after the relay is back: got %v, want nil", err)
	}

	warnings := logs.at(slog.LevelWarn)
	if len(warnings) != 1 || !strings.Contains(warnings[0].Message, "the mail relay fails") {
		for _, r := range warnings {
			t.Logf("%s %s", r.Level, r.Message)
		}
		t.Fatalf("warnings and errors: got %d, want 1 (the relay going down)", len(warnings))
	}
	var back []slog.Record
	for _, r := range logs.at(slog.LevelInfo) {
		if strings.Contains(r.Message, "accepts mail again") {
			back = append(back, r)
		}
	}
	if len(back) != 1 {
		t.Fatalf(`"accepts mail again" lines: got %d, want 1`, len(back))
	}
	if got := attr(back[0], "failed_meanwhile").Int64(); got < 2*n {
		t.Errorf("failed_meanwhile: got %d, want at least %d (%d mails failed twice)", got, 2*n, n)
	}
}

// expediteOutbox is the real store; it reports each ExpediteRetries that
// returned.
type expediteOutbox struct {
	*bolt.DB
	expedited chan int
}

func (o *expediteOutbox) ExpediteRetries(ctx context.Context, skip func(id uint64) bool) (int, error) {
	n, err := o.DB.ExpediteRetries(ctx, skip)
	o.expedited <- n
	return n, err
}

// TestWorkerNoResendAfterExpedite: the relay answers again while a mail
// that waited for its retry is being sent; making the retries due must
// not move that mail in the outbox, or its removal after the successful
// send misses it and it goes out a second time. The worker's clock runs
// two hours ahead of the store's, so the mail held in DATA is due for
// the worker while its retry time is still ahead for the store.
func TestWorkerNoResendAfterExpedite(t *testing.T) {
	e := newOutboxEnv(t)
	reqs := e.signupMany(t, "held", 1)
	e.srv.FailNext(1, 451, "try again later")
	// Without the check at start, whose success could count as later
	// than the first failure and hide it.
	w := e.worker(t, struct{ Transport }{e.transport(t)})
	w.Senders = 2
	w.Backoff = func(int) time.Duration { return time.Hour }
	var ahead atomic.Int64
	w.Now = func() time.Time { return time.Now().Add(time.Duration(ahead.Load())) }
	o := &expediteOutbox{DB: e.db, expedited: make(chan int, 16)}
	w.Outbox = o
	stop := start(t, w)
	e.waitAllFailed(t, 1, 1) // backed off for an hour

	var held string
	for addr := range reqs {
		held = addr
	}
	hold := e.srv.HoldData(held)
	ahead.Store(int64(2 * time.Hour))
	w.Notify()
	select {
	case <-hold.Arrived():
	case <-time.After(waitTimeout):
		t.Fatal("the retried mail never reached DATA")
	}

	for addr, r := range e.signupMany(t, "fresh", 1) { // its success shows the relay is back
		reqs[addr] = r
	}
	w.Notify()
	select {
	case <-o.expedited:
	case <-time.After(waitTimeout):
		t.Fatal("the retries were never made due")
	}
	hold.Release()
	e.waitMessages(t, 2)
	e.waitDepth(t, 0, 0)
	stop()
	checkAllDelivered(t, parseReceived(t, e.srv.Messages()), reqs)
}

// TestSendBatches: the jobs of one outbox read go to the senders in as
// few batches as maxSendBatch allows, each job once and in order, the
// batches of even sizes.
func TestSendBatches(t *testing.T) {
	for _, n := range []int{0, 1, 10, maxSendBatch, maxSendBatch + 1, 3*maxSendBatch + 5, 256} {
		due := make([]consent.Job, n)
		for i := range due {
			due[i].ID = uint64(i + 1)
		}
		batches := sendBatches(due)
		if want := (n + maxSendBatch - 1) / maxSendBatch; len(batches) != want {
			t.Errorf("%d jobs: got %d batches, want %d", n, len(batches), want)
		}
		next := uint64(1)
		for _, b := range batches {
			if len(b) > maxSendBatch || len(b) < n/len(batches) {
				t.Errorf("%d jobs: got a batch of %d, want %d to %d", n, len(b), n/len(batches), maxSendBatch)
			}
			for _, j := range b {
				if j.ID != next {
					t.Fatalf("%d jobs: got job %d, want %d (each once, in order)", n, j.ID, next)
				}
				next++
			}
		}
		if next != uint64(n+1) {
			t.Errorf("%d jobs: the batches hold %d, want all", n, next-1)
		}
	}
}
