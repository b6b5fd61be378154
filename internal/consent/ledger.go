package consent

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"slices"
	"strconv"
	"strings"
	"time"

	"golang.org/x/mod/sumdb/tlog"

	"optin/internal/jsonenc"
)

// EventType is what happened in a consent ledger event.
type EventType string

// Ledger event types.
const (
	EventRequested          EventType = "requested"
	EventConfirmed          EventType = "confirmed"
	EventReconfirmed        EventType = "reconfirmed"
	EventUnsubscribed       EventType = "unsubscribed"
	EventLapsed             EventType = "lapsed"
	EventImported           EventType = "imported"
	EventPreferencesUpdated EventType = "preferences_updated"
	EventErased             EventType = "erased"
	EventCanceled           EventType = "canceled"
	// EventActivity records an action of the person (a purchase, an
	// enquiry, ...) and why it was recorded: the customer and
	// legitimate-interest trail.
	EventActivity EventType = "activity"
	// EventRectified records a correction of the person's data (GDPR
	// Art. 16); Field says which.
	EventRectified EventType = "rectified"
	// EventInformed records that the information notice of a person
	// whose data optin did not get from them (GDPR Art. 14) went out;
	// MessageID names the mail.
	EventInformed EventType = "informed"
	// EventChannelConsented records that the person let an optional
	// channel (Channel) carry Topics; EventChannelWithdrawn that they
	// took it back while keeping the topics. A topic's unsubscribed or
	// lapsed event ends its channels too.
	EventChannelConsented EventType = "channel_consented"
	EventChannelWithdrawn EventType = "channel_withdrawn"
	// EventFrequencyChosen records the person's choice of how often
	// Topics come (Frequency; "" for no choice).
	EventFrequencyChosen EventType = "frequency_chosen"
)

// Fields a rectified event names.
const (
	FieldName          = "name"
	FieldEmail         = "email"
	FieldPhone         = "phone"
	FieldPostalAddress = "postal_address"
)

// Event is one append-only entry of the consent ledger. Events form a hash
// chain: each carries the hash of the one before it, so changing, removing
// or reordering any event breaks every hash after it. They are also the
// leaves of a Merkle tree (see LeafData), whose signed heads make a
// rewrite of the whole chain detectable too.
//
// Personal data (address, IP, user agent) is kept apart in a [Personal]
// record that the event commits to by its digest. Erasure deletes that
// record and the chain still verifies.
type Event struct {
	Seq        uint64    `json:"seq"`
	Time       time.Time `json:"time"`
	Type       EventType `json:"type"`
	Subscriber string    `json:"subscriber"`
	Topics     []string  `json:"topics,omitempty"`
	Basis      Basis     `json:"basis,omitempty"`
	// Source is form:<id>, import:<batch>, campaign:<id>, admin:<key>,
	// preferences or one_click.
	Source string `json:"source"`
	// Page is the page URL or origin the form was used on.
	Page string `json:"page,omitempty"`
	// Wording is the SHA-256 of the exact consent wording shown.
	Wording   string `json:"wording,omitempty"`
	Request   string `json:"request,omitempty"`
	MessageID string `json:"message_id,omitempty"`
	// Field is what a rectified event corrected: FieldName or FieldEmail.
	Field string `json:"field,omitempty"`
	// Activity and OccurredAt are an activity event's kind and the time
	// the action happened (Time is when it was recorded).
	Activity   ActivityKind `json:"activity,omitempty"`
	OccurredAt time.Time    `json:"occurred_at,omitzero"`
	// Assessment is the legitimate-interest assessment an imported or
	// activity event cites (see Assessments.Cite).
	Assessment string `json:"assessment,omitempty"`
	// Channel is the channel a channel_consented or channel_withdrawn
	// event is about; Frequency the choice a frequency_chosen event
	// records.
	Channel   Channel   `json:"channel,omitempty"`
	Frequency Frequency `json:"frequency,omitempty"`
	// Check is a confirmed or reconfirmed event's verdict on who
	// clicked: a person or a mail scanner (see Classify).
	Check *Check `json:"check,omitempty"`
	// PersonalDigest is the SHA-256 of the event's Personal record.
	PersonalDigest string `json:"personal_digest,omitempty"`
	Prev           string `json:"prev"`
	Hash           string `json:"hash"`
}

// Personal is the personal part of a ledger event. Salt is random so the
// digest cannot be reversed by guessing addresses.
type Personal struct {
	Salt  string `json:"salt"`
	Email string `json:"email,omitempty"`
	// EmailHash replaces Email in the erased event: the suppression hash.
	EmailHash string `json:"email_hash,omitempty"`
	IP        string `json:"ip,omitempty"`
	UserAgent string `json:"user_agent,omitempty"`
	// Note is free text about the event, such as an activity's reason.
	Note string `json:"note,omitempty"`
	// Phone and PostalAddress are, in a channel_consented event, where
	// the channel reaches the person; in a rectified event, the new one.
	Phone         string `json:"phone,omitempty"`
	PostalAddress string `json:"postal_address,omitempty"`
}

// Digest returns the hex SHA-256 of p's JSON encoding.
func (p Personal) Digest() string {
	_, d := p.Encode()
	return d
}

// Encode returns p's JSON encoding, which is what the store keeps, and its
// digest, so a writer encodes p once for both.
func (p Personal) Encode() (data []byte, digest string) {
	data = p.appendJSON(make([]byte, 0, 128+len(p.Email)+len(p.UserAgent)+len(p.Note)+len(p.PostalAddress)))
	sum := sha256.Sum256(data)
	return data, hex.EncodeToString(sum[:])
}

// appendJSON appends p's JSON encoding, byte for byte what encoding/json
// writes for it (TestLedgerJSON compares them): digests made before it
// must still match.
func (p *Personal) appendJSON(b []byte) []byte {
	b = jsonenc.AppendString(append(b, `{"salt":`...), p.Salt)
	b = jsonenc.AppendOptional(b, `,"email":`, p.Email)
	b = jsonenc.AppendOptional(b, `,"email_hash":`, p.EmailHash)
	b = jsonenc.AppendOptional(b, `,"ip":`, p.IP)
	b = jsonenc.AppendOptional(b, `,"user_agent":`, p.UserAgent)
	b = jsonenc.AppendOptional(b, `,"note":`, p.Note)
	b = jsonenc.AppendOptional(b, `,"phone":`, p.Phone)
	b = jsonenc.AppendOptional(b, `,"postal_address":`, p.PostalAddress)
	return append(b, '}')
}

// ComputeHash returns the hash of e: SHA-256 over its JSON encoding with
// the Hash field empty. Prev must already be set.
func (e Event) ComputeHash() string {
	e.Hash = ""
	var buf [768]byte // most events fit: no allocation
	sum := sha256.Sum256(e.appendJSON(buf[:0]))
	return hex.EncodeToString(sum[:])
}

// appendJSON appends e's JSON encoding: byte for byte what encoding/json
// writes for it, in the order and with the omitempty and omitzero rules of
// its tags (TestLedgerJSON compares them over many events), because the
// hash chain and the Merkle leaves of every ledger and receipt written
// before are over those bytes. Marshal's reflection was most of the CPU
// of sealing an event. It panics on a time encoding/json refuses (a year
// past 9999), as the hashing did on Marshal's error.
func (e *Event) appendJSON(b []byte) []byte {
	b = strconv.AppendUint(append(b, `{"seq":`...), e.Seq, 10)
	b = appendEventTime(append(b, `,"time":`...), e.Time)
	b = jsonenc.AppendString(append(b, `,"type":`...), string(e.Type))
	b = jsonenc.AppendString(append(b, `,"subscriber":`...), e.Subscriber)
	b = appendStrings(b, `,"topics":`, e.Topics)
	b = jsonenc.AppendOptional(b, `,"basis":`, string(e.Basis))
	b = jsonenc.AppendString(append(b, `,"source":`...), e.Source)
	b = jsonenc.AppendOptional(b, `,"page":`, e.Page)
	b = jsonenc.AppendOptional(b, `,"wording":`, e.Wording)
	b = jsonenc.AppendOptional(b, `,"request":`, e.Request)
	b = jsonenc.AppendOptional(b, `,"message_id":`, e.MessageID)
	b = jsonenc.AppendOptional(b, `,"field":`, e.Field)
	b = jsonenc.AppendOptional(b, `,"activity":`, string(e.Activity))
	if !e.OccurredAt.IsZero() {
		b = appendEventTime(append(b, `,"occurred_at":`...), e.OccurredAt)
	}
	b = jsonenc.AppendOptional(b, `,"assessment":`, e.Assessment)
	b = jsonenc.AppendOptional(b, `,"channel":`, string(e.Channel))
	b = jsonenc.AppendOptional(b, `,"frequency":`, string(e.Frequency))
	if c := e.Check; c != nil {
		b = jsonenc.AppendString(append(b, `,"check":{"class":`...), string(c.Class))
		b = appendStrings(b, `,"reasons":`, c.Reasons)
		b = strconv.AppendInt(append(b, `,"after_mail_s":`...), c.AfterMail, 10)
		b = jsonenc.AppendOptional(b, `,"scanner_network":`, c.ScannerNetwork)
		b = strconv.AppendBool(append(b, `,"interaction":`...), c.Interaction)
		b = append(b, '}')
	}
	b = jsonenc.AppendOptional(b, `,"personal_digest":`, e.PersonalDigest)
	b = jsonenc.AppendString(append(b, `,"prev":`...), e.Prev)
	b = jsonenc.AppendString(append(b, `,"hash":`...), e.Hash)
	return append(b, '}')
}

// appendEventTime appends t as encoding/json does, panicking where it
// fails (see appendJSON).
func appendEventTime(b []byte, t time.Time) []byte {
	b, err := jsonenc.AppendTime(b, t)
	if err != nil {
		panic(err)
	}
	return b
}

// appendStrings appends key and ss as a JSON array of strings, or nothing
// when ss is empty (a field tagged omitempty).
func appendStrings(b []byte, key string, ss []string) []byte {
	if len(ss) == 0 {
		return b
	}
	b = append(append(b, key...), '[')
	for i, s := range ss {
		if i > 0 {
			b = append(b, ',')
		}
		b = jsonenc.AppendString(b, s)
	}
	return append(b, ']')
}

// Seal sets e.Prev to prev and e.Hash to the resulting hash, and returns
// e's LeafData. Strings that are not valid UTF-8 are repaired first (bad
// bytes become U+FFFD), as JSON would on storing them, so the stored event
// matches its hash.
//
// The leaf is made from the encoding that was hashed, not by encoding the
// event again: Hash is the last field and always present, so the hashed
// JSON ends in "hash":""} and the leaf is that with the hash filled in.
func (e *Event) Seal(prev string) []byte {
	for _, f := range []*string{&e.Subscriber, &e.Source, &e.Page, &e.Wording, &e.Request, &e.MessageID, &e.Assessment, &e.PersonalDigest} {
		*f = strings.ToValidUTF8(*f, "\uFFFD")
	}
	for i := range e.Topics {
		e.Topics[i] = strings.ToValidUTF8(e.Topics[i], "\uFFFD")
	}
	e.Prev = prev
	e.Hash = ""
	b := e.appendJSON(make([]byte, 0, 640))
	sum := sha256.Sum256(b)
	e.Hash = hex.EncodeToString(sum[:])
	const tail = `""}`
	if !bytes.HasSuffix(b, []byte(`"hash":`+tail)) {
		panic("consent: an event's JSON must end with its hash")
	}
	leaf := make([]byte, 0, len(b)+len(e.Hash))
	leaf = append(leaf, b[:len(b)-len(tail)]...)
	leaf = append(leaf, '"')
	leaf = append(leaf, e.Hash...)
	return append(leaf, tail[1:]...)
}

// Repaired returns p with strings that are not valid UTF-8 repaired, so
// its stored JSON matches its digest.
func (p Personal) Repaired() Personal {
	for _, f := range []*string{&p.Salt, &p.Email, &p.EmailHash, &p.IP, &p.UserAgent, &p.Note, &p.Phone, &p.PostalAddress} {
		*f = strings.ToValidUTF8(*f, "\uFFFD")
	}
	return p
}

// ChainError describes the first broken link found by a ledger walk.
type ChainError struct {
	Seq    uint64 `json:"seq"`
	Reason string `json:"reason"`
}

// Error implements error.
func (e *ChainError) Error() string {
	return "ledger: broken at event " + strconv.FormatUint(e.Seq, 10) + ": " + e.Reason
}

// Chain checks events one by one in sequence order: the hash chain, and
// the Merkle tree they build, against saved tree heads if any.
type Chain struct {
	prev    string
	nextSeq uint64
	tree    frontier
	heads   []tlog.Tree
	roots   map[int64]tlog.Hash // the tree's root at each head's size
	stored  []tlog.Hash         // the stored tree hashes of the last event
}

// Expect sets the saved tree heads the walk compares the ledger with
// (see Report); call it before the first Check.
func (c *Chain) Expect(heads []tlog.Tree) {
	c.heads = heads
	c.roots = map[int64]tlog.Hash{0: c.tree.root()}
}

// Check verifies e against the events seen before it and, when personal
// is non-nil, the personal record it commits to. It returns a *ChainError
// for the first problem.
func (c *Chain) Check(e *Event, personal *Personal) error {
	switch {
	case e.Seq != c.nextSeq+1:
		return &ChainError{Seq: e.Seq, Reason: "sequence gap after " + strconv.FormatUint(c.nextSeq, 10)}
	case e.Prev != c.prev:
		return &ChainError{Seq: e.Seq, Reason: "prev does not match the hash of the event before"}
	case e.ComputeHash() != e.Hash:
		return &ChainError{Seq: e.Seq, Reason: "content does not match its hash"}
	case personal != nil && personal.Digest() != e.PersonalDigest:
		return &ChainError{Seq: e.Seq, Reason: "personal record does not match its digest"}
	}
	c.prev, c.nextSeq = e.Hash, e.Seq
	c.stored = c.tree.add(tlog.RecordHash(e.LeafData()))
	for _, h := range c.heads {
		if h.N == c.tree.n {
			c.roots[h.N] = c.tree.root()
		}
	}
	return nil
}

// CheckStored compares the tree hashes a store keeps for the last event
// checked (tlog.StoredHashes) with those the walk computed, so that a
// wrong hash, which would make proofs fail, is found at its event.
func (c *Chain) CheckStored(got []tlog.Hash) error {
	if !slices.Equal(got, c.stored) {
		return &ChainError{Seq: c.nextSeq, Reason: "its stored tree hashes, which proofs are made from, do not match it"}
	}
	return nil
}

// LeafHash returns the leaf hash of the last event checked, for a store
// that keeps the other tree hashes only (see CheckStored).
func (c *Chain) LeafHash() tlog.Hash { return c.stored[0] }

// CheckTree compares the tree the store keeps for proofs, read from its
// stored hashes, with the tree of the events checked. A store that has
// not built its tree yet (size 0) is not compared.
func (c *Chain) CheckTree(stored tlog.Tree) error {
	if stored.N == 0 {
		return nil
	}
	if stored.N != c.tree.n || stored.Hash != c.tree.root() {
		return &ChainError{Seq: c.nextSeq, Reason: "the stored tree hashes, which proofs are made from, do not match the events"}
	}
	return nil
}

// Report returns the walk's result: broken is the first problem found
// (nil when none); the report is OK when there is none and the ledger
// extends every expected head.
func (c *Chain) Report(broken *ChainError) LedgerReport {
	rep := LedgerReport{Events: c.nextSeq, Root: c.tree.root(), Broken: broken}
	if len(c.heads) > 0 {
		rep.Heads = checkHeads(c.heads, c.roots, c.tree.n)
	}
	rep.OK = broken == nil && !slices.ContainsFunc(rep.Heads, func(h HeadCheck) bool { return !h.OK })
	return rep
}

// Head returns the hash of the last event checked.
func (c *Chain) Head() string { return c.prev }

// Count returns the number of events checked so far.
func (c *Chain) Count() uint64 { return c.nextSeq }
