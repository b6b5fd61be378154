package bolt

import (
	"bytes"

	"go.etcd.io/bbolt"

	"optin/internal/bolt/record"
	"optin/internal/consent"
)

// Reading the subscriber indexes: a source of subscriber ids in listing
// order (ascending, or descending for newest first), from the index that
// serves a filter best, so that a filtered page or a campaign reads the
// subscribers the filter can match and not every one.

// ids yields subscriber ids in listing order; nil at the end.
type ids interface{ next() []byte }

// prefixIDs yields the ids of the keys under prefix in one bucket: the
// key with the prefix cut off (up to the first 0x00 after it, if any).
type prefixIDs struct {
	c       *bbolt.Cursor
	prefix  []byte
	desc    bool
	k       []byte
	started bool
	// stored: the keys end with an id as appendID stores it (sub_topics),
	// which next writes out.
	stored bool
}

// newPrefixIDs positions an id source on the keys of b under prefix,
// after id from (exclusive; "" starts at the top).
func newPrefixIDs(b *bbolt.Bucket, prefix []byte, from string, desc bool) *prefixIDs {
	return newIDSource(b, prefix, from, desc, false)
}

// newTopicIDs is newPrefixIDs on a bucket whose keys end with an id as
// appendID stores it (sub_topics, subscribers).
func newTopicIDs(b *bbolt.Bucket, prefix []byte, from string, desc bool) *prefixIDs {
	return newIDSource(b, prefix, from, desc, true)
}

func newIDSource(b *bbolt.Bucket, prefix []byte, from string, desc, stored bool) *prefixIDs {
	p := &prefixIDs{c: b.Cursor(), prefix: prefix, desc: desc, stored: stored}
	start := append([]byte(nil), prefix...)
	if stored {
		start = appendID(start, []byte(from))
	} else {
		start = append(start, from...)
	}
	var k []byte
	switch {
	case !desc:
		k, _ = p.c.Seek(start)
		for k != nil && from != "" && bytes.HasPrefix(k, prefix) && string(p.id(k)) == from {
			k, _ = p.c.Next()
		}
	default:
		if from == "" {
			start = prefixEnd(prefix)
		}
		// The last key before start: every key from start on holds an
		// id at or after from, or lies past the prefix.
		if k, _ = p.c.Seek(start); k == nil {
			k, _ = p.c.Last()
		} else {
			k, _ = p.c.Prev()
		}
	}
	p.k = k
	return p
}

func (p *prefixIDs) next() []byte {
	if p.started {
		if p.desc {
			p.k, _ = p.c.Prev()
		} else {
			p.k, _ = p.c.Next()
		}
	}
	p.started = true
	if p.k == nil || !bytes.HasPrefix(p.k, p.prefix) {
		p.k = nil
		return nil
	}
	return p.id(p.k)
}

// id returns the id written out of key k under the prefix.
func (p *prefixIDs) id(k []byte) []byte {
	if p.stored {
		return []byte(record.IDString(k[len(p.prefix):]))
	}
	return idOf(k, p.prefix)
}

// idOf cuts prefix off k, and anything from a 0x00 after it.
func idOf(k, prefix []byte) []byte {
	id := k[len(prefix):]
	if i := bytes.IndexByte(id, 0); i >= 0 {
		id = id[:i]
	}
	return id
}

// prefixEnd returns the first key after every key under prefix.
func prefixEnd(prefix []byte) []byte {
	end := append([]byte(nil), prefix...)
	for i := len(end) - 1; i >= 0; i-- {
		if end[i] < 0xff {
			end[i]++
			return end[:i+1]
		}
	}
	return []byte{0xff, 0xff, 0xff, 0xff} // no key has only 0xff bytes
}

// mergedIDs merges id sources, each in listing order, into one, each id
// once.
type mergedIDs struct {
	srcs  []ids
	heads [][]byte
	desc  bool
	last  []byte
}

func newMergedIDs(desc bool, srcs ...ids) ids {
	if len(srcs) == 1 {
		return srcs[0]
	}
	m := &mergedIDs{srcs: srcs, heads: make([][]byte, len(srcs)), desc: desc}
	for i, s := range srcs {
		m.heads[i] = s.next()
	}
	return m
}

func (m *mergedIDs) next() []byte {
	for {
		best := -1
		for i, h := range m.heads {
			if h == nil {
				continue
			}
			if best < 0 || (bytes.Compare(h, m.heads[best]) < 0) != m.desc {
				best = i
			}
		}
		if best < 0 {
			return nil
		}
		id := append([]byte(nil), m.heads[best]...)
		m.heads[best] = m.srcs[best].next()
		if !bytes.Equal(id, m.last) {
			m.last = id
			return id
		}
	}
}

// candidates returns the ids f can match, from the index that serves it:
// the subscriptions by topic and status when f names either (every
// status of the topic, or every topic in the status, merged), the
// customers when f asks for customers or dormant ones, else every
// subscriber. from is the id to continue after ("" from the top); a
// caller still checks each candidate against the whole filter.
func candidates(tx *bbolt.Tx, f consent.SubscriberFilter, from string) ids {
	desc := f.Newest
	if f.Topic != "" || f.Status != "" {
		topics := []string{f.Topic}
		if f.Topic == "" {
			topics = nil
			_ = tx.Bucket(bucketTopics).ForEach(func(k, _ []byte) error {
				topics = append(topics, string(k))
				return nil
			})
		}
		statuses := []consent.Status{f.Status}
		if f.Status == "" {
			statuses = []consent.Status{consent.StatusPending, consent.StatusConfirmed, consent.StatusUnsubscribed, consent.StatusLapsed}
		}
		var srcs []ids
		b := tx.Bucket(bucketSubTopics)
		for _, t := range topics {
			for _, s := range statuses {
				srcs = append(srcs, newTopicIDs(b, topicIndexPrefix(t, s), from, desc))
			}
		}
		return newMergedIDs(desc, srcs...)
	}
	if f.Lifecycle == consent.LifecycleCustomer || f.Lifecycle == consent.LifecycleDormant {
		return newPrefixIDs(tx.Bucket(bucketCustomers), nil, from, desc)
	}
	return newTopicIDs(tx.Bucket(bucketSubscribers), nil, from, desc)
}

// indexMatch reports whether subscriber id can match f by its index
// entries alone (its subscriptions and its last purchase), before its
// record is read; cutoff is when a last purchase makes a customer dormant.
func indexMatch(tx *bbolt.Tx, f consent.SubscriberFilter, id []byte, cutoff []byte) bool {
	if f.Lifecycle != "" {
		lp := tx.Bucket(bucketCustomers).Get(id)
		switch f.Lifecycle {
		case consent.LifecycleProspect:
			return lp == nil
		case consent.LifecycleCustomer:
			return lp != nil && bytes.Compare(lp, cutoff) > 0
		case consent.LifecycleDormant:
			return lp != nil && bytes.Compare(lp, cutoff) <= 0
		}
	}
	return true
}
