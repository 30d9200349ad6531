// Package kms is the seam between the platform and the vaults that hold the
// keys wrapping environment root keys: the platform-managed key, a
// customer's key reached through an enterprise policy's managed identity, and
// legacy tenant-uploaded (BYOK) keys. A driver (kms/builtin for Keyhold's own
// vaults; remote vaults later) implements Wrapper; kms/kmstest is the
// conformance suite every driver passes.
//
// Errors are classified so that the platform knows what to do:
//
//   - EForbidden: a definite denial. Access was removed, the key or version
//     is disabled, expired or not yet valid, deleted, the vault is deleted or
//     closed by its firewall, the policy or its identity is gone. The
//     platform locks the environment at once.
//   - EUnavailable: the vault could not be asked (unreachable, timed out,
//     its store is down). The platform keeps serving from its cache for a
//     grace period, then locks.
//   - EInvalid: the request itself is wrong: a malformed ref, or a wrapped
//     value that does not unwrap under the ref (damaged, or wrapped by
//     another key). Neither locking nor waiting helps.
package kms

import (
	"context"
	"strings"

	"github.com/keyhold/keyhold"
)

// Kinds of vault call, as the call counter labels them.
const (
	CallWrap   = "wrap"
	CallUnwrap = "unwrap"
	CallCheck  = "check"
)

// DefaultAlgorithm is the key-wrapping algorithm a ref without one uses.
const DefaultAlgorithm = "RSA-OAEP-256"

// Wrapper wraps and unwraps root keys with the key a keyhold.WrapRef names.
// Implementations are safe for concurrent use.
type Wrapper interface {
	// Wrap wraps plaintext with the key ref names; a ref without a
	// KeyVersion means the key's newest version. It returns the wrapped
	// bytes and the ref it used, with the concrete KeyVersion and
	// Algorithm, which is what Unwrap needs later.
	Wrap(ctx context.Context, ref keyhold.WrapRef, plaintext keyhold.Secret) (wrapped []byte, used keyhold.WrapRef, err error)
	// Unwrap unwraps what Wrap returned, with the ref Wrap returned. The
	// caller owns the secret and should wipe it.
	Unwrap(ctx context.Context, ref keyhold.WrapRef, wrapped []byte) (keyhold.Secret, error)
	// Check reports whether ref can be used now, for both wrap and unwrap,
	// without wrapping anything: nil, or an error classified as above.
	Check(ctx context.Context, ref keyhold.WrapRef) error
}

// Denied reports whether err is a definite denial: lock at once.
func Denied(err error) bool { return keyhold.ErrorCode(err) == keyhold.EForbidden }

// Unreachable reports whether err says the vault could not be asked: serve
// from the cache for the grace period.
func Unreachable(err error) bool { return keyhold.ErrorCode(err) == keyhold.EUnavailable }

// CheckRef checks the shape of ref: a known kind, a vault and a key name, a
// policy for customer keys, and, if forUnwrap, a concrete key version (a
// wrapped value was made by one version; "the newest" may be another by
// now). It returns an EInvalid error saying what is missing.
func CheckRef(ref keyhold.WrapRef, forUnwrap bool) error {
	switch ref.Kind {
	case keyhold.WrapPlatform, keyhold.WrapBYOK:
	case keyhold.WrapCustomer:
		if strings.TrimSpace(ref.PolicyID) == "" {
			return keyhold.Errorf(keyhold.EInvalid, "kms: a customer key ref names no policy, whose identity would use the key")
		}
	case "":
		return keyhold.Errorf(keyhold.EInvalid, "kms: the key ref has no kind; it is one of %s, %s and %s", keyhold.WrapPlatform, keyhold.WrapCustomer, keyhold.WrapBYOK)
	default:
		return keyhold.Errorf(keyhold.EInvalid, "kms: unknown key ref kind %q; it is one of %s, %s and %s", ref.Kind, keyhold.WrapPlatform, keyhold.WrapCustomer, keyhold.WrapBYOK)
	}
	if strings.TrimSpace(ref.VaultID) == "" {
		return keyhold.Errorf(keyhold.EInvalid, "kms: the %s key ref names no vault", ref.Kind)
	}
	if strings.TrimSpace(ref.KeyName) == "" {
		return keyhold.Errorf(keyhold.EInvalid, "kms: the %s key ref names no key", ref.Kind)
	}
	if forUnwrap && ref.KeyVersion == "" {
		return keyhold.Errorf(keyhold.EInvalid, "kms: unwrapping with key %s needs the version it wrapped with", ref.KeyName)
	}
	return nil
}

// Describe names ref for messages and logs: kind, vault, key and version. A
// ref holds no secret.
func Describe(ref keyhold.WrapRef) string {
	s := ref.Kind + " key " + ref.KeyName
	if ref.KeyVersion != "" {
		s += "/" + ref.KeyVersion
	}
	return s + " in vault " + ref.VaultID
}

// GenerationUnwrapper unwraps root-key generations with a Wrapper; it is the
// envelope.Unwrapper of an envelope.Keyring.
type GenerationUnwrapper struct{ Wrapper Wrapper }

// Unwrap unwraps g.Wrapped with g.WrappedBy. A generation without a wrapped
// key (destroyed) is ENotFound; otherwise it returns the Wrapper's errors.
func (u GenerationUnwrapper) Unwrap(ctx context.Context, g *keyhold.RootKeyGeneration) (keyhold.Secret, error) {
	if len(g.Wrapped) == 0 {
		return keyhold.Secret{}, keyhold.Errorf(keyhold.ENotFound, "kms: root-key generation %d of environment %s has no wrapped key", g.Generation, g.EnvironmentID)
	}
	return u.Wrapper.Unwrap(ctx, g.WrappedBy, g.Wrapped)
}
