package app

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"optin/internal/token"
)

// secretsFile holds the keys optin generates on first start: token keys
// (used when the config gives none), the key of the suppression list's
// address hashes and the ledger's signing keys. It lives beside the
// database, readable by the owner only, and belongs in every backup:
// without the HMAC key, suppressed addresses are no longer recognised.
type secretsFile struct {
	TokenKeys []secretKey `json:"token_keys"`
	HMACKey   string      `json:"hmac_key"` // base64 (std) of 32 random bytes
	// LedgerKeys are the Ed25519 seeds (base64 (std) of 32 bytes) of the
	// ledger's head-signing keys: the first signs; the others are retired
	// keys, still published so the heads they signed stay checkable. To
	// rotate, put a new seed first.
	LedgerKeys []string `json:"ledger_keys,omitempty"`
}

type secretKey struct {
	ID     string `json:"id"`
	Secret string `json:"secret"` // base64 (std) of 32 random bytes
}

// secrets are the decoded keys.
type secrets struct {
	tokenKeys  []token.Key
	hmacKey    []byte
	ledgerKeys [][]byte
}

// loadSecrets reads dir/secrets.json and fills in any key it lacks (all of
// them on first start), writing the file back atomically when it changed.
func loadSecrets(dir string) (secrets, error) {
	path := filepath.Join(dir, "secrets.json")
	f, err := readSecretsFile(path)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return secrets{}, err
	}
	changed := false
	if len(f.TokenKeys) == 0 {
		f.TokenKeys = []secretKey{{ID: "k1", Secret: randomKey()}}
		changed = true
	}
	if f.HMACKey == "" {
		f.HMACKey = randomKey()
		changed = true
	}
	if len(f.LedgerKeys) == 0 {
		f.LedgerKeys = []string{randomKey()}
		changed = true
	}
	s, err := f.decode(path)
	if err != nil {
		return secrets{}, err
	}
	if changed {
		if err := writeSecrets(path, f); err != nil {
			return secrets{}, err
		}
	}
	return s, nil
}

// readSecrets reads dir/secrets.json as it is, for commands that only
// read: it never writes, and a missing file is an error.
func readSecrets(dir string) (secrets, error) {
	path := filepath.Join(dir, "secrets.json")
	f, err := readSecretsFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return secrets{}, fmt.Errorf("no secrets file at %s: restore it beside optin.db (it holds the key the suppression list is hashed with)", path)
	}
	if err != nil {
		return secrets{}, err
	}
	return f.decode(path)
}

// readSecretsFile reads and parses the secrets file at path; a missing
// file is an error matching fs.ErrNotExist.
func readSecretsFile(path string) (secretsFile, error) {
	var f secretsFile
	b, err := os.ReadFile(path)
	if err != nil {
		return f, fmt.Errorf("secrets: %w", err)
	}
	if err := json.Unmarshal(b, &f); err != nil {
		return f, fmt.Errorf("secrets: %s: %w", path, err)
	}
	return f, nil
}

// decode decodes the keys of f, read from path.
func (f secretsFile) decode(path string) (secrets, error) {
	var s secrets
	for _, k := range f.TokenKeys {
		raw, err := base64.StdEncoding.DecodeString(k.Secret)
		if err != nil {
			return secrets{}, fmt.Errorf("secrets: %s: key %q: %w", path, k.ID, err)
		}
		s.tokenKeys = append(s.tokenKeys, token.Key{ID: k.ID, Secret: raw})
	}
	var err error
	if s.hmacKey, err = base64.StdEncoding.DecodeString(f.HMACKey); err != nil || len(s.hmacKey) < 32 {
		return secrets{}, fmt.Errorf("secrets: %s: hmac_key must be base64 of at least 32 bytes", path)
	}
	for i, k := range f.LedgerKeys {
		seed, err := base64.StdEncoding.DecodeString(k)
		if err != nil || len(seed) != 32 {
			return secrets{}, fmt.Errorf("secrets: %s: ledger_keys[%d] must be base64 of 32 bytes", path, i)
		}
		s.ledgerKeys = append(s.ledgerKeys, seed)
	}
	return s, nil
}

func randomKey() string {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		panic(err) // crypto/rand does not fail on Linux
	}
	return base64.StdEncoding.EncodeToString(b)
}

// writeSecrets replaces path atomically with f, fsynced, mode 0600.
func writeSecrets(path string, f secretsFile) error {
	b, err := json.MarshalIndent(f, "", "  ")
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return fmt.Errorf("secrets: %w", err)
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), ".secrets-*")
	if err != nil {
		return fmt.Errorf("secrets: %w", err)
	}
	defer os.Remove(tmp.Name())
	_, err = tmp.Write(b)
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp.Name(), path)
	}
	if err != nil {
		return fmt.Errorf("secrets: %w", err)
	}
	return nil
}
