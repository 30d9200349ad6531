package client

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"time"
)

// APIVersionKeys is the Key Vault keys api-version the client sends.
const APIVersionKeys = "7.6"

// KeyAttributes are a key version's attributes; times are Unix seconds.
type KeyAttributes struct {
	Enabled         *bool  `json:"enabled,omitempty"`
	NotBefore       *int64 `json:"nbf,omitempty"`
	Expires         *int64 `json:"exp,omitempty"`
	Created         *int64 `json:"created,omitempty"`
	Updated         *int64 `json:"updated,omitempty"`
	RecoverableDays *int   `json:"recoverableDays,omitempty"`
	RecoveryLevel   string `json:"recoveryLevel,omitempty"`
}

// JSONWebKey is the public part of a key as the vault returns it; binary
// members are base64url strings.
type JSONWebKey struct {
	KID    string   `json:"kid"`
	Kty    string   `json:"kty"`
	KeyOps []string `json:"key_ops,omitempty"`
	N      string   `json:"n,omitempty"`
	E      string   `json:"e,omitempty"`
	Crv    string   `json:"crv,omitempty"`
	X      string   `json:"x,omitempty"`
	Y      string   `json:"y,omitempty"`
}

// KeyBundle is a key version; the deleted-key fields are set for deleted
// keys.
type KeyBundle struct {
	Key                JSONWebKey        `json:"key"`
	Attributes         KeyAttributes     `json:"attributes"`
	Tags               map[string]string `json:"tags,omitempty"`
	RecoveryID         string            `json:"recoveryId,omitempty"`
	DeletedDate        *int64            `json:"deletedDate,omitempty"`
	ScheduledPurgeDate *int64            `json:"scheduledPurgeDate,omitempty"`
}

// KeyItem is an entry of a key or version list.
type KeyItem struct {
	KID                string            `json:"kid"`
	Attributes         KeyAttributes     `json:"attributes"`
	Tags               map[string]string `json:"tags,omitempty"`
	RecoveryID         string            `json:"recoveryId,omitempty"`
	DeletedDate        *int64            `json:"deletedDate,omitempty"`
	ScheduledPurgeDate *int64            `json:"scheduledPurgeDate,omitempty"`
}

// Name returns the key name of a kid (…/keys/{name}[/{version}]).
func (it KeyItem) Name() string { return kidPart(it.KID, 0) }

// Version returns the version of a versioned kid, or "".
func (it KeyItem) Version() string { return kidPart(it.KID, 1) }

// kidPart returns the i-th segment after "/keys/" or "/deletedkeys/".
func kidPart(kid string, i int) string {
	rest := kid
	if j := strings.LastIndex(kid, "/keys/"); j >= 0 {
		rest = kid[j+len("/keys/"):]
	} else if j := strings.LastIndex(kid, "/deletedkeys/"); j >= 0 {
		rest = kid[j+len("/deletedkeys/"):]
	}
	parts := strings.Split(rest, "/")
	if i < len(parts) {
		return parts[i]
	}
	return ""
}

// KeyCreate describes a new key. Zero fields take the vault's defaults.
type KeyCreate struct {
	Kty       string            `json:"kty"`
	KeySize   int               `json:"key_size,omitempty"`
	Curve     string            `json:"crv,omitempty"`
	KeyOps    []string          `json:"key_ops,omitempty"`
	Tags      map[string]string `json:"tags,omitempty"`
	NotBefore time.Time         `json:"-"`
	Expires   time.Time         `json:"-"`
	Disabled  bool              `json:"-"`
}

// KeyUpdate changes a key version; nil fields stay as they are.
type KeyUpdate struct {
	Enabled   *bool
	NotBefore *time.Time // the zero time clears it
	Expires   *time.Time // the zero time clears it
	KeyOps    []string
	Tags      map[string]string
}

// KeyOperationResult is the answer to wrap and unwrap.
type KeyOperationResult struct {
	KID   string `json:"kid"`
	Value []byte `json:"-"`
}

func unixPtr(t time.Time) *int64 {
	if t.IsZero() {
		return nil
	}
	u := t.Unix()
	return &u
}

// keyPath returns the path of a vault's keys API, query included.
func keyPath(vault string, segs ...string) string {
	p := "vaults/" + pathSegment(vault)
	for _, s := range segs {
		p += "/" + pathSegment(s)
	}
	return p + "?api-version=" + APIVersionKeys
}

func pathSegment(s string) string { return pathf("%s", s) }

// CreateKey creates a key (or a new version of it) in vault.
func (c *Client) CreateKey(ctx context.Context, vault, name string, k KeyCreate) (*KeyBundle, error) {
	body := struct {
		KeyCreate
		Attributes KeyAttributes `json:"attributes"`
	}{KeyCreate: k, Attributes: KeyAttributes{NotBefore: unixPtr(k.NotBefore), Expires: unixPtr(k.Expires)}}
	if k.Disabled {
		f := false
		body.Attributes.Enabled = &f
	}
	var out KeyBundle
	_, err := c.Do(ctx, http.MethodPost, AudienceVault, keyPath(vault, "keys", name, "create"), body, &out)
	return &out, err
}

// ImportKey imports a private key given as a JSON Web Key (the JSON of a
// JWK with its private members) as a new version of name; hsm asks for an
// HSM-protected key.
func (c *Client) ImportKey(ctx context.Context, vault, name string, jwk json.RawMessage, hsm bool, tags map[string]string) (*KeyBundle, error) {
	body := map[string]any{"key": jwk, "Hsm": hsm}
	if len(tags) > 0 {
		body["tags"] = tags
	}
	var out KeyBundle
	_, err := c.Do(ctx, http.MethodPut, AudienceVault, keyPath(vault, "keys", name), body, &out)
	return &out, err
}

// GetKey returns a key version, the latest for version "".
func (c *Client) GetKey(ctx context.Context, vault, name, version string) (*KeyBundle, error) {
	var out KeyBundle
	_, err := c.Do(ctx, http.MethodGet, AudienceVault, keyPath(vault, "keys", name, version), nil, &out)
	return &out, err
}

// ListKeys lists a vault's keys (newest version of each), every page.
func (c *Client) ListKeys(ctx context.Context, vault string) ([]KeyItem, error) {
	return List[KeyItem](ctx, c, AudienceVault, keyPath(vault, "keys"))
}

// ListKeyVersions lists the versions of a key, every page.
func (c *Client) ListKeyVersions(ctx context.Context, vault, name string) ([]KeyItem, error) {
	return List[KeyItem](ctx, c, AudienceVault, keyPath(vault, "keys", name, "versions"))
}

// ListDeletedKeys lists a vault's soft-deleted keys.
func (c *Client) ListDeletedKeys(ctx context.Context, vault string) ([]KeyItem, error) {
	return List[KeyItem](ctx, c, AudienceVault, keyPath(vault, "deletedkeys"))
}

// UpdateKey changes a key version, the latest for version "".
func (c *Client) UpdateKey(ctx context.Context, vault, name, version string, u KeyUpdate) (*KeyBundle, error) {
	attrs := map[string]any{}
	if u.Enabled != nil {
		attrs["enabled"] = *u.Enabled
	}
	if u.NotBefore != nil {
		attrs["nbf"] = u.NotBefore.Unix()
		if u.NotBefore.IsZero() {
			attrs["nbf"] = 0
		}
	}
	if u.Expires != nil {
		attrs["exp"] = u.Expires.Unix()
		if u.Expires.IsZero() {
			attrs["exp"] = 0
		}
	}
	body := map[string]any{"attributes": attrs}
	if u.KeyOps != nil {
		body["key_ops"] = u.KeyOps
	}
	if u.Tags != nil {
		body["tags"] = u.Tags
	}
	var out KeyBundle
	_, err := c.Do(ctx, http.MethodPatch, AudienceVault, keyPath(vault, "keys", name, version), body, &out)
	return &out, err
}

// DeleteKey soft-deletes a key and returns it as a deleted key.
func (c *Client) DeleteKey(ctx context.Context, vault, name string) (*KeyBundle, error) {
	var out KeyBundle
	_, err := c.Do(ctx, http.MethodDelete, AudienceVault, keyPath(vault, "keys", name), nil, &out)
	return &out, err
}

// RecoverKey recovers a soft-deleted key.
func (c *Client) RecoverKey(ctx context.Context, vault, name string) (*KeyBundle, error) {
	var out KeyBundle
	_, err := c.Do(ctx, http.MethodPost, AudienceVault, keyPath(vault, "deletedkeys", name, "recover"), nil, &out)
	return &out, err
}

// PurgeKey removes a soft-deleted key for good.
func (c *Client) PurgeKey(ctx context.Context, vault, name string) error {
	_, err := c.Do(ctx, http.MethodDelete, AudienceVault, keyPath(vault, "deletedkeys", name), nil, nil)
	return err
}

// RotateKey makes a new version of a key.
func (c *Client) RotateKey(ctx context.Context, vault, name string) (*KeyBundle, error) {
	var out KeyBundle
	_, err := c.Do(ctx, http.MethodPost, AudienceVault, keyPath(vault, "keys", name, "rotate"), nil, &out)
	return &out, err
}

// WrapKey wraps value with a key version (the latest for version "") and
// algorithm alg, such as RSA-OAEP-256.
func (c *Client) WrapKey(ctx context.Context, vault, name, version, alg string, value []byte) (*KeyOperationResult, error) {
	return c.keyOperation(ctx, vault, name, version, "wrapkey", alg, value)
}

// UnwrapKey unwraps value with a key version and algorithm alg.
func (c *Client) UnwrapKey(ctx context.Context, vault, name, version, alg string, value []byte) (*KeyOperationResult, error) {
	return c.keyOperation(ctx, vault, name, version, "unwrapkey", alg, value)
}

func (c *Client) keyOperation(ctx context.Context, vault, name, version, op, alg string, value []byte) (*KeyOperationResult, error) {
	segs := []string{"keys", name}
	if version != "" {
		segs = append(segs, version)
	}
	body := map[string]string{"alg": alg, "value": base64.RawURLEncoding.EncodeToString(value)}
	var out struct {
		KID   string `json:"kid"`
		Value string `json:"value"`
	}
	if _, err := c.Do(ctx, http.MethodPost, AudienceVault, keyPath(vault, append(segs, op)...), body, &out); err != nil {
		return nil, err
	}
	v, err := base64.RawURLEncoding.DecodeString(strings.TrimRight(out.Value, "="))
	if err != nil {
		return nil, fmt.Errorf("client: the vault's %s result is not base64url: %w", op, err)
	}
	return &KeyOperationResult{KID: out.KID, Value: v}, nil
}

// KeyImport describes a key to import. Key is the JSON of a JSON Web Key
// with its private members; callers should wipe it once the call returns.
type KeyImport struct {
	Key       json.RawMessage
	HSM       bool
	NotBefore time.Time
	Expires   time.Time
	Disabled  bool
	Tags      map[string]string
}

// ImportKeyWith imports k as a new version of name in vault, with its
// attributes; a key the vault refuses (not a valid private key, a size or
// type it does not take) is an *Error with status 400.
func (c *Client) ImportKeyWith(ctx context.Context, vault, name string, k KeyImport) (*KeyBundle, error) {
	attrs := KeyAttributes{NotBefore: unixPtr(k.NotBefore), Expires: unixPtr(k.Expires)}
	if k.Disabled {
		f := false
		attrs.Enabled = &f
	}
	body := map[string]any{"key": k.Key, "Hsm": k.HSM, "attributes": attrs}
	if len(k.Tags) > 0 {
		body["tags"] = k.Tags
	}
	var out KeyBundle
	_, err := c.Do(ctx, http.MethodPut, AudienceVault, keyPath(vault, "keys", name), body, &out)
	return &out, err
}
