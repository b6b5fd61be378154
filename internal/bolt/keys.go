// Package bolt is optin's store on the embedded bbolt database. Each use case
// is one read-write transaction that writes the record, its indexes, its
// ledger events and any outbox job together, so they can never drift apart.
package bolt

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"math/bits"
	"slices"
	"time"

	"go.etcd.io/bbolt"

	"optin/internal/bolt/record"
	"optin/internal/consent"
)

// Bucket names. Every key encoding lives in this file.
var (
	bucketMeta        = []byte("meta")           // fixed keys below
	bucketTopics      = []byte("topics")         // topic id -> consent.Topic
	bucketForms       = []byte("forms")          // form id -> consent.Form
	bucketWordings    = []byte("wordings")       // wording hash -> consent.Wording
	bucketSubscribers = []byte("subscribers")    // subscriberKey -> consent.Subscriber
	bucketAddresses   = []byte("addresses")      // addressIndexKey -> nil
	bucketEmails      = []byte("emails")         // schema version 4 and before: case-folded address -> subscriber id (record.ID); see convertAddresses
	bucketRequests    = []byte("requests")       // request id -> consent.Request
	bucketLedger      = []byte("ledger")         // be64 seq -> consent.Event
	bucketPersonal    = []byte("ledger_pii")     // be64 seq -> consent.Personal, without the address when its subscriber holds it (storePersonal)
	bucketLedgerBySub = []byte("ledger_bysub")   // ledgerBySubKey -> the basis the event proves and for which topics (evidenceValue), or nil
	bucketTree        = []byte("ledger_nodes")   // be64 record number -> the 32-byte tree hashes it completed (see tree.go)
	bucketOldTree     = []byte("ledger_tree")    // schema version 1: be64 stored hash index (tlog.StoredHashIndex) -> 32-byte hash
	bucketOutbox      = []byte("outbox")         // be64 next-at unix ms, be64 job id -> consent.Job
	bucketParked      = []byte("outbox_parked")  // be64 job id -> consent.Job that failed for good
	bucketAPIKeys     = []byte("apikeys")        // sha256 of key (hex) -> APIKey
	bucketReqBySub    = []byte("requests_bysub") // subscriber id 0x00 request id -> nil, for requests no event names (putRequest)
	bucketSuppressed  = []byte("suppressions")   // hmac (hex) 0x00 scope (topic id or "*") -> consent.Suppression
	bucketAudit       = []byte("audit")          // be64 seq -> audit entry (admin writes)
	// Reawaken campaigns (campaign.go).
	bucketCampaigns   = []byte("campaigns")           // campaign id -> consent.Campaign
	bucketRecipients  = []byte("campaign_recipients") // campaign id 0x00 subscriber id -> consent.Recipient
	bucketCampaignQ   = []byte("campaign_queued")     // campaign id 0x00 be64 job id -> subscriber id: first mails not yet out
	bucketCampaignDue = []byte("campaign_due")        // be64 due unix ms, kind byte, campaign id 0x00 subscriber id -> nil
	// Console sign-ins (session.go).
	bucketSessions = []byte("console_sessions") // sha256 of session id (hex) -> consent.Session
	// The breach register (incident.go).
	bucketIncidents = []byte("incidents") // incident id -> consent.Incident
	// Webhook endpoints and their deliveries (webhook.go).
	bucketWebhooks   = []byte("webhooks")       // webhook id -> consent.Webhook
	bucketHookQueue  = []byte("webhook_queue")  // hookQueueKey -> consent.Delivery
	bucketHookDue    = []byte("webhook_due")    // outboxKey of a group's first delivery -> its hookQueueKey
	bucketHookParked = []byte("webhook_parked") // webhook id 0x00 be64 delivery id -> consent.Delivery
	// Legitimate-interest assessments (assessment.go).
	bucketAssessments = []byte("assessments") // assessment id -> consent.Assessment
	// Counters and indexes, derived from the records (counters.go).
	bucketCounters  = []byte("counters")   // consent.Counts name -> be64 count (two's complement)
	bucketSubTopics = []byte("sub_topics") // topicIndexKey -> confirmed: the address hash (its first addrHashLen bytes), the evidence flag (subscriberProofs.flag: 1, the ledger proves the basis; 0) and the audience facts (consent.AudienceFacts.Encode); else nil
	bucketCustomers = []byte("customers")  // subscriber id -> timeKey(last purchase), customers only
	bucketPurchases = []byte("purchases")  // timeKey(last purchase), subscriber id -> nil
	// Derived version 4 and before: topic id 0x00 subscriber id
	// (appendID) 0x00 basis (basisCodes) -> nil, the ledger proves basis
	// (consent.IsEvidence); the ledger_bysub entries hold it now.
	bucketEvidence = []byte("evidence")
	// Derived version 3: subscriber id (appendID) -> HMAC of the address
	// key (32 bytes); the sub_topics entries of confirmed subscriptions
	// hold it now.
	bucketAddrHash = []byte("addr_hash")

	bucketStrings = []byte("strings") // strings many ledger events share (record.Strings)

	allBuckets = [][]byte{bucketMeta, bucketTopics, bucketForms, bucketWordings, bucketSubscribers,
		bucketAddresses, bucketRequests, bucketLedger, bucketPersonal, bucketLedgerBySub, bucketOutbox,
		bucketParked, bucketAPIKeys, bucketReqBySub, bucketSuppressed, bucketAudit,
		bucketCampaigns, bucketRecipients, bucketCampaignQ, bucketCampaignDue, bucketSessions, bucketIncidents,
		bucketWebhooks, bucketHookQueue, bucketHookDue, bucketHookParked, bucketAssessments, bucketTree,
		bucketCounters, bucketSubTopics, bucketCustomers, bucketPurchases, bucketStrings}
	// derivedBuckets hold what RebuildCounters recomputes from the records
	// (and the values of ledger_bysub, see setEvidence).
	derivedBuckets = [][]byte{bucketCounters, bucketSubTopics, bucketCustomers, bucketPurchases}
	// formerDerived held what RebuildCounters recomputed in a derived
	// version before; it deletes them.
	formerDerived = [][]byte{bucketAddrHash, bucketEvidence}

	keySchema     = []byte("schema_version")
	keyLedgerHead = []byte("ledger_head")      // be64 seq + hash (hex)
	keyTreeSize   = []byte("ledger_tree_size") // be64 number of events with their tree hashes stored, or "head": all of them
	keyDerived    = []byte("derived")          // derivedVersion once the counters and indexes are built
	keyRebuild    = []byte("derived_rebuild")  // while buildDerived has not finished: how far it came (walkAt.encode)
	keyEvenLeaf   = []byte("ledger_even_leaf") // be64 record number + leaf hash of the last even record (see storeTreeHashes)
	keyLastPair   = []byte("ledger_last_pair") // be64 record number + level-1 hash of the last record that completed only that level (see storeTreeHashes)
)

// appendOnly reports whether new keys of bucket name mostly sort after
// the existing ones (sequence numbers, ids that start with their creation
// time, or keys that end with such an id or time under a few prefixes),
// so its pages can be filled fuller.
func appendOnly(name []byte) bool {
	for _, b := range [][]byte{bucketLedger, bucketPersonal, bucketSubscribers, bucketRequests, bucketAudit, bucketTree,
		bucketLedgerBySub, bucketReqBySub, bucketSubTopics, bucketOutbox, bucketCustomers} {
		if bytes.Equal(name, b) {
			return true
		}
	}
	return false
}

// compact reports whether bucket name holds records in the compact
// encoding: those there is one or more of per subscriber.
func compact(name []byte) bool {
	for _, b := range [][]byte{bucketSubscribers, bucketRequests, bucketOutbox, bucketParked} {
		if bytes.Equal(name, b) {
			return true
		}
	}
	return false
}

// sharedIn reports whether the compact records of bucket keep the
// strings many of them share (a form's source, a page, a wording's hash,
// a user agent, the domain of a Message-ID) in bucket strings, as ledger
// events do. Subscribers do
// not: an export decodes them on other goroutines than the
// transaction's.
func sharedIn(name []byte) bool {
	for _, b := range [][]byte{bucketRequests, bucketOutbox, bucketParked, bucketPersonal} {
		if bytes.Equal(name, b) {
			return true
		}
	}
	return false
}

// SchemaVersion is the schema version of the databases this optin
// creates and writes: it is written on creation and Open refuses any
// other value but formerSchema and readableSchemas, which it converts
// (bbolt databases have no migrations).
const SchemaVersion = "7"

// formerSchema is the version of databases whose hot records are JSON
// and whose ledger tree keeps a key per hash: a read-write Open converts
// them (convertRecords), a read-only one reads them as they are.
const formerSchema = "1"

// keyedSchema is the version of databases whose compact records may
// still repeat their keys (a subscriber's or request's id, an outbox
// job's id and due time): this optin reads those as they are, and an
// open only sets the version, so that an optin of version 2 refuses the
// records that leave them to their keys.
const keyedSchema = "2"

// sharedSchema is the version of databases whose personal records,
// events and requests may still write out the user agents and wording
// hashes that later ones keep in the table of strings: this optin reads
// those as they are, and an open only sets the version, so that an optin
// of version 3 refuses the records that need the table for them.
const sharedSchema = "3"

// standaloneSchema is the version of databases whose queued confirmation
// mails hold every field, which later ones leave to their requests
// (leaveToRequest), and whose ledger tree holds the hashes of level 1,
// which later ones compute from the leaves (see tree.go): this optin
// reads both as they are.
const standaloneSchema = "4"

// sharedEvidenceSchema is the version of databases whose imported
// events keep their evidence text (page) in the table of strings, one
// string per row, which later ones store packed in the event
// (record.packedEvidence): this optin reads those as they are.
const sharedEvidenceSchema = "5"

// fullPersonalSchema is the version of databases whose personal records
// all hold their address, which later ones leave to their subscriber
// when it holds the same (storePersonal): this optin reads those as
// they are.
const fullPersonalSchema = "6"

// readableSchemas are the versions before SchemaVersion whose compact
// records this optin reads as they are: an open only sets
// SchemaVersion, so that an optin of such a version refuses the records
// it could not read.
var readableSchemas = []string{keyedSchema, sharedSchema, standaloneSchema, sharedEvidenceSchema, fullPersonalSchema}

func u64(n uint64) []byte {
	b := make([]byte, 8)
	binary.BigEndian.PutUint64(b, n)
	return b
}

// outboxKey orders jobs by when they are due, then by id.
func outboxKey(nextAt time.Time, id uint64) []byte {
	k := make([]byte, 16)
	binary.BigEndian.PutUint64(k, uint64(nextAt.UnixMilli()))
	binary.BigEndian.PutUint64(k[8:], id)
	return k
}

// outboxDue returns the due time encoded in an outbox key.
func outboxDue(k []byte) time.Time {
	return time.UnixMilli(int64(binary.BigEndian.Uint64(k))).UTC()
}

// hookGroup is the prefix of the webhook_queue keys of one endpoint's
// deliveries about one subscriber: webhook id 0x00 subscriber id 0x00.
func hookGroup(webhook, subscriber string) []byte { return append(pairKey(webhook, subscriber), 0) }

// hookQueueKey orders deliveries by endpoint, subscriber and id, so each
// group is one run of keys in commit order.
func hookQueueKey(d *consent.Delivery) []byte {
	return append(hookGroup(d.Webhook, d.Subscriber), u64(d.ID)...)
}

// hookParkedKey orders parked deliveries by endpoint and id.
func hookParkedKey(d *consent.Delivery) []byte { return append(pairKey(d.Webhook, ""), u64(d.ID)...) }

// subscriberKey returns the key subscriber id (written out) is stored
// under: the id's 22 bytes (record.ID; 36 written out until schema
// version 6, see convertSubscriberKeys), which sort as its characters
// do, or an id that is not consent.NewID's as it is.
func subscriberKey(id []byte) []byte { return appendID(nil, id) }

// storedKey returns key, as callers name a record of bucket, as bbolt
// stores it: subscriberKey for a subscriber, key itself elsewhere.
func storedKey(bucket, key []byte) []byte {
	if bytes.Equal(bucket, bucketSubscribers) {
		return subscriberKey(key)
	}
	return key
}

// getStored returns the value of the record of bucket named key, found
// under storedKey, or, for a subscriber of a database a read-write open
// has not converted yet (a read-only open's), under the id written out.
// A write transaction skips that second look: a read-write open converts
// the keys before anything else writes.
func getStored(b *bbolt.Bucket, bucket, key []byte) []byte {
	k := storedKey(bucket, key)
	v := b.Get(k)
	if v == nil && !bytes.Equal(k, key) && !b.Tx().Writable() {
		v = b.Get(key)
	}
	return v
}

// pairKey joins two strings with a 0x00 separator, which appears in no id,
// address hash or topic id.
func pairKey(a, b string) []byte {
	k := make([]byte, 0, len(a)+1+len(b))
	k = append(k, a...)
	k = append(k, 0)
	return append(k, b...)
}

// addressIndexKey names subscriber id under its case-folded address key
// in the addresses index: addressPrefix, then the id's 22 bytes
// (record.ID). 30 bytes instead of the address and the id, and an
// address read back from no index key.
func addressIndexKey(h *consent.Hasher, key, id string) []byte {
	return append(addressPrefix(h, key), record.ID(id)...)
}

// addressPrefix returns the first 8 bytes of the hash of address key
// key (consent.Hasher, keyed: nobody can make two addresses share them on
// purpose). Two addresses of a few billion share them by chance; a
// lookup tells them apart by the subscribers' addresses
// (subscriberByKey).
func addressPrefix(h *consent.Hasher, key string) []byte {
	b, _ := hex.DecodeString(h.Hash(key)[:16]) // lower-case hex
	return b
}

// ledgerBySubKey names event seq of subscriber sub in ledger_bysub: the
// id's 22 bytes (record.ID) and seq big-endian without its leading zero
// bytes (appendSeq), or, for an id that is not consent.NewID's, the id
// written out, 0x00 and be64 seq. Databases of schema version 6 and
// before hold seq in 8 bytes, and those of version 2 and before the id
// written out; subscriberEvents and setEvidence read every form.
func ledgerBySubKey(sub string, seq uint64) []byte {
	if id := record.ID(sub); len(id) != len(sub) {
		return appendSeq(id, seq)
	}
	return oldLedgerBySubKey(sub, seq)
}

// ledgerBySubKeys returns every key event seq of subscriber sub may have
// in ledger_bysub, the present form first.
func ledgerBySubKeys(sub string, seq uint64) [][]byte {
	keys := [][]byte{ledgerBySubKey(sub, seq)}
	if id := record.ID(sub); len(id) != len(sub) {
		keys = append(keys, append(id, u64(seq)...), oldLedgerBySubKey(sub, seq))
	}
	return keys
}

// appendSeq appends seq big-endian without its leading zero bytes (one
// byte at least): 3 bytes instead of 8 for a ledger of up to 16 million
// events. The key's length gives the number's.
func appendSeq(k []byte, seq uint64) []byte {
	for n := max(1, (bits.Len64(seq)+7)/8); n > 0; n-- {
		k = append(k, byte(seq>>(8*(n-1))))
	}
	return k
}

// bySubSeq returns the event number of ledger_bysub key k after the
// subscriber's part of prefixLen bytes (the id's 22 bytes: 1 to 8 bytes;
// the id written out and 0x00: 8 bytes), and whether k has one.
func bySubSeq(k []byte, prefixLen int) (uint64, bool) {
	n := len(k) - prefixLen
	return beUint64(k[prefixLen:]), n >= 1 && n <= 8
}

func oldLedgerBySubKey(sub string, seq uint64) []byte {
	k := make([]byte, 0, len(sub)+9)
	k = append(k, sub...)
	k = append(k, 0)
	return append(k, u64(seq)...)
}

// subscriberEvents returns the be64 numbers of subscriber sub's events,
// in order, from the keys of ledger_bysub in any form.
func subscriberEvents(tx *bbolt.Tx, sub string) [][]byte {
	b := tx.Bucket(bucketLedgerBySub)
	var seqs [][]byte
	prefixes := [][]byte{oldLedgerBySubKey(sub, 0)[:len(sub)+1]}
	if id := record.ID(sub); len(id) != len(sub) {
		prefixes = append(prefixes, id)
	}
	for _, prefix := range prefixes {
		for _, k := range keysWithPrefix(b, prefix) {
			if seq, ok := bySubSeq(k, len(prefix)); ok {
				seqs = append(seqs, u64(seq))
			}
		}
	}
	slices.SortFunc(seqs, bytes.Compare) // the forms sort apart, and numbers of 1 to 8 bytes too
	return seqs
}

// campaignQueuedKey names a queued first mail of a campaign.
func campaignQueuedKey(campaign string, job uint64) []byte {
	return append(pairKey(campaign, ""), u64(job)...)
}

// Kinds of campaign_due entries.
const (
	dueRemind   byte = 'r'
	dueDeadline byte = 'd'
)

// campaignDueKey orders a campaign's timed follow-ups (the reminder and
// the deadline of one recipient) by when they are due.
func campaignDueKey(at time.Time, kind byte, campaign, sub string) []byte {
	k := make([]byte, 0, 9+len(campaign)+1+len(sub))
	k = append(k, u64(uint64(at.UnixMilli()))...)
	k = append(k, kind)
	return append(k, pairKey(campaign, sub)...)
}

// topicIndexKey names one subscription in sub_topics: by topic, then
// status (statusCodes), then subscriber id (appendID: its 22 bytes, which
// sort as its characters do), so that the subscribers holding a topic in
// one status list in id order.
func topicIndexKey(topic string, s consent.Status, id string) []byte {
	return appendID(topicIndexPrefix(topic, s), []byte(id))
}

// topicIndexPrefix is the part of topicIndexKey before the id: the topic,
// 0x00 and the status's code, or a status without one written out and
// 0x00 (a letter comes after every code).
func topicIndexPrefix(topic string, s consent.Status) []byte {
	k := make([]byte, 0, len(topic)+len(s)+2+40)
	k = append(k, topic...)
	k = append(k, 0)
	if c, ok := statusCodes[s]; ok {
		return append(k, c)
	}
	k = append(k, s...)
	return append(k, 0)
}

// statusCodes and basisCodes are the bytes index keys write the statuses
// and bases as (derived version 4).
var (
	statusCodes = map[consent.Status]byte{consent.StatusPending: 1, consent.StatusConfirmed: 2,
		consent.StatusUnsubscribed: 3, consent.StatusLapsed: 4}
	basisCodes = map[consent.Basis]byte{consent.BasisConsent: 'c', consent.BasisSoftOptIn: 's',
		consent.BasisLegitimateInterest: 'l'}
)

// appendID appends to k the stored form of the id written out in id
// (record.ID: its 22 bytes, when it is one of consent.NewID's).
func appendID(k, id []byte) []byte {
	if len(id) == 36 {
		if b := record.ID(string(id)); len(b) == 22 {
			return append(k, b...)
		}
	}
	return append(k, id...)
}

// timeKey encodes t as 8 bytes that sort as the times do (nanoseconds
// since 1970 with the sign bit flipped).
func timeKey(t time.Time) []byte { return u64(uint64(t.UnixNano()) ^ 1<<63) }
