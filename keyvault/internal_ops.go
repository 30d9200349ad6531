package keyvault

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"

	"github.com/keyhold/keyhold"
	"github.com/keyhold/keyhold/armid"
	"github.com/keyhold/keyhold/keyvault/keycrypto"
)

// Internal operations: the platform (package kms/builtin) wraps and unwraps
// environment root keys with a customer's key as the enterprise policy's
// managed identity, in-process, without an HTTP round trip. They apply the
// data plane's own rules through its own helpers (authorize, usable,
// getVersion, privateKey), so that what a request to /vaults/{name}/keys/...
// would refuse, these refuse too, with the same errors. They publish no
// events: a wrap or unwrap changes nothing.

// WrapKeyAs wraps plaintext with key keyName, version keyVersion ("" for the
// newest), of the vault with resource id vaultID, as principal p. RSA keys
// wrap with their public part, as a client holding the public key could. It
// returns the version it used, so that the caller can unwrap with exactly
// that version later.
//
// Errors: EInvalid for a nil principal, a vaultID that is not a vault's
// resource id, an empty alg or plaintext, or an algorithm the key does not
// take; ENotFound (Detail VaultNotFound) when the vault does not exist, is
// soft-deleted, or is another vault of the same name, and (KeyNotFound) when
// the key or version does not exist or is deleted; EForbidden when p is
// disabled, the vault firewall refuses it (ForbiddenByFirewall), its access
// policies or role assignments do not grant wrapKey (ForbiddenByPolicy,
// ForbiddenByRbac), or the key version is disabled, not yet valid, expired or
// lacks wrapKey in key_ops; the store's error otherwise.
func (s *Service) WrapKeyAs(ctx context.Context, p *keyhold.Principal, vaultID, keyName, keyVersion, alg string, plaintext []byte) (string, []byte, error) {
	if alg == "" {
		return "", nil, badParam("the algorithm (alg) is missing")
	}
	if len(plaintext) == 0 {
		return "", nil, badParam("the key to wrap is empty")
	}
	v, err := s.internalKey(ctx, p, vaultID, keyName, keyVersion, keycrypto.OpWrapKey, keycrypto.OpWrapKey, ActionKeysWrap)
	if err != nil {
		return "", nil, err
	}
	var jwk keycrypto.JWK
	if err := json.Unmarshal(v.PublicJWK, &jwk); err != nil {
		return "", nil, keyhold.Internal("keyvault: public key of "+v.Name+"/"+v.Version, err)
	}
	pub, err := keycrypto.NewPublicKey(jwk)
	if err != nil {
		return "", nil, keyhold.Internal("keyvault: public key of "+v.Name+"/"+v.Version, err)
	}
	wrapped, err := pub.WrapKey(alg, plaintext)
	if err != nil {
		return "", nil, err
	}
	return v.Version, wrapped, nil
}

// UnwrapKeyAs unwraps wrapped with key keyName, version keyVersion ("" for
// the newest, though a caller that kept the version WrapKeyAs returned
// should pass it), of the vault with resource id vaultID, as principal p.
// The caller owns the returned secret and should wipe it.
//
// Errors are those of WrapKeyAs for unwrapKey, and an EInvalid
// "BadParameter" error when wrapped does not unwrap under this key and
// algorithm (damaged, or wrapped by another key), whatever the cause.
func (s *Service) UnwrapKeyAs(ctx context.Context, p *keyhold.Principal, vaultID, keyName, keyVersion, alg string, wrapped []byte) (keyhold.Secret, error) {
	if alg == "" {
		return keyhold.Secret{}, badParam("the algorithm (alg) is missing")
	}
	if len(wrapped) == 0 {
		return keyhold.Secret{}, badParam("the value to unwrap is empty")
	}
	v, err := s.internalKey(ctx, p, vaultID, keyName, keyVersion, keycrypto.OpUnwrapKey, keycrypto.OpUnwrapKey, ActionKeysUnwrap)
	if err != nil {
		return keyhold.Secret{}, err
	}
	k, err := s.privateKey(v)
	if err != nil {
		return keyhold.Secret{}, err
	}
	pt, err := k.UnwrapKey(alg, wrapped)
	if err != nil {
		return keyhold.Secret{}, err
	}
	return keyhold.NewSecret(pt), nil
}

// CheckKeyAs reports whether principal p can use key keyName, version
// keyVersion ("" for the newest), of the vault vaultID now the way the
// platform uses a customer key, without doing any cryptography: read it
// (get, as the CMK prerequisites ask, so that the platform can follow new
// versions), wrap and unwrap, each by the same rules as WrapKeyAs and
// UnwrapKeyAs. It returns the version it checked, and the first refusal
// (with the codes and details those methods give), or nil.
func (s *Service) CheckKeyAs(ctx context.Context, p *keyhold.Principal, vaultID, keyName, keyVersion string) (string, error) {
	var v *keyhold.KeyVersion
	for _, o := range []struct{ op, perm, action string }{
		{keycrypto.OpWrapKey, keycrypto.OpWrapKey, ActionKeysWrap},
		{keycrypto.OpUnwrapKey, keycrypto.OpUnwrapKey, ActionKeysUnwrap},
		{"", "get", ActionKeysRead},
	} {
		var err error
		if v, err = s.internalKey(ctx, p, vaultID, keyName, keyVersion, o.op, o.perm, o.action); err != nil {
			return "", err
		}
		// Check the one version every operation would use, even if a new
		// version appears in between.
		keyVersion = v.Version
	}
	return v.Version, nil
}

// internalKey finds the vault and key version an internal operation uses,
// and applies the data plane's rules in the data plane's order: the vault
// exists, then the firewall and the access-policy permission perm or the
// RBAC data action (authorize), then the key version and, for a crypto
// operation op ("" for a plain read), its attributes and key_ops (usable).
func (s *Service) internalKey(ctx context.Context, p *keyhold.Principal, vaultID, keyName, keyVersion, op, perm, action string) (*keyhold.KeyVersion, error) {
	if p == nil {
		return nil, keyhold.Errorf(keyhold.EInvalid, "keyvault: no identity to use key %s as", keyName)
	}
	if !keyNameRE.MatchString(keyName) {
		return nil, badParam("the key name %q is not valid: use 1 to 127 letters, digits and hyphens", keyName)
	}
	vault, props, err := s.internalVault(ctx, vaultID)
	if err != nil {
		return nil, err
	}
	if p.Disabled {
		return nil, kvErr(keyhold.EForbidden, codeForbidden, innerForbiddenByPolicy,
			"keyvault: identity %s is disabled, so it cannot use vault %s", p.ID, vault.Name)
	}
	caller, err := s.callerFor(ctx, p)
	if err != nil {
		return nil, err
	}
	// The platform calls from inside the server, so the request has no
	// client address (platformAddr): no IP rule can let it through, only an
	// open vault or the trusted-service bypass, as for Azure's own services.
	rq := &request{r: (&http.Request{}).WithContext(ctx), caller: caller, vault: vault, props: props}
	if err := s.authorize(rq, operation{perm: perm, action: action, key: keyName}, rq.keyScope(keyName)); err != nil {
		return nil, err
	}
	v, err := s.getVersion(ctx, vault.Name, keyName, keyVersion)
	if err != nil {
		return nil, err
	}
	if op == "" {
		return v, nil
	}
	if err := usable(v, op, s.now()); err != nil {
		return nil, err
	}
	return v, nil
}

// internalVault returns the vault with resource id vaultID. Vault names are
// unique on a server, so the vault is found by name; a vault of that name
// with another id (the old one deleted, a new one made elsewhere) is not the
// vault the caller means and is not found.
func (s *Service) internalVault(ctx context.Context, vaultID string) (*keyhold.Resource, *Properties, error) {
	id, err := armid.Parse(vaultID)
	if err != nil || !strings.EqualFold(id.Type(), ResourceType) {
		return nil, nil, keyhold.Errorc(keyhold.EInvalid, "InvalidKeyVaultId",
			"keyvault: %q is not a key vault resource id; it looks like /subscriptions/{id}/resourceGroups/{group}/providers/Microsoft.KeyVault/vaults/{name}", vaultID)
	}
	vault, props, err := s.lookupVault(ctx, id.Name())
	if err != nil {
		return nil, nil, err
	}
	if !strings.EqualFold(vault.ID, vaultID) {
		return nil, nil, keyhold.Errorc(keyhold.ENotFound, DetailVaultNotFound, "keyvault: vault %s was not found on this server", vaultID)
	}
	return vault, props, nil
}
