package admin

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"math/big"
	"strings"

	"github.com/keyhold/keyhold"
)

// maxKeyMaterial bounds a pasted or uploaded key; a PEM RSA 4096 private
// key is about 3.3 KB, a JWK of one about 3.2 KB.
const maxKeyMaterial = 64 << 10

// importError is why some key material cannot be imported. Its message is
// written for the person at the form and never quotes the material.
type importError string

func (e importError) Error() string { return string(e) }

const (
	errNoMaterial  importError = "Paste an RSA private key or choose a key file."
	errTooLarge    importError = "This is too large to be an RSA private key (at most 64 KB)."
	errNotKey      importError = "This is neither a PEM private key (PKCS#1 or PKCS#8) nor a JSON Web Key."
	errEncrypted   importError = "Encrypted private keys are not supported. Decrypt it on a trusted machine first (openssl pkey -in key.pem -out plain.pem), import the plain key, then delete the plain file."
	errPublicOnly  importError = "This is a public key or certificate; importing needs the private key."
	errNotRSA      importError = "Only RSA keys can be customer-managed keys; this is another kind of key."
	errBadRSA      importError = "This RSA private key is damaged: its numbers do not form a valid key."
	errMultiPrime  importError = "RSA keys with more than two primes are not supported."
	errRSASize     importError = "The key must be RSA 2048, 3072 or 4096 bits."
	errJWKNoPriv   importError = "This JSON Web Key holds only the public key; importing needs the private members (d, p, q)."
	errOpenSSH     importError = "OpenSSH private keys are not supported; convert the key to PEM first (ssh-keygen -p -m PKCS8 -f key)."
	errJWKEncoding importError = "This JSON Web Key is malformed: n, e, d, p and q must be base64url numbers."
)

// parseRSAPrivateKey reads an RSA private key given as PEM (PKCS#1 "RSA
// PRIVATE KEY" or PKCS#8 "PRIVATE KEY"), as DER, or as a JSON Web Key, and
// checks that it is a consistent two-prime RSA key of 2048, 3072 or 4096
// bits. Its errors are importErrors.
func parseRSAPrivateKey(material []byte) (*rsa.PrivateKey, error) {
	// Text forms may come with blank lines around them; DER is binary, and
	// its last byte may well be one that trimming takes for a space.
	in := bytes.TrimSpace(material)
	var k *rsa.PrivateKey
	var err error
	switch {
	case len(in) == 0:
		return nil, errNoMaterial
	case len(material) > maxKeyMaterial:
		return nil, errTooLarge
	case in[0] == '{':
		k, err = rsaFromJWK(in)
	case bytes.Contains(in, []byte("-----BEGIN")):
		k, err = rsaFromPEM(in)
	default:
		k, err = rsaFromDER(material, errNotKey)
	}
	if err != nil {
		return nil, err
	}
	// The size first: validating a huge pasted key would cost the server
	// seconds of arithmetic for a key it refuses anyway.
	switch k.N.BitLen() {
	case 2048, 3072, 4096:
	default:
		return nil, errRSASize
	}
	if len(k.Primes) != 2 {
		return nil, errMultiPrime
	}
	if err := k.Validate(); err != nil {
		return nil, errBadRSA
	}
	k.Precompute()
	return k, nil
}

func rsaFromPEM(in []byte) (*rsa.PrivateKey, error) {
	block, _ := pem.Decode(in)
	if block == nil {
		return nil, errNotKey
	}
	switch block.Type {
	case "ENCRYPTED PRIVATE KEY":
		return nil, errEncrypted
	case "RSA PRIVATE KEY", "PRIVATE KEY":
		// OpenSSL's legacy encryption marks the block with a header.
		if strings.Contains(block.Headers["Proc-Type"], "ENCRYPTED") {
			return nil, errEncrypted
		}
		return rsaFromDER(block.Bytes, errBadRSA)
	case "PUBLIC KEY", "RSA PUBLIC KEY", "CERTIFICATE":
		return nil, errPublicOnly
	case "EC PRIVATE KEY", "DSA PRIVATE KEY":
		return nil, errNotRSA
	case "OPENSSH PRIVATE KEY":
		return nil, errOpenSSH
	}
	return nil, errNotKey
}

// rsaFromDER reads PKCS#1 or PKCS#8 DER; bad is the error for bytes that
// are neither.
func rsaFromDER(der []byte, bad importError) (*rsa.PrivateKey, error) {
	if k, err := x509.ParsePKCS1PrivateKey(der); err == nil {
		return k, nil
	}
	key, err := x509.ParsePKCS8PrivateKey(der)
	if err != nil {
		if _, err := x509.ParseECPrivateKey(der); err == nil {
			return nil, errNotRSA
		}
		return nil, bad
	}
	switch k := key.(type) {
	case *rsa.PrivateKey:
		return k, nil
	case *ecdsa.PrivateKey, ed25519.PrivateKey:
		return nil, errNotRSA
	}
	return nil, errNotRSA
}

// jwkMembers are the members of a JSON Web Key that an RSA import reads.
type jwkMembers struct {
	Kty string `json:"kty"`
	N   string `json:"n"`
	E   string `json:"e"`
	D   string `json:"d"`
	P   string `json:"p"`
	Q   string `json:"q"`
	Oth []any  `json:"oth"`
}

func rsaFromJWK(in []byte) (*rsa.PrivateKey, error) {
	var j jwkMembers
	// The decoder's own message could quote the material; it is not shown.
	if err := json.Unmarshal(in, &j); err != nil {
		return nil, errNotKey
	}
	switch j.Kty {
	case "RSA", "RSA-HSM":
	case "":
		return nil, errNotKey
	default:
		return nil, errNotRSA
	}
	if len(j.Oth) > 0 {
		return nil, errMultiPrime
	}
	if j.D == "" || j.P == "" || j.Q == "" {
		if j.D == "" && j.P == "" && j.Q == "" {
			return nil, errJWKNoPriv
		}
		return nil, errBadRSA
	}
	var nums [5]*big.Int
	for i, s := range []string{j.N, j.E, j.D, j.P, j.Q} {
		b, err := base64.RawURLEncoding.DecodeString(trimPadding(s))
		if err != nil || len(b) == 0 {
			return nil, errJWKEncoding
		}
		nums[i] = new(big.Int).SetBytes(b)
		keyhold.NewSecret(b).Wipe()
	}
	if !nums[1].IsInt64() || nums[1].Int64() > 1<<31-1 {
		return nil, errBadRSA
	}
	return &rsa.PrivateKey{PublicKey: rsa.PublicKey{N: nums[0], E: int(nums[1].Int64())}, D: nums[2],
		Primes: []*big.Int{nums[3], nums[4]}}, nil
}

func trimPadding(s string) string {
	for len(s) > 0 && s[len(s)-1] == '=' {
		s = s[:len(s)-1]
	}
	return s
}

// importJWK returns k as the JSON of the JWK the vault imports, private
// members included, as a Secret the caller wipes once it is sent.
func importJWK(k *rsa.PrivateKey) (keyhold.Secret, error) {
	size := (k.N.BitLen() + 7) / 8
	p, q := (k.Primes[0].BitLen()+7)/8, (k.Primes[1].BitLen()+7)/8
	b64 := func(n *big.Int, width int) string {
		buf := make([]byte, max(width, (n.BitLen()+7)/8))
		n.FillBytes(buf)
		s := base64.RawURLEncoding.EncodeToString(buf)
		keyhold.NewSecret(buf).Wipe()
		return s
	}
	j := map[string]string{
		"kty": "RSA",
		"n":   b64(k.N, size),
		"e":   b64(big.NewInt(int64(k.E)), 0),
		"d":   b64(k.D, size),
		"p":   b64(k.Primes[0], p),
		"q":   b64(k.Primes[1], q),
		"dp":  b64(k.Precomputed.Dp, p),
		"dq":  b64(k.Precomputed.Dq, q),
		"qi":  b64(k.Precomputed.Qinv, p),
	}
	b, err := json.Marshal(j)
	if err != nil {
		return keyhold.Secret{}, err
	}
	return keyhold.NewSecret(b), nil
}
