// Package testenv starts a real Keyhold server for this module's tests and
// gives them what a customer's tooling would hold: the bootstrap file, a
// client that trusts the server's CA, Azure SDK client options with the
// server's cloud configuration, and credentials for the bootstrap service
// principal and for users.
//
// Only tests import it: it pulls in the Azure SDK's identity module and it
// calls testing.TB.Fatal on any failure rather than returning errors. It
// imports server and so every surface package: their internal (package x)
// tests cannot use it, and a unit harness without a server belongs in a
// subpackage that imports no surface package.
package testenv

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/arm"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/cloud"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"

	"github.com/keyhold/keyhold"
	"github.com/keyhold/keyhold/identity"
	"github.com/keyhold/keyhold/server"
)

// AzureCLIClientID is the Azure CLI's public client id, which the password
// grant of the seed's administrators goes through.
const AzureCLIClientID = "04b07795-8ddb-461a-bbee-02f9e1bf7b46"

// Env is one running server and what a client needs to reach it. Its
// methods fail the test through TB; use With to fail a subtest or a
// benchmark instead.
type Env struct {
	TB     testing.TB
	Server *server.Server
	// Dir is the server's data directory; Start(tb, WithDir(e.Dir)) after
	// Stop starts the same server again.
	Dir  string
	Boot server.BootstrapFileContents
	// HTTP trusts the server's CA and nothing else.
	HTTP *http.Client
	// Clock is the server's time source when WithClock was given, else nil.
	Clock *Clock
	// Logs holds the server's JSON log lines at debug level when
	// WithCapturedLogs was given, else nil.
	Logs *LogBuffer
	// retry is the SDK's retry policy; the zero value is the SDK's default.
	retry policy.RetryOptions
}

type options struct {
	dir       string
	cfg       []func(*server.Config)
	clock     *Clock
	logger    *slog.Logger
	logs      bool
	transport func(*http.Transport)
	vaultDom  string
	timeout   time.Duration
	retry     policy.RetryOptions
}

// Option changes how Start runs the server or builds the clients.
type Option func(*options)

// WithDir keeps the server's data in dir instead of a fresh temporary
// directory, so that a second Start can reopen what a first one left.
func WithDir(dir string) Option { return func(o *options) { o.dir = dir } }

// WithConfig lets the test change the server.Config after the harness has
// filled in Listen, DataDir, RegistrationDelay (a millisecond by default,
// so that providers register at once) and Now.
func WithConfig(f func(*server.Config)) Option {
	return func(o *options) { o.cfg = append(o.cfg, f) }
}

// WithClock makes c the server's time source.
func WithClock(c *Clock) Option { return func(o *options) { o.clock = c } }

// WithLogger hands the server logger; by default its logs are discarded.
func WithLogger(l *slog.Logger) Option { return func(o *options) { o.logger = l } }

// WithCapturedLogs keeps the server's log output at debug level in Env.Logs,
// for tests that scan it for secrets.
func WithCapturedLogs() Option { return func(o *options) { o.logs = true } }

// WithTransport lets the test tune the client's transport (connection
// pooling for benchmarks) after its TLS configuration is set.
func WithTransport(f func(*http.Transport)) Option { return func(o *options) { o.transport = f } }

// WithVaultDomain runs the server with host-style vault URLs below domain
// (server.Config.VaultDomain) and makes the client dial the server for
// every host below it, as a wildcard DNS record would (recipe B of
// reference/keyvault-api.md §2.4): TLS still verifies the host name against
// the certificate's *.<domain>.
func WithVaultDomain(domain string) Option { return func(o *options) { o.vaultDom = domain } }

// WithTimeout sets the HTTP client's timeout; 30 s by default.
func WithTimeout(d time.Duration) Option { return func(o *options) { o.timeout = d } }

// WithRetry sets the Azure SDK's retry policy in ClientOptions, e.g.
// MaxRetries -1 for tests that assert on the first answer.
func WithRetry(r policy.RetryOptions) Option { return func(o *options) { o.retry = r } }

// Start runs a server on 127.0.0.1 at a random port, reads its bootstrap
// file and trusts its CA. The server is closed when the test ends.
func Start(tb testing.TB, opts ...Option) *Env {
	tb.Helper()
	o := options{timeout: 30 * time.Second}
	for _, f := range opts {
		f(&o)
	}
	if o.dir == "" {
		o.dir = tb.TempDir()
	}
	e := &Env{TB: tb, Dir: o.dir, Clock: o.clock, retry: o.retry}
	logger := o.logger
	if o.logs {
		e.Logs = &LogBuffer{}
		logger = slog.New(slog.NewJSONHandler(e.Logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	cfg := server.Config{Listen: "127.0.0.1:0", DataDir: o.dir, RegistrationDelay: time.Millisecond}
	if o.clock != nil {
		cfg.Now = o.clock.Now
	}
	cfg.VaultDomain = o.vaultDom
	for _, f := range o.cfg {
		f(&cfg)
	}
	srv, err := server.Start(context.Background(), cfg, logger)
	if err != nil {
		tb.Fatalf("server.Start: %v", err)
	}
	e.Server = srv
	tb.Cleanup(func() { srv.Close() })
	raw, err := os.ReadFile(srv.BootstrapFile())
	if err != nil {
		tb.Fatal(err)
	}
	if err := json.Unmarshal(raw, &e.Boot); err != nil {
		tb.Fatal(err)
	}
	pem, err := os.ReadFile(e.Boot.CACertFile)
	if err != nil {
		tb.Fatal(err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		tb.Fatal("testenv: the CA file holds no certificate")
	}
	tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}
	if d := srv.Vault().VaultDomain(); d != "" {
		addr, dialer := srv.Addr().String(), &net.Dialer{Timeout: 10 * time.Second}
		tr.DialContext = func(ctx context.Context, network, target string) (net.Conn, error) {
			if host, _, err := net.SplitHostPort(target); err == nil && strings.HasSuffix(strings.ToLower(host), "."+d) {
				target = addr
			}
			return dialer.DialContext(ctx, network, target)
		}
	}
	if o.transport != nil {
		o.transport(tr)
	}
	e.HTTP = &http.Client{Transport: tr, Timeout: o.timeout}
	return e
}

// With returns a copy of e that fails tb instead of e.TB, for subtests and
// benchmarks that share one server.
func (e *Env) With(tb testing.TB) *Env {
	c := *e
	c.TB = tb
	return &c
}

// Stop shuts the server down, so that a later Start with WithDir(e.Dir) can
// reuse its data.
func (e *Env) Stop() {
	e.TB.Helper()
	if err := e.Server.Close(); err != nil {
		e.TB.Fatalf("close: %v", err)
	}
}

// Domain is the tenant's default domain, the part after @ of the
// administrator's name.
func (e *Env) Domain() string {
	return e.Boot.AdminUsername[strings.IndexByte(e.Boot.AdminUsername, '@')+1:]
}

// Cloud is the cloud configuration that points the Azure SDK at the server.
func (e *Env) Cloud() cloud.Configuration {
	return cloud.Configuration{
		ActiveDirectoryAuthorityHost: e.Boot.AuthorityHost,
		Services: map[cloud.ServiceName]cloud.ServiceConfiguration{
			cloud.ResourceManager: {Endpoint: e.Boot.ResourceManagerEndpoint, Audience: e.Boot.ResourceManagerAudience},
		},
	}
}

// ClientOptions are the options of every Azure SDK client and credential of
// the tests: the server's cloud and the client that trusts its CA.
func (e *Env) ClientOptions() azcore.ClientOptions {
	return azcore.ClientOptions{Cloud: e.Cloud(), Transport: e.HTTP, Retry: e.retry}
}

// ARMOptions are ClientOptions for the resource manager's clients.
func (e *Env) ARMOptions() *arm.ClientOptions {
	return &arm.ClientOptions{ClientOptions: e.ClientOptions()}
}

// ServicePrincipal is the bootstrap service principal's credential (Owner
// of the subscription).
func (e *Env) ServicePrincipal() azcore.TokenCredential {
	e.TB.Helper()
	return e.SecretCredential(e.Boot.ClientID, e.Boot.ClientSecret)
}

// SecretCredential is a client secret credential in the bootstrap tenant.
func (e *Env) SecretCredential(clientID, secret string) azcore.TokenCredential {
	e.TB.Helper()
	cred, err := azidentity.NewClientSecretCredential(e.Boot.TenantID, clientID, secret, &azidentity.ClientSecretCredentialOptions{
		ClientOptions: e.ClientOptions(), DisableInstanceDiscovery: true,
	})
	if err != nil {
		e.TB.Fatal(err)
	}
	return cred
}

// User is a user's password credential through the Azure CLI's public
// client id.
func (e *Env) User(upn, password string) azcore.TokenCredential {
	e.TB.Helper()
	//lint:ignore SA1019 the password grant is what the seed's admins use.
	cred, err := azidentity.NewUsernamePasswordCredential(e.Boot.TenantID, AzureCLIClientID, upn, password, //nolint:staticcheck
		&azidentity.UsernamePasswordCredentialOptions{ClientOptions: e.ClientOptions(), DisableInstanceDiscovery: true})
	if err != nil {
		e.TB.Fatal(err)
	}
	return cred
}

// Admin is the Global Administrator's password credential.
func (e *Env) Admin() azcore.TokenCredential {
	e.TB.Helper()
	return e.User(e.Boot.AdminUsername, e.Boot.AdminPassword)
}

// Token returns a bearer token from cred for audience.
func (e *Env) Token(cred azcore.TokenCredential, audience string) string {
	e.TB.Helper()
	tok, err := cred.GetToken(context.Background(), policy.TokenRequestOptions{Scopes: []string{audience + "/.default"}})
	if err != nil {
		e.TB.Fatalf("GetToken(%s): %v", audience, err)
	}
	return tok.Token
}

// IssueToken issues a token for p and audience straight from the identity
// service, without a round trip to the token endpoint.
func (e *Env) IssueToken(p *keyhold.Principal, audience string) string {
	e.TB.Helper()
	tok, _, err := e.Server.Identity().IssueToken(context.Background(), p, audience)
	if err != nil {
		e.TB.Fatal(err)
	}
	return tok
}

// BootstrapPrincipal is the bootstrap service principal as the store holds it.
func (e *Env) BootstrapPrincipal() *keyhold.Principal {
	e.TB.Helper()
	p, err := e.Server.Store().GetPrincipal(context.Background(), e.Server.Bootstrap().ServicePrincipalID)
	if err != nil {
		e.TB.Fatal(err)
	}
	return p
}

// Do sends a raw request with an optional bearer token and decodes a JSON
// answer into out (if not nil). target is a path below the server's URL or
// a whole https URL; body is nil, a string or []byte sent as it is, or a
// value sent as JSON. It returns the response with its body read.
func (e *Env) Do(method, target, token string, body, out any) (*http.Response, []byte) {
	e.TB.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rd = strings.NewReader(b)
	case []byte:
		rd = bytes.NewReader(b)
	default:
		raw, err := json.Marshal(b)
		if err != nil {
			e.TB.Fatal(err)
		}
		rd = bytes.NewReader(raw)
	}
	url := target
	if !strings.HasPrefix(target, "https://") {
		url = strings.TrimSuffix(e.Server.URL(), "/") + target
	}
	req, err := http.NewRequest(method, url, rd)
	if err != nil {
		e.TB.Fatal(err)
	}
	if rd != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := e.HTTP.Do(req)
	if err != nil {
		e.TB.Fatalf("%s %s: %v", method, target, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if out != nil && len(b) > 0 {
		if err := json.Unmarshal(b, out); err != nil {
			e.TB.Fatalf("%s %s: decoding %q: %v", method, target, b, err)
		}
	}
	return resp, b
}

// CreateUser creates a user through the directory API as the Global
// Administrator and gives it the named directory roles (keys of
// keyhold.DirectoryRoles). It returns the user's object id and name.
func (e *Env) CreateUser(upnLocal, password string, roles ...string) (id, upn string) {
	e.TB.Helper()
	ga := e.Token(e.Admin(), identity.AudienceGraph)
	upn = upnLocal + "@" + e.Domain()
	var u struct {
		ID string `json:"id"`
	}
	resp, b := e.Do("POST", "/v1.0/users", ga, map[string]any{
		"accountEnabled": true, "displayName": upnLocal, "userPrincipalName": upn,
		"passwordProfile": map[string]any{"password": password},
	}, &u)
	if resp.StatusCode != http.StatusCreated {
		e.TB.Fatalf("create user: %d %s", resp.StatusCode, b)
	}
	for _, role := range roles {
		resp, b := e.Do("POST", "/v1.0/directoryRoles/roleTemplateId="+keyhold.DirectoryRoles[role]+"/members/$ref", ga,
			map[string]any{"@odata.id": e.Boot.GraphEndpoint + "v1.0/directoryObjects/" + u.ID}, nil)
		if resp.StatusCode != http.StatusNoContent {
			e.TB.Fatalf("add role %s: %d %s", role, resp.StatusCode, b)
		}
	}
	return u.ID, upn
}

// CreateServicePrincipal creates an application's service principal through
// the directory API as the Global Administrator and returns its object id
// and a credential from a new client secret.
func (e *Env) CreateServicePrincipal(name string) (string, azcore.TokenCredential) {
	e.TB.Helper()
	ga := e.Token(e.Admin(), identity.AudienceGraph)
	var sp struct {
		ID    string `json:"id"`
		AppID string `json:"appId"`
	}
	if resp, b := e.Do("POST", "/v1.0/servicePrincipals", ga, map[string]any{"displayName": name}, &sp); resp.StatusCode != http.StatusCreated {
		e.TB.Fatalf("create service principal: %d %s", resp.StatusCode, b)
	}
	var pw struct {
		SecretText string `json:"secretText"`
	}
	if resp, b := e.Do("POST", "/v1.0/servicePrincipals/"+sp.ID+"/addPassword", ga, map[string]any{}, &pw); resp.StatusCode != http.StatusOK {
		e.TB.Fatalf("add password: %d %s", resp.StatusCode, b)
	}
	return sp.ID, e.SecretCredential(sp.AppID, pw.SecretText)
}

// WaitFor polls cond every 20 ms and fails tb when it is still false after
// timeout.
func WaitFor(tb testing.TB, timeout time.Duration, what string, cond func() bool) {
	tb.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			tb.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Clock is a test clock whose offset from real time can be moved, so that
// the server's background work keeps running at real speed.
type Clock struct{ offset atomic.Int64 }

// Now is real time plus the offset.
func (c *Clock) Now() time.Time { return time.Now().Add(time.Duration(c.offset.Load())) }

// Shift sets the offset to d.
func (c *Clock) Shift(d time.Duration) { c.offset.Store(int64(d)) }

// Reset sets the offset back to zero.
func (c *Clock) Reset() { c.offset.Store(0) }

// LogBuffer collects log output written from many goroutines.
type LogBuffer struct {
	mu  sync.Mutex
	buf []byte
}

// Write appends p; it never fails.
func (b *LogBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.buf = append(b.buf, p...)
	return len(p), nil
}

// String is everything written so far.
func (b *LogBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return string(b.buf)
}
