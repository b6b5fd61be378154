package consent

import (
	"crypto/sha256"
	"encoding/hex"
	"slices"
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
