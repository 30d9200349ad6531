package keycrypto

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/big"

	"github.com/keyhold/keyhold"
)

// PrivateKey is an RSA or EC private key with its Key Vault key type. Its
// private material never leaves through fmt, log/slog, encoding/json or
// encoding (text): all of them show only the key type and size. Use
// MarshalPrivate to get the material for sealing at rest.
//
// Make one with Generate, GenerateRSA, ImportJWK or ParsePrivate; the zero
// value is not usable. A PrivateKey is immutable and safe for concurrent use.
type PrivateKey struct {
	kty string
	crv string // EC only
	rsa *rsa.PrivateKey
	ec  *ecdsa.PrivateKey
	pub *PublicKey
}

// PublicKey is the public half of an RSA or EC key: enough to encrypt, wrap
// and verify. Get one from PrivateKey.Public or NewPublicKey; the zero value
// is not usable. It is safe for concurrent use.
type PublicKey struct {
	kty string
	crv string
	rsa *rsa.PublicKey
	ec  *ecdsa.PublicKey
}

// curves maps the supported curve names to their implementations.
var curves = map[string]elliptic.Curve{
	CurveP256: elliptic.P256(),
	CurveP384: elliptic.P384(),
	CurveP521: elliptic.P521(),
}

func curveByName(crv string) (elliptic.Curve, error) {
	if c, ok := curves[crv]; ok {
		return c, nil
	}
	switch crv {
	case "":
		return nil, badParam("the curve (crv) is missing; use P-256, P-384 or P-521")
	case CurveP256K:
		return nil, badParam("curve P-256K is not supported; use P-256, P-384 or P-521")
	default:
		return nil, badParam("invalid curve %q; use P-256, P-384 or P-521", crv)
	}
}

// curveSizes maps key_size to the curve of that size, for EC requests that
// give a size but no curve.
var curveSizes = map[int]string{256: CurveP256, 384: CurveP384, 521: CurveP521}

// Generate returns a new key of type kty. For RSA kinds size is the modulus
// in bits (2048, 3072 or 4096; 0 means 2048), the public exponent is 65537
// and curve must be empty. For EC kinds curve names the curve (P-256, P-384,
// P-521; empty means the curve matching size, or P-256), and a non-zero size
// must match it. Bad arguments give an EInvalid "BadParameter" error.
//
// rand is passed to the standard library, which since Go 1.26 ignores it and
// always uses a secure source unless GODEBUG=cryptocustomrand=1; nil means
// crypto/rand.Reader.
func Generate(kty string, size int, curve string, rand io.Reader) (*PrivateKey, error) {
	if err := CheckKty(kty); err != nil {
		return nil, err
	}
	if IsRSA(kty) {
		if curve != "" {
			return nil, badParam("a curve (crv) cannot be given for key type %s", kty)
		}
		return GenerateRSA(kty, size, DefaultRSAExponent, rand)
	}
	if curve == "" {
		curve = CurveP256
		if size != 0 {
			c, ok := curveSizes[size]
			if !ok {
				return nil, badParam("invalid key size %d for key type %s; use 256, 384 or 521, or give crv", size, kty)
			}
			curve = c
		}
	}
	c, err := curveByName(curve)
	if err != nil {
		return nil, err
	}
	if size != 0 && size != c.Params().BitSize {
		return nil, badParam("key size %d does not match curve %s", size, curve)
	}
	ek, err := ecdsa.GenerateKey(c, randOrDefault(rand))
	if err != nil {
		return nil, keyhold.Internal("keycrypto: generate EC key", err)
	}
	return newECKey(kty, curve, ek), nil
}

// GenerateRSA returns a new RSA key of type kty (RSA or RSA-HSM) with a
// modulus of size bits (2048, 3072 or 4096; 0 means 2048) and the given public
// exponent (65537 or 3; 0 means 65537), as Key Vault's public_exponent
// parameter allows. Other values give an EInvalid "BadParameter" error. See
// Generate for rand.
func GenerateRSA(kty string, size, publicExponent int, rand io.Reader) (*PrivateKey, error) {
	if !IsRSA(kty) {
		if err := CheckKty(kty); err != nil {
			return nil, err
		}
		return nil, badParam("key type %s is not an RSA key type", kty)
	}
	if size == 0 {
		size = DefaultRSASize
	}
	if size != 2048 && size != 3072 && size != 4096 {
		return nil, badParam("invalid RSA key size %d; use 2048, 3072 or 4096", size)
	}
	if publicExponent == 0 {
		publicExponent = DefaultRSAExponent
	}
	var (
		rk  *rsa.PrivateKey
		err error
	)
	switch publicExponent {
	case DefaultRSAExponent:
		rk, err = rsa.GenerateKey(randOrDefault(rand), size)
	case 3:
		rk, err = generateRSAExponent3(randOrDefault(rand), size)
	default:
		return nil, badParam("invalid RSA public exponent %d; use 65537 or 3", publicExponent)
	}
	if err != nil {
		return nil, keyhold.Internal("keycrypto: generate RSA key", err)
	}
	return newRSAKey(kty, rk), nil
}

// generateRSAExponent3 makes an RSA key with e = 3, which crypto/rsa cannot
// generate. The primes come from crypto/rand.Prime; a prime p is kept only if
// 3 does not divide p-1, so that e is invertible. The result goes through
// rsa.PrivateKey.Validate like an imported key.
func generateRSAExponent3(random io.Reader, bits int) (*rsa.PrivateKey, error) {
	e := big.NewInt(3)
	one := big.NewInt(1)
	prime := func() (*big.Int, error) {
		for {
			p, err := rand.Prime(random, bits/2)
			if err != nil {
				return nil, err
			}
			if new(big.Int).Mod(new(big.Int).Sub(p, one), e).Sign() != 0 {
				return p, nil
			}
		}
	}
	for {
		p, err := prime()
		if err != nil {
			return nil, err
		}
		q, err := prime()
		if err != nil {
			return nil, err
		}
		if p.Cmp(q) == 0 {
			continue
		}
		n := new(big.Int).Mul(p, q)
		if n.BitLen() != bits {
			continue
		}
		phi := new(big.Int).Mul(new(big.Int).Sub(p, one), new(big.Int).Sub(q, one))
		d := new(big.Int).ModInverse(e, phi)
		if d == nil {
			continue
		}
		k := &rsa.PrivateKey{PublicKey: rsa.PublicKey{N: n, E: 3}, D: d, Primes: []*big.Int{p, q}}
		if err := k.Validate(); err != nil {
			return nil, err
		}
		k.Precompute()
		return k, nil
	}
}

func randOrDefault(r io.Reader) io.Reader {
	if r == nil {
		return rand.Reader
	}
	return r
}

func newRSAKey(kty string, k *rsa.PrivateKey) *PrivateKey {
	return &PrivateKey{kty: kty, rsa: k, pub: &PublicKey{kty: kty, rsa: &k.PublicKey}}
}

func newECKey(kty, crv string, k *ecdsa.PrivateKey) *PrivateKey {
	return &PrivateKey{kty: kty, crv: crv, ec: k, pub: &PublicKey{kty: kty, crv: crv, ec: &k.PublicKey}}
}

// Kty returns the key type: RSA, RSA-HSM, EC or EC-HSM.
func (k *PrivateKey) Kty() string { return k.kty }

// Curve returns the curve name of an EC key, or "" for RSA.
func (k *PrivateKey) Curve() string { return k.crv }

// Size returns the key size in bits: the modulus size for RSA, the curve
// size for EC (256, 384 or 521).
func (k *PrivateKey) Size() int { return k.pub.Size() }

// Public returns the public half of k.
func (k *PrivateKey) Public() *PublicKey { return k.pub }

// PublicJWK returns the public members of k as a JWK (kty, n, e or kty, crv,
// x, y); never d, p, q, dp, dq or qi. The caller sets kid and key_ops.
func (k *PrivateKey) PublicJWK() JWK { return k.pub.JWK() }

// Kty returns the key type: RSA, RSA-HSM, EC or EC-HSM.
func (p *PublicKey) Kty() string { return p.kty }

// Curve returns the curve name of an EC key, or "" for RSA.
func (p *PublicKey) Curve() string { return p.crv }

// Size returns the key size in bits: the modulus size for RSA, the curve
// size for EC.
func (p *PublicKey) Size() int {
	if p.rsa != nil {
		return p.rsa.N.BitLen()
	}
	return p.ec.Curve.Params().BitSize
}

// Equal reports whether p and q are the same public key (the key type is
// metadata and not compared).
func (p *PublicKey) Equal(q *PublicKey) bool {
	switch {
	case p == nil || q == nil:
		return p == q
	case p.rsa != nil && q.rsa != nil:
		return p.rsa.Equal(q.rsa)
	case p.ec != nil && q.ec != nil:
		return p.ec.Equal(q.ec)
	}
	return false
}

// Stored form of a private key: a 4-byte header (magic "KH", format version,
// key type) followed by the PKCS #8 DER encoding. The header keeps the -HSM
// kinds, which PKCS #8 cannot express.
const (
	storedMagic0  = 'K'
	storedMagic1  = 'H'
	storedVersion = 1
)

var storedKty = map[string]byte{KtyRSA: 1, KtyRSAHSM: 2, KtyEC: 3, KtyECHSM: 4}

// MarshalPrivate returns the private key in the stable binary form the vault
// seals at rest: a small header with the key type, then PKCS #8 DER.
// ParsePrivate reads it back. The caller should Wipe the Secret when done.
func (k *PrivateKey) MarshalPrivate() keyhold.Secret {
	var der []byte
	var err error
	if k.rsa != nil {
		der, err = x509.MarshalPKCS8PrivateKey(k.rsa)
	} else {
		der, err = x509.MarshalPKCS8PrivateKey(k.ec)
	}
	if err != nil {
		// Only keys built by this package get here, and x509 marshals all
		// of them; failing would mean the invariants of PrivateKey broke.
		panic("keycrypto: cannot encode a valid private key: " + err.Error())
	}
	out := make([]byte, 0, 4+len(der))
	out = append(out, storedMagic0, storedMagic1, storedVersion, storedKty[k.kty])
	out = append(out, der...)
	wipe(der)
	return keyhold.NewSecret(out)
}

// errDamaged is the cause of every ParsePrivate failure; the caller sees an
// internal error since stored material is not the caller's input.
var errDamaged = errors.New("keycrypto: stored private key is damaged")

// ParsePrivate reads a private key written by MarshalPrivate. It also
// accepts bare PKCS #8 DER (an RSA or EC key; the kty is then RSA or EC).
// Damaged or unsupported material is an EInternal error.
func ParsePrivate(s keyhold.Secret) (*PrivateKey, error) {
	b := s.Reveal()
	kty := ""
	der := b
	if len(b) >= 4 && b[0] == storedMagic0 && b[1] == storedMagic1 {
		if b[2] != storedVersion {
			return nil, damaged(fmt.Errorf("unknown format version %d", b[2]))
		}
		for name, code := range storedKty {
			if code == b[3] {
				kty = name
			}
		}
		if kty == "" {
			return nil, damaged(fmt.Errorf("unknown key type code %d", b[3]))
		}
		der = b[4:]
	}
	parsed, err := x509.ParsePKCS8PrivateKey(der)
	if err != nil {
		return nil, damaged(err)
	}
	switch pk := parsed.(type) {
	case *rsa.PrivateKey:
		if kty == "" {
			kty = KtyRSA
		}
		if !IsRSA(kty) {
			return nil, damaged(fmt.Errorf("RSA material stored as %s", kty))
		}
		if err := checkRSAPublic(pk.N, pk.E); err != nil {
			return nil, damaged(err)
		}
		return newRSAKey(kty, pk), nil
	case *ecdsa.PrivateKey:
		if kty == "" {
			kty = KtyEC
		}
		if !IsEC(kty) {
			return nil, damaged(fmt.Errorf("EC material stored as %s", kty))
		}
		crv := ""
		for name, c := range curves {
			if c == pk.Curve {
				crv = name
			}
		}
		if crv == "" {
			return nil, damaged(fmt.Errorf("unsupported curve %s", pk.Curve.Params().Name))
		}
		return newECKey(kty, crv, pk), nil
	default:
		return nil, damaged(fmt.Errorf("unsupported key %T", parsed))
	}
}

func damaged(cause error) error {
	return &keyhold.Error{Code: keyhold.EInternal, Message: errDamaged.Error(), Err: errors.Join(errDamaged, cause)}
}

func wipe(b []byte) {
	for i := range b {
		b[i] = 0
	}
}

// String describes k without its private material.
func (k PrivateKey) String() string {
	return fmt.Sprintf("keycrypto.PrivateKey{%s %s [REDACTED]}", k.kty, k.sizeName())
}

func (k PrivateKey) sizeName() string {
	if k.crv != "" {
		return k.crv
	}
	if k.rsa != nil {
		return fmt.Sprint(k.rsa.N.BitLen())
	}
	return "?"
}

// GoString describes k without its private material, for %#v.
func (k PrivateKey) GoString() string { return k.String() }

// Format makes every fmt verb print String, so that no verb (%d, %x, %+v)
// can walk into the key's fields.
func (k PrivateKey) Format(f fmt.State, _ rune) { _, _ = io.WriteString(f, k.String()) }

// LogValue shows the key type and size in logs, never the material.
func (k PrivateKey) LogValue() slog.Value { return slog.StringValue(k.String()) }

// MarshalJSON refuses: private keys are not marshalled. Use PublicJWK for
// the public part, MarshalPrivate for sealing.
func (PrivateKey) MarshalJSON() ([]byte, error) { return nil, errMarshal }

// MarshalText refuses, as MarshalJSON does.
func (PrivateKey) MarshalText() ([]byte, error) { return nil, errMarshal }

var errMarshal = errors.New("keycrypto: a PrivateKey cannot be marshalled; use PublicJWK or MarshalPrivate")
