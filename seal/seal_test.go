package seal_test

import (
	"bytes"
	"errors"
	"testing"

	"github.com/keyhold/keyhold"
	"github.com/keyhold/keyhold/seal"
)

func TestSealOpen(t *testing.T) {
	k, err := seal.NewKey(seal.GenerateMasterKey())
	if err != nil {
		t.Fatal(err)
	}
	other, _ := seal.NewKey(seal.GenerateMasterKey())
	msg := []byte("signing key bytes")
	sealed := k.Seal("identity/signing-key", msg)
	if bytes.Contains(sealed, msg) {
		t.Fatal("sealed value contains the plaintext")
	}
	got, err := k.Open("identity/signing-key", sealed)
	if err != nil || !bytes.Equal(got.Reveal(), msg) {
		t.Fatalf("Open = %q, %v", got.Reveal(), err)
	}
	if bytes.Equal(sealed, k.Seal("identity/signing-key", msg)) {
		t.Error("two seals of one value are equal: nonce reused")
	}
	flipped := bytes.Clone(sealed)
	flipped[len(flipped)-1] ^= 1
	for name, tc := range map[string]struct {
		k     *seal.Key
		label string
		data  []byte
	}{
		"wrong label": {k, "pki/ca-key", sealed},
		"wrong key":   {other, "identity/signing-key", sealed},
		"flipped bit": {k, "identity/signing-key", flipped},
		"truncated":   {k, "identity/signing-key", sealed[:10]},
		"empty":       {k, "identity/signing-key", nil},
	} {
		if _, err := tc.k.Open(tc.label, tc.data); !errors.Is(err, seal.ErrOpen) {
			t.Errorf("%s: err = %v, want ErrOpen", name, err)
		}
	}
}

func TestNewKeyRejectsShortKeys(t *testing.T) {
	if _, err := seal.NewKey(keyhold.NewSecret(make([]byte, 16))); err == nil {
		t.Fatal("16-byte master key accepted")
	}
}
