package client

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/keyhold/keyhold"
)

// DefaultPublicClientID is the client id sent with a password grant when the
// credential names none: the id the Azure CLI uses, which Keyhold's identity
// service accepts as a public client.
const DefaultPublicClientID = "04b07795-8ddb-461a-bbee-02f9e1bf7b46"

// Credential proves who the client is: a service principal (ClientID and
// ClientSecret) or a user (Username and Password, with ClientID naming the
// public client, DefaultPublicClientID if empty).
type Credential struct {
	ClientID     string
	ClientSecret keyhold.Secret
	Username     string
	Password     keyhold.Secret
}

// IsUser reports whether c is a user's credential.
func (c Credential) IsUser() bool { return c.Username != "" }

// Name returns the login name: the user principal name or the client id.
func (c Credential) Name() string {
	if c.IsUser() {
		return c.Username
	}
	return c.ClientID
}

// HasSecret reports whether c carries the secret it needs to get a token.
func (c Credential) HasSecret() bool {
	if c.IsUser() {
		return !c.Password.IsZero()
	}
	return c.ClientID != "" && !c.ClientSecret.IsZero()
}

// Token is an access token and when it expires.
type Token struct {
	AccessToken string    `json:"accessToken"`
	ExpiresOn   time.Time `json:"expiresOn"`
}

// Valid reports whether t is set and still valid a minute after now, so that
// a token is not sent just before it lapses.
func (t Token) Valid(now time.Time) bool {
	return t.AccessToken != "" && now.Add(time.Minute).Before(t.ExpiresOn)
}

// RequestToken asks the token endpoint of tenant for a token for audience:
// POST {server}{tenant}/oauth2/v2.0/token with the client credentials or the
// password grant. It fails with an *Error carrying the identity service's
// error (such as invalid_client) when the credential is refused.
func (c *Client) RequestToken(ctx context.Context, tenant string, cred Credential, audience string) (Token, error) {
	if tenant == "" {
		tenant = "organizations"
	}
	form := url.Values{"scope": {strings.TrimSuffix(audience, "/") + "/.default"}}
	switch {
	case cred.IsUser():
		if cred.Password.IsZero() {
			return Token{}, errors.New("client: no password given")
		}
		id := cred.ClientID
		if id == "" {
			id = DefaultPublicClientID
		}
		form.Set("grant_type", "password")
		form.Set("client_id", id)
		form.Set("username", cred.Username)
		form.Set("password", string(cred.Password.Reveal()))
	case cred.ClientID != "":
		if cred.ClientSecret.IsZero() {
			return Token{}, errors.New("client: no client secret given")
		}
		if t := strings.ToLower(tenant); t == "organizations" || t == "common" {
			// The identity platform would refuse it too (AADSTS50059), in
			// fewer useful words.
			return Token{}, errors.New("client: a service principal signs in to its own tenant: give the tenant id")
		}
		form.Set("grant_type", "client_credentials")
		form.Set("client_id", cred.ClientID)
		form.Set("client_secret", string(cred.ClientSecret.Reveal()))
	default:
		return Token{}, errors.New("client: no credential given: name a user or a client id")
	}
	u, err := c.resolve(url.PathEscape(tenant) + "/oauth2/v2.0/token")
	if err != nil {
		return Token{}, err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u.String(), strings.NewReader(form.Encode()))
	if err != nil {
		return Token{}, fmt.Errorf("client: %w", err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	var out struct {
		TokenType   string          `json:"token_type"`
		AccessToken string          `json:"access_token"`
		ExpiresIn   json.RawMessage `json:"expires_in"` // a number, or a string in older issuers
	}
	start := time.Now()
	if _, err := c.send(req, "", &out); err != nil {
		return Token{}, err
	}
	if out.AccessToken == "" {
		return Token{}, errors.New("client: the token endpoint returned no access token")
	}
	secs, err := strconv.Atoi(strings.Trim(string(out.ExpiresIn), `"`))
	if err != nil || secs <= 0 {
		return Token{}, errors.New("client: the token endpoint returned no valid expires_in")
	}
	return Token{AccessToken: out.AccessToken, ExpiresOn: start.Add(time.Duration(secs) * time.Second)}, nil
}

// Claims returns the claims of a JWT without verifying it: the client only
// reads its own token (tid, upn, oid) to show and remember who signed in.
func Claims(token string) (map[string]any, error) {
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		return nil, errors.New("client: the access token is not a JWT")
	}
	b, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		return nil, errors.New("client: the access token's claims are not base64url")
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, errors.New("client: the access token's claims are not JSON")
	}
	return m, nil
}

// CredentialSource is a TokenSource that asks the token endpoint with a
// Credential and keeps tokens in memory until shortly before they expire.
type CredentialSource struct {
	client *Client
	tenant string
	cred   Credential
	now    func() time.Time

	mu     sync.Mutex
	tokens map[string]Token
}

// NewCredentialSource returns a TokenSource for cred in tenant that gets its
// tokens through c. now may be nil for time.Now.
func NewCredentialSource(c *Client, tenant string, cred Credential, now func() time.Time) *CredentialSource {
	if now == nil {
		now = time.Now
	}
	return &CredentialSource{client: c, tenant: tenant, cred: cred, now: now, tokens: map[string]Token{}}
}

// Token returns a cached token for audience or asks for a new one; errors
// are those of RequestToken.
func (s *CredentialSource) Token(ctx context.Context, audience string) (string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if t, ok := s.tokens[audience]; ok && t.Valid(s.now()) {
		return t.AccessToken, nil
	}
	t, err := s.client.RequestToken(ctx, s.tenant, s.cred, audience)
	if err != nil {
		return "", err
	}
	s.tokens[audience] = t
	return t.AccessToken, nil
}
