package keyvault

import (
	"context"
	"crypto/rand"
	"errors"
	"strings"
	"sync"
	"time"

	"github.com/keyhold/keyhold"
	"github.com/keyhold/keyhold/keyvault/keycrypto"
)

// keyCacheSize bounds the parsed private keys kept in memory.
const keyCacheSize = 1024

// keyCache keeps parsed private keys by vault/name/version, so that a hot
// unwrap neither opens the seal nor parses PKCS #8 each time. Key material of
// a version never changes, so entries need no expiry; they are dropped when
// the key is updated, deleted or purged, so that a key leaves memory once it
// is no longer usable. The zero value is ready to use.
type keyCache struct {
	mu sync.Mutex
	m  map[string]*keycrypto.PrivateKey
}

func cacheKey(vault, name, version string) string {
	return strings.ToLower(vault + "/" + name + "/" + version)
}

func (c *keyCache) get(vault, name, version string) *keycrypto.PrivateKey {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.m[cacheKey(vault, name, version)]
}

func (c *keyCache) put(vault, name, version string, k *keycrypto.PrivateKey) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.m == nil {
		c.m = map[string]*keycrypto.PrivateKey{}
	}
	if len(c.m) >= keyCacheSize {
		// Evict an arbitrary entry: map order is random, and a miss only
		// costs one seal open.
		for k := range c.m {
			delete(c.m, k)
			break
		}
	}
	c.m[cacheKey(vault, name, version)] = k
}

// drop forgets every version of a key.
func (c *keyCache) drop(vault, name string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	prefix := strings.ToLower(vault + "/" + name + "/")
	for k := range c.m {
		if strings.HasPrefix(k, prefix) {
			delete(c.m, k)
		}
	}
}

// dropVault forgets every key of a vault.
func (c *keyCache) dropVault(vault string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	prefix := strings.ToLower(vault + "/")
	for k := range c.m {
		if strings.HasPrefix(k, prefix) {
			delete(c.m, k)
		}
	}
}

func (c *keyCache) len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.m)
}

// privateKey returns the parsed private key of v, from the cache or by
// opening its sealed material.
func (s *Service) privateKey(v *keyhold.KeyVersion) (*keycrypto.PrivateKey, error) {
	if k := s.cache.get(v.VaultName, v.Name, v.Version); k != nil {
		return k, nil
	}
	if s.cfg.Seal == nil {
		return nil, keyhold.Internal("keyvault", errMissingSeal)
	}
	material, err := s.cfg.Seal.Open(sealLabel(v.VaultName, v.Name, v.Version), v.SealedPrivate)
	if err != nil {
		return nil, keyhold.Internal("keyvault: open key material of "+v.Name+"/"+v.Version, err)
	}
	defer material.Wipe()
	k, err := keycrypto.ParsePrivate(material)
	if err != nil {
		return nil, err
	}
	s.cache.put(v.VaultName, v.Name, v.Version, k)
	return k, nil
}

// usable refuses an operation on a version that is disabled, not yet
// active or expired, or whose key_ops lack op.
func usable(v *keyhold.KeyVersion, op string, now time.Time) error {
	switch {
	case !v.Enabled:
		return kvErr(keyhold.EForbidden, codeForbidden, innerKeyDisabled, "Operation %s is not allowed on a disabled key.", op)
	case !v.NotBefore.IsZero() && now.Before(v.NotBefore):
		return kvErr(keyhold.EForbidden, codeForbidden, innerKeyNotYetValid, "Operation %s is not allowed on a key that is not yet valid (nbf %s).", op, v.NotBefore.UTC().Format(time.RFC3339))
	case !v.Expires.IsZero() && !now.Before(v.Expires):
		return kvErr(keyhold.EForbidden, codeForbidden, innerKeyExpired, "Operation %s is not allowed on an expired key (exp %s).", op, v.Expires.UTC().Format(time.RFC3339))
	case !keycrypto.HasKeyOp(v.KeyOps, op):
		return kvErr(keyhold.EForbidden, codeForbidden, innerKeyOpForbidden, "Operation %s is not permitted on this key.", op)
	}
	return nil
}

// serveCrypto serves encrypt, decrypt, wrapKey, unwrapKey, sign and verify
// on a version of a key (the latest for version "").
func serveCrypto(name, version, op string) func(*Service, *request) error {
	return func(s *Service, rq *request) error {
		if op == keycrypto.OpSign || op == keycrypto.OpVerify {
			var p keySignParameters
			if err := decode(rq, &p); err != nil {
				return err
			}
			return s.signVerify(rq, name, version, op, &p)
		}
		var p keyOperationsParameters
		if err := decode(rq, &p); err != nil {
			return err
		}
		if p.Alg == "" {
			return badParam("the algorithm (alg) is missing")
		}
		if len(p.Value) == 0 {
			return badParam("the value is missing or empty")
		}
		v, k, err := s.operationKey(rq.ctx(), rq.vaultName(), name, version, op)
		if err != nil {
			return err
		}
		var out []byte
		switch op {
		case keycrypto.OpEncrypt:
			out, err = k.Encrypt(p.Alg, p.Value)
		case keycrypto.OpWrapKey:
			out, err = k.WrapKey(p.Alg, p.Value)
		case keycrypto.OpDecrypt:
			out, err = k.Decrypt(p.Alg, p.Value)
		case keycrypto.OpUnwrapKey:
			out, err = k.UnwrapKey(p.Alg, p.Value)
		}
		if err != nil {
			return err
		}
		return writeJSON(rq, KeyOperationResult{KID: rq.versionID(v), Value: out})
	}
}

func (s *Service) signVerify(rq *request, name, version, op string, p *keySignParameters) error {
	if p.Alg == "" {
		return badParam("the algorithm (alg) is missing")
	}
	if op == keycrypto.OpSign {
		if len(p.Value) == 0 {
			return badParam("the digest to sign (value) is missing or empty")
		}
	} else if len(p.Digest) == 0 || len(p.Value) == 0 {
		return badParam("verify needs the digest and the signature (value)")
	}
	v, k, err := s.operationKey(rq.ctx(), rq.vaultName(), name, version, op)
	if err != nil {
		return err
	}
	if op == keycrypto.OpSign {
		sig, err := k.Sign(p.Alg, p.Value)
		if err != nil {
			return err
		}
		return writeJSON(rq, KeyOperationResult{KID: rq.versionID(v), Value: sig})
	}
	ok, err := k.Verify(p.Alg, p.Digest, p.Value)
	if err != nil {
		return err
	}
	return writeJSON(rq, KeyVerifyResult{Value: ok})
}

// operationKey reads the version an operation uses, checks that it may be
// used for op now, and returns its private key.
func (s *Service) operationKey(ctx context.Context, vault, name, version, op string) (*keyhold.KeyVersion, *keycrypto.PrivateKey, error) {
	v, err := s.getVersion(ctx, vault, name, version)
	if err != nil {
		return nil, nil, err
	}
	if err := usable(v, op, s.now()); err != nil {
		return nil, nil, err
	}
	k, err := s.privateKey(v)
	if err != nil {
		return nil, nil, err
	}
	return v, k, nil
}

// serveRNG answers POST /rng {"count":n} with n random bytes (1 to 128).
func (s *Service) serveRNG(rq *request) error {
	var p struct {
		Count *int `json:"count"`
	}
	if err := decode(rq, &p); err != nil {
		return err
	}
	if p.Count == nil || *p.Count < 1 || *p.Count > 128 {
		return badParam("count must be a number from 1 to 128")
	}
	b := make([]byte, *p.Count)
	_, _ = rand.Read(b) // crypto/rand.Read never fails since Go 1.24
	return writeJSON(rq, struct {
		Value keycrypto.Bytes `json:"value"`
	}{b})
}

var errMissingSeal = errors.New("no master key to open key material with")
