package keycrypto

import (
	"crypto/ecdsa"
	"crypto/rsa"
	"crypto/subtle"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	"strings"
)

// JWK is a JSON Web Key as Key Vault sends and receives it (the key member
// of a KeyBundle, the key of an import request). Binary members marshal as
// unpadded base64url and unmarshal leniently (see Bytes).
//
// The private members (d, p, q, dp, dq, qi) are read on input, for import,
// but JWK never writes them: MarshalJSON emits public members only, and
// String, GoString and LogValue leave them out, so that an imported key
// cannot be echoed into a response or a log by mistake.
type JWK struct {
	KID    string   `json:"kid,omitempty"`
	Kty    string   `json:"kty,omitempty"`
	KeyOps []string `json:"key_ops,omitempty"`
	N      Bytes    `json:"n,omitempty"`
	E      Bytes    `json:"e,omitempty"`
	D      Bytes    `json:"d,omitempty"`
	DP     Bytes    `json:"dp,omitempty"`
	DQ     Bytes    `json:"dq,omitempty"`
	QI     Bytes    `json:"qi,omitempty"`
	P      Bytes    `json:"p,omitempty"`
	Q      Bytes    `json:"q,omitempty"`
	Crv    string   `json:"crv,omitempty"`
	X      Bytes    `json:"x,omitempty"`
	Y      Bytes    `json:"y,omitempty"`
	K      Bytes    `json:"k,omitempty"`
	// KeyHSM is the protected key blob of a Bring-Your-Own-Key transfer
	// (the SDKs call it T). It is accepted on input and not used yet.
	KeyHSM Bytes `json:"key_hsm,omitempty"`
}

// jwkPublic is the output form of a JWK: public members only.
type jwkPublic struct {
	KID    string   `json:"kid,omitempty"`
	Kty    string   `json:"kty,omitempty"`
	KeyOps []string `json:"key_ops,omitempty"`
	N      Bytes    `json:"n,omitempty"`
	E      Bytes    `json:"e,omitempty"`
	Crv    string   `json:"crv,omitempty"`
	X      Bytes    `json:"x,omitempty"`
	Y      Bytes    `json:"y,omitempty"`
}

// MarshalJSON writes the public members of j only. A symmetric k and a
// key_hsm blob are secret too and are left out.
func (j JWK) MarshalJSON() ([]byte, error) {
	return json.Marshal(jwkPublic{KID: j.KID, Kty: j.Kty, KeyOps: j.KeyOps, N: j.N, E: j.E, Crv: j.Crv, X: j.X, Y: j.Y})
}

// HasPrivate reports whether j carries any private member.
func (j JWK) HasPrivate() bool {
	return len(j.D) > 0 || len(j.P) > 0 || len(j.Q) > 0 || len(j.DP) > 0 || len(j.DQ) > 0 ||
		len(j.QI) > 0 || len(j.K) > 0 || len(j.KeyHSM) > 0
}

// String describes j by its public members; private members show as
// [REDACTED].
func (j JWK) String() string {
	var sb strings.Builder
	fmt.Fprintf(&sb, "keycrypto.JWK{kid=%q kty=%q", j.KID, j.Kty)
	if j.Crv != "" {
		fmt.Fprintf(&sb, " crv=%q", j.Crv)
	}
	if len(j.N) > 0 {
		fmt.Fprintf(&sb, " n=%d bits", new(big.Int).SetBytes(j.N).BitLen())
	}
	if j.HasPrivate() {
		sb.WriteString(" private=[REDACTED]")
	}
	sb.WriteString("}")
	return sb.String()
}

// GoString is String, for %#v.
func (j JWK) GoString() string { return j.String() }

// Format makes every fmt verb print String.
func (j JWK) Format(f fmt.State, _ rune) { _, _ = io.WriteString(f, j.String()) }

// LogValue logs String.
func (j JWK) LogValue() slog.Value { return slog.StringValue(j.String()) }

// JWK returns the public members of p as a JWK (kty, n, e or kty, crv, x, y).
// n and e are minimal big-endian; x and y have the curve's full width, as
// RFC 7518 requires.
func (p *PublicKey) JWK() JWK {
	if p.rsa != nil {
		return JWK{Kty: p.kty, N: p.rsa.N.Bytes(), E: big.NewInt(int64(p.rsa.E)).Bytes()}
	}
	raw, err := p.ec.Bytes() // 0x04 || X || Y
	if err != nil {
		panic("keycrypto: cannot encode a valid EC public key: " + err.Error())
	}
	w := (len(raw) - 1) / 2
	return JWK{Kty: p.kty, Crv: p.crv, X: raw[1 : 1+w], Y: raw[1+w:]}
}

// NewPublicKey builds a public key from the public members of j (private
// members are ignored), for encrypt, wrapKey and verify. It applies the same
// rules as ImportJWK; a failure is an EInvalid "BadParameter" error naming
// the member at fault.
func NewPublicKey(j JWK) (*PublicKey, error) {
	if err := CheckKty(j.Kty); err != nil {
		return nil, err
	}
	if IsRSA(j.Kty) {
		pub, err := rsaPublicFromJWK(j)
		if err != nil {
			return nil, err
		}
		return &PublicKey{kty: j.Kty, rsa: pub}, nil
	}
	pub, err := ecPublicFromJWK(j)
	if err != nil {
		return nil, err
	}
	return &PublicKey{kty: j.Kty, crv: j.Crv, ec: pub}, nil
}

// ImportJWK builds a private key from a JWK, as Key Vault's import does. It
// checks thoroughly and never panics: the kty; RSA n, e, d, p, q present, a
// modulus of 2048 to 4096 bits, a public exponent of 65537 or 3, the key
// consistent (rsa.PrivateKey.Validate), and dp, dq, qi equal to the values
// computed from the key when given (computed when not); EC curve supported,
// the point (x, y) on the curve and d matching it; key_ops known. A JWK
// without private members is refused, since a vault import needs the private
// key. Every failure is an EInvalid "BadParameter" error naming the member.
func ImportJWK(j JWK) (*PrivateKey, error) {
	if err := CheckKty(j.Kty); err != nil {
		return nil, err
	}
	if j.KeyOps != nil {
		if _, err := NormalizeKeyOps(j.Kty, j.KeyOps); err != nil {
			return nil, err
		}
	}
	if IsRSA(j.Kty) {
		return importRSA(j)
	}
	return importEC(j)
}

func importRSA(j JWK) (*PrivateKey, error) {
	pub, err := rsaPublicFromJWK(j)
	if err != nil {
		return nil, err
	}
	if len(j.D) == 0 && len(j.P) == 0 && len(j.Q) == 0 {
		return nil, badParam("the JWK has no private key (d, p, q); importing a key needs the private key")
	}
	for _, m := range []struct {
		name string
		v    Bytes
	}{{"d", j.D}, {"p", j.P}, {"q", j.Q}} {
		if len(m.v) == 0 {
			return nil, badParam("RSA private key member %q is missing", m.name)
		}
		// No member of a valid key is longer than n; refusing early keeps
		// absurd inputs away from the big-number arithmetic.
		if len(trimLeadingZeros(m.v)) > len(trimLeadingZeros(j.N)) {
			return nil, badParam("RSA private key member %q is longer than the modulus", m.name)
		}
	}
	k := &rsa.PrivateKey{
		PublicKey: *pub,
		D:         new(big.Int).SetBytes(j.D),
		Primes:    []*big.Int{new(big.Int).SetBytes(j.P), new(big.Int).SetBytes(j.Q)},
	}
	// Validate checks n = p*q and that d inverts e; it computes the CRT
	// values itself, which are then compared with any the JWK carries.
	if err := k.Validate(); err != nil {
		return nil, badParam("the RSA private key is inconsistent: n, e, d, p and q do not form a valid key")
	}
	k.Precompute()
	for _, m := range []struct {
		name      string
		given     Bytes
		computed  *big.Int
		reference *big.Int
	}{
		{"dp", j.DP, k.Precomputed.Dp, k.Primes[0]},
		{"dq", j.DQ, k.Precomputed.Dq, k.Primes[1]},
		{"qi", j.QI, k.Precomputed.Qinv, k.Primes[0]},
	} {
		if len(m.given) == 0 {
			continue
		}
		if m.computed == nil || !sameSecretInt(m.given, m.computed, (m.reference.BitLen()+7)/8) {
			return nil, badParam("RSA private key member %q does not match the key", m.name)
		}
	}
	return newRSAKey(j.Kty, k), nil
}

// sameSecretInt compares a big-endian integer with a big.Int in constant
// time over width bytes.
func sameSecretInt(given []byte, v *big.Int, width int) bool {
	given = trimLeadingZeros(given)
	if len(given) > width || v.Sign() < 0 || v.BitLen() > 8*width {
		return false
	}
	a := make([]byte, width)
	copy(a[width-len(given):], given)
	b := v.FillBytes(make([]byte, width))
	ok := subtle.ConstantTimeCompare(a, b) == 1
	wipe(a)
	wipe(b)
	return ok
}

func trimLeadingZeros(b []byte) []byte {
	for len(b) > 0 && b[0] == 0 {
		b = b[1:]
	}
	return b
}

func rsaPublicFromJWK(j JWK) (*rsa.PublicKey, error) {
	if len(j.N) == 0 {
		return nil, badParam("RSA key member \"n\" is missing")
	}
	if len(j.E) == 0 {
		return nil, badParam("RSA key member \"e\" is missing")
	}
	if j.Crv != "" || len(j.X) > 0 || len(j.Y) > 0 {
		return nil, badParam("an RSA key cannot carry EC members (crv, x, y)")
	}
	eb := trimLeadingZeros(j.E)
	if len(eb) > 4 {
		return nil, badParam("RSA key member \"e\" is too large; use 65537 or 3")
	}
	e := 0
	for _, c := range eb {
		e = e<<8 | int(c)
	}
	n := new(big.Int).SetBytes(j.N)
	if err := checkRSAPublic(n, e); err != nil {
		return nil, err
	}
	return &rsa.PublicKey{N: n, E: e}, nil
}

// checkRSAPublic applies the vault's rules to an RSA public key.
func checkRSAPublic(n *big.Int, e int) error {
	if bits := n.BitLen(); bits < MinRSASize || bits > MaxRSASize {
		return badParam("RSA key member \"n\" has %d bits; the key size must be 2048 to 4096 bits", bits)
	}
	if n.Bit(0) == 0 {
		return badParam("RSA key member \"n\" is not a valid modulus")
	}
	if e != DefaultRSAExponent && e != 3 {
		return badParam("RSA key member \"e\" is %d; the public exponent must be 65537 or 3", e)
	}
	return nil
}

func ecPublicFromJWK(j JWK) (*ecdsa.PublicKey, error) {
	c, err := curveByName(j.Crv)
	if err != nil {
		return nil, err
	}
	if len(j.N) > 0 || len(j.E) > 0 {
		return nil, badParam("an EC key cannot carry RSA members (n, e)")
	}
	w := (c.Params().BitSize + 7) / 8
	x, err := fixedWidth("x", j.X, w)
	if err != nil {
		return nil, err
	}
	y, err := fixedWidth("y", j.Y, w)
	if err != nil {
		return nil, err
	}
	pub, err := ecdsa.ParseUncompressedPublicKey(c, append(append([]byte{4}, x...), y...))
	if err != nil {
		return nil, badParam("EC key members \"x\" and \"y\" are not a point on curve %s", j.Crv)
	}
	return pub, nil
}

// fixedWidth left-pads an EC coordinate or scalar to the curve's width.
// Shorter values are accepted because some encoders strip leading zeros,
// which RFC 7518 forbids but which is unambiguous.
func fixedWidth(name string, v []byte, w int) ([]byte, error) {
	if len(v) == 0 {
		return nil, badParam("EC key member %q is missing", name)
	}
	if len(v) > w {
		return nil, badParam("EC key member %q is %d bytes; the curve needs %d", name, len(v), w)
	}
	out := make([]byte, w)
	copy(out[w-len(v):], v)
	return out, nil
}

func importEC(j JWK) (*PrivateKey, error) {
	pub, err := ecPublicFromJWK(j)
	if err != nil {
		return nil, err
	}
	if len(j.D) == 0 {
		return nil, badParam("the JWK has no private key (d); importing a key needs the private key")
	}
	if len(j.P) > 0 || len(j.Q) > 0 || len(j.DP) > 0 || len(j.DQ) > 0 || len(j.QI) > 0 {
		return nil, badParam("an EC key cannot carry RSA members (p, q, dp, dq, qi)")
	}
	d, err := fixedWidth("d", j.D, (pub.Curve.Params().BitSize+7)/8)
	if err != nil {
		return nil, err
	}
	priv, err := ecdsa.ParseRawPrivateKey(pub.Curve, d)
	wipe(d)
	if err != nil {
		return nil, badParam("EC key member \"d\" is not a valid private key for curve %s", j.Crv)
	}
	if !priv.PublicKey.Equal(pub) {
		return nil, badParam("EC key member \"d\" does not match the public key (x, y)")
	}
	return newECKey(j.Kty, j.Crv, priv), nil
}
