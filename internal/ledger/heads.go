package ledger

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"time"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"
)

// Tree is what Heads reads: the store's ledger tree.
type Tree interface {
	LedgerTree(ctx context.Context) (tlog.Tree, error)
}

// Witness is handed each head Heads publishes: a copy kept somewhere the
// operator alone cannot rewrite (another disk or host, a webhook
// receiver). An error is logged; the head stays published elsewhere.
type Witness interface {
	Witness(ctx context.Context, h Head) error
}

// Heads signs the ledger's heads: on demand, cached until the tree grows,
// and at least once every Interval while events arrive, handing those to
// the witnesses. It is safe for concurrent use.
type Heads struct {
	store  Tree
	origin string
	keys   []Key // the first signs
	now    func() time.Time
	log    *slog.Logger
	wit    []Witness

	mu        sync.Mutex
	last      Head // the latest head signed
	published int64
}

// NewHeads returns the head signer of the log named origin on store, which
// signs with keys[0]; keys[1:] are retired keys, whose verifier keys GET
// /ledger/key still lists so old heads stay checkable. now is the clock,
// log gets a line for each head published, and witnesses each head too.
func NewHeads(store Tree, origin string, keys []Key, now func() time.Time, log *slog.Logger, witnesses ...Witness) (*Heads, error) {
	if len(keys) == 0 {
		return nil, errors.New("ledger: no signing key")
	}
	return &Heads{store: store, origin: origin, keys: keys, now: now, log: log, wit: witnesses}, nil
}

// Verifiers returns the verifiers of every key, current and retired.
func (h *Heads) Verifiers() note.Verifiers {
	vs := make([]note.Verifier, len(h.keys))
	for i, k := range h.keys {
		vs[i] = k.Verifier
	}
	return note.VerifierList(vs...)
}

// VerifierKeys returns the verifier keys, the signing one first.
func (h *Heads) VerifierKeys() []string {
	out := make([]string, len(h.keys))
	for i, k := range h.keys {
		out[i] = k.VerifierKey
	}
	return out
}

// Head returns a signed head covering every event committed before the
// call: the cached one while the tree has not grown, else a new one.
func (h *Heads) Head(ctx context.Context) (Head, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	tree, err := h.store.LedgerTree(ctx)
	if err != nil {
		return Head{}, err
	}
	if h.last.Note != nil && h.last.Tree == tree {
		return h.last, nil
	}
	head, err := Sign(h.origin, tree, h.now(), h.keys[0])
	if err != nil {
		return Head{}, err
	}
	h.last = head
	return head, nil
}

// Run publishes a head every interval while the tree grows, until ctx is
// done.
func (h *Heads) Run(ctx context.Context, interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		if err := h.PublishNew(ctx); err != nil && ctx.Err() == nil {
			h.log.Error("ledger head", "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// PublishNew publishes the current head when the tree has grown since
// the last one published.
func (h *Heads) PublishNew(ctx context.Context) error {
	head, err := h.Head(ctx)
	if err != nil {
		return err
	}
	h.mu.Lock()
	fresh := head.Tree.N > h.published
	if fresh {
		h.published = head.Tree.N
	}
	h.mu.Unlock()
	if fresh {
		h.publish(ctx, head)
	}
	return nil
}

// publish is where each head goes out: the log, then every witness. A
// new kind of witness is one more Witness given to NewHeads.
func (h *Heads) publish(ctx context.Context, head Head) {
	h.log.Info("ledger head signed", "size", head.Tree.N, "root", head.Tree.Hash.String(), "time", head.Time)
	for _, w := range h.wit {
		if err := w.Witness(ctx, head); err != nil {
			h.log.Error("ledger head witness", "err", err)
		}
	}
}

// DirWitness keeps each published head as a file in Dir, named after its
// size (head-000000000042.txt), written atomically and fsynced. Dir should
// be on another disk or host than the database.
type DirWitness struct{ Dir string }

// Witness writes h to its file.
func (w DirWitness) Witness(ctx context.Context, h Head) error {
	if err := os.MkdirAll(w.Dir, 0o700); err != nil {
		return fmt.Errorf("ledger: witness dir: %w", err)
	}
	name := filepath.Join(w.Dir, fmt.Sprintf("head-%012d.txt", h.Tree.N))
	tmp, err := os.CreateTemp(w.Dir, ".head-*")
	if err != nil {
		return fmt.Errorf("ledger: witness: %w", err)
	}
	defer os.Remove(tmp.Name())
	_, err = tmp.Write(h.Note)
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp.Name(), name)
	}
	if err != nil {
		return fmt.Errorf("ledger: witness: %w", err)
	}
	return nil
}
