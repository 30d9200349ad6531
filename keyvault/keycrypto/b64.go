package keycrypto

import (
	"encoding/base64"
	"encoding/json"
	"strings"
)

// Bytes is a byte string that travels in JSON as base64url. It marshals as
// unpadded base64url, which is the only form the Azure SDKs decode, and
// unmarshals leniently: padded or unpadded, URL or standard alphabet, since
// clients and hand-written requests send all four. The Key Vault surface can
// use it for the value, iv, aad and tag members of its requests too.
type Bytes []byte

// MarshalJSON encodes b as an unpadded base64url JSON string.
func (b Bytes) MarshalJSON() ([]byte, error) {
	return json.Marshal(EncodeBase64(b))
}

// UnmarshalJSON decodes a base64 JSON string in any of the four common
// forms; null leaves b nil. Anything else is an EInvalid "BadParameter" error.
func (b *Bytes) UnmarshalJSON(data []byte) error {
	if string(data) == "null" {
		*b = nil
		return nil
	}
	var s string
	if err := json.Unmarshal(data, &s); err != nil {
		return badParam("a binary value must be a base64url string")
	}
	d, err := DecodeBase64(s)
	if err != nil {
		return err
	}
	*b = d
	return nil
}

// EncodeBase64 returns b as unpadded base64url, the form Key Vault sends.
func EncodeBase64(b []byte) string {
	return base64.RawURLEncoding.EncodeToString(b)
}

// DecodeBase64 decodes s leniently: padded or unpadded, URL-safe or standard
// alphabet. A malformed string is an EInvalid "BadParameter" error.
func DecodeBase64(s string) ([]byte, error) {
	t := strings.TrimRight(s, "=")
	if len(s)-len(t) > 2 {
		return nil, badParam("invalid base64url value: too much padding")
	}
	if strings.ContainsAny(t, "+/") {
		t = strings.NewReplacer("+", "-", "/", "_").Replace(t)
	}
	d, err := base64.RawURLEncoding.DecodeString(t)
	if err != nil {
		return nil, badParam("invalid base64url value")
	}
	return d, nil
}
