package postgres

import (
	"bytes"
	"context"
	"slices"

	"optin/internal/consent"
)

// Campaign audiences from indexes, as in the bbolt store (see
// consent.AudienceFacts): the GIN index on subscribers.subs finds the
// subscribers holding the campaign's topic in a status (migration 0021),
// whose records give the facts (consent.FactsOf) and whose proven column
// the bases their ledger events prove for each topic; the suppression
// hashes of a chunk's addresses are looked up in one statement. No
// ledger event is read.
//
// proven holds the bits (basisBit) of the bases one of the subscriber's
// events proves for a topic (consent.IsEvidence), by topic code
// (withProven). It is kept whichever comes first, the event or the
// subscription, as the bbolt store keeps its evidence flag:
//   - appending an event that proves a basis sets its bit on its
//     subscriber's row, whatever topics the subscriber holds, or, when
//     the row is not written yet, notes it in the transaction (tx.proven)
//     for the row's insert (an import appended its event before its
//     subscriber existed until migration 0016);
//   - a topic new to a subscriber stored before gets the bits its ledger
//     events prove (provenOf), when the row has none for it: a topic
//     dropped before migration 0021 lost them;
//   - a status change keeps them, and so does a topic dropped: its
//     events stay in the ledger;
//   - the counters rebuild sets them again from every subscriber's
//     events.

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
// subscriber's row (proven), or notes it in t for the row's insert when
// the subscriber is not stored yet. The row's proven is known when the
// transaction wrote the subscriber (tx.provens), else read.
func markEvidence(t *tx, ev *consent.Event) error {
	topics, bit := provenTopics(ev)
	if len(topics) == 0 {
		return nil
	}
	id := ev.Subscriber
	cur, known := t.provens[id]
	if !known {
		var stored bool
		err := t.each("SELECT proven FROM subscribers WHERE id = $1", []any{dbID(id)}, []any{&cur}, func() error {
			stored = true
			return nil
		})
		if err != nil {
			return err
		}
		if !stored {
			t.noteProven(id, topics, bit)
			return nil
		}
	}
	next := cur
	for _, topic := range topics {
		code, err := t.code(topic)
		if err != nil {
			return err
		}
		next = withProven(next, code, bit)
	}
	t.knowProven(id, next)
	if bytes.Equal(next, cur) {
		return nil
	}
	return t.exec("UPDATE subscribers SET proven = $2 WHERE id = $1", dbID(id), next)
}

// noteProven notes in t that the events of subscriber id, which is not
// stored yet, prove the basis of bit for topics: the subscriber's insert
// takes them (insertProven).
func (t *tx) noteProven(id string, topics []string, bit int16) {
	if t.proven == nil {
		t.proven = map[string]map[string]int16{}
	}
	m := t.proven[id]
	if m == nil {
		m = map[string]int16{}
		t.proven[id] = m
	}
	for _, topic := range topics {
		m[topic] |= bit
	}
}

// provenOf returns the bits subscriber id's ledger events prove for each
// of topics (provenOfMany).
func provenOf(c conn, id string, topics []string) (map[string]int16, error) {
	out := map[string]int16{}
	proven, err := provenOfMany(c, []*consent.Subscriber{{ID: id}})
	for topic, bits := range proven[id] {
		if slices.Contains(topics, topic) {
			out[topic] = bits
		}
	}
	return out, err
}

// provenOfMany returns, by subscriber and topic, the bits the ledger
// events of subs prove, in one statement: every event of theirs, which
// provenTopics keeps when it proves a basis (the type is the record's,
// as migration 0020, which drops the ledger's type column, reads it).
func provenOfMany(c conn, subs []*consent.Subscriber) (map[string]map[string]int16, error) {
	out := map[string]map[string]int16{}
	if len(subs) == 0 {
		return out, nil
	}
	ids := make([][]byte, len(subs))
	for i, sub := range subs {
		ids[i] = dbID(sub.ID)
	}
	var seq int64
	var id string
	var b []byte
	err := c.each(`SELECT seq, subscriber, event FROM ledger WHERE subscriber = ANY($1)`,
		[]any{ids}, []any{&seq, scanID(&id), &b}, func() error {
			ev := new(consent.Event)
			if err := decodeEvent(b, seq, id, func() (string, error) { return "", nil }, c.shared(), ev); err != nil {
				return err
			}
			proved, bit := provenTopics(ev)
			for _, topic := range proved {
				if out[id] == nil {
					out[id] = map[string]int16{}
				}
				out[id][topic] |= bit
			}
			return nil
		})
	return out, err
}

// audienceRow is one subscriber as an audience statement reads it: the
// status of the campaign's topic ("" without it) and, when confirmed,
// the facts with the evidence and suppression looked up.
type audienceRow struct {
	id     string
	sub    *consent.Subscriber
	status consent.Status
	f      consent.AudienceFacts
}

// audienceRows reads up to limit subscribers after the id after for
// campaign c: those holding c's topic in status st (subscriberChunk), or
// every subscriber when st is "".
func (db *DB) audienceRows(c conn, camp *consent.Campaign, st consent.Status, after string, limit int) ([]audienceRow, error) {
	code, coded, err := topicCode(c, camp.Topic)
	if err != nil {
		return nil, err
	}
	var rows []audienceRow
	var r subscriberRow
	var proven []byte
	var provens [][]byte
	add := func() error {
		sub, err := r.decode()
		if err != nil {
			return err
		}
		rows, provens = append(rows, audienceRow{id: sub.ID, sub: sub}), append(provens, bytes.Clone(proven))
		return nil
	}
	dest := append(r.dest(), &proven)
	if st == "" {
		err = c.each("SELECT "+subscriberColumns+", s.proven FROM subscribers s WHERE s.id > $1 ORDER BY s.id LIMIT $2",
			[]any{dbID(after), limit}, dest, add)
	} else if e, ok := subCode(code, st); ok && coded {
		err = subscriberChunk(c, where{held: true, holds: []int16{e}}, ", s.proven", dest, after, false, limit, add)
	}
	if err != nil {
		return nil, err
	}
	// The suppressions of the confirmed ones' addresses, in one
	// statement.
	var hashes []string
	for i := range rows {
		if s := rows[i].sub.Subscriptions[camp.Topic]; s != nil {
			rows[i].status = s.Status
		}
		if rows[i].status == consent.StatusConfirmed {
			hashes = append(hashes, db.hashKey(consent.AddressKey(rows[i].sub.Email)))
		}
	}
	suppressed := map[string]bool{}
	if len(hashes) > 0 {
		var h string
		err := c.each("SELECT hash FROM suppressions WHERE hash = ANY($1) AND scope IN ($2, '*')", []any{hashes, camp.Topic}, []any{&h}, func() error {
			suppressed[h] = true
			return nil
		})
		if err != nil {
			return nil, err
		}
	}
	for i := range rows {
		f, ok := consent.FactsOf(rows[i].sub, camp.Topic)
		if !ok {
			continue
		}
		f.Evidence = coded && provenBits(provens[i], code)&basisBit(f.Basis) != 0
		f.Suppressed = suppressed[hashes[0]]
		hashes = hashes[1:]
		rows[i].f = f
	}
	return rows, nil
}

// answer applies the audience rule to row r with sel.
func (r *audienceRow) answer(sel *consent.AudienceSelector) (bool, string, error) {
	if r.status != consent.StatusConfirmed {
		return false, consent.UnconfirmedReason(r.status), nil
	}
	return sel.Select(r.f, func(t string) (bool, error) {
		s := r.sub.Subscriptions[t]
		return s != nil && s.Status == consent.StatusConfirmed, nil
	})
}

// previewChunk is how many confirmed subscriptions one statement of a
// preview reads.
const previewChunk = 10000

// PreviewCampaign applies the campaign's audience rule and filters to
// the facts of each subscriber confirmed on its topic (their records,
// found through the index on subs), and counts the others by reason from
// the counters (consent.Counts.Unwalked), all from one snapshot; it
// reads no ledger event, and sends and changes nothing.
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
			rows, err := db.audienceRows(cn, c, consent.StatusConfirmed, after, previewChunk)
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
// subscriber, and answers from the facts of their records; it sends and
// changes nothing.
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
			rows, err := db.audienceRows(cn, c, st, after, chunk)
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
					more = l.Add(rows[i].sub, ok, reason)
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
