package web

import (
	"log/slog"
	"net/url"
	"optin/internal/consent"
	"strings"
	"sync"
	"time"
)

// sameOrigin reports whether the web origins a and b (scheme://host[:port])
// are the same place: equal, or both on a loopback host (localhost,
// 127.0.0.0/8, ::1) with the same scheme and port, since on one machine
// those names reach the same server and a developer may open a page under
// any of them.
func sameOrigin(a, b string) bool {
	if a == b {
		return true
	}
	ua, err := url.Parse(a)
	if err != nil || ua.Path != "" || ua.RawQuery != "" {
		return false
	}
	ub, err := url.Parse(b)
	if err != nil || ub.Path != "" || ub.RawQuery != "" {
		return false
	}
	return strings.EqualFold(ua.Scheme, ub.Scheme) && port(ua) == port(ub) &&
		consent.LoopbackHost(ua.Hostname()) && consent.LoopbackHost(ub.Hostname())
}

// port returns u's port, or its scheme's default.
func port(u *url.URL) string {
	if p := u.Port(); p != "" {
		return p
	}
	if strings.EqualFold(u.Scheme, "https") {
		return "443"
	}
	return "80"
}

// originLogGap is the least time between two log lines about origins
// refused for one form.
const originLogGap = time.Minute

// originLog logs the origins a form refuses, so an operator can see why
// an embedded form does not work: at most one line per form per
// originLogGap, counting the refusals it left out in between.
type originLog struct {
	log   *slog.Logger
	mu    sync.Mutex
	forms map[string]*originLogState // by form id; only forms that exist
}

type originLogState struct {
	last    time.Time // when the last line was written
	skipped int       // refusals since then, not logged
}

func newOriginLog(log *slog.Logger) *originLog {
	return &originLog{log: log, forms: map[string]*originLogState{}}
}

// refused records that form refused origin at now; allowed are the
// origins it accepts.
func (l *originLog) refused(now time.Time, form, origin string, allowed []string) {
	l.mu.Lock()
	st := l.forms[form]
	if st == nil {
		st = &originLogState{}
		l.forms[form] = st
	}
	if !st.last.IsZero() && now.Sub(st.last) < originLogGap {
		st.skipped++
		l.mu.Unlock()
		return
	}
	skipped := st.skipped
	st.last, st.skipped = now, 0
	l.mu.Unlock()
	l.log.Warn("origin refused", "form", form, "origin", consent.Truncate(origin, 200), "allowed", allowed,
		"refused_since_last_line", skipped)
}
