package bolt

import (
	"bytes"
	"context"
	"encoding/hex"
	"fmt"

	"go.etcd.io/bbolt"

	"optin/internal/bolt/record"
	"optin/internal/consent"
)

// Campaign audiences from indexes (see consent.AudienceFacts).
//
// The sub_topics entry of a confirmed subscription holds the address
// hash of its subscriber (its first addrHashLen bytes), its evidence
// flag (one byte: whether the ledger proves the subscription's basis for
// the topic) and its audience facts (AudienceFacts.Encode). The
// ledger_bysub entry of each event that proves a basis
// (consent.IsEvidence) holds that basis and the topics it proves it for
// (evidenceValue), written as the event is appended: the flag derives
// from them, and is kept with them in the same transaction whichever
// comes first (indexEntries reads them when it writes a confirmed entry;
// refreshEvidence sets the flag of an entry already written when an
// event's value is). A preview reads the topic's confirmed entries in
// one pass and checks each hash against the topic's suppressions read
// once into memory: it reads no other index, and decodes no record and
// no ledger event.

// evidenceValue returns the ledger_bysub value of ev: nil, or, when ev
// proves its basis for topics (consent.IsEvidence), the basis
// (appendBasis) and those topics, each but the first after a 0x00 (no
// topic id holds one). Derived version 4 and before kept a key per
// topic, subscriber and basis in a bucket of its own (evidence) instead:
// the same bytes and 16 of bbolt's again, besides those of the id.
func evidenceValue(ev *consent.Event) []byte {
	var v []byte
	for _, t := range ev.Topics {
		if !consent.IsEvidence(ev, t, ev.Basis) {
			continue
		}
		if v == nil {
			v = appendBasis(nil, ev.Basis)
		} else {
			v = append(v, 0)
		}
		v = append(v, t...)
	}
	return v
}

// appendBasis appends basis as its code (basisCodes), or as 0x00, the
// basis written out and 0x00.
func appendBasis(v []byte, basis consent.Basis) []byte {
	if c, ok := basisCodes[basis]; ok {
		return append(v, c)
	}
	return append(append(append(v, 0), basis...), 0)
}

// proves reports whether v, an evidenceValue, proves basis for topic.
func proves(v []byte, topic string, basis consent.Basis) bool {
	b := appendBasis(make([]byte, 0, 16), basis)
	if !bytes.HasPrefix(v, b) {
		return false
	}
	for rest := v[len(b):]; len(rest) > 0; {
		t, after, _ := bytes.Cut(rest, []byte{0})
		if string(t) == topic {
			return true
		}
		rest = after
	}
	return false
}

// setEvidence writes evidenceValue(ev) into ev's entry in ledger_bysub,
// in any form of key (ledgerBySubKeys), when it has one, and refreshes
// the evidence flags that value changes; a rebuild calls it for every
// event, after it has indexed every subscriber.
func setEvidence(tx *bbolt.Tx, ev *consent.Event) error {
	v := evidenceValue(ev)
	b := bucketOf(tx, bucketLedgerBySub)
	c := b.Cursor()
	for _, key := range ledgerBySubKeys(ev.Subscriber, ev.Seq) {
		if k, old := c.Seek(key); bytes.Equal(k, key) {
			if bytes.Equal(old, v) {
				return nil
			}
			if err := b.Put(key, v); err != nil {
				return err
			}
			return refreshEvidence(tx, ev)
		}
	}
	return nil
}

// refreshEvidence sets the evidence flag of each confirmed subscription
// of ev's subscriber to one of ev's topics anew from ledger_bysub
// (subscriberProofs.flag), once ev's value there has been written: an event
// appended after its subscriber's record was indexed, or an old
// database's value rewritten by a rebuild. Only ev's topics can have
// changed: its value names no others.
func refreshEvidence(tx *bbolt.Tx, ev *consent.Event) error {
	proofs := proofsOf(tx, ev.Subscriber)
	st := tx.Bucket(bucketSubTopics)
	for _, t := range ev.Topics {
		key := topicIndexKey(t, consent.StatusConfirmed, ev.Subscriber)
		v := st.Get(key)
		if len(v) <= addrHashLen {
			continue // not confirmed
		}
		f, err := consent.DecodeAudienceFacts(v[addrHashLen+1:])
		if err != nil {
			return fmt.Errorf("bolt: sub_topics entry %x: %w", key, err)
		}
		flag := flagByte(proofs.flag(t, f.Basis))
		if v[addrHashLen] == flag {
			continue
		}
		nv := bytes.Clone(v)
		nv[addrHashLen] = flag
		if err := bucketOf(tx, bucketSubTopics).Put(key, nv); err != nil {
			return err
		}
	}
	return nil
}

// subscriberProofs are the evidence values of one subscriber's events
// (evidenceOf), read from ledger_bysub when first needed and then kept:
// one search for all the subscriber's topics, not one per topic.
type subscriberProofs struct {
	tx     *bbolt.Tx
	id     string
	values [][]byte
	read   bool
}

func proofsOf(tx *bbolt.Tx, id string) *subscriberProofs { return &subscriberProofs{tx: tx, id: id} }

// flag is the evidence flag of the subscriber's confirmed subscription
// to topic on basis: whether its events prove basis for topic
// (hasEvidence). It is false for a basis the audience facts do not keep
// (basisCodes): such a basis qualifies for nothing, and its entry decodes
// as no basis, so the flag is the same whether it is worked out from the
// record (indexEntries) or from the entry (refreshEvidence).
func (p *subscriberProofs) flag(topic string, basis consent.Basis) bool {
	if _, kept := basisCodes[basis]; !kept {
		return false
	}
	if !p.read {
		p.values, p.read = evidenceOf(p.tx, p.id), true
	}
	return provesAny(p.values, topic, basis)
}

// flagByte is an evidence flag as a sub_topics entry holds it.
func flagByte(proved bool) byte {
	if proved {
		return 1
	}
	return 0
}

// hasEvidence reports whether subscriber id's events prove basis for
// topic, from their ledger_bysub entries in both forms of their
// subscriber part (ledgerBySubKey): the id's 22 bytes, and, in databases
// of schema version 2 and before or for an id that is not
// consent.NewID's, the id written out and 0x00.
func hasEvidence(tx *bbolt.Tx, id, topic string, basis consent.Basis) bool {
	return provesAny(evidenceOf(tx, id), topic, basis)
}

// evidenceOf returns the ledger_bysub values of subscriber id's events
// that prove a basis (evidenceValue), valid while tx is, for hasEvidence;
// a subscriber's index entries read them once for all its topics.
func evidenceOf(tx *bbolt.Tx, id string) [][]byte {
	prefixes := [][]byte{oldLedgerBySubKey(id, 0)[:len(id)+1]}
	if short := record.ID(id); len(short) != len(id) {
		prefixes = append(prefixes, short)
	}
	var out [][]byte
	c := tx.Bucket(bucketLedgerBySub).Cursor()
	for _, prefix := range prefixes {
		for k, v := c.Seek(prefix); hasPrefix(k, prefix); k, v = c.Next() {
			if _, ok := bySubSeq(k, len(prefix)); ok && len(v) > 0 {
				out = append(out, v)
			}
		}
	}
	return out
}

// provesAny reports whether one of values, evidenceValues, proves basis
// for topic.
func provesAny(values [][]byte, topic string, basis consent.Basis) bool {
	for _, v := range values {
		if proves(v, topic, basis) {
			return true
		}
	}
	return false
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

// audienceReader reads the audience facts of a topic's confirmed
// subscriptions with their evidence flags and suppression, in one read
// transaction.
type audienceReader struct {
	tx    *bbolt.Tx
	topic string
	// supp holds the address hashes suppressed for the topic or all; nil
	// looks each up in the suppressions bucket.
	supp map[[addrHashLen]byte]bool
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

// facts decodes the address hash, the evidence flag and the facts
// stored for subscriber id (v, from sub_topics) and looks up its
// suppression.
func (r *audienceReader) facts(id, v []byte) (consent.AudienceFacts, error) {
	if len(v) <= addrHashLen {
		return consent.AudienceFacts{}, fmt.Errorf("bolt: sub_topics entry of %x: %d bytes", id, len(v))
	}
	h := v[:addrHashLen]
	f, err := consent.DecodeAudienceFacts(v[addrHashLen+1:])
	if err != nil {
		return f, err
	}
	f.Evidence = v[addrHashLen] == flagByte(true)
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
// which hold the evidence flags, and the suppressions. Read one at a
// time from a cold page cache, they made the preview wait for the disk
// once per page.
func prefetchAudience(tx *bbolt.Tx, topic string) error {
	confirmed := topicIndexPrefix(topic, consent.StatusConfirmed)
	for _, r := range []struct {
		bucket, lo, hi []byte
	}{
		{bucketSubTopics, confirmed, prefixEnd(confirmed)},
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
			r := &audienceReader{tx: tx, topic: c.Topic, supp: supp}
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
			src = newTopicIDs(tx.Bucket(bucketSubscribers), nil, q.Cursor, false)
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
