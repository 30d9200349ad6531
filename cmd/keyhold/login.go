package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"

	"github.com/keyhold/keyhold"
	"github.com/keyhold/keyhold/client"
)

// loginAudiences are the audiences login gets tokens for, so that a user
// signed in with a password can use every surface until the tokens expire.
var loginAudiences = []string{client.AudienceARM, client.AudienceGraph, client.AudienceBAP, client.AudienceVault}

func loginCommand() *command {
	var bootstrapFile string
	var asSP bool
	return &command{
		name:    "login",
		summary: "sign in to a Keyhold server and save a profile",
		args:    "[--bootstrap FILE [--as-service-principal]] | [--server URL] (--username UPN | --client-id ID) [flags]",
		long: "login gets access tokens from the server's token endpoint and saves the server, tenant, CA file,\n" +
			"subscription, login name and tokens in the profile (mode 0600). A password or client secret comes\n" +
			"from --password/--client-secret, KEYHOLD_PASSWORD/KEYHOLD_CLIENT_SECRET, or a prompt on the terminal;\n" +
			"it is never written to the profile. With --bootstrap, everything comes from the bootstrap.json that\n" +
			"'keyhold serve' writes in its data directory: the administrator by default, the service principal\n" +
			"with --as-service-principal.",
		examples: []string{
			"keyhold login --bootstrap keyhold-data/bootstrap.json",
			"keyhold login --bootstrap keyhold-data/bootstrap.json --as-service-principal",
			"keyhold login --server https://127.0.0.1:8443/ --ca-cert keyhold-data/ca.pem --username admin@contoso.keyhold.local",
			"KEYHOLD_CLIENT_SECRET=... keyhold login --server https://127.0.0.1:8443/ --tenant TENANT --client-id APP_ID",
		},
		flags: func(fs *flag.FlagSet) {
			fs.StringVar(&bootstrapFile, "bootstrap", "", "take server, tenant, CA, subscription and credentials from this bootstrap.json `FILE`")
			fs.BoolVar(&asSP, "as-service-principal", false, "with --bootstrap: sign in as the bootstrap service principal, not the administrator")
		},
		run: func(ctx context.Context, a *app, args []string) error {
			if len(args) > 0 {
				return usagef("login takes no arguments, got %q", args[0])
			}
			if asSP && bootstrapFile == "" {
				return usagef("--as-service-principal goes with --bootstrap")
			}
			return a.login(ctx, bootstrapFile, asSP)
		},
	}
}

func logoutCommand() *command {
	return &command{
		name:     "logout",
		summary:  "remove the cached tokens from the profile",
		long:     "logout keeps the server, tenant and subscription so that the next login needs fewer flags.",
		examples: []string{"keyhold logout"},
		run: func(ctx context.Context, a *app, args []string) error {
			if len(args) > 0 {
				return usagef("logout takes no arguments")
			}
			p, err := a.loadProfile()
			if err != nil {
				return err
			}
			if p == nil || len(p.Tokens) == 0 {
				fmt.Fprintln(a.stdout, "Not logged in.")
				return nil
			}
			p.Tokens = nil
			if err := a.saveProfile(p); err != nil {
				return err
			}
			fmt.Fprintf(a.stdout, "Logged out %s from %s.\n", p.LoginName, p.Server)
			return nil
		},
	}
}

// login signs in and writes the profile.
func (a *app) login(ctx context.Context, bootstrapFile string, asSP bool) error {
	old, err := a.loadProfile()
	if err != nil {
		// A damaged profile is replaced by the new one.
		old = nil
	}
	s := a.resolveSettings(old)
	if bootstrapFile != "" {
		b, err := readBootstrap(bootstrapFile)
		if err != nil {
			return err
		}
		s = settings{
			server:       first(a.g.server, b.AuthorityHost),
			caCert:       first(a.g.caCert, b.CACertFile),
			tenant:       first(a.g.tenant, b.TenantID),
			subscription: first(a.g.subscription, b.SubscriptionID),
		}
		if asSP {
			if b.ClientID == "" || b.ClientSecret == "" {
				return fmt.Errorf("%s names no service principal with a client secret", bootstrapFile)
			}
			s.cred = client.Credential{ClientID: b.ClientID, ClientSecret: keyhold.NewSecret([]byte(b.ClientSecret))}
		} else {
			if b.AdminUsername == "" || b.AdminPassword == "" {
				return fmt.Errorf("%s names no administrator with a password", bootstrapFile)
			}
			s.cred = client.Credential{Username: b.AdminUsername, Password: keyhold.NewSecret([]byte(b.AdminPassword))}
		}
	}
	if s.server == "" {
		return usagef("login needs --server URL (or KEYHOLD_SERVER, or --bootstrap FILE)")
	}
	if s.cred.Name() == "" {
		return usagef("login needs --username UPN or --client-id ID (or --bootstrap FILE)")
	}
	if !s.cred.HasSecret() {
		secret, err := a.askSecret(s.cred)
		if err != nil {
			return err
		}
		if s.cred.IsUser() {
			s.cred.Password = secret
		} else {
			s.cred.ClientSecret = secret
		}
	}
	if s.caCert != "" {
		abs, err := filepath.Abs(s.caCert)
		if err != nil {
			return fmt.Errorf("CA file %s: %w", s.caCert, err)
		}
		s.caCert = abs
	}
	s.profile = nil // a new login starts a new token cache
	c, err := a.newClient(s)
	if err != nil {
		return err
	}
	server, err := client.ParseServerURL(s.server)
	if err != nil {
		return err
	}
	p := &Profile{
		Server:       server.String(),
		Tenant:       s.tenant,
		CACert:       s.caCert,
		Subscription: s.subscription,
		LoginName:    s.cred.Name(),
		LoginType:    loginServicePrincipal,
		Tokens:       map[string]client.Token{},
	}
	if s.cred.IsUser() {
		p.LoginType = loginUser
	}
	for _, aud := range loginAudiences {
		tok, err := c.RequestToken(ctx, s.tenant, s.cred, aud)
		if err != nil {
			return fmt.Errorf("signing in as %s: %w", s.cred.Name(), err)
		}
		p.Tokens[aud] = tok
	}
	// The token says which tenant "organizations" turned out to be.
	if claims, err := client.Claims(p.Tokens[client.AudienceARM].AccessToken); err == nil {
		if tid, ok := claims["tid"].(string); ok && tid != "" {
			p.Tenant = tid
		}
	}
	if p.Subscription == "" {
		pc, err := a.newClient(settings{server: p.Server, caCert: p.CACert, tenant: p.Tenant, profile: p})
		if err != nil {
			return err
		}
		subs, err := pc.ListSubscriptions(ctx)
		if err != nil {
			return fmt.Errorf("listing subscriptions: %w", err)
		}
		if len(subs) > 0 {
			p.Subscription = subs[0].SubscriptionID
		}
	}
	if err := a.saveProfile(p); err != nil {
		return err
	}
	path, _ := a.profilePath()
	summary := struct {
		Server       string `json:"server"`
		Tenant       string `json:"tenant"`
		Subscription string `json:"subscription"`
		LoginName    string `json:"loginName"`
		LoginType    string `json:"loginType"`
		Profile      string `json:"profile"`
		ExpiresIn    string `json:"expiresIn"`
	}{p.Server, p.Tenant, p.Subscription, p.LoginName, p.LoginType, path, expiresIn(p.Tokens[client.AudienceARM], a.now())}
	if a.g.output == "json" {
		return writeJSON(a.stdout, summary)
	}
	fmt.Fprintf(a.stdout, "Logged in to %s as %s (tenant %s).\n", p.Server, p.LoginName, p.Tenant)
	if p.Subscription != "" {
		fmt.Fprintf(a.stdout, "Subscription: %s\n", p.Subscription)
	} else {
		fmt.Fprintln(a.stdout, "No subscription is visible to this login; ARM commands need --subscription.")
	}
	fmt.Fprintf(a.stdout, "Profile: %s (tokens expire in %s)\n", path, summary.ExpiresIn)
	return nil
}

// bootstrap is the part of bootstrap.json, as keyhold serve writes it
// (server.BootstrapFileContents), that login reads.
type bootstrap struct {
	TenantID       string `json:"tenant_id"`
	SubscriptionID string `json:"subscription_id"`
	AuthorityHost  string `json:"authority_host"` // the server's public URL
	CACertFile     string `json:"ca_cert_file"`
	AdminUsername  string `json:"admin_username"`
	AdminPassword  string `json:"admin_password"`
	ClientID       string `json:"client_id"`
	ClientSecret   string `json:"client_secret"`
}

// readBootstrap reads bootstrap.json; a relative CA path is read from the
// file's own directory.
func readBootstrap(path string) (*bootstrap, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading the bootstrap file: %w", err)
	}
	var b bootstrap
	if err := json.Unmarshal(raw, &b); err != nil {
		return nil, fmt.Errorf("the bootstrap file %s is not valid JSON: %w", path, err)
	}
	if b.AuthorityHost == "" {
		return nil, fmt.Errorf("the bootstrap file %s names no authority_host (the server URL)", path)
	}
	if b.CACertFile != "" && !filepath.IsAbs(b.CACertFile) {
		b.CACertFile = filepath.Join(filepath.Dir(path), b.CACertFile)
	}
	return &b, nil
}
