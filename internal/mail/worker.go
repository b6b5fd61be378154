package mail

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"optin/internal/consent"
	"optin/internal/faillog"
	"optin/internal/flight"
)

// Outbox is what the worker needs from the store.
type Outbox interface {
	DueJobs(ctx context.Context, now time.Time, limit int, skip func(id uint64) bool) ([]consent.Job, error)
	NextDue(ctx context.Context) (time.Time, error)
	DeliverableBatch(ctx context.Context, jobs []consent.Job) ([]bool, error)
	FinishJobs(ctx context.Context, jobs []consent.Job) error
	RetryJob(ctx context.Context, job consent.Job, next time.Time, reason string) error
	ExpediteRetries(ctx context.Context, skip func(id uint64) bool) (int, error)
	ParkJob(ctx context.Context, job consent.Job, reason string) error
	Topic(ctx context.Context, id string) (consent.Topic, error)
	Form(ctx context.Context, id string) (consent.Form, error)
}

// Metrics receives send outcomes; nil disables them.
type Metrics interface {
	MailResult(kind consent.JobKind, result string)
}

// Worker delivers outbox jobs: at least once, because a job leaves the
// outbox only after the next hop accepted the mail. A crash between the
// SMTP answer and the removal resends the same message with the same
// Message-ID, which receivers use to drop the duplicate.
type Worker struct {
	Outbox    Outbox
	Renderer  *Renderer
	Transport Transport
	From      string
	// DKIM signs each mail; nil sends mail unsigned (the relay may sign).
	DKIM *DKIMSigner
	// ReturnPath gives each mail a VERP envelope sender; nil uses From.
	ReturnPath *ReturnPath
	Log        *slog.Logger
	Metrics    Metrics
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// Senders is the number of mail batches sent in parallel; default 8.
	Senders int
	// MaxAttempts parks a job after this many temporary failures; default 50
	// (about three days with the default backoff). A relay that refuses
	// the configuration (*ConfigError) parks nothing: the mail is not at
	// fault, and is retried until the configuration is fixed.
	MaxAttempts int
	// Backoff returns the wait after the n-th failed attempt (n >= 1).
	Backoff func(n int) time.Duration
	// Poll is the longest the worker sleeps without being woken; default 1 s.
	Poll time.Duration
	// Grace is how long Run, once its context is done, lets the sends in
	// progress finish before it abandons them; default 10 s.
	Grace time.Duration

	wake     chan struct{}
	relay    relayState
	expedite atomic.Bool // the relay is back: make the retries due
	once     sync.Once
	inflight flight.Set // the jobs being sent
}

func (w *Worker) init() {
	w.once.Do(func() {
		w.wake = make(chan struct{}, 1)
		if w.Now == nil {
			w.Now = time.Now
		}
		if w.Senders <= 0 {
			w.Senders = 8
		}
		if w.MaxAttempts <= 0 {
			w.MaxAttempts = 50
		}
		if w.Backoff == nil {
			w.Backoff = DefaultBackoff
		}
		if w.Poll <= 0 {
			w.Poll = time.Second
		}
		if w.Grace <= 0 {
			w.Grace = 10 * time.Second
		}
		if w.Log == nil {
			w.Log = slog.New(slog.DiscardHandler)
		}
	})
}

// DefaultBackoff doubles from 5 s up to 2 h.
func DefaultBackoff(n int) time.Duration {
	d := 5 * time.Second
	for i := 1; i < n && d < 2*time.Hour; i++ {
		d *= 2
	}
	return min(d, 2*time.Hour)
}

// Notify wakes the worker: a job was queued. It never blocks.
func (w *Worker) Notify() {
	w.init()
	select {
	case w.wake <- struct{}{}:
	default:
	}
}

// Run sends due jobs until ctx is cancelled. Then it takes no further
// job (those handed to the senders but not begun stay in the outbox as
// they are), lets the sends in progress finish for up to Grace, abandons
// those still waiting for the relay (their mails stay queued; a mail the
// relay took just before it was cut off goes out again later, as after a
// crash), and returns.
func (w *Worker) Run(ctx context.Context) {
	w.init()
	sendCtx, abandon := context.WithCancel(context.Background())
	defer abandon()
	// Run hands the senders the jobs of each read in batches (sendBatches).
	jobs := make(chan []consent.Job, 2*w.Senders)
	var wg sync.WaitGroup
	for range w.Senders {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for batch := range jobs {
				if ctx.Err() == nil {
					w.deliver(sendCtx, batch)
				}
			}
		}()
	}
	defer func() {
		close(jobs)
		senders := make(chan struct{})
		go func() {
			wg.Wait()
			close(senders)
		}()
		t := time.NewTimer(w.Grace)
		defer t.Stop()
		select {
		case <-senders:
		case <-t.C:
			w.Log.Warn("outbox: shutting down; abandoning the sends still waiting for the mail relay, "+
				"their mails stay queued", "grace", w.Grace)
			abandon()
			<-senders
		}
	}()
	if c, ok := w.Transport.(checker); ok {
		wg.Add(1)
		go func() {
			defer wg.Done()
			w.check(ctx, c)
		}()
	}
	readLog := faillog.New(w.Log, "outbox: reading due jobs", time.Now) // monotonic, not w.Now (faillog)
	for {
		// A wake waiting now is answered by this read: its jobs were
		// committed before Notify, and the expedite flag set before it.
		// Left waiting, it would cost a read that finds nothing (the
		// signups of one commit each notify).
		select {
		case <-w.wake:
		default:
		}
		w.inflight.Release()
		if w.expedite.Swap(false) {
			w.expediteRetries(ctx)
		}
		// The read leases what it returns (on PostgreSQL): cut off by
		// the shutdown, its statement may still commit its leases on the
		// server after the store's Close handed this instance's leases
		// back, and those mails would wait for the lease to run out
		// (postgres.outbox_lease, 5 minutes). So it runs to its end,
		// bounded, and the jobs it took are not sent (ctx is done) but
		// handed back with the rest.
		readCtx, cancelRead := context.WithTimeout(context.WithoutCancel(ctx), readTimeout)
		due, err := w.Outbox.DueJobs(readCtx, w.Now(), 256, w.inflight.Has)
		cancelRead()
		if err == nil {
			readLog.OK()
		} else if ctx.Err() == nil {
			readLog.Failed(err)
		}
		for _, batch := range sendBatches(due) {
			for _, j := range batch {
				w.inflight.Add(j.ID)
			}
			select {
			case jobs <- batch:
			case <-ctx.Done():
				for _, j := range batch {
					w.inflight.Drop(j.ID)
				}
				return
			}
		}
		if len(due) == 256 {
			continue
		}
		// A job due already is one this worker is sending (the read took
		// every other, and NextDue counts those too): the worker sleeps
		// until a new job wakes it or the next job is due, rather than
		// reading the outbox again every few milliseconds until the sends
		// end. A job a send left in the outbox waits for the next poll.
		wait := w.Poll
		if next, err := w.Outbox.NextDue(ctx); err == nil && !next.IsZero() {
			if d := next.Sub(w.Now()); d > 0 && d < wait {
				wait = max(d, 10*time.Millisecond)
			}
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-w.wake:
		case <-t.C:
		}
		t.Stop()
	}
}

// readTimeout bounds a read of the due jobs, which a shutdown does not
// cut off (see Run).
const readTimeout = 10 * time.Second

// maxSendBatch caps how many jobs one sender hands to the transport in
// one go: one send-time check, one pipelined SMTP exchange and one outbox
// commit for all of them. 64 rather than 16 made the outbox keep up with
// signups at full speed (mail p99 0.3 s instead of 2.8 s) on two cores.
const maxSendBatch = 64

// sendBatches splits the jobs of one outbox read into batches for the
// senders: as few as maxSendBatch allows, of even sizes, so that each
// batch's fixed costs (the send-time check, the SMTP exchange, the
// outbox commit) are shared by as many mails as possible, while a
// backlog of more than maxSendBatch still goes out over several
// senders in parallel.
func sendBatches(due []consent.Job) [][]consent.Job {
	n := (len(due) + maxSendBatch - 1) / maxSendBatch
	out := make([][]consent.Job, 0, n)
	for i := range n {
		out = append(out, due[i*len(due)/n:(i+1)*len(due)/n])
	}
	return out
}

// deliver sends a batch of jobs. The send runs under sendCtx, which a
// shutdown cancels once its grace is over; the outcomes are recorded
// under a context of their own. The mails a cancelled send did not get
// through are left in the outbox as they were.
func (w *Worker) deliver(sendCtx context.Context, batch []consent.Job) {
	defer func() {
		for _, j := range batch {
			w.inflight.Settle(j.ID)
		}
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	sendCtx, cancelSend := context.WithTimeout(sendCtx, 2*time.Minute)
	defer cancelSend()

	done := make([]consent.Job, 0, len(batch)) // sent or dropped: leave the outbox
	sendJobs := make([]consent.Job, 0, len(batch))
	msgs := make([]*Outgoing, 0, len(batch))
	ms := make([]Message, 0, len(batch))
	oks, err := w.Outbox.DeliverableBatch(ctx, batch)
	if err != nil {
		w.Log.Error("outbox: checking jobs", "err", err)
		return // they stay queued and are read again
	}
	topics := map[string]consent.Topic{} // looked up once per batch
	brands := map[string]consent.Brand{}
	for i, job := range batch {
		if !oks[i] {
			// Confirmed, cancelled, unsubscribed or erased since queuing.
			done = append(done, job)
			w.result(job, "dropped")
			continue
		}
		msg, m, err := w.build(ctx, job, topics, brands)
		if err != nil {
			w.park(ctx, job, err)
			continue
		}
		sendJobs, msgs, ms = append(sendJobs, job), append(msgs, msg), append(ms, m)
	}
	var errs []error
	var ticket uint64
	if len(msgs) > 0 {
		ticket = w.beginSend()
		errs = w.Transport.SendBatch(sendCtx, msgs, ms)
	}
	abandoned := context.Cause(sendCtx) == context.Canceled
	for i, job := range sendJobs {
		err := errs[i]
		switch {
		case err == nil:
			done = append(done, job)
			w.result(job, "sent")
		case abandoned:
			// Shutdown: no attempt is counted, the mail keeps its place.
		case errors.Is(err, ErrPermanent) || job.Attempts+1 >= w.MaxAttempts && configKey(err) == "":
			w.park(ctx, job, err)
		default:
			// The relay's state changes are logged (noteRelay), not
			// each mail that waits for it.
			next := w.Now().Add(w.Backoff(job.Attempts + 1))
			w.Log.Debug("outbox: temporary failure, will retry", "job", job.ID, "attempt", job.Attempts+1, "next", next, "err", err)
			if err := w.Outbox.RetryJob(ctx, job, next, err.Error()); err != nil {
				w.Log.Error("outbox: rescheduling job", "job", job.ID, "err", err)
			}
			w.result(job, "retry")
		}
	}
	if len(done) > 0 {
		if err := w.Outbox.FinishJobs(ctx, done); err != nil {
			w.Log.Error("outbox: finishing jobs", "err", err)
		}
	}
	if len(msgs) > 0 && !abandoned {
		w.recovered(ticket, errs)
	}
}

// recovered tells noteRelay what a batch's outcome says about the relay
// and, when it accepts mail again after failing, has Run make the mails
// waiting for a retry due at once.
func (w *Worker) recovered(ticket uint64, errs []error) {
	accepted, failed := false, 0
	var cause error
	for _, err := range errs {
		switch {
		case err == nil:
			accepted = true
		case !errors.Is(err, ErrPermanent):
			failed++
			if cause == nil {
				cause = err
			}
		}
	}
	if w.noteRelay(ticket, accepted, failed, cause) {
		w.expedite.Store(true)
		w.Notify()
	}
}

// expediteRetries makes the mails waiting for a retry due now. Run calls
// it between two reads of the outbox, so every job read before is in
// inflight until its outcome is committed: those keep their place, which
// their senders remove them by (see bolt's ExpediteRetries).
func (w *Worker) expediteRetries(ctx context.Context) {
	n, err := w.Outbox.ExpediteRetries(ctx, w.inflight.Has)
	if err != nil {
		if ctx.Err() == nil {
			w.Log.Error("outbox: expediting retries", "err", err)
		}
		return
	}
	w.Log.Info("outbox: retries are due now", "jobs", n)
}

func (w *Worker) park(ctx context.Context, job consent.Job, cause error) {
	w.Log.Error("outbox: parking job after permanent failure", "job", job.ID, "kind", job.Kind, "err", cause)
	if err := w.Outbox.ParkJob(ctx, job, cause.Error()); err != nil {
		w.Log.Error("outbox: parking job", "job", job.ID, "err", err)
	}
	w.result(job, "parked")
}

// build renders job and builds the mail. topics and brands cache
// topic and form lookups across a batch.
func (w *Worker) build(ctx context.Context, job consent.Job, topics map[string]consent.Topic,
	brands map[string]consent.Brand) (*Outgoing, Message, error) {
	ts := make([]consent.Topic, 0, len(job.Topics))
	for _, id := range job.Topics {
		t, ok := topics[id]
		if !ok {
			var err error
			if t, err = w.Outbox.Topic(ctx, id); err != nil {
				t = consent.Topic{ID: id, Name: id} // a deleted topic keeps its id as name
			}
			topics[id] = t
		}
		ts = append(ts, t)
	}
	brand, ok := brands[job.Form]
	if !ok && job.Form != "" {
		if f, err := w.Outbox.Form(ctx, job.Form); err == nil { // a deleted form leaves the configured brand
			brand = f.Brand
		}
		brands[job.Form] = brand
	}
	m, err := w.Renderer.Render(job, ts, brand)
	if err != nil {
		return nil, Message{}, err
	}
	msg, err := Build(w.From, m, w.Now())
	if err != nil {
		return nil, m, err
	}
	if w.ReturnPath != nil {
		if verp, ok := w.ReturnPath.Address(m.MessageID, m.To); ok {
			msg.From = angle(verp)
		}
	}
	if w.DKIM != nil {
		if err := w.DKIM.Sign(msg); err != nil {
			return nil, m, err
		}
	}
	return msg, m, nil
}

func (w *Worker) result(job consent.Job, r string) {
	if w.Metrics != nil {
		w.Metrics.MailResult(job.Kind, r)
	}
}
