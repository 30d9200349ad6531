package keyhold

import (
	"crypto/subtle"
	"errors"
	"log/slog"
)

// Secret holds secret bytes: key material, passwords, client secrets. It
// refuses to be printed, logged or marshalled, so that a secret cannot reach a
// log line, an error, a response or an audit record by accident. Use Reveal
// where the bytes are really needed.
type Secret struct{ b []byte }

// NewSecret wraps b. The Secret owns b from then on.
func NewSecret(b []byte) Secret { return Secret{b: b} }

// Reveal returns the secret bytes. Callers must not keep or log them.
func (s Secret) Reveal() []byte { return s.b }

// Len returns the length of the secret in bytes.
func (s Secret) Len() int { return len(s.b) }

// IsZero reports whether the secret is empty.
func (s Secret) IsZero() bool { return len(s.b) == 0 }

// Equal compares two secrets in constant time.
func (s Secret) Equal(o Secret) bool { return subtle.ConstantTimeCompare(s.b, o.b) == 1 }

// Wipe overwrites the secret bytes with zeros.
func (s Secret) Wipe() {
	for i := range s.b {
		s.b[i] = 0
	}
}

func (Secret) String() string               { return "[REDACTED]" }
func (Secret) GoString() string             { return "keyhold.Secret{[REDACTED]}" }
func (Secret) LogValue() slog.Value         { return slog.StringValue("[REDACTED]") }
func (Secret) MarshalJSON() ([]byte, error) { return nil, errSecretMarshal }
func (Secret) MarshalText() ([]byte, error) { return nil, errSecretMarshal }

var errSecretMarshal = errors.New("keyhold: a Secret cannot be marshalled")
