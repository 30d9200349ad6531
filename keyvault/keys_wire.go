package keyvault

import (
	"encoding/json"
	"time"

	"github.com/keyhold/keyhold"
	"github.com/keyhold/keyhold/keyvault/keycrypto"
)

// The JSON shapes of the keys data plane (Key Vault's keys.json). Times
// travel as integer Unix seconds and binary members as unpadded base64url:
// the Azure SDKs refuse anything else.

// KeyAttributes is a key version's attributes on the wire.
type KeyAttributes struct {
	Enabled         *bool  `json:"enabled,omitempty"`
	NotBefore       *int64 `json:"nbf,omitempty"`
	Expires         *int64 `json:"exp,omitempty"`
	Created         *int64 `json:"created,omitempty"`
	Updated         *int64 `json:"updated,omitempty"`
	RecoverableDays *int   `json:"recoverableDays,omitempty"`
	RecoveryLevel   string `json:"recoveryLevel,omitempty"`
	Exportable      *bool  `json:"exportable,omitempty"`
}

// KeyBundle is a key version with its public JWK; DeletedKeyBundle fields
// are set for deleted keys.
type KeyBundle struct {
	Key                keycrypto.JWK     `json:"key"`
	Attributes         KeyAttributes     `json:"attributes"`
	Tags               map[string]string `json:"tags,omitempty"`
	Managed            bool              `json:"managed,omitempty"`
	RecoveryID         string            `json:"recoveryId,omitempty"`
	DeletedDate        *int64            `json:"deletedDate,omitempty"`
	ScheduledPurgeDate *int64            `json:"scheduledPurgeDate,omitempty"`
}

// KeyItem is a list entry: no key material, just the kid.
type KeyItem struct {
	KID                string            `json:"kid"`
	Attributes         KeyAttributes     `json:"attributes"`
	Tags               map[string]string `json:"tags,omitempty"`
	Managed            bool              `json:"managed,omitempty"`
	RecoveryID         string            `json:"recoveryId,omitempty"`
	DeletedDate        *int64            `json:"deletedDate,omitempty"`
	ScheduledPurgeDate *int64            `json:"scheduledPurgeDate,omitempty"`
}

// KeyListResult is a page of a key list.
type KeyListResult struct {
	Value    []KeyItem `json:"value"`
	NextLink *string   `json:"nextLink"`
}

// keyCreateParameters is the body of POST /keys/{name}/create.
type keyCreateParameters struct {
	Kty            string            `json:"kty"`
	KeySize        *int              `json:"key_size"`
	PublicExponent *int              `json:"public_exponent"`
	KeyOps         []string          `json:"key_ops"`
	Attributes     *KeyAttributes    `json:"attributes"`
	Tags           map[string]string `json:"tags"`
	Curve          string            `json:"crv"`
	ReleasePolicy  json.RawMessage   `json:"release_policy"`
}

// keyImportParameters is the body of PUT /keys/{name}. Hsm is spelled with
// a capital H on the wire.
type keyImportParameters struct {
	Key           *keycrypto.JWK    `json:"key"`
	HSM           *bool             `json:"Hsm"`
	Attributes    *KeyAttributes    `json:"attributes"`
	Tags          map[string]string `json:"tags"`
	ReleasePolicy json.RawMessage   `json:"release_policy"`
}

// keyUpdateParameters is the body of PATCH /keys/{name}/{version}.
type keyUpdateParameters struct {
	KeyOps        []string          `json:"key_ops"`
	Attributes    *KeyAttributes    `json:"attributes"`
	Tags          map[string]string `json:"tags"`
	ReleasePolicy json.RawMessage   `json:"release_policy"`
}

// keyOperationsParameters is the body of encrypt, decrypt, wrapkey and
// unwrapkey.
type keyOperationsParameters struct {
	Alg   string          `json:"alg"`
	Value keycrypto.Bytes `json:"value"`
	IV    keycrypto.Bytes `json:"iv"`
	AAD   keycrypto.Bytes `json:"aad"`
	Tag   keycrypto.Bytes `json:"tag"`
}

// keySignParameters is the body of sign (value is the digest) and verify.
type keySignParameters struct {
	Alg    string          `json:"alg"`
	Digest keycrypto.Bytes `json:"digest"`
	Value  keycrypto.Bytes `json:"value"`
}

// KeyOperationResult is the answer to encrypt, decrypt, wrap, unwrap and sign.
type KeyOperationResult struct {
	KID   string          `json:"kid"`
	Value keycrypto.Bytes `json:"value"`
}

// KeyVerifyResult is the answer to verify.
type KeyVerifyResult struct {
	Value bool `json:"value"`
}

func unix(t time.Time) *int64 {
	if t.IsZero() {
		return nil
	}
	u := t.Unix()
	return &u
}

func fromUnix(u *int64) time.Time {
	if u == nil || *u == 0 {
		return time.Time{}
	}
	return time.Unix(*u, 0).UTC()
}

// attributes renders v's attributes with the vault's recovery settings.
func attributes(v *keyhold.KeyVersion, p *Properties) KeyAttributes {
	enabled, exportable := v.Enabled, v.Exportable
	days := p.RetentionDays()
	return KeyAttributes{
		Enabled: &enabled, NotBefore: unix(v.NotBefore), Expires: unix(v.Expires),
		Created: unix(v.CreatedAt), Updated: unix(v.UpdatedAt),
		RecoverableDays: &days, RecoveryLevel: p.RecoveryLevel(), Exportable: &exportable,
	}
}

// keyID is the versionless kid of a key.
func (rq *request) keyID(name string) string { return rq.base + "/keys/" + name }

// versionID is the versioned kid of a key version.
func (rq *request) versionID(v *keyhold.KeyVersion) string {
	return rq.base + "/keys/" + v.Name + "/" + v.Version
}

// bundle renders a key version as a KeyBundle.
func (rq *request) bundle(v *keyhold.KeyVersion) (*KeyBundle, error) {
	var jwk keycrypto.JWK
	if err := json.Unmarshal(v.PublicJWK, &jwk); err != nil {
		return nil, keyhold.Internal("keyvault: stored public key", err)
	}
	jwk.KID = rq.versionID(v)
	jwk.Kty = v.Kty
	jwk.KeyOps = v.KeyOps
	return &KeyBundle{Key: jwk, Attributes: attributes(v, rq.props), Tags: v.Tags, Managed: v.Managed}, nil
}

// deletedBundle renders a deleted key as a DeletedKeyBundle.
func (rq *request) deletedBundle(d *keyhold.DeletedKey) (*KeyBundle, error) {
	b, err := rq.bundle(d.Latest)
	if err != nil {
		return nil, err
	}
	b.RecoveryID = rq.base + "/deletedkeys/" + d.Latest.Name
	b.DeletedDate, b.ScheduledPurgeDate = unix(d.DeletedAt), unix(d.ScheduledPurgeAt)
	return b, nil
}

func (rq *request) item(v *keyhold.KeyVersion, kid string) KeyItem {
	return KeyItem{KID: kid, Attributes: attributes(v, rq.props), Tags: v.Tags, Managed: v.Managed}
}
