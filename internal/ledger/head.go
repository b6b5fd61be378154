// Package ledger signs and checks the heads of optin's consent ledger, a
// Merkle tree of its events (RFC 6962), and builds and checks consent
// receipts. Heads are signed notes (golang.org/x/mod/sumdb/note, Ed25519)
// whose text is a checkpoint as transparency logs write it
// (C2SP tlog-checkpoint): origin, tree size, root hash, and the signing
// time as an extension line.
package ledger

import (
	"bytes"
	"crypto/ed25519"
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"
)

// KeyName is the name every ledger key carries, in its verifier key and in
// each signature line. It never changes, so heads signed under an old key
// stay checkable with that key's verifier key.
const KeyName = "optin-ledger"

// Key is one Ed25519 key of the ledger.
type Key struct {
	Signer note.Signer
	// VerifierKey is the public key as note writes it
	// (optin-ledger+<hash>+<base64>): what GET /ledger/key serves and
	// `optin receipt verify --key` reads.
	VerifierKey string
	Verifier    note.Verifier
}

// NewKey returns the ledger key with the 32-byte Ed25519 seed seed.
func NewKey(seed []byte) (Key, error) {
	if len(seed) != ed25519.SeedSize {
		return Key{}, fmt.Errorf("ledger: a key seed has %d bytes, not %d", ed25519.SeedSize, len(seed))
	}
	pub := ed25519.NewKeyFromSeed(seed).Public().(ed25519.PublicKey)
	vkey, err := note.NewEd25519VerifierKey(KeyName, pub)
	if err != nil {
		return Key{}, fmt.Errorf("ledger: %w", err)
	}
	// A note signer key is PRIVATE+KEY+<name>+<hash>+<base64 of the
	// algorithm byte and the seed>; name and hash as in the verifier key.
	parts := strings.Split(vkey, "+")
	skey := "PRIVATE+KEY+" + KeyName + "+" + parts[1] + "+" + base64.StdEncoding.EncodeToString(append([]byte{1}, seed...))
	signer, err := note.NewSigner(skey)
	if err != nil {
		return Key{}, fmt.Errorf("ledger: %w", err)
	}
	verifier, err := note.NewVerifier(vkey)
	if err != nil {
		return Key{}, fmt.Errorf("ledger: %w", err)
	}
	return Key{Signer: signer, VerifierKey: vkey, Verifier: verifier}, nil
}

// ParseVerifierKeys reads verifier keys, one a line (blank lines and lines
// starting with # skipped), as GET /ledger/key serves them.
func ParseVerifierKeys(text []byte) (note.Verifiers, error) {
	var vs []note.Verifier
	for line := range strings.Lines(string(text)) {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		v, err := note.NewVerifier(line)
		if err != nil {
			return nil, fmt.Errorf("ledger: verifier key %q: %w", line, err)
		}
		vs = append(vs, v)
	}
	if len(vs) == 0 {
		return nil, errors.New("ledger: no verifier key")
	}
	return note.VerifierList(vs...), nil
}

// Head is a signed tree head: the ledger's first Tree.N events hash to
// Tree.Hash, as the holder of the key said at Time.
type Head struct {
	Origin string
	Tree   tlog.Tree
	Time   time.Time
	// Note is the signed note: the checkpoint text and its signatures.
	Note []byte
}

// timePrefix starts the checkpoint's extension line with the signing time.
const timePrefix = "time "

// Sign returns the head of tree at t for the log named origin, signed
// with key.
func Sign(origin string, tree tlog.Tree, t time.Time, key Key) (Head, error) {
	if origin == "" || strings.ContainsAny(origin, "\n") {
		return Head{}, fmt.Errorf("ledger: origin %q must be one non-empty line", origin)
	}
	t = t.UTC().Truncate(time.Millisecond)
	text := fmt.Sprintf("%s\n%d\n%s\n%s%s\n", origin, tree.N, base64.StdEncoding.EncodeToString(tree.Hash[:]),
		timePrefix, t.Format("2006-01-02T15:04:05.000Z"))
	msg, err := note.Sign(&note.Note{Text: text}, key.Signer)
	if err != nil {
		return Head{}, fmt.Errorf("ledger: sign head: %w", err)
	}
	return Head{Origin: origin, Tree: tree, Time: t, Note: msg}, nil
}

// ErrUnsigned is returned by ParseHead when no signature of the head is
// by a known key.
var ErrUnsigned = errors.New("ledger: the head is not signed by a known ledger key")

// ParseHead checks the signed head msg against the verifiers known and
// parses it. A head without a signature by a known key is ErrUnsigned;
// one whose text is not a checkpoint is an error saying why.
func ParseHead(msg []byte, known note.Verifiers) (Head, error) {
	n, err := note.Open(msg, known)
	if err != nil {
		var unknown *note.UnverifiedNoteError
		if errors.As(err, &unknown) {
			return Head{}, ErrUnsigned
		}
		return Head{}, fmt.Errorf("ledger: head: %w", err)
	}
	lines := strings.Split(strings.TrimSuffix(n.Text, "\n"), "\n")
	if len(lines) < 3 {
		return Head{}, errors.New("ledger: head: want origin, size and root hash lines")
	}
	h := Head{Origin: lines[0], Note: bytes.Clone(msg)}
	if h.Tree.N, err = strconv.ParseInt(lines[1], 10, 64); err != nil || h.Tree.N < 0 {
		return Head{}, fmt.Errorf("ledger: head: size %q is not a number", lines[1])
	}
	root, err := base64.StdEncoding.DecodeString(lines[2])
	if err != nil || len(root) != len(h.Tree.Hash) {
		return Head{}, fmt.Errorf("ledger: head: root hash %q is not 32 bytes of base64", lines[2])
	}
	h.Tree.Hash = tlog.Hash(root)
	for _, ext := range lines[3:] {
		if v, ok := strings.CutPrefix(ext, timePrefix); ok {
			if h.Time, err = time.Parse(time.RFC3339, v); err != nil {
				return Head{}, fmt.Errorf("ledger: head: time %q: %w", v, err)
			}
		}
	}
	return h, nil
}
