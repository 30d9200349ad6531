// Package seal encrypts secrets at rest (signing keys, the CA key, software
// key material) under the server master key with AES-256-GCM. Each sealed
// value is bound to a label, so a value sealed for one purpose does not open
// as another.
package seal

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"errors"
	"fmt"

	"github.com/keyhold/keyhold"
)

// KeySize is the size of a master key in bytes.
const KeySize = 32

const version = 1

// Key is a master key. The zero Key is unusable.
type Key struct {
	aead cipher.AEAD
}

// NewKey returns a Key for a 32-byte master key.
func NewKey(master keyhold.Secret) (*Key, error) {
	if master.Len() != KeySize {
		return nil, fmt.Errorf("seal: master key must be %d bytes, got %d", KeySize, master.Len())
	}
	block, err := aes.NewCipher(master.Reveal())
	if err != nil {
		return nil, fmt.Errorf("seal: %w", err)
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, fmt.Errorf("seal: %w", err)
	}
	return &Key{aead: aead}, nil
}

// GenerateMasterKey returns a new random master key.
func GenerateMasterKey() keyhold.Secret {
	b := make([]byte, KeySize)
	if _, err := rand.Read(b); err != nil {
		panic("seal: no randomness: " + err.Error())
	}
	return keyhold.NewSecret(b)
}

// Seal encrypts plaintext for label. The result is version || nonce || ciphertext.
func (k *Key) Seal(label string, plaintext []byte) []byte {
	out := make([]byte, 1, 1+k.aead.NonceSize()+len(plaintext)+k.aead.Overhead())
	out[0] = version
	nonce := make([]byte, k.aead.NonceSize())
	if _, err := rand.Read(nonce); err != nil {
		panic("seal: no randomness: " + err.Error())
	}
	out = append(out, nonce...)
	return k.aead.Seal(out, nonce, plaintext, []byte(label))
}

// ErrOpen is returned when a sealed value is damaged, was sealed under another
// master key, or for another label.
var ErrOpen = errors.New("seal: cannot open sealed value: wrong master key, wrong label or damaged data")

// Open decrypts a value sealed for label.
func (k *Key) Open(label string, sealed []byte) (keyhold.Secret, error) {
	ns := k.aead.NonceSize()
	if len(sealed) < 1+ns+k.aead.Overhead() || sealed[0] != version {
		return keyhold.Secret{}, ErrOpen
	}
	pt, err := k.aead.Open(nil, sealed[1:1+ns], sealed[1+ns:], []byte(label))
	if err != nil {
		return keyhold.Secret{}, ErrOpen
	}
	return keyhold.NewSecret(pt), nil
}
