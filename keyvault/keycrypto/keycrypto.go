// Package keycrypto is the key-material core of Keyhold's built-in Key Vault:
// RSA and EC key generation, JSON Web Key import and export, and the
// cryptographic operations of the Key Vault keys API (encrypt, decrypt,
// wrapKey, unwrapKey, sign, verify) with Key Vault's algorithm names.
//
// It uses the standard library only and does no I/O. Every error for bad
// input is a *keyhold.Error with Code keyhold.EInvalid and Detail
// "BadParameter", so that the vault surface can return it as Key Vault does.
// Private key material never prints, logs or marshals: see PrivateKey.
package keycrypto

import (
	"crypto/rand"
	"encoding/hex"
	"strings"

	"github.com/keyhold/keyhold"
)

// Key types (kty), as Key Vault spells them. The -HSM kinds are kept as
// metadata only: whether an HSM backs a key is the vault's decision.
const (
	KtyRSA    = "RSA"
	KtyRSAHSM = "RSA-HSM"
	KtyEC     = "EC"
	KtyECHSM  = "EC-HSM"
)

// Elliptic curve names (crv). CurveP256K is recognised only to be refused
// with a clear message.
const (
	CurveP256  = "P-256"
	CurveP384  = "P-384"
	CurveP521  = "P-521"
	CurveP256K = "P-256K"
)

// Encryption and key-wrapping algorithms for RSA keys.
const (
	RSAOAEP    = "RSA-OAEP"     // OAEP with SHA-1 and MGF1-SHA-1
	RSAOAEP256 = "RSA-OAEP-256" // OAEP with SHA-256 and MGF1-SHA-256
	RSA15      = "RSA1_5"       // PKCS #1 v1.5; legacy, see PrivateKey.UnwrapKey
)

// Signature algorithms. Sign and Verify take a digest, not a message.
const (
	RS256 = "RS256"
	RS384 = "RS384"
	RS512 = "RS512"
	PS256 = "PS256"
	PS384 = "PS384"
	PS512 = "PS512"
	ES256 = "ES256"
	ES384 = "ES384"
	ES512 = "ES512"
)

// Key operations (key_ops).
const (
	OpEncrypt   = "encrypt"
	OpDecrypt   = "decrypt"
	OpSign      = "sign"
	OpVerify    = "verify"
	OpWrapKey   = "wrapKey"
	OpUnwrapKey = "unwrapKey"
	OpImport    = "import"
	OpExport    = "export"
)

// Key sizes in bits.
const (
	DefaultRSASize = 2048
	MinRSASize     = 2048
	MaxRSASize     = 4096
)

// DefaultRSAExponent is the public exponent used when none is asked for.
const DefaultRSAExponent = 65537

// detailBadParameter is Key Vault's error code for every bad input.
const detailBadParameter = "BadParameter"

// badParam returns the error for invalid input: EInvalid with Key Vault's
// BadParameter code and a message safe to show the caller.
func badParam(format string, args ...any) error {
	return keyhold.Errorc(keyhold.EInvalid, detailBadParameter, "keycrypto: "+format, args...)
}

// IsRSA reports whether kty is an RSA key type (RSA or RSA-HSM).
func IsRSA(kty string) bool { return kty == KtyRSA || kty == KtyRSAHSM }

// IsEC reports whether kty is an elliptic-curve key type (EC or EC-HSM).
func IsEC(kty string) bool { return kty == KtyEC || kty == KtyECHSM }

// IsHSM reports whether kty is one of the -HSM key types.
func IsHSM(kty string) bool { return kty == KtyRSAHSM || kty == KtyECHSM }

// CheckKty returns nil if kty is a key type this package handles, and an
// EInvalid "BadParameter" error otherwise (symmetric oct keys included).
func CheckKty(kty string) error {
	switch {
	case IsRSA(kty), IsEC(kty):
		return nil
	case kty == "":
		return badParam("the key type (kty) is missing; use RSA, RSA-HSM, EC or EC-HSM")
	case kty == "oct" || kty == "oct-HSM":
		return badParam("key type %q is not supported by this vault; use RSA, RSA-HSM, EC or EC-HSM", kty)
	default:
		return badParam("invalid key type %q; use RSA, RSA-HSM, EC or EC-HSM", kty)
	}
}

var allKeyOps = []string{OpEncrypt, OpDecrypt, OpSign, OpVerify, OpWrapKey, OpUnwrapKey, OpImport, OpExport}

// DefaultKeyOps returns the operations a new key of type kty permits when
// none are given, as Key Vault does: all six RSA operations, or sign and
// verify for EC. It returns nil for an unknown kty.
func DefaultKeyOps(kty string) []string {
	switch {
	case IsRSA(kty):
		return []string{OpEncrypt, OpDecrypt, OpSign, OpVerify, OpWrapKey, OpUnwrapKey}
	case IsEC(kty):
		return []string{OpSign, OpVerify}
	}
	return nil
}

// NormalizeKeyOps validates a key_ops list and returns it in canonical
// spelling ("wrapkey" becomes "wrapKey"), without duplicates and in the order
// given. A nil list means "not given" and yields DefaultKeyOps(kty); an empty
// non-nil list stays empty. An unknown operation, or an unknown kty when the
// defaults are needed, is an EInvalid "BadParameter" error.
func NormalizeKeyOps(kty string, ops []string) ([]string, error) {
	if ops == nil {
		if err := CheckKty(kty); err != nil {
			return nil, err
		}
		return DefaultKeyOps(kty), nil
	}
	out := make([]string, 0, len(ops))
	for _, op := range ops {
		canon := ""
		for _, known := range allKeyOps {
			// Clients differ in case (.NET sends wrapKey, some send wrapkey);
			// the operation is the same.
			if strings.EqualFold(op, known) {
				canon = known
				break
			}
		}
		if canon == "" {
			return nil, badParam("invalid key operation %q; valid operations are %s", op, strings.Join(allKeyOps, ", "))
		}
		if !HasKeyOp(out, canon) {
			out = append(out, canon)
		}
	}
	return out, nil
}

// HasKeyOp reports whether ops permits op. Both are expected in canonical
// spelling (see NormalizeKeyOps).
func HasKeyOp(ops []string, op string) bool {
	for _, o := range ops {
		if o == op {
			return true
		}
	}
	return false
}

// NewVersion returns a new key version id: 32 lowercase hex characters from
// crypto/rand, as Key Vault's version ids are.
func NewVersion() string {
	var b [16]byte
	// crypto/rand.Read never fails since Go 1.24; it crashes the program
	// instead of returning predictable bytes.
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// IsVersion reports whether s has the form of a version id made by
// NewVersion.
func IsVersion(s string) bool {
	if len(s) != 32 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return false
		}
	}
	return true
}
