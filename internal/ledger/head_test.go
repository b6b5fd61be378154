package ledger

import (
	"bytes"
	"encoding/base64"
	"errors"
	"strings"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"
)

func mustKey(t *testing.T, b byte) Key {
	t.Helper()
	k, err := NewKey(bytes.Repeat([]byte{b}, 32))
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// TestSignParseHead: a signed head parses back to what was signed, with
// the checkpoint text transparency logs write; a head signed by a retired
// key still verifies while its verifier key is known; one by an unknown
// key, or edited, does not.
func TestSignParseHead(t *testing.T) {
	old, current := mustKey(t, 1), mustKey(t, 2)
	tree := tlog.Tree{N: 42, Hash: tlog.RecordHash([]byte("x"))}
	at := time.Date(2030, 1, 2, 3, 4, 5, 678_900_000, time.UTC)
	h, err := Sign("news.example.com/ledger", tree, at, current)
	if err != nil {
		t.Fatal(err)
	}
	want := "news.example.com/ledger\n42\n" + base64.StdEncoding.EncodeToString(tree.Hash[:]) +
		"\ntime 2030-01-02T03:04:05.678Z\n\n— optin-ledger "
	if !strings.HasPrefix(string(h.Note), want) {
		t.Errorf("signed head:\n%s\nwant it to start with\n%s", h.Note, want)
	}
	both := note.VerifierList(current.Verifier, old.Verifier)
	got, err := ParseHead(h.Note, both)
	if err != nil || got.Tree != tree || !got.Time.Equal(at.Truncate(time.Millisecond)) || got.Origin != "news.example.com/ledger" {
		t.Errorf("ParseHead: got %+v, %v, want the head signed", got, err)
	}

	byOld, err := Sign("news.example.com/ledger", tree, at, old)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ParseHead(byOld.Note, both); err != nil {
		t.Errorf("ParseHead of a head by the retired key: got %v, want nil", err)
	}
	if _, err := ParseHead(byOld.Note, note.VerifierList(current.Verifier)); !errors.Is(err, ErrUnsigned) {
		t.Errorf("ParseHead of a head by an unknown key: got %v, want ErrUnsigned", err)
	}
	edited := bytes.Replace(h.Note, []byte("\n42\n"), []byte("\n43\n"), 1)
	if _, err := ParseHead(edited, both); err == nil {
		t.Error("ParseHead of an edited head: got nil error, want one")
	}
	if _, err := Sign("two\nlines", tree, at, current); err == nil {
		t.Error("Sign with a two-line origin: got nil error, want one")
	}
}

// TestParseVerifierKeys reads what GET /ledger/key serves and refuses
// what is not a key.
func TestParseVerifierKeys(t *testing.T) {
	a, b := mustKey(t, 1), mustKey(t, 2)
	vs, err := ParseVerifierKeys([]byte("# optin\n" + a.VerifierKey + "\n\n" + b.VerifierKey + "\n"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := vs.Verifier(KeyName, b.Verifier.KeyHash()); err != nil {
		t.Errorf("second key: %v", err)
	}
	for _, bad := range []string{"", "# nothing\n", "not a key\n"} {
		if _, err := ParseVerifierKeys([]byte(bad)); err == nil {
			t.Errorf("ParseVerifierKeys(%q): got nil error, want one", bad)
		}
	}
	if _, err := NewKey([]byte("short")); err == nil {
		t.Error("NewKey of a short seed: got nil error, want one")
	}
}

// BenchmarkSign measures signing one head (Ed25519 over the checkpoint).
func BenchmarkSign(b *testing.B) {
	k, err := NewKey(bytes.Repeat([]byte{1}, 32))
	if err != nil {
		b.Fatal(err)
	}
	tree := tlog.Tree{N: 1, Hash: tlog.RecordHash([]byte("x"))}
	at := time.Now()
	for b.Loop() {
		tree.N++
		if _, err := Sign("news.example.com/ledger", tree, at, k); err != nil {
			b.Fatal(err)
		}
	}
}
