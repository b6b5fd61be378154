package consent

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"
)

// Role is what an admin API key may do.
type Role string

// Roles, from most to least powerful.
const (
	RoleAdmin    Role = "admin"    // everything
	RoleMarketer Role = "marketer" // subscribers, imports, exports, campaigns, stats
	RoleViewer   Role = "viewer"   // read-only
)

// ValidRole reports whether r is one of the defined roles.
func ValidRole(r Role) bool { return slices.Contains([]Role{RoleAdmin, RoleMarketer, RoleViewer}, r) }

// APIKey is an admin API key as stored: only the SHA-256 of the secret.
type APIKey struct {
	Hash     string    `json:"hash"`
	Name     string    `json:"name"`
	Role     Role      `json:"role"`
	Created  time.Time `json:"created"`
	LastUsed time.Time `json:"last_used,omitzero"`
	Revoked  time.Time `json:"revoked,omitzero"`
}

// HashAPIKey returns the stored form of an API key secret. Keys are 256-bit
// random values, so a plain SHA-256 is enough to make a leaked database
// useless for authentication.
func HashAPIKey(secret string) string { return hashSecret(secret) }

// hashSecret returns the hex SHA-256 of a random secret.
func hashSecret(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:])
}

// NewAPIKey makes a new API key named name with role from 32 bytes read
// from r: the secret, shown once and never stored, and the record a
// store keeps (the secret's hash; the store sets Created). A name is 1-64
// printable characters after trimming; a bad name or role is EInvalid.
// Stores keep names unique among live keys.
func NewAPIKey(r io.Reader, name string, role Role) (secret string, key APIKey, err error) {
	name = strings.TrimSpace(name)
	if name == "" || !PlainText(name, 64, false) {
		return "", APIKey{}, Errorf(EInvalid, "name must be 1-64 characters without control characters")
	}
	if !ValidRole(role) {
		return "", APIKey{}, Errorf(EInvalid, "role must be admin, marketer or viewer")
	}
	raw := make([]byte, 32)
	if _, err := io.ReadFull(r, raw); err != nil {
		return "", APIKey{}, fmt.Errorf("api key: %w", err)
	}
	secret = APIKeyPrefix + base64.RawURLEncoding.EncodeToString(raw)
	return secret, APIKey{Hash: HashAPIKey(secret), Name: name, Role: role}, nil
}
