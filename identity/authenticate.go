package identity

import (
	"context"
	"net/http"
	"strings"
	"time"

	"github.com/keyhold/keyhold"
)

// Detail codes of authentication failures, as ARM and Key Vault name them.
const (
	DetailInvalidToken         = "InvalidAuthenticationToken"
	DetailAuthenticationFailed = "AuthenticationFailed"
)

// leeway tolerates clock skew between the issuer and verifiers of a cluster.
const leeway = time.Minute

func invalidToken(msg string) error {
	return keyhold.Errorc(keyhold.EUnauthenticated, DetailInvalidToken, "%s", msg)
}

// BearerToken returns the token of an "Authorization: Bearer" header. It
// returns an EUnauthenticated error with Detail "AuthenticationFailed" if the
// header is missing and "InvalidAuthenticationToken" if it is not a bearer
// token.
func BearerToken(r *http.Request) (string, error) {
	h := r.Header.Values("Authorization")
	if len(h) == 0 || strings.TrimSpace(h[0]) == "" {
		return "", keyhold.Errorc(keyhold.EUnauthenticated, DetailAuthenticationFailed, "authentication failed: the Authorization header is missing")
	}
	if len(h) > 1 {
		return "", invalidToken("the request has more than one Authorization header")
	}
	scheme, tok, ok := strings.Cut(strings.TrimSpace(h[0]), " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return "", invalidToken("the Authorization header must use the Bearer scheme")
	}
	tok = strings.TrimSpace(tok)
	if tok == "" {
		return "", invalidToken("the access token is missing from the Authorization header")
	}
	return tok, nil
}

// Authenticate verifies the bearer token of r and returns its caller, with
// the principal's groups (direct and nested) loaded. audiences lists the
// audiences the calling service accepts, compared without trailing slash;
// none means any audience Keyhold issues for. Every failure is an
// EUnauthenticated error: Detail "AuthenticationFailed" when there is no
// Authorization header, and "InvalidAuthenticationToken" for a token that is
// malformed, signed by another key or algorithm, expired, not yet valid,
// issued for another audience or by another issuer, or whose principal no
// longer exists or is disabled; the message says which.
func (s *Service) Authenticate(ctx context.Context, r *http.Request, audiences ...string) (*keyhold.Caller, error) {
	tok, err := BearerToken(r)
	if err != nil {
		return nil, err
	}
	return s.AuthenticateToken(ctx, tok, audiences...)
}

// AuthenticateToken is Authenticate for a token taken from elsewhere than
// the Authorization header.
func (s *Service) AuthenticateToken(ctx context.Context, tok string, audiences ...string) (*keyhold.Caller, error) {
	c, err := s.verify(tok)
	if err != nil {
		return nil, invalidToken(err.Error())
	}
	now := s.now()
	switch {
	case c.Exp == 0 || now.After(time.Unix(c.Exp, 0).Add(leeway)):
		return nil, invalidToken("the access token has expired")
	case c.Nbf != 0 && now.Add(leeway).Before(time.Unix(c.Nbf, 0)):
		return nil, invalidToken("the access token is not yet valid")
	case c.Ver != "2.0" || (c.Idtyp != "app" && c.Idtyp != "user"):
		// ID tokens are signed by the same key but are not access tokens.
		return nil, invalidToken("the token is not an access token")
	case !isGUID(c.Tid) || c.Iss != s.issuer(c.Tid):
		return nil, invalidToken("the access token issuer is not valid")
	case !s.audienceOK(c.Aud, audiences):
		return nil, invalidToken("the access token audience is not valid for this service")
	}
	p, err := s.store.GetPrincipal(ctx, c.Oid)
	if keyhold.IsNotFound(err) || (err == nil && p.TenantID != c.Tid) {
		return nil, invalidToken("the principal of the access token does not exist")
	}
	if err != nil {
		return nil, s.storeErr("authenticate", err)
	}
	if p.Disabled {
		return nil, invalidToken("the principal of the access token is disabled")
	}
	if (c.Idtyp == "user") != (p.Type == keyhold.PrincipalUser) {
		return nil, invalidToken("the access token does not match its principal")
	}
	groups, err := groupsOf(ctx, s.store, p.ID)
	if err != nil {
		return nil, s.storeErr("authenticate", err)
	}
	return &keyhold.Caller{
		Principal: p,
		TenantID:  p.TenantID,
		GroupIDs:  groups,
		Audience:  c.Aud,
		ClientID:  c.Azp,
		TokenID:   c.Uti,
	}, nil
}

func (s *Service) audienceOK(aud string, accepted []string) bool {
	aud = strings.TrimRight(aud, "/")
	if aud == "" {
		return false
	}
	if len(accepted) == 0 {
		_, ok := s.audience(aud)
		return ok
	}
	for _, a := range accepted {
		if strings.EqualFold(strings.TrimRight(a, "/"), aud) {
			return true
		}
	}
	return false
}
