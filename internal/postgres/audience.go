package postgres

import (
	"context"
	"slices"

	"optin/internal/consent"
)

// Campaign audiences from indexes, as in the bbolt store (see
// consent.AudienceFacts): the confirmed rows of subscriber_topics carry
// each subscription's facts, basis and address hash; evidence holds the
// bases the ledger proves. The statements below read those rows in
// subscriber id order by the primary key, joining the evidence and the
// suppressions by their primary keys; no record or ledger event is read.

// markEvidence notes in evidence each topic and basis ev proves for its
// subscriber (consent.IsEvidence).
func markEvidence(t *tx, ev *consent.Event) error {
	var topics []string
	for _, topic := range ev.Topics {
		if consent.IsEvidence(ev, topic, ev.Basis) {
			topics = append(topics, topic)
		}
	}
	if len(topics) == 0 {
		return nil
	}
	return t.exec(`INSERT INTO evidence (topic, subscriber, basis) SELECT unnest($1::text[]), $2, $3 ON CONFLICT DO NOTHING`,
		topics, dbID(ev.Subscriber), string(ev.Basis))
}

// audienceRow is one subscriber as an audience statement reads it: the
// status of the campaign's topic ("" without it) and, when confirmed,
// the facts with the evidence and suppression looked up, and the other
// topics the campaign filters on that they hold confirmed.
type audienceRow struct {
	id     string
	status string
	facts  []byte
	f      consent.AudienceFacts
	others []string
}

// audienceColumns are the columns of an audienceRow read from st (a
// subscriber_topics row, or nulls), with $1 the topic and $4 the
// campaign's filter topics.
const audienceColumns = `coalesce(st.status, ''), st.facts,
	EXISTS (SELECT 1 FROM evidence e WHERE e.topic = st.topic AND e.subscriber = st.subscriber AND e.basis = st.basis),
	EXISTS (SELECT 1 FROM suppressions p WHERE p.hash = encode(st.address_hash, 'hex') AND p.scope IN ($1, '*')),
	CASE WHEN st.status = 'confirmed' AND cardinality($4::text[]) > 0 THEN ARRAY(SELECT o.topic FROM subscriber_topics o
		WHERE o.subscriber = st.subscriber AND o.status = 'confirmed' AND o.topic = ANY($4)) ELSE '{}' END`

// audienceRows reads up to limit subscribers after the id after for
// campaign c: those holding c's topic in status st, or every subscriber
// when st is "".
func audienceRows(c conn, camp *consent.Campaign, st consent.Status, after string, limit int) ([]audienceRow, error) {
	query := `SELECT st.subscriber, ` + audienceColumns + ` FROM subscriber_topics st
		WHERE st.topic = $1 AND st.status = $5 AND st.subscriber > $2 ORDER BY st.subscriber LIMIT $3`
	args := []any{camp.Topic, dbID(after), limit, camp.Audience.Topics, string(st)}
	if st == "" {
		query = `SELECT s.id, ` + audienceColumns + ` FROM subscribers s
			LEFT JOIN subscriber_topics st ON st.topic = $1 AND st.subscriber = s.id
			WHERE s.id > $2 ORDER BY s.id LIMIT $3`
		args = args[:4]
	}
	var rows []audienceRow
	var r audienceRow
	err := c.each(query, args, []any{scanID(&r.id), &r.status, &r.facts, &r.f.Evidence, &r.f.Suppressed, &r.others}, func() error {
		if r.status == string(consent.StatusConfirmed) {
			f, err := consent.DecodeAudienceFacts(r.facts)
			if err != nil {
				return err
			}
			f.Evidence, f.Suppressed = r.f.Evidence, r.f.Suppressed
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
	if r.status != string(consent.StatusConfirmed) {
		return false, consent.UnconfirmedReason(consent.Status(r.status)), nil
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
