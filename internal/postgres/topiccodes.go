package postgres

import (
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"optin/internal/consent"
)

// The subscriptions of a subscriber are in its row (migration 0021): subs
// holds an element a subscription, its topic's code (table topic_codes)
// times 4 plus its status's index (subCode), which the GIN index on subs
// finds; proven the bits of the bases its ledger events prove, by topic
// code (markEvidence). A write transaction gives a topic new to the table
// the highest code plus one under the write lock, as the table of shared
// strings numbers a string; an instance keeps the committed codes in
// memory (topicCodes) and reads the others from the table.

// maxTopicCode is the highest code a topic can have: subCode of it in
// the last status fits a smallint.
const maxTopicCode = 8191

// statusIndexes are the statuses' indexes in an element of subs.
var statusIndexes = map[consent.Status]int16{consent.StatusPending: 0, consent.StatusConfirmed: 1,
	consent.StatusUnsubscribed: 2, consent.StatusLapsed: 3}

// allStatuses are the statuses a subscription can have.
var allStatuses = []consent.Status{consent.StatusConfirmed, consent.StatusLapsed, consent.StatusPending, consent.StatusUnsubscribed}

// subCode is the element of subs of a subscription to the topic of code
// in status st; false for a status optin does not know, which no record
// holds.
func subCode(code int16, st consent.Status) (int16, bool) {
	i, ok := statusIndexes[st]
	return code*4 + i, ok
}

// topicCodes holds the committed entries of topic_codes.
type topicCodes struct {
	mu      sync.RWMutex
	byTopic map[string]int16
}

func (tc *topicCodes) get(topic string) (int16, bool) {
	tc.mu.RLock()
	defer tc.mu.RUnlock()
	code, ok := tc.byTopic[topic]
	return code, ok
}

func (tc *topicCodes) add(entries map[string]int16) {
	if len(entries) == 0 {
		return
	}
	tc.mu.Lock()
	defer tc.mu.Unlock()
	if tc.byTopic == nil {
		tc.byTopic = map[string]int16{}
	}
	for topic, code := range entries {
		tc.byTopic[topic] = code
	}
}

// topicCode returns the code of topic, and false when it has none (no
// subscriber has held it).
func topicCode(c conn, topic string) (int16, bool, error) {
	db := c.strs.db
	if code, ok := db.codes.get(topic); ok {
		return code, true, nil
	}
	if t := c.strs.t; t != nil {
		if code, ok := t.codes[topic]; ok {
			return code, true, nil
		}
	}
	var code int16
	err := c.q.QueryRow(c.ctx, "SELECT code FROM topic_codes WHERE topic = $1", topic).Scan(&code)
	if errors.Is(err, pgx.ErrNoRows) {
		return 0, false, nil
	}
	if err != nil {
		return 0, false, fmt.Errorf("postgres: topic code: %w", err)
	}
	// Not one this transaction gave (those are in t.codes): committed.
	db.codes.add(map[string]int16{topic: code})
	return code, true, nil
}

// code returns the code of topic, giving it one when it has none: the
// code is known to the DB once the transaction commits.
func (t *tx) code(topic string) (int16, error) {
	code, ok, err := topicCode(t.conn, topic)
	if err != nil || ok {
		return code, err
	}
	err = t.q.QueryRow(t.ctx, `INSERT INTO topic_codes (code, topic) SELECT coalesce(max(code), 0) + 1, $1 FROM topic_codes RETURNING code`,
		topic).Scan(&code)
	if pe := (*pgconn.PgError)(nil); errors.As(err, &pe) && pe.Code == "23514" {
		// check_violation: the codes are all given. The call fails
		// as a conflict the operator can read, not an internal error.
		return 0, consent.Errorf(consent.EConflict, "topic %q: subscriptions can be held to at most %d topics (table topic_codes is full)",
			topic, maxTopicCode)
	}
	if err != nil {
		return 0, fmt.Errorf("postgres: topic code of %q (at most %d topics): %w", topic, maxTopicCode, err)
	}
	if t.codes == nil {
		t.codes = map[string]int16{}
	}
	t.codes[topic] = code
	return code, nil
}

// allTopicCodes returns the code of every topic a subscriber has held:
// the table is as small as the catalog.
func allTopicCodes(c conn) ([]int16, error) {
	var codes []int16
	var code int16
	err := c.each("SELECT code FROM topic_codes ORDER BY code", nil, []any{&code}, func() error {
		codes = append(codes, code)
		return nil
	})
	return codes, err
}

// subsOf returns the elements of subs for sub's subscriptions, in
// order; nil for none (a NULL).
func subsOf(t *tx, sub *consent.Subscriber) ([]int16, error) {
	var subs []int16
	for topic, s := range sub.Subscriptions {
		code, err := t.code(topic)
		if err != nil {
			return nil, err
		}
		e, ok := subCode(code, s.Status)
		if !ok {
			return nil, fmt.Errorf("postgres: subscription to %q in status %q", topic, s.Status)
		}
		subs = append(subs, e)
	}
	slices.Sort(subs)
	return subs, nil
}

// subsText is subs as an array literal, for a bulk insert (whose arrays
// of rows cannot hold arrays); nil for none.
func subsText(subs []int16) *string {
	if subs == nil {
		return nil
	}
	var b strings.Builder
	b.WriteByte('{')
	for i, e := range subs {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(strconv.Itoa(int(e)))
	}
	b.WriteByte('}')
	s := b.String()
	return &s
}

// provenBits returns the bits proven holds for the topic of code.
func provenBits(proven []byte, code int16) int16 {
	for i := 0; i+3 <= len(proven); i += 3 {
		if int16(binary.BigEndian.Uint16(proven[i:])) == code {
			return int16(proven[i+2])
		}
	}
	return 0
}

// withProven returns proven with bits set for the topic of code, as a
// new slice when they were not all set already.
func withProven(proven []byte, code, bits int16) []byte {
	if bits == 0 || provenBits(proven, code)&bits == bits {
		return proven
	}
	out := make([]byte, 0, len(proven)+3)
	done := false
	for i := 0; i+3 <= len(proven); i += 3 {
		c := int16(binary.BigEndian.Uint16(proven[i:]))
		b := proven[i+2]
		switch {
		case c == code:
			b |= byte(bits)
			done = true
		case c > code && !done:
			out = binary.BigEndian.AppendUint16(out, uint16(code))
			out = append(out, byte(bits))
			done = true
		}
		out = append(out, proven[i], proven[i+1], b)
	}
	if !done {
		out = binary.BigEndian.AppendUint16(out, uint16(code))
		out = append(out, byte(bits))
	}
	return out
}
