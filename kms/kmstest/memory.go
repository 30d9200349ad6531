package kmstest

import (
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/hex"
	"strings"
	"sync"

	"github.com/keyhold/keyhold"
	"github.com/keyhold/keyhold/kms"
)

// Memory is an in-memory kms.Wrapper for tests of code above the seam (the
// environment lifecycle, say): keys are AES-256 keys by vault and name, with
// versions, that a test can disable, enable or make unreachable. It passes
// Run. It is safe for concurrent use.
type Memory struct {
	mu          sync.Mutex
	keys        map[string]*memKey
	unreachable bool
}

type memKey struct {
	versions map[string][]byte
	newest   string
	disabled bool
}

// NewMemory returns a Memory without keys.
func NewMemory() *Memory { return &Memory{keys: map[string]*memKey{}} }

func memName(vaultID, name string) string { return strings.ToLower(vaultID + "/" + name) }

// AddKey adds a new version to the key ref names (creating the key), makes
// it the newest, and returns ref with that version.
func (m *Memory) AddKey(ref keyhold.WrapRef) keyhold.WrapRef {
	m.mu.Lock()
	defer m.mu.Unlock()
	k := m.keys[memName(ref.VaultID, ref.KeyName)]
	if k == nil {
		k = &memKey{versions: map[string][]byte{}}
		m.keys[memName(ref.VaultID, ref.KeyName)] = k
	}
	v := make([]byte, 16)
	_, _ = rand.Read(v)
	material := make([]byte, 32)
	_, _ = rand.Read(material)
	ref.KeyVersion = hex.EncodeToString(v)
	k.versions[ref.KeyVersion] = material
	k.newest = ref.KeyVersion
	return ref
}

// SetEnabled enables or disables every version of a key.
func (m *Memory) SetEnabled(vaultID, keyName string, enabled bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if k := m.keys[memName(vaultID, keyName)]; k != nil {
		k.disabled = !enabled
	}
}

// Delete removes a key with all its versions.
func (m *Memory) Delete(vaultID, keyName string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.keys, memName(vaultID, keyName))
}

// SetUnreachable makes every call fail with EUnavailable, as a vault that
// cannot be reached does, until it is set back.
func (m *Memory) SetUnreachable(down bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.unreachable = down
}

// version finds the key material for ref, classifying failures as a driver
// must.
func (m *Memory) version(ref keyhold.WrapRef, forUnwrap bool) (keyhold.WrapRef, cipher.AEAD, error) {
	if err := kms.CheckRef(ref, forUnwrap); err != nil {
		return ref, nil, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.unreachable {
		return ref, nil, keyhold.Errorf(keyhold.EUnavailable, "kmstest: vault %s cannot be reached", ref.VaultID)
	}
	k := m.keys[memName(ref.VaultID, ref.KeyName)]
	if k == nil {
		return ref, nil, keyhold.Errorf(keyhold.EForbidden, "kmstest: key %s does not exist", ref.KeyName)
	}
	if k.disabled {
		return ref, nil, keyhold.Errorf(keyhold.EForbidden, "kmstest: key %s is disabled", ref.KeyName)
	}
	if ref.KeyVersion == "" {
		ref.KeyVersion = k.newest
	}
	material, ok := k.versions[ref.KeyVersion]
	if !ok {
		return ref, nil, keyhold.Errorf(keyhold.EForbidden, "kmstest: key %s has no version %s", ref.KeyName, ref.KeyVersion)
	}
	if ref.Algorithm == "" {
		ref.Algorithm = "A256GCM"
	}
	block, err := aes.NewCipher(material)
	if err != nil {
		return ref, nil, keyhold.Internal("kmstest", err)
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return ref, nil, keyhold.Internal("kmstest", err)
	}
	return ref, aead, nil
}

func memAD(ref keyhold.WrapRef) []byte {
	return []byte(strings.ToLower(ref.Kind + "\x00" + ref.VaultID + "\x00" + ref.KeyName + "\x00" + ref.KeyVersion))
}

// Wrap implements kms.Wrapper.
func (m *Memory) Wrap(_ context.Context, ref keyhold.WrapRef, plaintext keyhold.Secret) ([]byte, keyhold.WrapRef, error) {
	if plaintext.IsZero() {
		return nil, ref, keyhold.Errorf(keyhold.EInvalid, "kmstest: nothing to wrap")
	}
	used, aead, err := m.version(ref, false)
	if err != nil {
		return nil, ref, err
	}
	nonce := make([]byte, aead.NonceSize())
	_, _ = rand.Read(nonce)
	return aead.Seal(nonce, nonce, plaintext.Reveal(), memAD(used)), used, nil
}

// Unwrap implements kms.Wrapper.
func (m *Memory) Unwrap(_ context.Context, ref keyhold.WrapRef, wrapped []byte) (keyhold.Secret, error) {
	used, aead, err := m.version(ref, true)
	if err != nil {
		return keyhold.Secret{}, err
	}
	if len(wrapped) < aead.NonceSize()+aead.Overhead() {
		return keyhold.Secret{}, keyhold.Errorf(keyhold.EInvalid, "kmstest: the wrapped value does not unwrap with %s", kms.Describe(used))
	}
	pt, err := aead.Open(nil, wrapped[:aead.NonceSize()], wrapped[aead.NonceSize():], memAD(used))
	if err != nil {
		return keyhold.Secret{}, keyhold.Errorf(keyhold.EInvalid, "kmstest: the wrapped value does not unwrap with %s", kms.Describe(used))
	}
	return keyhold.NewSecret(pt), nil
}

// Check implements kms.Wrapper.
func (m *Memory) Check(_ context.Context, ref keyhold.WrapRef) error {
	_, _, err := m.version(ref, false)
	return err
}
