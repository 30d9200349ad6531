package envelope

import (
	"bytes"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"strings"
	"testing"

	"github.com/keyhold/keyhold"
)

func testKey(b byte) keyhold.Secret {
	return keyhold.NewSecret(bytes.Repeat([]byte{b}, RootKeySize))
}

// keys returns a lookup over a fixed set of generations.
func keys(m map[int64]keyhold.Secret) func(int64) (keyhold.Secret, error) {
	return func(gen int64) (keyhold.Secret, error) {
		if k, ok := m[gen]; ok {
			return k, nil
		}
		return keyhold.Secret{}, keyhold.Errorf(keyhold.ENotFound, "no generation %d", gen)
	}
}

func TestSealOpenRoundTrip(t *testing.T) {
	root := testKey(7)
	for _, tc := range []struct {
		name string
		gen  int64
		pt   []byte
	}{
		{"empty", 1, nil},
		{"one byte", 1, []byte{0}},
		{"row", 2, []byte(`{"name":"Contoso"}`)},
		{"large generation", 1 << 40, bytes.Repeat([]byte("x"), 70000)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := RowBinding("env-1", "accounts", "row-1")
			sealed := Seal(root, tc.gen, b, tc.pt)
			if got, want := len(sealed), len(tc.pt)+MinOverhead-1+uvarintLen(uint64(tc.gen)); got != want {
				t.Errorf("len(sealed) = %d, want %d", got, want)
			}
			gen, err := GenerationOf(sealed)
			if err != nil || gen != tc.gen {
				t.Fatalf("GenerationOf = %d, %v; want %d", gen, err, tc.gen)
			}
			got, err := Open(keys(map[int64]keyhold.Secret{tc.gen: root}), b, sealed)
			if err != nil {
				t.Fatalf("Open: %v", err)
			}
			if !bytes.Equal(got, tc.pt) {
				t.Errorf("Open = %q, want %q", got, tc.pt)
			}
			if len(tc.pt) > 8 && bytes.Contains(sealed, tc.pt[:8]) {
				t.Errorf("sealed value contains the plaintext")
			}
		})
	}
}

func TestSealIsRandomized(t *testing.T) {
	root, b := testKey(1), RowBinding("e", "t", "r")
	a1, a2 := Seal(root, 1, b, []byte("same")), Seal(root, 1, b, []byte("same"))
	if bytes.Equal(a1, a2) {
		t.Fatal("two seals of the same plaintext are equal; salt and nonce must be fresh")
	}
}

func TestSealRandIsReproducible(t *testing.T) {
	root, b := testKey(1), RowBinding("e", "t", "r")
	fixed := func() *bytes.Reader { return bytes.NewReader(bytes.Repeat([]byte{9}, SaltSize+NonceSize)) }
	a1, err1 := SealRand(fixed(), root, 3, b, []byte("x"))
	a2, err2 := SealRand(fixed(), root, 3, b, []byte("x"))
	if err1 != nil || err2 != nil || !bytes.Equal(a1, a2) {
		t.Fatalf("SealRand with the same randomness differs: %v %v", err1, err2)
	}
	if _, err := SealRand(bytes.NewReader(nil), root, 3, b, []byte("x")); keyhold.ErrorCode(err) != keyhold.EInternal {
		t.Errorf("SealRand with a failing reader: err = %v, want internal", err)
	}
}

func TestSealRefusesBadArguments(t *testing.T) {
	for _, tc := range []struct {
		name string
		root keyhold.Secret
		gen  int64
	}{
		{"short key", keyhold.NewSecret(make([]byte, 16)), 1},
		{"empty key", keyhold.Secret{}, 1},
		{"generation 0", testKey(1), 0},
		{"negative generation", testKey(1), -4},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := SealRand(rand.Reader, tc.root, tc.gen, RowBinding("e", "t", "r"), []byte("x")); keyhold.ErrorCode(err) != keyhold.EInternal {
				t.Errorf("SealRand err = %v, want internal", err)
			}
			defer func() {
				if recover() == nil {
					t.Error("Seal did not panic")
				}
			}()
			Seal(tc.root, tc.gen, RowBinding("e", "t", "r"), []byte("x"))
		})
	}
}

// TestOpenRefusesMovedCiphertext is the core promise: a sealed value copied
// to another row, table, environment, purpose or segment does not open.
func TestOpenRefusesMovedCiphertext(t *testing.T) {
	root := testKey(3)
	lookup := keys(map[int64]keyhold.Secret{1: root})
	orig := Binding{EnvironmentID: "env-a", Table: "accounts", RowID: "r1", Purpose: PurposeRow}
	sealed := Seal(root, 1, orig, []byte("secret row"))
	for _, tc := range []struct {
		name string
		b    Binding
	}{
		{"other row", Binding{"env-a", "accounts", "r2", PurposeRow}},
		{"other table", Binding{"env-a", "contacts", "r1", PurposeRow}},
		{"other environment", Binding{"env-b", "accounts", "r1", PurposeRow}},
		{"other purpose", Binding{"env-a", "accounts", "r1", SegmentPurpose(0)}},
		{"field boundary moved", Binding{"env-a", "accountsr", "1", PurposeRow}},
		{"field boundary moved 2", Binding{"env-aaccounts", "", "r1", PurposeRow}},
		{"row id case", Binding{"env-a", "accounts", "R1", PurposeRow}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := Open(lookup, tc.b, sealed)
			if got != nil {
				t.Fatalf("Open returned plaintext %q", got)
			}
			if !IsIntegrityError(err) {
				t.Fatalf("err = %v, want an integrity error", err)
			}
			msg := keyhold.ErrorMessage(err)
			if strings.Contains(msg, "secret row") || !strings.Contains(msg, tc.b.RowID) {
				t.Errorf("message %q should name the row and never the data", msg)
			}
		})
	}
	// Environment ids and table names compare case-insensitively.
	if _, err := Open(lookup, Binding{"ENV-A", "Accounts", "r1", PurposeRow}, sealed); err != nil {
		t.Errorf("Open with another case of environment and table: %v", err)
	}
}

func TestOpenRefusesMovedSegment(t *testing.T) {
	root := testKey(4)
	lookup := keys(map[int64]keyhold.Secret{1: root})
	s0 := Seal(root, 1, SegmentBinding("e", "notes", "n1", 0), []byte("part zero"))
	s1 := Seal(root, 1, SegmentBinding("e", "notes", "n1", 1), []byte("part one"))
	if _, err := Open(lookup, SegmentBinding("e", "notes", "n1", 0), s1); !IsIntegrityError(err) {
		t.Errorf("segment 1 opened as segment 0: err = %v", err)
	}
	if _, err := Open(lookup, SegmentBinding("e", "notes", "n1", 1), s0); !IsIntegrityError(err) {
		t.Errorf("segment 0 opened as segment 1: err = %v", err)
	}
	if got, err := Open(lookup, SegmentBinding("e", "notes", "n1", 1), s1); err != nil || string(got) != "part one" {
		t.Errorf("segment 1 = %q, %v", got, err)
	}
}

func TestOpenRefusesTampering(t *testing.T) {
	root := testKey(5)
	b := RowBinding("e", "t", "r")
	lookup := keys(map[int64]keyhold.Secret{1: root, 2: testKey(6)})
	sealed := Seal(root, 1, b, []byte("hello world"))
	for i := range sealed {
		mod := bytes.Clone(sealed)
		mod[i] ^= 0x01
		got, err := Open(lookup, b, mod)
		if err == nil || got != nil {
			t.Fatalf("flipping bit 0 of byte %d: Open = %q, %v", i, got, err)
		}
	}
	// Naming another generation in the header must not open with that
	// generation's key, nor with the right key.
	mod := bytes.Clone(sealed)
	mod[1] = 2
	if _, err := Open(lookup, b, mod); !IsIntegrityError(err) {
		t.Errorf("generation changed: err = %v, want an integrity error", err)
	}
	if _, err := Open(keys(map[int64]keyhold.Secret{2: root}), b, mod); !IsIntegrityError(err) {
		t.Errorf("generation changed, right key: err = %v, want an integrity error", err)
	}
	if _, err := Open(lookup, b, sealed[:len(sealed)-1]); !IsIntegrityError(err) {
		t.Errorf("truncated: err = %v, want an integrity error", err)
	}
	if _, err := Open(lookup, b, append(bytes.Clone(sealed), 0)); !IsIntegrityError(err) {
		t.Errorf("extended: err = %v, want an integrity error", err)
	}
	// Another root key for the same generation.
	if _, err := Open(keys(map[int64]keyhold.Secret{1: testKey(8)}), b, sealed); !IsIntegrityError(err) {
		t.Errorf("wrong key: err = %v, want an integrity error", err)
	}
}

func TestOpenMalformed(t *testing.T) {
	b := RowBinding("e", "t", "r")
	ok := func(int64) (keyhold.Secret, error) { return testKey(1), nil }
	valid := Seal(testKey(1), 1, b, nil)
	overlong := append([]byte{Version, 0x81, 0x00}, make([]byte, SaltSize+NonceSize+TagSize)...)
	huge := binary.AppendUvarint([]byte{Version}, 1<<63)
	huge = append(huge, make([]byte, SaltSize+NonceSize+TagSize)...)
	for _, tc := range []struct {
		name   string
		sealed []byte
	}{
		{"nil", nil},
		{"version only", []byte{Version}},
		{"short", valid[:MinOverhead-1]},
		{"wrong version", append([]byte{2}, valid[1:]...)},
		{"generation zero", append([]byte{Version, 0}, valid[2:]...)},
		{"non-minimal varint", overlong},
		{"generation beyond int64", huge},
		{"unterminated varint", append([]byte{Version}, bytes.Repeat([]byte{0xff}, 60)...)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := GenerationOf(tc.sealed); !IsIntegrityError(err) {
				t.Errorf("GenerationOf err = %v, want an integrity error", err)
			}
			if _, err := Open(ok, b, tc.sealed); !IsIntegrityError(err) {
				t.Errorf("Open err = %v, want an integrity error", err)
			}
		})
	}
}

func TestOpenPassesLookupErrors(t *testing.T) {
	b := RowBinding("e", "t", "r")
	sealed := Seal(testKey(1), 9, b, []byte("x"))
	denied := keyhold.Errorf(keyhold.EForbidden, "locked")
	var asked int64
	_, err := Open(func(gen int64) (keyhold.Secret, error) { asked = gen; return keyhold.Secret{}, denied }, b, sealed)
	if !errors.Is(err, denied) || asked != 9 {
		t.Errorf("Open err = %v (asked %d), want the lookup's error for generation 9", err, asked)
	}
	_, err = Open(func(int64) (keyhold.Secret, error) { return keyhold.NewSecret([]byte("short")), nil }, b, sealed)
	if keyhold.ErrorCode(err) != keyhold.EInternal {
		t.Errorf("short root key: err = %v, want internal", err)
	}
}

func TestNewRootKey(t *testing.T) {
	k1, err := NewRootKey(nil)
	if err != nil || k1.Len() != RootKeySize {
		t.Fatalf("NewRootKey = %d bytes, %v", k1.Len(), err)
	}
	k2, _ := NewRootKey(nil)
	if k1.Equal(k2) {
		t.Error("two root keys are equal")
	}
	if _, err := NewRootKey(bytes.NewReader(make([]byte, 5))); err == nil {
		t.Error("NewRootKey with a short reader succeeded")
	}
}
