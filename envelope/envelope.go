// Package envelope is the lower half of Keyhold's key hierarchy: environment
// root keys, the record keys derived from them, and the format of a sealed
// record.
//
// A root key is 32 random bytes per generation of an environment. Each record
// (a row, or one segment of a file) is sealed under a fresh record key,
// HKDF-SHA256(root key, salt = 16 random bytes, info = "keyhold/record/v1" ||
// environment id || table), with AES-256-GCM; the associated data binds the
// ciphertext to its environment, table, row id and purpose, so that a sealed
// value copied anywhere else does not open.
//
// A sealed record is
//
//	version (1 byte, 0x01) || generation (uvarint, >= 1) || salt (16) || nonce (12) || ciphertext || tag (16)
//
// The header is authenticated too (it is part of the associated data), so
// that a generation or salt that was changed is detected like a changed
// ciphertext.
package envelope

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"

	"github.com/keyhold/keyhold"
)

// Sizes of the record format.
const (
	// RootKeySize is the size of a root key in bytes.
	RootKeySize = 32
	// SaltSize is the size of a record's HKDF salt.
	SaltSize = 16
	// NonceSize is the size of a record's AES-GCM nonce.
	NonceSize = 12
	// TagSize is the size of the AES-GCM tag.
	TagSize = 16
	// Version is the format version byte that starts every sealed record.
	Version = 0x01
	// MinOverhead is the smallest number of bytes Seal adds to a plaintext
	// (a one-byte generation).
	MinOverhead = 1 + 1 + SaltSize + NonceSize + TagSize
)

// Purposes of sealed values.
const (
	// PurposeRow is the purpose of a table row.
	PurposeRow = "row"
	// purposeSegment prefixes the purpose of a file segment; the segment's
	// index follows it.
	purposeSegment = "file-segment:"
)

// label is both the HKDF info prefix and the first part of the associated
// data, so that a key or a ciphertext of another format never fits this one.
const label = "keyhold/record/v1"

// DetailIntegrity is the Detail of the error Open returns for a sealed value
// that does not open: it is damaged, was tampered with, or was sealed for
// another row, table, environment or segment.
const DetailIntegrity = "RecordIntegrityFailure"

// Binding says where a sealed value belongs. Every field takes part in the
// associated data, so the value opens only with the same Binding. The
// environment id (a GUID) and the table name compare case-insensitively, as
// the store compares them, so they are bound in lower case; the row id and
// the purpose are bound exactly.
type Binding struct {
	EnvironmentID string
	Table         string
	RowID         string
	// Purpose says what the value is: PurposeRow for a row, or
	// SegmentPurpose(n) for segment n of a file.
	Purpose string
}

// RowBinding binds a sealed row to its environment, table and id.
func RowBinding(environmentID, table, rowID string) Binding {
	return Binding{EnvironmentID: environmentID, Table: table, RowID: rowID, Purpose: PurposeRow}
}

// SegmentBinding binds segment n of a file stored in a row.
func SegmentBinding(environmentID, table, rowID string, n int64) Binding {
	return Binding{EnvironmentID: environmentID, Table: table, RowID: rowID, Purpose: SegmentPurpose(n)}
}

// SegmentPurpose is the purpose of segment n of a file: "file-segment:<n>".
func SegmentPurpose(n int64) string { return purposeSegment + strconv.FormatInt(n, 10) }

// String names the binding for messages; it holds no secret.
func (b Binding) String() string {
	return fmt.Sprintf("%s of row %q in table %q of environment %s", b.Purpose, b.RowID, b.Table, b.EnvironmentID)
}

// NewRootKey returns a new random root key read from r, or from crypto/rand
// when r is nil. It fails only if r does.
func NewRootKey(r io.Reader) (keyhold.Secret, error) {
	if r == nil {
		r = rand.Reader
	}
	b := make([]byte, RootKeySize)
	if _, err := io.ReadFull(r, b); err != nil {
		return keyhold.Secret{}, keyhold.Internal("envelope: read a root key", err)
	}
	return keyhold.NewSecret(b), nil
}

// Seal seals plaintext under root key generation gen for binding b, with a
// fresh salt and nonce from crypto/rand. It panics if root is not
// RootKeySize bytes or gen is below 1: both are bugs of the caller, and
// sealing under a wrong key must never quietly succeed.
func Seal(root keyhold.Secret, gen int64, b Binding, plaintext []byte) []byte {
	out, err := SealRand(rand.Reader, root, gen, b, plaintext)
	if err != nil {
		panic(err.Error())
	}
	return out
}

// SealRand is Seal with the salt and nonce read from r, for tests that need
// reproducible output. It returns an EInternal error if r fails, if root is
// not RootKeySize bytes or gen is below 1.
func SealRand(r io.Reader, root keyhold.Secret, gen int64, b Binding, plaintext []byte) ([]byte, error) {
	if root.Len() != RootKeySize {
		return nil, keyhold.Internal("envelope", fmt.Errorf("envelope: a root key must be %d bytes, got %d", RootKeySize, root.Len()))
	}
	if gen < 1 {
		return nil, keyhold.Internal("envelope", fmt.Errorf("envelope: generation %d is not positive", gen))
	}
	out := make([]byte, 0, MinOverhead+binary.MaxVarintLen64+len(plaintext))
	out = append(out, Version)
	out = binary.AppendUvarint(out, uint64(gen))
	hdrLen := len(out) + SaltSize + NonceSize
	out = out[:hdrLen]
	if _, err := io.ReadFull(r, out[hdrLen-SaltSize-NonceSize:hdrLen]); err != nil {
		return nil, keyhold.Internal("envelope: read salt and nonce", err)
	}
	salt := out[hdrLen-SaltSize-NonceSize : hdrLen-NonceSize]
	nonce := out[hdrLen-NonceSize : hdrLen]
	aead, err := recordAEAD(root, salt, b)
	if err != nil {
		return nil, err
	}
	return aead.Seal(out, nonce, plaintext, associatedData(out[:hdrLen], b)), nil
}

// header is a parsed record header.
type header struct {
	gen   int64
	salt  []byte
	nonce []byte
	n     int // bytes of the header, ciphertext starts here
}

// errMalformed is the cause of every parse failure; the caller's message
// says which record it was.
var errMalformed = errors.New("envelope: not a sealed record of a known format")

func parseHeader(sealed []byte) (header, error) {
	if len(sealed) < MinOverhead {
		return header{}, errMalformed
	}
	if sealed[0] != Version {
		return header{}, fmt.Errorf("envelope: unknown format version %d", sealed[0])
	}
	g, n := binary.Uvarint(sealed[1:])
	// n <= 0 is a truncated or overlong varint; a generation beyond int64
	// was never written by Seal.
	if n <= 0 || g < 1 || g > 1<<62 {
		return header{}, errMalformed
	}
	off := 1 + n
	if len(sealed) < off+SaltSize+NonceSize+TagSize {
		return header{}, errMalformed
	}
	// A non-minimal varint would give two encodings of one generation;
	// Seal never writes one, so it can only be damage.
	if n != uvarintLen(g) {
		return header{}, errMalformed
	}
	return header{gen: int64(g), salt: sealed[off : off+SaltSize], nonce: sealed[off+SaltSize : off+SaltSize+NonceSize], n: off + SaltSize + NonceSize}, nil
}

func uvarintLen(v uint64) int {
	var b [binary.MaxVarintLen64]byte
	return binary.PutUvarint(b[:], v)
}

// GenerationOf returns the root-key generation a sealed value was sealed
// under, without opening it, so that a reader can fetch that generation's
// key and the re-encryption job can tell old records from new ones. It
// returns an EConflict error with Detail DetailIntegrity if sealed is not a
// sealed record of a known format.
func GenerationOf(sealed []byte) (int64, error) {
	h, err := parseHeader(sealed)
	if err != nil {
		return 0, &keyhold.Error{Code: keyhold.EConflict, Detail: DetailIntegrity,
			Message: "envelope: the stored value is not a sealed record of a known format", Err: err}
	}
	return h.gen, nil
}

// Open opens a value sealed for binding b. It asks lookup for the root key of
// the generation named in the header (and does not wipe what lookup
// returns), and returns lookup's error unchanged, so that a locked
// environment or a destroyed generation keeps its own code. A value that is
// malformed, damaged, tampered with, or sealed for another environment,
// table, row or segment is an EConflict error with Detail DetailIntegrity:
// stored data that fails its integrity check is a conflict between what is
// stored and where it is stored, never something to show as plaintext, and
// not a bug of the server. The message names the binding, never the data.
func Open(lookup func(gen int64) (keyhold.Secret, error), b Binding, sealed []byte) ([]byte, error) {
	h, err := parseHeader(sealed)
	if err != nil {
		return nil, integrityError(b, err)
	}
	root, err := lookup(h.gen)
	if err != nil {
		return nil, err
	}
	if root.Len() != RootKeySize {
		return nil, keyhold.Internal("envelope", fmt.Errorf("envelope: the root key of generation %d is %d bytes, not %d", h.gen, root.Len(), RootKeySize))
	}
	aead, err := recordAEAD(root, h.salt, b)
	if err != nil {
		return nil, err
	}
	pt, err := aead.Open(nil, h.nonce, sealed[h.n:], associatedData(sealed[:h.n], b))
	if err != nil {
		return nil, integrityError(b, errors.New("envelope: authentication failed"))
	}
	return pt, nil
}

func integrityError(b Binding, cause error) error {
	return &keyhold.Error{Code: keyhold.EConflict, Detail: DetailIntegrity,
		Message: "envelope: the stored " + b.String() + " does not open: it is damaged, or was sealed for another row, table, environment or segment",
		Err:     cause}
}

// IsIntegrityError reports whether err says a sealed value failed its
// integrity check.
func IsIntegrityError(err error) bool {
	return keyhold.ErrorCode(err) == keyhold.EConflict && keyhold.ErrorDetail(err) == DetailIntegrity
}

// recordAEAD derives the record key from root and salt, bound to the
// environment and table, and returns AES-256-GCM under it. The derived key
// is wiped once the cipher has expanded it.
func recordAEAD(root keyhold.Secret, salt []byte, b Binding) (cipher.AEAD, error) {
	info := make([]byte, 0, len(label)+2*binary.MaxVarintLen64+len(b.EnvironmentID)+len(b.Table))
	info = append(info, label...)
	info = appendLP(info, strings.ToLower(b.EnvironmentID))
	info = appendLP(info, strings.ToLower(b.Table))
	key, err := hkdf.Key(sha256.New, root.Reveal(), salt, string(info), 32)
	if err != nil {
		return nil, keyhold.Internal("envelope: derive a record key", err)
	}
	defer clear(key)
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, keyhold.Internal("envelope: record cipher", err)
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, keyhold.Internal("envelope: record cipher", err)
	}
	return aead, nil
}

// associatedData is label || header || the binding's fields, each length
// prefixed so that ("ab","c") and ("a","bc") differ.
func associatedData(hdr []byte, b Binding) []byte {
	ad := make([]byte, 0, len(label)+len(hdr)+4*binary.MaxVarintLen64+len(b.EnvironmentID)+len(b.Table)+len(b.RowID)+len(b.Purpose))
	ad = append(ad, label...)
	ad = append(ad, hdr...)
	ad = appendLP(ad, strings.ToLower(b.EnvironmentID))
	ad = appendLP(ad, strings.ToLower(b.Table))
	ad = appendLP(ad, b.RowID)
	ad = appendLP(ad, b.Purpose)
	return ad
}

func appendLP(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}
