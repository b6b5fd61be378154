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

// secrets are the keys optin generates on first start when the config
// gives none. They live beside the database, readable by the owner only.
type secrets struct {
	TokenKeys []secretKey `json:"token_keys"`
}

type secretKey struct {
	ID     string `json:"id"`
	Secret string `json:"secret"` // base64 (std) of 32 random bytes
}

// loadSecrets reads dir/secrets.json, creating it with fresh random keys
// when it does not exist.
func loadSecrets(dir string) ([]token.Key, error) {
	path := filepath.Join(dir, "secrets.json")
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return createSecrets(path)
	}
	if err != nil {
		return nil, fmt.Errorf("secrets: %w", err)
	}
	var s secrets
	if err := json.Unmarshal(b, &s); err != nil {
		return nil, fmt.Errorf("secrets: %s: %w", path, err)
	}
	var keys []token.Key
	for _, k := range s.TokenKeys {
		raw, err := base64.StdEncoding.DecodeString(k.Secret)
		if err != nil {
			return nil, fmt.Errorf("secrets: %s: key %q: %w", path, k.ID, err)
		}
		keys = append(keys, token.Key{ID: k.ID, Secret: raw})
	}
	return keys, nil
}

func createSecrets(path string) ([]token.Key, error) {
	raw := make([]byte, 32)
	if _, err := rand.Read(raw); err != nil {
		return nil, err
	}
	s := secrets{TokenKeys: []secretKey{{ID: "k1", Secret: base64.StdEncoding.EncodeToString(raw)}}}
	b, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("secrets: %w", err)
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return nil, fmt.Errorf("secrets: %w", err)
	}
	if _, err := f.Write(b); err != nil {
		f.Close()
		return nil, fmt.Errorf("secrets: %w", err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return nil, fmt.Errorf("secrets: %w", err)
	}
	if err := f.Close(); err != nil {
		return nil, fmt.Errorf("secrets: %w", err)
	}
	return []token.Key{{ID: "k1", Secret: raw}}, nil
}
