package ledger

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"time"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"

	"optin/internal/consent"
)

// ReceiptVersion names the receipt format documented in docs/receipts.md.
const ReceiptVersion = "optin-consent-receipt/1"

// Receipt is a consent receipt: what one person consented to, the ledger
// events about them with the wording they saw, and for each event an
// inclusion proof in a signed tree head, so that anyone with the ledger's
// verifier key can check it offline. Field names follow ISO/IEC 27560
// consent records and the Kantara Consent Receipt where they fit.
type Receipt struct {
	Version string `json:"version"`
	// ReceiptID is unique per receipt (Kantara consentReceiptID).
	ReceiptID string `json:"receipt_id"`
	// IssuedAt is when the receipt was made (Kantara consentTimestamp).
	IssuedAt time.Time `json:"issued_at"`
	Language string    `json:"language,omitempty"`
	// Controller is who the consent was given to (ISO/IEC 27560 and
	// Kantara piiControllers).
	Controller Controller `json:"controller"`
	// PrivacyNotice is the controller's privacy notice (Kantara policyUrl).
	PrivacyNotice string `json:"privacy_notice"`
	// PIIPrincipalID is the person's opaque id in optin, never the
	// address (Kantara piiPrincipalId).
	PIIPrincipalID string `json:"pii_principal_id"`
	// Purposes are the person's standing per topic when the receipt was
	// made (ISO/IEC 27560 purpose, legal basis and consent state).
	Purposes []Purpose `json:"purposes"`
	// Events are the ledger events about the person, in ledger order.
	Events []ReceiptEvent `json:"events"`
	// TreeHead is the signed head every inclusion proof leads to.
	TreeHead string `json:"tree_head"`
	// VerifierKeys are the keys the server published when the receipt was
	// made; a verifier should use keys obtained independently (--key).
	VerifierKeys []string `json:"verifier_keys"`
}

// Controller names the data controller.
type Controller struct {
	Name          string `json:"name"`
	PostalAddress string `json:"postal_address,omitempty"`
	URL           string `json:"url"`
}

// Purpose is the person's standing on one topic.
type Purpose struct {
	Topic string `json:"topic"`
	// Purpose is the topic's name as shown on forms.
	Purpose     string         `json:"purpose"`
	Status      consent.Status `json:"status"`
	LawfulBasis consent.Basis  `json:"lawful_basis,omitempty"`
	Since       time.Time      `json:"since"`
}

// ReceiptEvent is one ledger event with its proof.
type ReceiptEvent struct {
	// Leaf is the event as the ledger's tree commits to it: its JSON
	// encoding (consent.Event.LeafData), as bytes (base64 in the JSON).
	Leaf []byte `json:"leaf"`
	// Event is Leaf decoded, for reading.
	Event consent.Event `json:"event"`
	// Personal is the event's personal record, which the event commits to
	// by its salted digest; absent after erasure.
	Personal *consent.Personal `json:"personal,omitempty"`
	// Notice is the consent wording the person saw, whose hash the event
	// carries (ISO/IEC 27560 notice).
	Notice *consent.Wording `json:"notice,omitempty"`
	// InclusionProof proves the leaf is record Event.Seq-1 of the tree in
	// TreeHead (RFC 6962 section 2.1.1).
	InclusionProof tlog.RecordProof `json:"inclusion_proof"`
}

// ReceiptInput is what a receipt is made of.
type ReceiptInput struct {
	ID            string
	Now           time.Time
	Language      string
	Controller    Controller
	PrivacyNotice string
	Subscriber    *consent.Subscriber
	// Topics names the topics by id.
	Topics map[string]string
	Events []consent.EventRecord
}

// Receipt builds the receipt of in, proving each event in a head that
// covers every event committed before the call; hashes reads the store's
// tree hashes. in.Events must have been read before the call.
func (h *Heads) Receipt(ctx context.Context, in ReceiptInput, hashes tlog.HashReader) (Receipt, error) {
	head, err := h.Head(ctx)
	if err != nil {
		return Receipt{}, err
	}
	r := Receipt{Version: ReceiptVersion, ReceiptID: in.ID, IssuedAt: in.Now.UTC(), Language: in.Language,
		Controller: in.Controller, PrivacyNotice: in.PrivacyNotice, PIIPrincipalID: in.Subscriber.ID,
		TreeHead: string(head.Note), VerifierKeys: h.VerifierKeys(), Purposes: []Purpose{}}
	for _, id := range slices.Sorted(maps.Keys(in.Subscriber.Subscriptions)) {
		sub := in.Subscriber.Subscriptions[id]
		r.Purposes = append(r.Purposes, Purpose{Topic: id, Purpose: in.Topics[id], Status: sub.Status, LawfulBasis: sub.Basis, Since: sub.Since})
	}
	for _, ev := range in.Events {
		proof, err := tlog.ProveRecord(head.Tree.N, consent.Record(ev.Seq), hashes)
		if err != nil {
			return Receipt{}, fmt.Errorf("ledger: proof of event %d: %w", ev.Seq, err)
		}
		r.Events = append(r.Events, ReceiptEvent{Leaf: ev.LeafData(), Event: ev.Event, Personal: ev.Personal,
			Notice: ev.WordingText, InclusionProof: proof})
	}
	return r, nil
}

// ReceiptCheck is what VerifyReceipt established.
type ReceiptCheck struct {
	Head   Head
	Events int
}

// VerifyReceipt checks receipt r offline against the verifier keys known:
// the tree head is signed by one of them; each event's leaf is in that
// tree (its inclusion proof), is about the receipt's person, and matches
// the event shown, its personal record (by digest) and the wording (by
// hash). Each of heads (saved heads, checked with known too) must be the
// same tree when it has the same size; for another size, proofs must hold
// the consistency proof between the two (GET /ledger/consistency).
func VerifyReceipt(r *Receipt, known note.Verifiers, heads []Head, proofs []Consistency) (ReceiptCheck, error) {
	if r.Version != ReceiptVersion {
		return ReceiptCheck{}, fmt.Errorf("ledger: receipt version %q, want %q", r.Version, ReceiptVersion)
	}
	head, err := ParseHead([]byte(r.TreeHead), known)
	if err != nil {
		return ReceiptCheck{}, fmt.Errorf("receipt tree head: %w", err)
	}
	for i, e := range r.Events {
		var ev consent.Event
		if err := json.Unmarshal(e.Leaf, &ev); err != nil {
			return ReceiptCheck{}, fmt.Errorf("event %d: leaf: %w", i+1, err)
		}
		switch {
		case ev.Seq == 0 || int64(ev.Seq) > head.Tree.N:
			return ReceiptCheck{}, fmt.Errorf("event %d: seq %d is not in the tree of %d events", i+1, ev.Seq, head.Tree.N)
		case ev.Subscriber != r.PIIPrincipalID:
			return ReceiptCheck{}, fmt.Errorf("event %d (seq %d): about %q, not the receipt's person", i+1, ev.Seq, ev.Subscriber)
		case !bytes.Equal(ev.LeafData(), e.Event.LeafData()):
			return ReceiptCheck{}, fmt.Errorf("event %d (seq %d): the event shown differs from its leaf", i+1, ev.Seq)
		case e.Personal != nil && e.Personal.Digest() != ev.PersonalDigest:
			return ReceiptCheck{}, fmt.Errorf("event %d (seq %d): the personal record does not match the event's digest", i+1, ev.Seq)
		case e.Notice != nil && e.Notice.Hash() != ev.Wording:
			return ReceiptCheck{}, fmt.Errorf("event %d (seq %d): the wording does not match the event's hash", i+1, ev.Seq)
		}
		if err := tlog.CheckRecord(e.InclusionProof, head.Tree.N, head.Tree.Hash, consent.Record(ev.Seq), tlog.RecordHash(e.Leaf)); err != nil {
			return ReceiptCheck{}, fmt.Errorf("event %d (seq %d): not in the signed tree: %w", i+1, ev.Seq, err)
		}
	}
	for _, other := range heads {
		if err := consistent(head, other, proofs); err != nil {
			return ReceiptCheck{}, err
		}
	}
	return ReceiptCheck{Head: head, Events: len(r.Events)}, nil
}

// Consistency is a consistency proof between the ledger's first From and
// first To events (RFC 6962 section 2.1.2), as GET /ledger/consistency
// serves it.
type Consistency struct {
	From  int64          `json:"from"`
	To    int64          `json:"to"`
	Proof tlog.TreeProof `json:"proof"`
}

// consistent checks that heads a and b are of one append-only ledger:
// equal roots at equal sizes, else a consistency proof between them from
// proofs.
func consistent(a, b Head, proofs []Consistency) error {
	if a.Tree.N == b.Tree.N {
		if a.Tree.Hash != b.Tree.Hash {
			return fmt.Errorf("the saved head of %d events has another root than the receipt's: the ledger shows two histories", b.Tree.N)
		}
		return nil
	}
	small, large := a, b
	if small.Tree.N > large.Tree.N {
		small, large = b, a
	}
	i := slices.IndexFunc(proofs, func(p Consistency) bool { return p.From == small.Tree.N && p.To == large.Tree.N })
	if i < 0 {
		return fmt.Errorf("the saved head has %d events, the receipt's %d: give the consistency proof between them (GET /ledger/consistency?from=%d&to=%d)",
			b.Tree.N, a.Tree.N, small.Tree.N, large.Tree.N)
	}
	if err := tlog.CheckTree(proofs[i].Proof, large.Tree.N, large.Tree.Hash, small.Tree.N, small.Tree.Hash); err != nil {
		return fmt.Errorf("the head of %d events does not extend the head of %d: %w", large.Tree.N, small.Tree.N, err)
	}
	return nil
}

// HeadNote returns the signed head in data: data itself when it is a
// signed head, the receipt's tree head when it is a receipt.
func HeadNote(data []byte) ([]byte, error) {
	if !bytes.HasPrefix(bytes.TrimSpace(data), []byte("{")) {
		return data, nil
	}
	var r Receipt
	if err := json.Unmarshal(data, &r); err != nil {
		return nil, fmt.Errorf("ledger: receipt: %w", err)
	}
	if r.TreeHead == "" {
		return nil, errors.New("ledger: receipt without a tree head")
	}
	return []byte(r.TreeHead), nil
}
