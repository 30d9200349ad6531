package keyhold

import (
	"context"
	"encoding/json"
	"time"
)

// KeyVersion is one version of a key in a built-in vault. Vault names are
// unique on a server (they are DNS names in Azure) and, like key names,
// compare case-insensitively. The private part is sealed under the server
// master key and never leaves the vault.
type KeyVersion struct {
	VaultName     string            `json:"vaultName"`
	Name          string            `json:"name"`
	Version       string            `json:"version"` // 32 lowercase hex characters
	Kty           string            `json:"kty"`     // RSA, RSA-HSM, EC, EC-HSM
	KeySize       int               `json:"keySize,omitempty"`
	Curve         string            `json:"crv,omitempty"`
	KeyOps        []string          `json:"keyOps"`
	PublicJWK     json.RawMessage   `json:"publicJwk"` // public members only, without kid
	SealedPrivate []byte            `json:"-"`
	Enabled       bool              `json:"enabled"`
	NotBefore     time.Time         `json:"nbf,omitzero"`
	Expires       time.Time         `json:"exp,omitzero"`
	Exportable    bool              `json:"exportable,omitempty"`
	Tags          map[string]string `json:"tags,omitempty"`
	Managed       bool              `json:"managed,omitempty"`
	CreatedAt     time.Time         `json:"created"`
	UpdatedAt     time.Time         `json:"updated"`
}

// DeletedKey is a soft-deleted key: all its versions, recoverable until
// ScheduledPurgeAt.
type DeletedKey struct {
	Latest           *KeyVersion `json:"latest"`
	DeletedAt        time.Time   `json:"deletedDate"`
	ScheduledPurgeAt time.Time   `json:"scheduledPurgeDate"`
}

// KeyRotationPolicy is a key's rotation policy in Key Vault's JSON shape,
// kept as the vault validated it.
type KeyRotationPolicy struct {
	VaultName string          `json:"vaultName"`
	Name      string          `json:"name"`
	Policy    json.RawMessage `json:"policy"`
	CreatedAt time.Time       `json:"created"`
	UpdatedAt time.Time       `json:"updated"`
}

// KeyStore keeps the keys of built-in vaults. Listing is paged by name (or
// version) order: a page holds the items after the given cursor, at most limit
// of them (0 means no limit).
type KeyStore interface {
	// CreateKeyVersion adds a version, creating the key if it is new. It
	// returns EConflict if a key of that name is soft-deleted, or if the
	// version id is taken.
	CreateKeyVersion(ctx context.Context, v *KeyVersion) error
	// GetKeyVersion returns a version, or the newest one for version "". A
	// soft-deleted key is ENotFound here.
	GetKeyVersion(ctx context.Context, vault, name, version string) (*KeyVersion, error)
	// UpdateKeyVersion replaces KeyOps, Enabled, NotBefore, Expires,
	// Exportable, Tags and UpdatedAt of an existing version.
	UpdateKeyVersion(ctx context.Context, v *KeyVersion) error
	// ListKeys returns the newest version of each key that is not deleted,
	// ordered by lower-case name, names after afterName.
	ListKeys(ctx context.Context, vault, afterName string, limit int) ([]*KeyVersion, error)
	// ListKeyVersions returns the versions of a key that is not deleted,
	// ordered by creation, after the version afterVersion ("" from the start).
	ListKeyVersions(ctx context.Context, vault, name, afterVersion string, limit int) ([]*KeyVersion, error)
	// DeleteKey soft-deletes every version of a key.
	DeleteKey(ctx context.Context, vault, name string, deletedAt, purgeAt time.Time) (*DeletedKey, error)
	GetDeletedKey(ctx context.Context, vault, name string) (*DeletedKey, error)
	ListDeletedKeys(ctx context.Context, vault, afterName string, limit int) ([]*DeletedKey, error)
	// RecoverKey undoes DeleteKey; ENotFound if the key is not soft-deleted.
	RecoverKey(ctx context.Context, vault, name string) error
	// PurgeKey removes a soft-deleted key and its versions for good.
	PurgeKey(ctx context.Context, vault, name string) error
	// PurgeVaultKeys removes every key of a vault, deleted or not, and their
	// rotation policies (used when a vault is purged).
	PurgeVaultKeys(ctx context.Context, vault string) error

	PutKeyRotationPolicy(ctx context.Context, p *KeyRotationPolicy) error
	GetKeyRotationPolicy(ctx context.Context, vault, name string) (*KeyRotationPolicy, error)
	// ListKeyRotationPolicies returns every rotation policy of keys that are
	// not deleted, for the background rotator.
	ListKeyRotationPolicies(ctx context.Context) ([]*KeyRotationPolicy, error)
}
