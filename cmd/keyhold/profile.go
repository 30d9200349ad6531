package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/keyhold/keyhold"
	"github.com/keyhold/keyhold/client"
)

// Profile is what keyhold login remembers. It never holds a password or a
// client secret; it does hold access tokens, so it is written with mode 0600.
type Profile struct {
	Server       string                  `json:"server"`
	Tenant       string                  `json:"tenant"`
	CACert       string                  `json:"caCert,omitempty"`
	Subscription string                  `json:"subscription,omitempty"`
	LoginName    string                  `json:"loginName"`        // user principal name or client id
	LoginType    string                  `json:"loginType"`        // "user" or "servicePrincipal"
	Tokens       map[string]client.Token `json:"tokens,omitempty"` // by audience
}

const (
	loginUser             = "user"
	loginServicePrincipal = "servicePrincipal"
)

// profilePath returns where the profile lives: $KEYHOLD_CONFIG, else
// $XDG_CONFIG_HOME/keyhold/profile.json, else ~/.config/keyhold/profile.json.
func (a *app) profilePath() (string, error) {
	if p := a.getenv("KEYHOLD_CONFIG"); p != "" {
		return p, nil
	}
	if d := a.getenv("XDG_CONFIG_HOME"); d != "" {
		return filepath.Join(d, "keyhold", "profile.json"), nil
	}
	home := a.getenv("HOME")
	if home == "" {
		var err error
		if home, err = os.UserHomeDir(); err != nil {
			return "", errors.New("cannot tell where the profile goes: set KEYHOLD_CONFIG or HOME")
		}
	}
	return filepath.Join(home, ".config", "keyhold", "profile.json"), nil
}

// loadProfile reads the profile; a missing one is nil without error.
func (a *app) loadProfile() (*Profile, error) {
	path, err := a.profilePath()
	if err != nil {
		return nil, err
	}
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("reading the profile: %w", err)
	}
	var p Profile
	if err := json.Unmarshal(b, &p); err != nil {
		return nil, fmt.Errorf("the profile %s is damaged (%v); run keyhold login", path, err)
	}
	return &p, nil
}

// saveProfile writes p atomically with mode 0600, in a directory of mode
// 0700 if it has to create it.
func (a *app) saveProfile(p *Profile) error {
	path, err := a.profilePath()
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return fmt.Errorf("creating the profile directory: %w", err)
	}
	b, err := json.MarshalIndent(p, "", "  ")
	if err != nil {
		return fmt.Errorf("encoding the profile: %w", err)
	}
	f, err := os.CreateTemp(filepath.Dir(path), ".profile-*.json")
	if err != nil {
		return fmt.Errorf("writing the profile: %w", err)
	}
	defer os.Remove(f.Name())
	// CreateTemp makes the file 0600; Chmod makes sure of it under any umask.
	if err := f.Chmod(0o600); err != nil {
		f.Close()
		return fmt.Errorf("writing the profile: %w", err)
	}
	if _, err := f.Write(append(b, '\n')); err != nil {
		f.Close()
		return fmt.Errorf("writing the profile: %w", err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("writing the profile: %w", err)
	}
	if err := os.Rename(f.Name(), path); err != nil {
		return fmt.Errorf("writing the profile: %w", err)
	}
	return nil
}

// settings are the resolved connection settings of a command: flags win
// over environment variables, which win over the profile.
type settings struct {
	server, caCert, tenant, subscription string
	cred                                 client.Credential
	// profile is the saved profile if it is for the same server and login,
	// so that its tokens may be used; else nil.
	profile *Profile
}

func first(vals ...string) string {
	for _, v := range vals {
		if v != "" {
			return v
		}
	}
	return ""
}

// resolveSettings merges flags, environment and profile p (may be nil).
func (a *app) resolveSettings(p *Profile) settings {
	var pf Profile
	if p != nil {
		pf = *p
	}
	g := a.g
	s := settings{
		server:       first(g.server, a.getenv("KEYHOLD_SERVER"), pf.Server),
		caCert:       first(g.caCert, a.getenv("KEYHOLD_CA_CERT")),
		tenant:       first(g.tenant, a.getenv("KEYHOLD_TENANT")),
		subscription: first(g.subscription, a.getenv("KEYHOLD_SUBSCRIPTION")),
	}
	clientSecret := first(g.clientSecret, a.getenv("KEYHOLD_CLIENT_SECRET"))
	password := first(g.password, a.getenv("KEYHOLD_PASSWORD"))
	// Who signs in is decided as a whole, flags first, so that a user named
	// on the command line is not mixed up with a client id from the
	// environment.
	switch {
	case g.clientID != "":
		s.cred = client.Credential{ClientID: g.clientID, ClientSecret: keyhold.NewSecret([]byte(clientSecret))}
	case g.username != "":
		s.cred = client.Credential{Username: g.username, Password: keyhold.NewSecret([]byte(password))}
	case a.getenv("KEYHOLD_CLIENT_ID") != "":
		s.cred = client.Credential{ClientID: a.getenv("KEYHOLD_CLIENT_ID"), ClientSecret: keyhold.NewSecret([]byte(clientSecret))}
	case a.getenv("KEYHOLD_USERNAME") != "":
		s.cred = client.Credential{Username: a.getenv("KEYHOLD_USERNAME"), Password: keyhold.NewSecret([]byte(password))}
	case pf.LoginType == loginServicePrincipal:
		s.cred = client.Credential{ClientID: pf.LoginName, ClientSecret: keyhold.NewSecret([]byte(clientSecret))}
	case pf.LoginType == loginUser:
		s.cred = client.Credential{Username: pf.LoginName, Password: keyhold.NewSecret([]byte(password))}
	}
	same := p != nil && sameServer(pf.Server, s.server) && strings.EqualFold(pf.LoginName, s.cred.Name()) &&
		(s.tenant == "" || strings.EqualFold(s.tenant, pf.Tenant))
	if same {
		s.profile = p
		s.caCert = first(s.caCert, pf.CACert)
		s.tenant = first(s.tenant, pf.Tenant)
		s.subscription = first(s.subscription, pf.Subscription)
	} else if p != nil && sameServer(pf.Server, s.server) {
		// Another login on the same server still trusts the same CA.
		s.caCert = first(s.caCert, pf.CACert)
	}
	return s
}

func sameServer(a, b string) bool {
	return strings.TrimRight(a, "/") == strings.TrimRight(b, "/")
}

// newClient returns a client for s with tokens from the session.
func (a *app) newClient(s settings) (*client.Client, error) {
	if s.server == "" {
		return nil, errors.New("no server given: run keyhold login, or use --server or KEYHOLD_SERVER")
	}
	c, err := client.New(client.Config{
		Server:       s.server,
		CAFile:       s.caCert,
		HTTPClient:   a.httpClient,
		UserAgent:    "keyhold-cli/" + buildVersion(),
		PollInterval: a.pollInterval,
	})
	if err != nil {
		return nil, err
	}
	return c.WithTokens(&session{a: a, c: c, s: s, mem: map[string]client.Token{}}), nil
}

// connect resolves the settings of this command and returns its client.
func (a *app) connect() (*client.Client, settings, error) {
	p, err := a.loadProfile()
	if err != nil {
		return nil, settings{}, err
	}
	s := a.resolveSettings(p)
	c, err := a.newClient(s)
	return c, s, err
}

// connectSub is connect for commands under a subscription: it also returns
// the subscription id, or an error that says how to give one.
func (a *app) connectSub() (*client.Client, string, error) {
	c, s, err := a.connect()
	if err != nil {
		return nil, "", err
	}
	sub, err := s.sub()
	return c, sub, err
}

// sub returns the subscription of this command or an error that says how
// to give one.
func (s settings) sub() (string, error) {
	if s.subscription == "" {
		return "", errors.New("no subscription: use --subscription or KEYHOLD_SUBSCRIPTION, or run keyhold login")
	}
	return s.subscription, nil
}

// errSessionExpired is returned when the cached token has lapsed and there
// is no secret to get another.
var errSessionExpired = errors.New("your session has expired; run keyhold login")

// session is the CLI's token source: tokens cached in the profile, else
// fresh ones from the credential's secret, which are cached back.
type session struct {
	a *app
	c *client.Client
	s settings

	mu  sync.Mutex
	mem map[string]client.Token
}

// Token returns a token for audience.
func (t *session) Token(ctx context.Context, audience string) (string, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	now := t.a.now()
	if tok, ok := t.mem[audience]; ok && tok.Valid(now) {
		return tok.AccessToken, nil
	}
	p := t.s.profile
	var cached bool
	if p != nil {
		tok, ok := p.Tokens[audience]
		if ok && tok.Valid(now) {
			return tok.AccessToken, nil
		}
		cached = ok
	}
	cred := t.s.cred
	if !cred.HasSecret() {
		switch {
		case cached:
			return "", errSessionExpired
		case p != nil:
			return "", errors.New("you are not logged in (or logged out); run keyhold login")
		case cred.Name() == "":
			return "", errors.New("not logged in: run keyhold login, or give --client-id and --client-secret, or --username and --password")
		}
		secret, err := t.a.askSecret(cred)
		if err != nil {
			return "", err
		}
		if cred.IsUser() {
			cred.Password = secret
		} else {
			cred.ClientSecret = secret
		}
		t.s.cred = cred
	}
	tok, err := t.c.RequestToken(ctx, t.s.tenant, cred, audience)
	if err != nil {
		return "", err
	}
	t.mem[audience] = tok
	if p != nil {
		if p.Tokens == nil {
			p.Tokens = map[string]client.Token{}
		}
		p.Tokens[audience] = tok
		if err := t.a.saveProfile(p); err != nil {
			fmt.Fprintf(t.a.stderr, "keyhold: warning: the new token is not cached: %v\n", err)
		}
	}
	return tok.AccessToken, nil
}

// askSecret prompts for the password or client secret of cred on the
// terminal, and fails with advice when there is none.
func (a *app) askSecret(cred client.Credential) (keyhold.Secret, error) {
	what, flagName, env := "client secret for "+cred.ClientID, "--client-secret", "KEYHOLD_CLIENT_SECRET"
	if cred.IsUser() {
		what, flagName, env = "password for "+cred.Username, "--password", "KEYHOLD_PASSWORD"
	}
	v, err := a.readSecret(strings.ToUpper(what[:1]) + what[1:] + ": ")
	if err != nil {
		return keyhold.Secret{}, fmt.Errorf("no %s: use %s or %s (%v)", what, flagName, env, err)
	}
	if v == "" {
		return keyhold.Secret{}, fmt.Errorf("no %s given", what)
	}
	return keyhold.NewSecret([]byte(v)), nil
}

// expiresIn says how long a token has left, for login's summary.
func expiresIn(t client.Token, now time.Time) string {
	return t.ExpiresOn.Sub(now).Round(time.Minute).String()
}
