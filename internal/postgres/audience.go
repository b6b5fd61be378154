package postgres

import (
	"context"
	"slices"
	"strings"

	"optin/internal/consent"
)

// Campaign audiences from indexes, as in the bbolt store (see
// consent.AudienceFacts): the confirmed rows of subscriber_topics carry
// each subscription's facts and address hash, and every row the bases
// the ledger proves for its topic (proven, migration 0016). The
// statements below read those rows in subscriber id order by the
// primary key, joining the suppressions by their primary key; no record
// or ledger event is read.
//
// proven holds a bit per basis (basisBit) that one of the subscriber's
// events proves for the row's topic (consent.IsEvidence), NULL for none.
// It is kept whichever comes first, the event or the row, as the bbolt
// store keeps its evidence flag:
//   - appending an event that proves a basis sets its bit on the
//     subscriber's rows of its topics (markEvidence), and notes it in the
//     transaction (tx.proven) for the rows written after it (the use
//     cases store their subscriber first, but an import appended its
//     event before its subscriber's rows existed until migration 0016);
//   - a row written for a topic the subscriber held in no status gets
//     the bits of the transaction's events, and, for a subscriber stored
//     before, those its ledger events prove (provenOf): the topic may
//     have been held and dropped (a pending subscription cancelled);
//   - a status change updates the row's status, keeping its bits;
//   - the counters rebuild writes every row anew, then sets the bits of
//     every event.

// basisBit is the bit of basis in proven: 0 for a basis that qualifies
// for nothing (the audience facts keep it as no basis).
func basisBit(basis consent.Basis) int16 {
	switch basis {
	case consent.BasisConsent:
		return 1
	case consent.BasisSoftOptIn:
		return 2
	case consent.BasisLegitimateInterest:
		return 4
	}
	return 0
}

// provenTopics returns the topics ev proves its basis for
// (consent.IsEvidence) and that basis's bit; none when it proves none
// that counts.
func provenTopics(ev *consent.Event) ([]string, int16) {
	bit := basisBit(ev.Basis)
	if bit == 0 {
		return nil, 0
	}
	var topics []string
	for _, topic := range ev.Topics {
		if consent.IsEvidence(ev, topic, ev.Basis) {
			topics = append(topics, topic)
		}
	}
	return topics, bit
}

// markEvidence sets the bit of each topic and basis ev proves on its
// subscriber's rows of those topics, and, when remember is set, notes it
// in t for the rows written later in the transaction.
func markEvidence(t *tx, ev *consent.Event, remember bool) error {
	topics, bit := provenTopics(ev)
	if len(topics) == 0 {
		return nil
	}
	if remember {
		if t.proven == nil {
			t.proven = map[string]map[string]int16{}
		}
		m := t.proven[ev.Subscriber]
		if m == nil {
			m = map[string]int16{}
			t.proven[ev.Subscriber] = m
		}
		for _, topic := range topics {
			m[topic] |= bit
		}
	}
	// subscriber_topics has no index by subscriber: the rows are probed
	// by the primary key (topic, status, subscriber), with their status
	// when the transaction wrote the subscriber (tx.subs), else in every
	// status.
	if held, ok := t.subs[ev.Subscriber]; ok {
		for _, topic := range topics {
			st, ok := held[topic]
			if !ok {
				continue // no row
			}
			err := t.exec(`UPDATE subscriber_topics SET proven = coalesce(proven, 0) | $4
				WHERE topic = $2 AND status = $3 AND subscriber = $1 AND coalesce(proven, 0) & $4 = 0`, dbID(ev.Subscriber), topic, statusCode(st), bit)
			if err != nil {
				return err
			}
		}
		return nil
	}
	return t.exec(`UPDATE subscriber_topics SET proven = coalesce(proven, 0) | $3
		WHERE topic = ANY($2) AND status = ANY(`+allCodes+`) AND subscriber = $1 AND coalesce(proven, 0) & $3 = 0`, dbID(ev.Subscriber), topics, bit)
}

// provenOf returns the bits subscriber id's ledger events prove for each
// of topics. The events are read by the hash index on subscriber and
// their type from the record (the row has no type column since
// migration 0020); provenTopics keeps those that prove a basis.
func provenOf(c conn, id string, topics []string) (map[string]int16, error) {
	out := map[string]int16{}
	var seq int64
	var b []byte
	err := c.each(`SELECT seq, event FROM ledger WHERE subscriber = $1`,
		[]any{dbID(id)}, []any{&seq, &b}, func() error {
			ev := new(consent.Event)
			if err := decodeEvent(b, seq, id, func() (string, error) { return "", nil }, c.shared(), ev); err != nil {
				return err
			}
			proved, bit := provenTopics(ev)
			for _, topic := range proved {
				if slices.Contains(topics, topic) {
					out[topic] |= bit
				}
			}
			return nil
		})
	return out, err
}

// statusCodes are the codes of the statuses in subscriber_topics.status,
// a "char" (migration 0016): the first byte of each, as PostgreSQL's
// cast of the text to "char" takes it.
var statusCodes = map[consent.Status]byte{consent.StatusPending: 'p', consent.StatusConfirmed: 'c',
	consent.StatusUnsubscribed: 'u', consent.StatusLapsed: 'l'}

// statusCode is the code of status s in subscriber_topics.status ('?'
// for a status optin does not know). A statement passes it as the Go
// byte, which pgx sends as a "char". (A status name passed as text to
// "status = $1" would match too, since the "char" input keeps its first
// byte; reading the column back gives the code, never the name.)
func statusCode(s consent.Status) byte {
	if c, ok := statusCodes[s]; ok {
		return c
	}
	return '?'
}

// allCodes is every status code as a "char"[] literal, for the
// statements that look for one subscriber's rows of given topics in any
// status: subscriber_topics has no index by subscriber (migration
// 0017), so they probe its primary key (topic, status, subscriber) once
// per topic and code. A status optin does not know ('?') is never
// written: every status a record holds has its code.
var allCodes = func() string {
	codes := make([]string, len(allStatuses))
	for i, st := range allStatuses {
		codes[i] = string(rune(statusCode(st)))
	}
	return `'{` + strings.Join(codes, ",") + `}'::"char"[]`
}()

// statusOf is the status of code c in subscriber_topics.status.
func statusOf(c byte) consent.Status {
	for s, code := range statusCodes {
		if code == c {
			return s
		}
	}
	return consent.Status(string(rune(c)))
}

// audienceRow is one subscriber as an audience statement reads it: the
// status of the campaign's topic ("" without it) and, when confirmed,
// the facts with the evidence and suppression looked up, and the other
// topics the campaign filters on that they hold confirmed.
type audienceRow struct {
	id     string
	status consent.Status
	facts  []byte
	proven int16
	f      consent.AudienceFacts
	others []string
}

// audienceColumns are the columns of an audienceRow read from st (a
// subscriber_topics row, or nulls), with $1 the topic and $4 the
// campaign's filter topics.
const audienceColumns = `st.status, st.facts,
	coalesce(st.proven, 0),
	EXISTS (SELECT 1 FROM suppressions p WHERE p.hash = encode(st.address_hash, 'hex') AND p.scope IN ($1, '*')),
	CASE WHEN st.status = 'c' AND cardinality($4::text[]) > 0 THEN ARRAY(SELECT o.topic FROM subscriber_topics o
		WHERE o.topic = ANY($4) AND o.status = 'c' AND o.subscriber = st.subscriber) ELSE '{}' END`

// audienceRows reads up to limit subscribers after the id after for
// campaign c: those holding c's topic in status st, or every subscriber
// when st is "".
func audienceRows(c conn, camp *consent.Campaign, st consent.Status, after string, limit int) ([]audienceRow, error) {
	query := `SELECT st.subscriber, ` + audienceColumns + ` FROM subscriber_topics st
		WHERE st.topic = $1 AND st.status = $5 AND st.subscriber > $2 ORDER BY st.subscriber LIMIT $3`
	args := []any{camp.Topic, dbID(after), limit, camp.Audience.Topics, statusCode(st)}
	if st == "" {
		query = `SELECT s.id, ` + audienceColumns + ` FROM subscribers s
			LEFT JOIN subscriber_topics st ON st.topic = $1 AND st.status = ANY(` + allCodes + `) AND st.subscriber = s.id
			WHERE s.id > $2 ORDER BY s.id LIMIT $3`
		args = args[:4]
	}
	var rows []audienceRow
	var r audienceRow
	var code *byte
	err := c.each(query, args, []any{scanID(&r.id), &code, &r.facts, &r.proven, &r.f.Suppressed, &r.others}, func() error {
		r.status = ""
		if code != nil {
			r.status = statusOf(*code)
		}
		if r.status == consent.StatusConfirmed {
			f, err := consent.DecodeAudienceFacts(r.facts)
			if err != nil {
				return err
			}
			f.Evidence, f.Suppressed = r.proven&basisBit(f.Basis) != 0, r.f.Suppressed
			r.f = f
		}
		rows = append(rows, r)
		r = audienceRow{}
		return nil
	})
	return rows, err
}

// answer applies the audience rule to row r with sel.
func (r *audienceRow) answer(sel *consent.AudienceSelector) (bool, string, error) {
	if r.status != consent.StatusConfirmed {
		return false, consent.UnconfirmedReason(r.status), nil
	}
	return sel.Select(r.f, func(t string) (bool, error) { return slices.Contains(r.others, t), nil })
}

// previewChunk is how many confirmed subscriptions one statement of a
// preview reads.
const previewChunk = 10000

// PreviewCampaign applies the campaign's audience rule and filters to
// the facts indexed with each subscription confirmed on its topic, and
// counts the others by reason from the counters
// (consent.Counts.Unwalked), all from one snapshot; it reads no record,
// and sends and changes nothing.
func (db *DB) PreviewCampaign(ctx context.Context, id string, p consent.CampaignPolicy) (consent.CampaignPreview, error) {
	c, err := db.Campaign(ctx, id)
	if err != nil {
		return consent.CampaignPreview{}, err
	}
	var pv consent.CampaignPreview
	err = db.view(ctx, func(cn conn) error {
		pv = consent.NewCampaignPreview()
		now := db.Now()
		counts, err := topicCounts(cn, c.Topic)
		if err != nil {
			return err
		}
		for reason, n := range counts.Unwalked(c.Topic, now, p) {
			pv.Excluded[reason] += n
		}
		sel := consent.NewAudienceSelector(c, now, p)
		for after := ""; ; {
			if err := ctx.Err(); err != nil {
				return err
			}
			rows, err := audienceRows(cn, c, consent.StatusConfirmed, after, previewChunk)
			if err != nil {
				return err
			}
			for i := range rows {
				ok, reason, err := rows[i].answer(sel)
				if err != nil {
					return err
				}
				pv.Count(ok, reason)
			}
			if len(rows) < previewChunk {
				return nil
			}
			after = rows[len(rows)-1].id
		}
	})
	return pv, err
}

// CampaignAudience lists one page of the campaign's audience: who is in,
// who is left out and why, in subscriber id order. It reads the index of
// the only status the page can keep (consent.AudienceStatuses), or every
// subscriber's id with their subscription's index row, answers from the
// indexed facts, and reads the records of the subscribers it shows; it
// sends and changes nothing.
func (db *DB) CampaignAudience(ctx context.Context, id string, p consent.CampaignPolicy, q consent.AudienceQuery) (consent.AudiencePage, error) {
	c, err := db.Campaign(ctx, id)
	if err != nil {
		return consent.AudiencePage{}, err
	}
	var page consent.AudiencePage
	err = db.view(ctx, func(cn conn) error {
		now := db.Now()
		l := consent.NewAudienceLister(c, q, now, p)
		sel := consent.NewAudienceSelector(c, now, p)
		var st consent.Status
		if s := consent.AudienceStatuses(q.Only); len(s) == 1 {
			st = s[0]
		}
		chunk := min(max(q.Limit*2, 100), consent.AudienceScan)
		for after := q.Cursor; ; {
			rows, err := audienceRows(cn, c, st, after, chunk)
			if err != nil {
				return err
			}
			for i := range rows {
				ok, reason, err := rows[i].answer(sel)
				if err != nil {
					return err
				}
				more := true
				if q.Keeps(ok, reason) {
					sub, err := subscriber(cn, rows[i].id)
					if err != nil {
						return err
					}
					if sub != nil {
						more = l.Add(sub, ok, reason)
					} else {
						more = l.Pass(rows[i].id)
					}
				} else {
					more = l.Pass(rows[i].id)
				}
				if !more {
					page = l.Page(false)
					return nil
				}
			}
			if len(rows) < chunk {
				page = l.Page(true)
				return nil
			}
			after = rows[len(rows)-1].id
		}
	})
	return page, err
}
