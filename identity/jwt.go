package identity

import (
	"bytes"
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"math/big"
	"strings"
)

// The few lines of JWS that Keyhold needs are written here rather than taken
// from a library, so that exactly one algorithm (RS256) and one key are ever
// accepted and no header field can choose otherwise.

var b64 = base64.RawURLEncoding

// maxTokenLen bounds the bearer tokens Authenticate will look at; ours are
// about 1.5 KB.
const maxTokenLen = 16 << 10

type jwtHeader struct {
	Alg string `json:"alg"`
	Kid string `json:"kid,omitempty"`
	Typ string `json:"typ,omitempty"`
}

// claims are the claims of Keyhold's access and ID tokens, named as Entra ID
// names them in v2 tokens.
type claims struct {
	Aud               string   `json:"aud"`
	Iss               string   `json:"iss"`
	Iat               int64    `json:"iat"`
	Nbf               int64    `json:"nbf"`
	Exp               int64    `json:"exp"`
	AppID             string   `json:"appid,omitempty"`
	Azp               string   `json:"azp,omitempty"`
	Idtyp             string   `json:"idtyp,omitempty"`
	Name              string   `json:"name,omitempty"`
	Oid               string   `json:"oid"`
	PreferredUsername string   `json:"preferred_username,omitempty"`
	UPN               string   `json:"upn,omitempty"`
	Scp               string   `json:"scp,omitempty"`
	Sub               string   `json:"sub"`
	Tid               string   `json:"tid"`
	Uti               string   `json:"uti,omitempty"`
	Ver               string   `json:"ver"`
	Wids              []string `json:"wids,omitempty"`
	MIResourceID      string   `json:"xms_mirid,omitempty"`
}

// sign returns the compact JWS of c signed with the service's key.
func (s *Service) sign(c *claims) (string, error) {
	h, err := json.Marshal(jwtHeader{Alg: "RS256", Kid: s.kid, Typ: "JWT"})
	if err != nil {
		return "", err
	}
	p, err := json.Marshal(c)
	if err != nil {
		return "", err
	}
	input := b64.EncodeToString(h) + "." + b64.EncodeToString(p)
	sum := sha256.Sum256([]byte(input))
	sig, err := rsa.SignPKCS1v15(rand.Reader, s.signer, crypto.SHA256, sum[:])
	if err != nil {
		return "", err
	}
	return input + "." + b64.EncodeToString(sig), nil
}

// Reasons a token is refused before its claims are looked at. Their text is
// shown to callers.
var (
	errMalformed = errors.New("the access token is malformed")
	errAlg       = errors.New("the access token signing algorithm is not supported")
	errSignature = errors.New("the access token signature is invalid")
)

// verify checks the form, algorithm, key id and signature of token and
// returns its claims. It never looks at the claims of a token whose signature
// does not verify.
func (s *Service) verify(token string) (*claims, error) {
	if len(token) > maxTokenLen {
		return nil, errMalformed
	}
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		return nil, errMalformed
	}
	hb, err := b64.DecodeString(parts[0])
	if err != nil {
		return nil, errMalformed
	}
	var h jwtHeader
	if err := json.Unmarshal(hb, &h); err != nil {
		return nil, errMalformed
	}
	if h.Alg != "RS256" {
		return nil, errAlg
	}
	if h.Kid != s.kid {
		return nil, errSignature
	}
	sig, err := b64.DecodeString(parts[2])
	if err != nil || len(sig) == 0 {
		return nil, errSignature
	}
	sum := sha256.Sum256([]byte(parts[0] + "." + parts[1]))
	if rsa.VerifyPKCS1v15(&s.signer.PublicKey, crypto.SHA256, sum[:], sig) != nil {
		return nil, errSignature
	}
	pb, err := b64.DecodeString(parts[1])
	if err != nil {
		return nil, errMalformed
	}
	var c claims
	dec := json.NewDecoder(bytes.NewReader(pb))
	if err := dec.Decode(&c); err != nil {
		return nil, errMalformed
	}
	return &c, nil
}

// jwk is one key of a JSON Web Key Set, in the shape Entra ID publishes.
type jwk struct {
	Kty string   `json:"kty"`
	Use string   `json:"use"`
	Alg string   `json:"alg"`
	Kid string   `json:"kid"`
	N   string   `json:"n"`
	E   string   `json:"e"`
	X5t string   `json:"x5t,omitempty"`
	X5c []string `json:"x5c,omitempty"`
}

func publicJWK(pub *rsa.PublicKey, kid string) jwk {
	return jwk{
		Kty: "RSA", Use: "sig", Alg: "RS256", Kid: kid,
		N: b64.EncodeToString(pub.N.Bytes()),
		E: b64.EncodeToString(big.NewInt(int64(pub.E)).Bytes()),
	}
}

// thumbprint returns the RFC 7638 JWK thumbprint of pub, used as the key id
// so that the id follows from the key and needs no storage of its own.
func thumbprint(pub *rsa.PublicKey) string {
	k := publicJWK(pub, "")
	// Members in lexicographic order, no whitespace, as RFC 7638 requires.
	canon := `{"e":"` + k.E + `","kty":"RSA","n":"` + k.N + `"}`
	sum := sha256.Sum256([]byte(canon))
	return b64.EncodeToString(sum[:])
}
