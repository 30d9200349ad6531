// Package builtin is the kms driver for Keyhold's own vaults.
//
// Customer keys (keyhold.WrapCustomer) live in a customer's vault and are
// used as the enterprise policy's managed identity, through the vault
// service's WrapKeyAs, UnwrapKeyAs and CheckKeyAs, which apply exactly the
// rules of the keys data plane: vault firewall with the trusted-service
// bypass, access policies or RBAC, key enabled, nbf/exp and key_ops.
//
// Platform keys (keyhold.WrapPlatform) and legacy tenant-uploaded keys
// (keyhold.WrapBYOK) live in the system vault: keys in the KeyStore under the
// vault name "$system", which no tenant vault can have (vault names are
// letters, digits and hyphens), so no tenant can see or use them. They are
// used by the platform itself, without RBAC.
package builtin

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/keyhold/keyhold"
	"github.com/keyhold/keyhold/keyvault"
	"github.com/keyhold/keyhold/keyvault/keycrypto"
	"github.com/keyhold/keyhold/kms"
	"github.com/keyhold/keyhold/seal"
)

// The system vault and its keys.
const (
	// SystemVault is the vault name, and the VaultID of refs, of the
	// system vault.
	SystemVault = "$system"
	// PlatformKeyName is the name of the platform-managed key.
	PlatformKeyName = "platform-key"
	// PlatformKeySize is the platform key's RSA modulus size in bits.
	PlatformKeySize = 3072
	// byokPrefix starts the name of a tenant's uploaded key: byok-{tenant}.
	byokPrefix = "byok-"
)

// Details of the driver's own refusals.
const (
	DetailPolicyIdentityNotFound = "PolicyIdentityNotFound"
	DetailVaultUnavailable       = "VaultUnavailable"
)

// Config configures the driver.
type Config struct {
	// Store keeps principals (to find a policy's identity) and the system
	// vault's keys.
	Store keyhold.Store
	// Vault is the built-in vault service that holds customer keys; nil
	// refuses customer refs with an EUnavailable error.
	Vault *keyvault.Service
	// Seal opens and seals the system vault's private keys under the
	// master key.
	Seal *seal.Key
	// Logger receives a line per vault call, with refs but never key
	// material; nil discards them.
	Logger *slog.Logger
	// Now is the clock for key validity; nil means time.Now.
	Now func() time.Time
}

// Driver is the kms.Wrapper of Keyhold's own vaults. It is safe for
// concurrent use.
type Driver struct {
	cfg Config
	log *slog.Logger
	now func() time.Time

	mu   sync.Mutex
	priv map[string]*keycrypto.PrivateKey // parsed system keys by name/version
}

var _ kms.Wrapper = (*Driver)(nil)

// New returns the driver.
func New(cfg Config) *Driver {
	d := &Driver{cfg: cfg, log: cfg.Logger, now: cfg.Now, priv: map[string]*keycrypto.PrivateKey{}}
	if d.log == nil {
		d.log = slog.New(slog.DiscardHandler)
	}
	if d.now == nil {
		d.now = time.Now
	}
	return d
}

// Wrap implements kms.Wrapper. Customer keys wrap through the vault service
// as the policy's identity; system keys wrap with their public part. A
// ref's empty Algorithm means RSA-OAEP-256.
func (d *Driver) Wrap(ctx context.Context, ref keyhold.WrapRef, plaintext keyhold.Secret) ([]byte, keyhold.WrapRef, error) {
	wrapped, used, err := d.wrap(ctx, ref, plaintext)
	d.logCall(ctx, kms.CallWrap, used, err)
	return wrapped, used, err
}

func (d *Driver) wrap(ctx context.Context, ref keyhold.WrapRef, plaintext keyhold.Secret) ([]byte, keyhold.WrapRef, error) {
	if err := kms.CheckRef(ref, false); err != nil {
		return nil, ref, err
	}
	if plaintext.IsZero() {
		return nil, ref, keyhold.Errorf(keyhold.EInvalid, "kms/builtin: there is no key to wrap")
	}
	used := ref
	if used.Algorithm == "" {
		used.Algorithm = kms.DefaultAlgorithm
	}
	if ref.Kind == keyhold.WrapCustomer {
		p, err := d.policyIdentity(ctx, ref)
		if err != nil {
			return nil, ref, err
		}
		version, wrapped, err := d.cfg.Vault.WrapKeyAs(ctx, p, ref.VaultID, ref.KeyName, ref.KeyVersion, used.Algorithm, plaintext.Reveal())
		if err != nil {
			return nil, ref, classify(ref, err)
		}
		used.KeyVersion = version
		return wrapped, used, nil
	}
	v, err := d.systemKey(ctx, ref, keycrypto.OpWrapKey)
	if err != nil {
		return nil, ref, err
	}
	var jwk keycrypto.JWK
	if err := json.Unmarshal(v.PublicJWK, &jwk); err != nil {
		return nil, ref, keyhold.Internal("kms/builtin: public key of "+v.Name, err)
	}
	pub, err := keycrypto.NewPublicKey(jwk)
	if err != nil {
		return nil, ref, keyhold.Internal("kms/builtin: public key of "+v.Name, err)
	}
	wrapped, err := pub.WrapKey(used.Algorithm, plaintext.Reveal())
	if err != nil {
		return nil, ref, err
	}
	used.KeyName, used.KeyVersion = v.Name, v.Version
	return wrapped, used, nil
}

// Unwrap implements kms.Wrapper. The ref must name the version the value
// was wrapped with.
func (d *Driver) Unwrap(ctx context.Context, ref keyhold.WrapRef, wrapped []byte) (keyhold.Secret, error) {
	s, err := d.unwrap(ctx, ref, wrapped)
	d.logCall(ctx, kms.CallUnwrap, ref, err)
	return s, err
}

func (d *Driver) unwrap(ctx context.Context, ref keyhold.WrapRef, wrapped []byte) (keyhold.Secret, error) {
	if err := kms.CheckRef(ref, true); err != nil {
		return keyhold.Secret{}, err
	}
	if len(wrapped) == 0 {
		return keyhold.Secret{}, keyhold.Errorf(keyhold.EInvalid, "kms/builtin: there is nothing to unwrap")
	}
	alg := ref.Algorithm
	if alg == "" {
		alg = kms.DefaultAlgorithm
	}
	if ref.Kind == keyhold.WrapCustomer {
		p, err := d.policyIdentity(ctx, ref)
		if err != nil {
			return keyhold.Secret{}, err
		}
		s, err := d.cfg.Vault.UnwrapKeyAs(ctx, p, ref.VaultID, ref.KeyName, ref.KeyVersion, alg, wrapped)
		if err != nil {
			return keyhold.Secret{}, classify(ref, err)
		}
		return s, nil
	}
	v, err := d.systemKey(ctx, ref, keycrypto.OpUnwrapKey)
	if err != nil {
		return keyhold.Secret{}, err
	}
	k, err := d.privateKey(v)
	if err != nil {
		return keyhold.Secret{}, err
	}
	pt, err := k.UnwrapKey(alg, wrapped)
	if err != nil {
		return keyhold.Secret{}, err
	}
	return keyhold.NewSecret(pt), nil
}

// Check implements kms.Wrapper. For customer keys it asks the vault
// whether the policy's identity may get, wrap and unwrap with the key now.
func (d *Driver) Check(ctx context.Context, ref keyhold.WrapRef) error {
	err := d.check(ctx, ref)
	d.logCall(ctx, kms.CallCheck, ref, err)
	return err
}

func (d *Driver) check(ctx context.Context, ref keyhold.WrapRef) error {
	if err := kms.CheckRef(ref, false); err != nil {
		return err
	}
	if ref.Kind == keyhold.WrapCustomer {
		p, err := d.policyIdentity(ctx, ref)
		if err != nil {
			return err
		}
		_, err = d.cfg.Vault.CheckKeyAs(ctx, p, ref.VaultID, ref.KeyName, ref.KeyVersion)
		return classify(ref, err)
	}
	if _, err := d.systemKey(ctx, ref, keycrypto.OpWrapKey); err != nil {
		return err
	}
	_, err := d.systemKey(ctx, ref, keycrypto.OpUnwrapKey)
	return err
}

func (d *Driver) logCall(ctx context.Context, kind string, ref keyhold.WrapRef, err error) {
	if err != nil {
		d.log.LogAttrs(ctx, slog.LevelWarn, "kms call failed", slog.String("kind", kind), slog.String("ref", kms.Describe(ref)),
			slog.String("code", keyhold.ErrorCode(err)), slog.String("err", err.Error()))
		return
	}
	d.log.LogAttrs(ctx, slog.LevelDebug, "kms call", slog.String("kind", kind), slog.String("ref", kms.Describe(ref)))
}

// policyIdentity finds the managed identity of the policy a customer ref
// names: the principal whose ResourceID is the policy id. A policy without
// one (deleted, or its identity removed) is a definite denial.
func (d *Driver) policyIdentity(ctx context.Context, ref keyhold.WrapRef) (*keyhold.Principal, error) {
	if d.cfg.Vault == nil {
		return nil, keyhold.Errorc(keyhold.EUnavailable, DetailVaultUnavailable, "kms/builtin: no vault service is configured for customer keys")
	}
	list, err := d.cfg.Store.FindPrincipals(ctx, keyhold.PrincipalFilter{Type: keyhold.PrincipalManagedIdentity, ResourceID: ref.PolicyID})
	if err != nil && !keyhold.IsNotFound(err) {
		return nil, unavailable(ref, err)
	}
	for _, p := range list {
		if strings.EqualFold(p.ResourceID, ref.PolicyID) {
			return p, nil
		}
	}
	return nil, keyhold.Errorc(keyhold.EForbidden, DetailPolicyIdentityNotFound,
		"kms/builtin: enterprise policy %s has no managed identity to use key %s with", ref.PolicyID, ref.KeyName)
}

// classify maps the vault service's errors onto the kms classes: a missing
// vault, key or version means it was deleted, a definite denial like a
// refusal; a bad value or algorithm stays EInvalid; anything else (the
// store, a bug) means the vault could not be used now, and is EUnavailable
// so that the platform waits out its grace period rather than lock on a
// hiccup.
func classify(ref keyhold.WrapRef, err error) error {
	if err == nil {
		return nil
	}
	switch keyhold.ErrorCode(err) {
	case keyhold.EForbidden, keyhold.EInvalid, keyhold.EUnavailable:
		return err
	case keyhold.ENotFound:
		return &keyhold.Error{Code: keyhold.EForbidden, Detail: keyhold.ErrorDetail(err),
			Message: "kms/builtin: " + kms.Describe(ref) + " cannot be used: " + keyhold.ErrorMessage(err), Err: err}
	}
	return unavailable(ref, err)
}

func unavailable(ref keyhold.WrapRef, err error) error {
	return &keyhold.Error{Code: keyhold.EUnavailable, Detail: DetailVaultUnavailable,
		Message: "kms/builtin: the vault of " + kms.Describe(ref) + " cannot be used now", Err: err}
}

// systemKey reads the system-vault key version ref names (the newest for
// an empty version) and checks it can be used for op now.
func (d *Driver) systemKey(ctx context.Context, ref keyhold.WrapRef, op string) (*keyhold.KeyVersion, error) {
	if ref.VaultID != SystemVault {
		return nil, keyhold.Errorf(keyhold.EInvalid, "kms/builtin: %s keys live in the system vault %s, not in %s", ref.Kind, SystemVault, ref.VaultID)
	}
	switch {
	case ref.Kind == keyhold.WrapPlatform && !strings.EqualFold(ref.KeyName, PlatformKeyName),
		ref.Kind == keyhold.WrapBYOK && !strings.HasPrefix(strings.ToLower(ref.KeyName), byokPrefix):
		return nil, keyhold.Errorf(keyhold.EInvalid, "kms/builtin: %s is not a %s key", ref.KeyName, ref.Kind)
	}
	if ref.KeyVersion != "" && !keycrypto.IsVersion(ref.KeyVersion) {
		return nil, keyhold.Errorf(keyhold.EInvalid, "kms/builtin: %q is not a key version", ref.KeyVersion)
	}
	v, err := d.cfg.Store.GetKeyVersion(ctx, SystemVault, ref.KeyName, ref.KeyVersion)
	if keyhold.IsNotFound(err) {
		return nil, keyhold.Errorc(keyhold.EForbidden, "KeyNotFound", "kms/builtin: %s does not exist", kms.Describe(ref))
	}
	if err != nil {
		return nil, unavailable(ref, err)
	}
	now := d.now()
	switch {
	case !v.Enabled:
		return nil, keyhold.Errorc(keyhold.EForbidden, "KeyDisabled", "kms/builtin: %s is disabled", kms.Describe(ref))
	case !v.NotBefore.IsZero() && now.Before(v.NotBefore), !v.Expires.IsZero() && !now.Before(v.Expires):
		return nil, keyhold.Errorc(keyhold.EForbidden, "KeyExpired", "kms/builtin: %s is outside its validity period", kms.Describe(ref))
	case !keycrypto.HasKeyOp(v.KeyOps, op):
		return nil, keyhold.Errorc(keyhold.EForbidden, "KeyOperationForbidden", "kms/builtin: %s does not permit %s", kms.Describe(ref), op)
	}
	return v, nil
}

// sealLabel binds a system key's sealed material to its name and version.
func sealLabel(name, version string) string {
	return strings.ToLower("kms/builtin/key/" + SystemVault + "/" + name + "/" + version)
}

// privateKey opens and parses a system key's private part, once per
// version: versions never change.
func (d *Driver) privateKey(v *keyhold.KeyVersion) (*keycrypto.PrivateKey, error) {
	id := strings.ToLower(v.Name + "/" + v.Version)
	d.mu.Lock()
	k := d.priv[id]
	d.mu.Unlock()
	if k != nil {
		return k, nil
	}
	if d.cfg.Seal == nil {
		return nil, keyhold.Internal("kms/builtin", errors.New("kms/builtin: no master key to open system keys with"))
	}
	material, err := d.cfg.Seal.Open(sealLabel(v.Name, v.Version), v.SealedPrivate)
	if err != nil {
		return nil, keyhold.Internal("kms/builtin: open system key "+v.Name+"/"+v.Version, err)
	}
	defer material.Wipe()
	k, err = keycrypto.ParsePrivate(material)
	if err != nil {
		return nil, keyhold.Internal("kms/builtin: parse system key "+v.Name+"/"+v.Version, err)
	}
	d.mu.Lock()
	d.priv[id] = k
	d.mu.Unlock()
	return k, nil
}

// EnsurePlatformKey returns a ref to the newest version of the platform key,
// creating the key (RSA-3072, wrapKey and unwrapKey only) in the system
// vault on first use. Two processes starting at once may each create a
// version; both stay usable (refs name their version) and the newer one is
// used from then on. It returns the store's error, or an EInternal one if
// seal is nil.
func EnsurePlatformKey(ctx context.Context, store keyhold.Store, seal *seal.Key) (keyhold.WrapRef, error) {
	ref := keyhold.WrapRef{Kind: keyhold.WrapPlatform, VaultID: SystemVault, KeyName: PlatformKeyName, Algorithm: kms.DefaultAlgorithm}
	v, err := store.GetKeyVersion(ctx, SystemVault, PlatformKeyName, "")
	if err == nil {
		ref.KeyVersion = v.Version
		return ref, nil
	}
	if !keyhold.IsNotFound(err) {
		return keyhold.WrapRef{}, err
	}
	priv, err := keycrypto.GenerateRSA(keycrypto.KtyRSA, PlatformKeySize, keycrypto.DefaultRSAExponent, rand.Reader)
	if err != nil {
		return keyhold.WrapRef{}, keyhold.Internal("kms/builtin: generate the platform key", err)
	}
	if _, err := storeSystemKey(ctx, store, seal, PlatformKeyName, priv, time.Now()); err != nil {
		return keyhold.WrapRef{}, err
	}
	v, err = store.GetKeyVersion(ctx, SystemVault, PlatformKeyName, "")
	if err != nil {
		return keyhold.WrapRef{}, err
	}
	ref.KeyVersion = v.Version
	return ref, nil
}

// ImportBYOK stores a tenant's uploaded RSA key (a JWK with its private
// part, 2048 to 4096 bits) as a new version of the tenant's BYOK key in the
// system vault, for the legacy path, and returns a ref to that version.
// It returns an EInvalid error for a tenant id that is not one segment or a
// JWK that is not a whole RSA private key, and the store's error otherwise.
func (d *Driver) ImportBYOK(ctx context.Context, tenantID string, jwk keycrypto.JWK) (keyhold.WrapRef, error) {
	if tenantID == "" || len(tenantID) > 100 || strings.ContainsAny(tenantID, "/\\ ") {
		return keyhold.WrapRef{}, keyhold.Errorf(keyhold.EInvalid, "kms/builtin: %q is not a tenant id", tenantID)
	}
	if !keycrypto.IsRSA(jwk.Kty) {
		return keyhold.WrapRef{}, keyhold.Errorf(keyhold.EInvalid, "kms/builtin: a tenant key must be RSA, not %q", jwk.Kty)
	}
	jwk.KeyOps = nil // the system vault decides what the key may do
	priv, err := keycrypto.ImportJWK(jwk)
	if err != nil {
		return keyhold.WrapRef{}, err
	}
	name := byokPrefix + strings.ToLower(tenantID)
	v, err := storeSystemKey(ctx, d.cfg.Store, d.cfg.Seal, name, priv, d.now())
	if err != nil {
		return keyhold.WrapRef{}, err
	}
	return keyhold.WrapRef{Kind: keyhold.WrapBYOK, VaultID: SystemVault, KeyName: name, KeyVersion: v.Version, Algorithm: kms.DefaultAlgorithm}, nil
}

// BYOKRef returns the ref of a tenant's BYOK key, newest version.
func BYOKRef(tenantID string) keyhold.WrapRef {
	return keyhold.WrapRef{Kind: keyhold.WrapBYOK, VaultID: SystemVault, KeyName: byokPrefix + strings.ToLower(tenantID), Algorithm: kms.DefaultAlgorithm}
}

// storeSystemKey seals priv and stores it as a new version of a system key.
func storeSystemKey(ctx context.Context, store keyhold.Store, sk *seal.Key, name string, priv *keycrypto.PrivateKey, now time.Time) (*keyhold.KeyVersion, error) {
	if sk == nil {
		return nil, keyhold.Internal("kms/builtin", errors.New("kms/builtin: no master key to seal system keys with"))
	}
	pub, err := json.Marshal(priv.PublicJWK())
	if err != nil {
		return nil, keyhold.Internal("kms/builtin: encode a public key", err)
	}
	material := priv.MarshalPrivate()
	defer material.Wipe()
	now = now.UTC().Truncate(time.Second)
	v := &keyhold.KeyVersion{
		VaultName: SystemVault, Name: name, Version: keycrypto.NewVersion(),
		Kty: priv.Kty(), KeySize: priv.Size(), KeyOps: []string{keycrypto.OpWrapKey, keycrypto.OpUnwrapKey},
		PublicJWK: pub, Enabled: true, CreatedAt: now, UpdatedAt: now,
	}
	v.SealedPrivate = sk.Seal(sealLabel(name, v.Version), material.Reveal())
	if err := store.CreateKeyVersion(ctx, v); err != nil {
		return nil, fmt.Errorf("kms/builtin: store system key %s: %w", name, err)
	}
	return v, nil
}
