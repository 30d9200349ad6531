package identity

import (
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"fmt"
	"io"
	"strconv"
	"strings"

	"golang.org/x/crypto/argon2"

	"github.com/keyhold/keyhold"
)

// Passwords are chosen by people and so are hashed slowly (argon2id); client
// secrets are 240 random bits and so a keyed fast hash is as strong and keeps
// the token endpoint cheap. Both are stored as PHC strings, which say how
// they were made, so parameters can change without breaking old hashes.

var phcB64 = base64.RawStdEncoding

type argonParams struct {
	memory  uint32 // KiB
	time    uint32
	threads uint8
}

// defaultArgon follows the OWASP minimum for argon2id.
var defaultArgon = argonParams{memory: 19 * 1024, time: 2, threads: 1}

// hashPassword returns the argon2id PHC string of password.
func (s *Service) hashPassword(password keyhold.Secret) (string, error) {
	salt := make([]byte, 16)
	if _, err := io.ReadFull(s.rand, salt); err != nil {
		return "", keyhold.Internal("identity: hash password", err)
	}
	p := s.argon
	sum := argon2.IDKey(password.Reveal(), salt, p.time, p.memory, p.threads, 32)
	return fmt.Sprintf("$argon2id$v=%d$m=%d,t=%d,p=%d$%s$%s",
		argon2.Version, p.memory, p.time, p.threads, phcB64.EncodeToString(salt), phcB64.EncodeToString(sum)), nil
}

// maxArgonMemory bounds the memory a stored hash may ask for, so that a
// damaged or planted hash cannot exhaust the server.
const maxArgonMemory = 256 * 1024

// verifyPassword reports whether password matches the argon2id PHC string.
// A malformed hash never matches.
func verifyPassword(phc string, password keyhold.Secret) bool {
	parts := strings.Split(phc, "$")
	// "", "argon2id", "v=19", "m=..,t=..,p=..", salt, hash
	if len(parts) != 6 || parts[0] != "" || parts[1] != "argon2id" || parts[2] != fmt.Sprintf("v=%d", argon2.Version) {
		return false
	}
	var p argonParams
	for _, kv := range strings.Split(parts[3], ",") {
		k, v, ok := strings.Cut(kv, "=")
		if !ok {
			return false
		}
		n, err := strconv.ParseUint(v, 10, 32)
		if err != nil {
			return false
		}
		switch k {
		case "m":
			p.memory = uint32(n)
		case "t":
			p.time = uint32(n)
		case "p":
			if n > 255 {
				return false
			}
			p.threads = uint8(n)
		default:
			return false
		}
	}
	if p.memory == 0 || p.memory > maxArgonMemory || p.time == 0 || p.time > 10 || p.threads == 0 {
		return false
	}
	salt, err := phcB64.DecodeString(parts[4])
	if err != nil {
		return false
	}
	want, err := phcB64.DecodeString(parts[5])
	if err != nil || len(want) == 0 || len(want) > 64 {
		return false
	}
	got := argon2.IDKey(password.Reveal(), salt, p.time, p.memory, p.threads, uint32(len(want)))
	return subtle.ConstantTimeCompare(got, want) == 1
}

// hashSecret returns the keyed PHC string of a client secret.
func (s *Service) hashSecret(secret keyhold.Secret) (string, error) {
	salt := make([]byte, 16)
	if _, err := io.ReadFull(s.rand, salt); err != nil {
		return "", keyhold.Internal("identity: hash secret", err)
	}
	return "$hmac-sha256$v=1$" + phcB64.EncodeToString(salt) + "$" + phcB64.EncodeToString(s.mac(salt, secret)), nil
}

func (s *Service) mac(salt []byte, secret keyhold.Secret) []byte {
	m := hmac.New(sha256.New, s.hashKey.Reveal())
	m.Write(salt)
	m.Write(secret.Reveal())
	return m.Sum(nil)
}

// verifySecret reports whether secret matches the keyed PHC string.
func (s *Service) verifySecret(phc string, secret keyhold.Secret) bool {
	parts := strings.Split(phc, "$")
	if len(parts) != 5 || parts[0] != "" || parts[1] != "hmac-sha256" || parts[2] != "v=1" {
		return false
	}
	salt, err := phcB64.DecodeString(parts[3])
	if err != nil {
		return false
	}
	want, err := phcB64.DecodeString(parts[4])
	if err != nil {
		return false
	}
	return hmac.Equal(s.mac(salt, secret), want)
}
