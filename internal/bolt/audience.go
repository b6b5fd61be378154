package bolt

import (
	"bytes"
	"context"
	"encoding/hex"
	"fmt"

	"go.etcd.io/bbolt"

	"optin/internal/consent"
)

// Campaign audiences from indexes (see consent.AudienceFacts).
//
// The sub_topics entry of a confirmed subscription holds the address
// hash of its subscriber (its first addrHashLen bytes) and its audience
// facts (AudienceFacts.Encode);
// the evidence bucket holds one key per subscriber, topic and basis the
// ledger proves, written as each event is appended. Both are in
// subscriber id order within a topic, so a preview reads them side by
// side in one pass over the topic's confirmed subscriptions, and checks
// each hash against the topic's suppressions read once into memory. It
// decodes no record and no ledger event.

// evidenceKey names, in the evidence bucket, the proof of basis for topic
// of subscriber id.
// The id takes its 22 bytes (record.ID).
func evidenceKey(topic, id string, basis consent.Basis) []byte {
	return appendEvidenceKey(nil, topic, []byte(id), basis)
}

// appendEvidenceKey appends evidenceKey to k: the basis as its code
// (basisCodes), or written out.
func appendEvidenceKey(k []byte, topic string, id []byte, basis consent.Basis) []byte {
	k = append(append(k, topic...), 0)
	k = appendID(k, id)
	k = append(k, 0)
	if c, ok := basisCodes[basis]; ok {
		return append(k, c)
	}
	return append(k, basis...)
}

// markEvidence notes in the evidence bucket each topic and basis ev
// proves for its subscriber (consent.IsEvidence).
func markEvidence(tx *bbolt.Tx, ev *consent.Event) error {
	b := bucketOf(tx, bucketEvidence)
	for _, t := range ev.Topics {
		if !consent.IsEvidence(ev, t, ev.Basis) {
			continue
		}
		k := evidenceKey(t, ev.Subscriber, ev.Basis)
		if b.Get(k) != nil {
			continue
		}
		if err := b.Put(k, nil); err != nil {
			return err
		}
	}
	return nil
}

// addrHashLen is how much of an address hash sub_topics keeps: two
// addresses of a database and the suppression list agree in 16 bytes of
// a keyed hash by chance one time in 2^128 per pair, and a campaign run
// checks each person it picks on the record again.
const addrHashLen = 16

// addressHash returns the part of the hash of sub's address that
// sub_topics keeps with the facts of its confirmed subscriptions (nil for
// nil).
func addressHash(h *consent.Hasher, sub *consent.Subscriber) ([]byte, error) {
	if sub == nil {
		return nil, nil
	}
	raw, err := hex.DecodeString(h.Hash(consent.AddressKey(sub.Email))[:2*addrHashLen])
	if err != nil {
		return nil, fmt.Errorf("bolt: address hash: %w", err)
	}
	return raw, nil
}

// follower reads a bucket's keys alongside a walk in key order: at
// returns whether the walk's key has entries under it, moving on by a
// few steps and seeking past a longer gap.
type follower struct {
	c *bbolt.Cursor
	k []byte
	v []byte
}

func newFollower(b *bbolt.Bucket, from []byte) *follower {
	f := &follower{c: b.Cursor()}
	f.k, f.v = f.c.Seek(from)
	return f
}

// to moves to the first key at or after target and returns it and its
// value (nil at the end).
func (f *follower) to(target []byte) ([]byte, []byte) {
	for i := 0; f.k != nil && bytes.Compare(f.k, target) < 0; i++ {
		if i == 8 {
			f.k, f.v = f.c.Seek(target)
			break
		}
		f.k, f.v = f.c.Next()
	}
	return f.k, f.v
}

// audienceReader reads the audience facts of a topic's confirmed
// subscriptions with their evidence and suppression, in one read
// transaction.
type audienceReader struct {
	tx    *bbolt.Tx
	topic string
	// supp holds the address hashes suppressed for the topic or all; nil
	// looks each up in the suppressions bucket.
	supp map[[addrHashLen]byte]bool
	// ev follows the walk through the evidence bucket; nil for lookups
	// one at a time.
	ev  *follower
	key []byte // scratch: the evidence key
}

// suppressedHashes reads the address hashes suppressed for topic or for
// every topic.
func suppressedHashes(tx *bbolt.Tx, topic string) (map[[addrHashLen]byte]bool, error) {
	out := map[[addrHashLen]byte]bool{}
	err := tx.Bucket(bucketSuppressed).ForEach(func(k, _ []byte) error {
		i := bytes.IndexByte(k, 0)
		if i != 64 {
			return nil
		}
		if scope := string(k[i+1:]); scope != topic && scope != consent.ScopeAll {
			return nil
		}
		var h [addrHashLen]byte
		if _, err := hex.Decode(h[:], k[:2*addrHashLen]); err != nil {
			return fmt.Errorf("bolt: suppression key: %w", err)
		}
		out[h] = true
		return nil
	})
	return out, err
}

// facts decodes the address hash and facts stored for subscriber id (v,
// from sub_topics) and looks up its evidence and suppression.
func (r *audienceReader) facts(id, v []byte) (consent.AudienceFacts, error) {
	if len(v) < addrHashLen {
		return consent.AudienceFacts{}, fmt.Errorf("bolt: sub_topics entry of %x: %d bytes", id, len(v))
	}
	h := v[:addrHashLen]
	f, err := consent.DecodeAudienceFacts(v[addrHashLen:])
	if err != nil {
		return f, err
	}
	r.key = appendEvidenceKey(r.key[:0], r.topic, id, f.Basis)
	if r.ev != nil {
		k, _ := r.ev.to(r.key)
		f.Evidence = k != nil && bytes.Equal(k, r.key)
	} else {
		f.Evidence = r.tx.Bucket(bucketEvidence).Get(r.key) != nil
	}
	if r.supp != nil {
		f.Suppressed = r.supp[[addrHashLen]byte(h)]
	} else {
		f.Suppressed = suppressedPrefix(r.tx, h, r.topic)
	}
	return f, nil
}

// suppressedPrefix reports whether an address whose hash starts with h
// is suppressed for topic or for all.
func suppressedPrefix(tx *bbolt.Tx, h []byte, topic string) bool {
	prefix := []byte(hex.EncodeToString(h))
	c := tx.Bucket(bucketSuppressed).Cursor()
	for k, _ := c.Seek(prefix); hasPrefix(k, prefix); k, _ = c.Next() {
		if i := bytes.IndexByte(k, 0); i == 64 && (string(k[i+1:]) == topic || string(k[i+1:]) == consent.ScopeAll) {
			return true
		}
	}
	return false
}

// answer applies the audience rule with sel to subscriber id, whose
// facts v are stored in the index of the campaign's topic.
func (r *audienceReader) answer(sel *consent.AudienceSelector, id, v []byte) (bool, string, error) {
	f, err := r.facts(id, v)
	if err != nil {
		return false, "", err
	}
	return sel.Select(f, func(t string) (bool, error) { return confirmedOn(r.tx, id, t), nil })
}

// confirmedOn reports whether subscriber id holds topic confirmed.
func confirmedOn(tx *bbolt.Tx, id []byte, topic string) bool {
	return tx.Bucket(bucketSubTopics).Get(appendID(topicIndexPrefix(topic, consent.StatusConfirmed), id)) != nil
}

// prefetchAudience asks the kernel for the pages a preview of topic
// walks, all at once (prefetch.go): the topic's confirmed index entries,
// its evidence keys and the suppressions. Read one at a time from a cold
// page cache, they made the preview wait for the disk once per page.
func prefetchAudience(tx *bbolt.Tx, topic string) error {
	confirmed := topicIndexPrefix(topic, consent.StatusConfirmed)
	evidence := append([]byte(topic), 0)
	for _, r := range []struct {
		bucket, lo, hi []byte
	}{
		{bucketSubTopics, confirmed, prefixEnd(confirmed)},
		{bucketEvidence, evidence, prefixEnd(evidence)},
		{bucketSuppressed, nil, nil},
	} {
		if _, err := prefetch(tx, tx.Bucket(r.bucket), r.lo, r.hi, 0); err != nil {
			return err
		}
	}
	return nil
}

// previewChunk is how many confirmed subscriptions one read transaction
// of a preview reads: a long read transaction would keep a growing file
// from being remapped, holding up writes.
const previewChunk = 100000

// PreviewCampaign applies the campaign's audience rule and filters to
// the facts indexed with each subscription confirmed on its topic, in
// read transactions of previewChunk, and counts the others by reason
// from the counters (consent.Counts.Unwalked); the counters and the
// suppressions are read in the first transaction. It reads no record and
// sends and changes nothing.
func (db *DB) PreviewCampaign(ctx context.Context, id string, p consent.CampaignPolicy) (consent.CampaignPreview, error) {
	c, err := db.Campaign(ctx, id)
	if err != nil {
		return consent.CampaignPreview{}, err
	}
	pv := consent.NewCampaignPreview()
	now := db.Now()
	sel := consent.NewAudienceSelector(c, now, p)
	prefix := topicIndexPrefix(c.Topic, consent.StatusConfirmed)
	var cursor []byte
	var supp map[[addrHashLen]byte]bool
	for done := false; !done; {
		if err := ctx.Err(); err != nil {
			return consent.CampaignPreview{}, err
		}
		err := db.view(func(tx *bbolt.Tx) error {
			if err := derivedReady(tx); err != nil {
				return err
			}
			if cursor == nil { // the first transaction
				if err := prefetchAudience(tx, c.Topic); err != nil {
					return err
				}
				for reason, n := range topicCounts(tx, c.Topic).Unwalked(c.Topic, now, p) {
					pv.Excluded[reason] += n
				}
				var err error
				if supp, err = suppressedHashes(tx, c.Topic); err != nil {
					return err
				}
			}
			from := append(append([]byte(nil), prefix...), cursor...)
			r := &audienceReader{tx: tx, topic: c.Topic, supp: supp,
				ev: newFollower(tx.Bucket(bucketEvidence), evidenceKey(c.Topic, string(cursor), ""))}
			cur := tx.Bucket(bucketSubTopics).Cursor()
			k, v := cur.Seek(from)
			if cursor != nil && bytes.Equal(k, from) {
				k, v = cur.Next()
			}
			for n := 0; ; n++ {
				if !hasPrefix(k, prefix) {
					done = true
					return nil
				}
				if n == previewChunk {
					return nil
				}
				sid := k[len(prefix):]
				cursor = append(cursor[:0], sid...)
				ok, reason, err := r.answer(sel, sid, v)
				if err != nil {
					return err
				}
				pv.Count(ok, reason)
				k, v = cur.Next()
			}
		})
		if err != nil {
			return consent.CampaignPreview{}, err
		}
	}
	return pv, nil
}

// CampaignAudience lists one page of the campaign's audience: who is in,
// who is left out and why, in subscriber id order. It reads the index of
// the only statuses the page can keep (consent.AudienceStatuses), answers
// from the indexed facts, and decodes the records of the subscribers it
// shows; it sends and changes nothing.
func (db *DB) CampaignAudience(ctx context.Context, id string, p consent.CampaignPolicy, q consent.AudienceQuery) (consent.AudiencePage, error) {
	c, err := db.Campaign(ctx, id)
	if err != nil {
		return consent.AudiencePage{}, err
	}
	now := db.Now()
	l := consent.NewAudienceLister(c, q, now, p)
	sel := consent.NewAudienceSelector(c, now, p)
	ended := true
	err = db.view(func(tx *bbolt.Tx) error {
		if err := derivedReady(tx); err != nil {
			return err
		}
		supp, err := suppressedHashes(tx, c.Topic)
		if err != nil {
			return err
		}
		r := &audienceReader{tx: tx, topic: c.Topic, supp: supp}
		statuses := consent.AudienceStatuses(q.Only)
		var src ids
		if len(statuses) == 1 {
			src = newTopicIDs(tx.Bucket(bucketSubTopics), topicIndexPrefix(c.Topic, statuses[0]), q.Cursor, false)
		} else {
			src = newPrefixIDs(tx.Bucket(bucketSubscribers), nil, q.Cursor, false)
		}
		st := tx.Bucket(bucketSubTopics)
		for sid := src.next(); sid != nil; sid = src.next() {
			if err := ctx.Err(); err != nil {
				return err
			}
			ok, reason := false, ""
			if v := st.Get(appendID(topicIndexPrefix(c.Topic, consent.StatusConfirmed), sid)); v != nil {
				if ok, reason, err = r.answer(sel, sid, v); err != nil {
					return err
				}
			} else {
				reason = consent.UnconfirmedReason(statusOf(tx, sid, c.Topic))
			}
			var more bool
			if q.Keeps(ok, reason) {
				sub := new(consent.Subscriber)
				if found, err := get(tx, bucketSubscribers, sid, sub); err != nil {
					return err
				} else if !found {
					more = l.Pass(string(sid))
				} else {
					more = l.Add(sub, ok, reason)
				}
			} else {
				more = l.Pass(string(sid))
			}
			if !more {
				ended = false
				return nil
			}
		}
		return nil
	})
	if err != nil {
		return consent.AudiencePage{}, err
	}
	return l.Page(ended), nil
}

// statusOf returns the status of subscriber id's subscription to topic
// other than confirmed, from the index ("" without one).
func statusOf(tx *bbolt.Tx, id []byte, topic string) consent.Status {
	st := tx.Bucket(bucketSubTopics)
	for _, s := range []consent.Status{consent.StatusPending, consent.StatusUnsubscribed, consent.StatusLapsed} {
		if st.Get(appendID(topicIndexPrefix(topic, s), id)) != nil {
			return s
		}
	}
	return ""
}
