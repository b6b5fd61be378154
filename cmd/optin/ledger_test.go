package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"optin/internal/bolt/bolttest"
)

// get fetches url (with the admin key for /api/v1/) and returns its body.
func get(t *testing.T, u string) []byte {
	t.Helper()
	req, err := http.NewRequest("GET", u, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+testKey)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	if res.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %d %s", u, res.StatusCode, b)
	}
	return b
}

// save fetches url into a file of dir and returns its path.
func save(t *testing.T, dir, name, u string) string {
	t.Helper()
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, get(t, u), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// signupHTTP signs addr up through the public form, as a browser does.
func signupHTTP(t *testing.T, base, addr string) {
	t.Helper()
	res, err := http.PostForm(base+"/f/newsletter", url.Values{"email": {addr}, "topics": {"news"}})
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusOK { // the thanks page, after the 303
		t.Fatalf("signup %s: got %d, want 200", addr, res.StatusCode)
	}
}

// headSize reads the size line of a saved head.
func headSize(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return strings.Split(string(b), "\n")[1]
}

// TestCLIReceiptAndHeads: a receipt and saved heads verify, offline and
// against the stored ledger; after the operator rewrites event 1 in the
// bbolt file and recomputes the chain and tree, the ledger verifies in
// itself but not against the head saved before, nor against the receipt,
// and a head the server signs afterwards is not consistent with the
// receipt's.
func TestCLIReceiptAndHeads(t *testing.T) {
	boltOnly(t, "rewrites the database file")
	path, cfg := writeConfig(t)
	base, stop := startApp(t, cfg)
	keep := t.TempDir()
	signupHTTP(t, base, "ann@example.com")
	var subs struct{ Items []struct{ ID string } }
	if err := json.Unmarshal(get(t, base+"/api/v1/subscribers?q=ann@example.com"), &subs); err != nil || len(subs.Items) != 1 {
		t.Fatalf("subscriber lookup: %v %+v", err, subs)
	}
	key := save(t, keep, "key.txt", base+"/ledger/key")
	receipt := save(t, keep, "receipt.json", base+"/api/v1/subscribers/"+subs.Items[0].ID+"/receipt")
	early := save(t, keep, "early.head", base+"/ledger/head")
	signupHTTP(t, base, "bob@example.com")
	signupHTTP(t, base, "cy@example.com")
	late := save(t, keep, "late.head", base+"/ledger/head")
	proof := save(t, keep, "proof.json", fmt.Sprintf("%s/ledger/consistency?from=%s&to=%s", base, headSize(t, early), headSize(t, late)))

	out, err := runCLI(t, "verify", "--config", path, "--head", early, "--head", receipt, "--head", late)
	if err != nil || !strings.Contains(out, "3 events") || !strings.Contains(out, "extends all 3 saved heads") {
		t.Errorf("verify --head while serving: got %q, %v, want 3 events, all 3 heads extended", out, err)
	}
	out, err = runCLI(t, "receipt", "verify", receipt, "--key", key)
	if err != nil || !strings.Contains(out, "receipt ok: 1 events about "+subs.Items[0].ID) {
		t.Errorf("receipt verify: got %q, %v, want ok for 1 event", out, err)
	}
	if _, err := runCLI(t, "receipt", "verify", "--key", key, "--head", late, receipt); err == nil || !strings.Contains(err.Error(), "consistency proof") {
		t.Errorf("receipt verify --head of another size without a proof: got %v, want it to ask for the proof", err)
	}
	if out, err := runCLI(t, "receipt", "verify", receipt, "--key", key, "--head", late, "--consistency", proof); err != nil {
		t.Errorf("receipt verify --head --consistency: got %q, %v, want ok", out, err)
	}
	if _, err := runCLI(t, "receipt", "verify", receipt, "--key", late); err == nil {
		t.Error("receipt verify with a head for a key file: got nil error, want one")
	}
	stop()

	db := filepath.Join(cfg.DataDir, "optin.db")
	bolttest.Rewrite(t, db, 1, `"type":"requested"`, `"type":"confirmed"`)
	base, stop = startApp(t, cfg) // rebuilds the tree from the forged events
	forged := save(t, keep, "forged.head", base+"/ledger/head")
	forgedProof := save(t, keep, "forged-proof.json", fmt.Sprintf("%s/ledger/consistency?from=1&to=%s", base, headSize(t, forged)))
	stop()

	if out, err := runCLI(t, "verify", "--config", path); err != nil {
		t.Errorf("verify of the forged file alone: got %q, %v, want it to pass (the forgery is consistent in itself)", out, err)
	}
	dir := t.TempDir() // a witness directory, holding heads and receipts
	copyFile(t, early, filepath.Join(dir, "early.head"))
	copyFile(t, receipt, filepath.Join(dir, "receipt.json"))
	for _, saved := range []string{early, receipt, dir} {
		_, err := runCLI(t, "verify", "--config", path, "--head", saved)
		if err == nil || !strings.Contains(err.Error(), "does not extend") || !strings.Contains(err.Error(), "event 1 was changed") {
			t.Errorf("verify --head %s after the rewrite: got %v, want the change placed at event 1", filepath.Base(saved), err)
		}
	}
	_, err = runCLI(t, "receipt", "verify", receipt, "--key", key, "--head", forged, "--consistency", forgedProof)
	if err == nil || !strings.Contains(err.Error(), "does not extend") {
		t.Errorf("receipt verify against a head signed after the rewrite: got %v, want it not to extend the receipt's head", err)
	}
}

// TestCLILedgerRotateKey: ledger rotate-key adds a signing key and keeps
// the old one, in secrets.json on bbolt.
func TestCLILedgerRotateKey(t *testing.T) {
	boltOnly(t, "secrets.json")
	path, cfg := importedDir(t, 1)
	read := func() []string {
		var f struct {
			LedgerKeys []string `json:"ledger_keys"`
		}
		b, err := os.ReadFile(filepath.Join(cfg.DataDir, "secrets.json"))
		if err != nil || json.Unmarshal(b, &f) != nil {
			t.Fatalf("secrets.json: %v", err)
		}
		return f.LedgerKeys
	}
	before := read()
	out, err := runCLI(t, "ledger", "rotate-key", "--config", path)
	if err != nil || !strings.Contains(out, "new ledger key made") {
		t.Fatalf("ledger rotate-key: got %q, %v", out, err)
	}
	after := read()
	if len(before) != 1 || len(after) != 2 || after[1] != before[0] || after[0] == before[0] {
		t.Errorf("ledger keys: %d before, %d after (new first, old kept), got %v then %v", 1, 2, before, after)
	}
}
