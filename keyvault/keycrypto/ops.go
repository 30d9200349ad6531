package keycrypto

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha1"
	"crypto/sha256"
	"hash"
	"math/big"
	"strings"

	"github.com/keyhold/keyhold"

	_ "crypto/sha512" // registers SHA-384 and SHA-512 for crypto.Hash
)

// Algorithm families.
const (
	famRSAEnc  = iota + 1 // RSA-OAEP, RSA-OAEP-256, RSA1_5
	famRSAPKCS            // RS256/384/512
	famRSAPSS             // PS256/384/512
	famECDSA              // ES256/384/512
)

type algorithm struct {
	family int
	hash   crypto.Hash // digest (signatures) or OAEP hash
	curve  string      // ECDSA only: the one curve the algorithm is defined for
}

var algorithms = map[string]algorithm{
	RSAOAEP:    {famRSAEnc, crypto.SHA1, ""},
	RSAOAEP256: {famRSAEnc, crypto.SHA256, ""},
	RSA15:      {famRSAEnc, 0, ""},
	RS256:      {famRSAPKCS, crypto.SHA256, ""},
	RS384:      {famRSAPKCS, crypto.SHA384, ""},
	RS512:      {famRSAPKCS, crypto.SHA512, ""},
	PS256:      {famRSAPSS, crypto.SHA256, ""},
	PS384:      {famRSAPSS, crypto.SHA384, ""},
	PS512:      {famRSAPSS, crypto.SHA512, ""},
	ES256:      {famECDSA, crypto.SHA256, CurveP256},
	ES384:      {famECDSA, crypto.SHA384, CurveP384},
	ES512:      {famECDSA, crypto.SHA512, CurveP521},
}

// knownElsewhere are Key Vault algorithms that exist in the contract but not
// for the keys this package holds, so that they get a precise message.
var knownElsewhere = []string{
	"ES256K", "RSNULL", "HS256", "HS384", "HS512",
	"A128GCM", "A192GCM", "A256GCM", "A128KW", "A192KW", "A256KW",
	"A128CBC", "A192CBC", "A256CBC", "A128CBCPAD", "A192CBCPAD", "A256CBCPAD",
	"CKM_AES_KEY_WRAP", "CKM_AES_KEY_WRAP_PAD",
}

// opKind says which operation asks for an algorithm, for messages.
type opKind int

const (
	opEncrypt opKind = iota
	opSign
)

// lookup resolves alg for an operation on key p, or returns an EInvalid
// "BadParameter" error worded as Key Vault words mismatches.
func (p *PublicKey) lookup(alg string, kind opKind) (algorithm, error) {
	a, ok := algorithms[alg]
	if !ok {
		for _, other := range knownElsewhere {
			if alg == other {
				return a, badParam("algorithm %s is not supported for key type %s", alg, p.kty)
			}
		}
		if alg == "" {
			return a, badParam("the algorithm (alg) is missing")
		}
		return a, badParam("invalid algorithm %q", alg)
	}
	wantEnc := kind == opEncrypt
	if isEnc := a.family == famRSAEnc; isEnc != wantEnc {
		if wantEnc {
			return a, badParam("algorithm %s is a signature algorithm and cannot be used to encrypt or wrap", alg)
		}
		return a, badParam("algorithm %s is an encryption algorithm and cannot be used to sign or verify", alg)
	}
	if (a.family == famECDSA) != (p.ec != nil) {
		return a, badParam("algorithm %s is not valid for key type %s", alg, p.kty)
	}
	if a.curve != "" && a.curve != p.crv {
		return a, badParam("algorithm %s requires curve %s, but the key uses curve %s", alg, a.curve, p.crv)
	}
	return a, nil
}

func oaepHash(h crypto.Hash) hash.Hash {
	if h == crypto.SHA1 {
		return sha1.New() // RSA-OAEP is defined with SHA-1 and stays so for compatibility
	}
	return sha256.New()
}

// Encrypt encrypts plaintext with alg (RSA-OAEP, RSA-OAEP-256 or RSA1_5).
// Only RSA keys encrypt. A wrong algorithm for the key, or a plaintext too
// long for the key and padding, is an EInvalid "BadParameter" error.
func (p *PublicKey) Encrypt(alg string, plaintext []byte) ([]byte, error) {
	a, err := p.lookup(alg, opEncrypt)
	if err != nil {
		return nil, err
	}
	k := p.rsa.Size()
	max := k - 11
	if a.hash != 0 {
		max = k - 2*a.hash.Size() - 2
	}
	if len(plaintext) > max {
		return nil, badParam("the value is %d bytes; %s with a %d-bit key takes at most %d", len(plaintext), alg, p.rsa.N.BitLen(), max)
	}
	var ct []byte
	if a.hash == 0 {
		// RSA1_5 is in the Key Vault contract, so encryption must exist;
		// decryption carries the risk and is handled with care below.
		ct, err = rsa.EncryptPKCS1v15(rand.Reader, p.rsa, plaintext) //nolint:staticcheck // RSA1_5 is part of the contract
	} else {
		ct, err = rsa.EncryptOAEP(oaepHash(a.hash), rand.Reader, p.rsa, plaintext, nil)
	}
	if err != nil {
		return nil, keyhold.Internal("keycrypto: encrypt", err)
	}
	return ct, nil
}

// WrapKey wraps (encrypts) a symmetric key with alg; see Encrypt. An empty
// key is an EInvalid "BadParameter" error.
func (p *PublicKey) WrapKey(alg string, key []byte) ([]byte, error) {
	if len(key) == 0 {
		return nil, badParam("the key to wrap (value) is empty")
	}
	return p.Encrypt(alg, key)
}

// Verify checks a signature over digest with alg. A wrong algorithm for the
// key or a digest of the wrong length for alg is an EInvalid "BadParameter"
// error; a signature that does not verify, whatever its shape, is (false,
// nil). ECDSA signatures must be JOSE raw r||s of fixed width; ASN.1 DER is
// not accepted, as Key Vault does not accept it.
func (p *PublicKey) Verify(alg string, digest, sig []byte) (bool, error) {
	a, err := p.lookup(alg, opSign)
	if err != nil {
		return false, err
	}
	if err := checkDigest(alg, a, digest); err != nil {
		return false, err
	}
	switch a.family {
	case famRSAPKCS:
		return rsa.VerifyPKCS1v15(p.rsa, a.hash, digest, sig) == nil, nil
	case famRSAPSS:
		return rsa.VerifyPSS(p.rsa, a.hash, digest, sig, pssOptions) == nil, nil
	default:
		w := (p.ec.Curve.Params().BitSize + 7) / 8
		if len(sig) != 2*w {
			return false, nil
		}
		r := new(big.Int).SetBytes(sig[:w])
		s := new(big.Int).SetBytes(sig[w:])
		return ecdsa.Verify(p.ec, digest, r, s), nil
	}
}

// pssOptions fixes the salt length to the hash length, as Key Vault signs
// and verifies PS256/384/512.
var pssOptions = &rsa.PSSOptions{SaltLength: rsa.PSSSaltLengthEqualsHash}

func checkDigest(alg string, a algorithm, digest []byte) error {
	if n := a.hash.Size(); len(digest) != n {
		return badParam("the digest for %s must be %d bytes (%s), got %d", alg, n, strings.ReplaceAll(a.hash.String(), "-", ""), len(digest))
	}
	return nil
}

// Encrypt is k.Public().Encrypt.
func (k *PrivateKey) Encrypt(alg string, plaintext []byte) ([]byte, error) {
	return k.pub.Encrypt(alg, plaintext)
}

// WrapKey is k.Public().WrapKey.
func (k *PrivateKey) WrapKey(alg string, key []byte) ([]byte, error) {
	return k.pub.WrapKey(alg, key)
}

// Verify is k.Public().Verify.
func (k *PrivateKey) Verify(alg string, digest, sig []byte) (bool, error) {
	return k.pub.Verify(alg, digest, sig)
}

// decryptFailed is the one error for every failed RSA decryption: wrong
// length, value out of range, bad padding, wrong key. Saying which would make
// the vault a padding oracle.
func decryptFailed() error {
	return badParam("the ciphertext could not be decrypted with this key and algorithm")
}

// Decrypt decrypts ciphertext with alg (RSA-OAEP, RSA-OAEP-256 or RSA1_5).
// A wrong algorithm for the key is an EInvalid "BadParameter" error that
// says so; every failure of the decryption itself is the same EInvalid
// "BadParameter" error, whatever the cause.
//
// RSA1_5 needs care: whether padding is valid is secret. The padding check
// in crypto/rsa runs in constant time, but Key Vault's decrypt and unwrapKey
// do not say how long the plaintext is, so rsa.DecryptPKCS1v15SessionKey,
// which avoids even the success/failure signal by returning a random key of
// a known length, cannot be used here: Decrypt and UnwrapKey therefore use
// rsa.DecryptPKCS1v15 and collapse every failure into the one error, and the
// remaining success/failure signal is inherent in the contract. Callers that
// know the key length should call UnwrapKeySized, which has no such signal.
func (k *PrivateKey) Decrypt(alg string, ciphertext []byte) ([]byte, error) {
	a, err := k.pub.lookup(alg, opEncrypt)
	if err != nil {
		return nil, err
	}
	if len(ciphertext) != k.rsa.Size() {
		return nil, decryptFailed()
	}
	var pt []byte
	if a.hash == 0 {
		pt, err = rsa.DecryptPKCS1v15(nil, k.rsa, ciphertext) //nolint:staticcheck // see the doc comment
	} else {
		pt, err = rsa.DecryptOAEP(oaepHash(a.hash), nil, k.rsa, ciphertext, nil)
	}
	if err != nil {
		return nil, decryptFailed()
	}
	return pt, nil
}

// UnwrapKey unwraps (decrypts) a wrapped symmetric key with alg; see
// Decrypt for the errors and for RSA1_5.
func (k *PrivateKey) UnwrapKey(alg string, wrapped []byte) ([]byte, error) {
	return k.Decrypt(alg, wrapped)
}

// UnwrapKeySized unwraps a key that must be size bytes long (16 to 64). For
// RSA-OAEP and RSA-OAEP-256 it is UnwrapKey plus a length check, with the
// same generic error. For RSA1_5 it follows RFC 3218 section 2.3.2 through
// rsa.DecryptPKCS1v15SessionKey: on bad padding or a wrong length it returns
// random bytes of the requested size instead of an error, in constant time,
// so that a caller learns nothing from the result until it uses the key
// (an AEAD open then fails). Only a ciphertext of the wrong length or out of
// range for the modulus gives the generic error.
func (k *PrivateKey) UnwrapKeySized(alg string, wrapped []byte, size int) ([]byte, error) {
	a, err := k.pub.lookup(alg, opEncrypt)
	if err != nil {
		return nil, err
	}
	if size < 16 || size > 64 {
		return nil, badParam("the unwrapped key size must be 16 to 64 bytes, got %d", size)
	}
	if a.hash != 0 {
		pt, err := k.Decrypt(alg, wrapped)
		if err != nil {
			return nil, err
		}
		if len(pt) != size {
			wipe(pt)
			return nil, decryptFailed()
		}
		return pt, nil
	}
	if len(wrapped) != k.rsa.Size() {
		return nil, decryptFailed()
	}
	key := make([]byte, size)
	_, _ = rand.Read(key)
	if err := rsa.DecryptPKCS1v15SessionKey(nil, k.rsa, wrapped, key); err != nil { //nolint:staticcheck // see the doc comment
		return nil, decryptFailed()
	}
	return key, nil
}

// Sign signs digest (not the message: Key Vault signs digests) with alg.
// RSA keys take RS256/384/512 and PS256/384/512 (salt length = hash length);
// EC keys take ES256 on P-256, ES384 on P-384, ES512 on P-521 and return the
// JOSE raw r||s form, each half as wide as the curve's order. A wrong
// algorithm for the key or a digest of the wrong length is an EInvalid
// "BadParameter" error.
func (k *PrivateKey) Sign(alg string, digest []byte) ([]byte, error) {
	a, err := k.pub.lookup(alg, opSign)
	if err != nil {
		return nil, err
	}
	if err := checkDigest(alg, a, digest); err != nil {
		return nil, err
	}
	var sig []byte
	switch a.family {
	case famRSAPKCS:
		sig, err = rsa.SignPKCS1v15(nil, k.rsa, a.hash, digest)
	case famRSAPSS:
		sig, err = rsa.SignPSS(rand.Reader, k.rsa, a.hash, digest, pssOptions)
	default:
		var r, s *big.Int
		r, s, err = ecdsa.Sign(rand.Reader, k.ec, digest)
		if err == nil {
			w := (k.ec.Curve.Params().BitSize + 7) / 8
			sig = make([]byte, 2*w)
			r.FillBytes(sig[:w])
			s.FillBytes(sig[w:])
		}
	}
	if err != nil {
		return nil, keyhold.Internal("keycrypto: sign", err)
	}
	return sig, nil
}
