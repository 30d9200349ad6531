// Package e2e holds end-to-end tests: a real keyhold server over TLS, driven
// by the real Azure SDK for Go clients, as a customer's tooling would.
package e2e

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/arm"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/cloud"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"

	"github.com/keyhold/keyhold/identity"
	"github.com/keyhold/keyhold/server"
)

// env is one running server and what a client needs to reach it.
type env struct {
	t     *testing.T
	srv   *server.Server
	dir   string
	boot  server.BootstrapFileContents
	http  *http.Client
	clock *clock
	logs  *syncBuffer
}

// clock is a test clock whose offset from real time can be moved.
type clock struct{ offset atomic.Int64 }

func (c *clock) Now() time.Time          { return time.Now().Add(time.Duration(c.offset.Load())) }
func (c *clock) Shift(d time.Duration)   { c.offset.Store(int64(d)) }
func (c *clock) Reset()                  { c.offset.Store(0) }
func (c *clock) Since(t time.Time) int64 { return int64(c.Now().Sub(t)) }

// syncBuffer collects the server's log output for secret scanning.
type syncBuffer struct {
	mu  chan struct{}
	buf []byte
}

func newSyncBuffer() *syncBuffer { return &syncBuffer{mu: make(chan struct{}, 1)} }

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu <- struct{}{}
	b.buf = append(b.buf, p...)
	<-b.mu
	return len(p), nil
}

func (b *syncBuffer) String() string {
	b.mu <- struct{}{}
	defer func() { <-b.mu }()
	return string(b.buf)
}

// start runs a server on a random port with its data in dir (a fresh
// temporary directory when dir is "").
func start(t *testing.T, dir string) *env {
	t.Helper()
	if dir == "" {
		dir = t.TempDir()
	}
	e := &env{t: t, dir: dir, clock: &clock{}, logs: newSyncBuffer()}
	logger := slog.New(slog.NewJSONHandler(io.MultiWriter(e.logs), &slog.HandlerOptions{Level: slog.LevelDebug}))
	srv, err := server.Start(context.Background(), server.Config{
		Listen:            "127.0.0.1:0",
		DataDir:           dir,
		RegistrationDelay: 50 * time.Millisecond,
		Now:               e.clock.Now,
	}, logger)
	if err != nil {
		t.Fatalf("server.Start: %v", err)
	}
	e.srv = srv
	t.Cleanup(func() { srv.Close() })
	b, err := os.ReadFile(srv.BootstrapFile())
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &e.boot); err != nil {
		t.Fatal(err)
	}
	pem, err := os.ReadFile(e.boot.CACertFile)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		t.Fatal("ca_cert_file holds no certificate")
	}
	e.http = &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}, Timeout: 30 * time.Second}
	return e
}

// stop shuts the server down, so that a later start can reuse its data.
func (e *env) stop() {
	e.t.Helper()
	if err := e.srv.Close(); err != nil {
		e.t.Fatalf("close: %v", err)
	}
}

func (e *env) cloud() cloud.Configuration {
	return cloud.Configuration{
		ActiveDirectoryAuthorityHost: e.boot.AuthorityHost,
		Services: map[cloud.ServiceName]cloud.ServiceConfiguration{
			cloud.ResourceManager: {Endpoint: e.boot.ResourceManagerEndpoint, Audience: e.boot.ResourceManagerAudience},
		},
	}
}

func (e *env) clientOptions() azcore.ClientOptions {
	return azcore.ClientOptions{Cloud: e.cloud(), Transport: e.http}
}

// armOptions are the options every ARM client of these tests uses.
func (e *env) armOptions() *arm.ClientOptions {
	return &arm.ClientOptions{ClientOptions: e.clientOptions()}
}

// servicePrincipal is the bootstrap service principal's credential (Owner on
// the subscription).
func (e *env) servicePrincipal() azcore.TokenCredential {
	return e.secretCredential(e.boot.ClientID, e.boot.ClientSecret)
}

func (e *env) secretCredential(clientID, secret string) azcore.TokenCredential {
	e.t.Helper()
	cred, err := azidentity.NewClientSecretCredential(e.boot.TenantID, clientID, secret, &azidentity.ClientSecretCredentialOptions{
		ClientOptions: e.clientOptions(), DisableInstanceDiscovery: true,
	})
	if err != nil {
		e.t.Fatal(err)
	}
	return cred
}

// user is a user's password credential, through the Azure CLI's public client id.
func (e *env) user(name, password string) azcore.TokenCredential {
	e.t.Helper()
	//lint:ignore SA1019 the password grant is what the seed's admins use.
	cred, err := azidentity.NewUsernamePasswordCredential(e.boot.TenantID, "04b07795-8ddb-461a-bbee-02f9e1bf7b46", name, password,
		&azidentity.UsernamePasswordCredentialOptions{ClientOptions: e.clientOptions(), DisableInstanceDiscovery: true})
	if err != nil {
		e.t.Fatal(err)
	}
	return cred
}

// token returns a bearer token from cred for audience.
func (e *env) token(cred azcore.TokenCredential, audience string) string {
	e.t.Helper()
	tok, err := cred.GetToken(context.Background(), policy.TokenRequestOptions{Scopes: []string{audience + "/.default"}})
	if err != nil {
		e.t.Fatalf("GetToken(%s): %v", audience, err)
	}
	return tok.Token
}

// do sends a raw request with an optional bearer token and decodes a JSON
// answer into out (if not nil). It returns the response with its body read.
func (e *env) do(method, path, token string, body any, out any) (*http.Response, []byte) {
	e.t.Helper()
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			e.t.Fatal(err)
		}
		rd = strings.NewReader(string(b))
	}
	req, err := http.NewRequest(method, strings.TrimSuffix(e.srv.URL(), "/")+path, rd)
	if err != nil {
		e.t.Fatal(err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := e.http.Do(req)
	if err != nil {
		e.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if out != nil && len(b) > 0 {
		if err := json.Unmarshal(b, out); err != nil {
			e.t.Fatalf("%s %s: decoding %q: %v", method, path, b, err)
		}
	}
	return resp, b
}

// createUser creates a user through the directory API as the Global
// Administrator and gives it the named directory roles.
func (e *env) createUser(upnLocal, password string, roles ...string) (id, upn string) {
	e.t.Helper()
	ga := e.token(e.user(e.boot.AdminUsername, e.boot.AdminPassword), identity.AudienceGraph)
	domain := e.boot.AdminUsername[strings.IndexByte(e.boot.AdminUsername, '@')+1:]
	upn = upnLocal + "@" + domain
	var u struct {
		ID string `json:"id"`
	}
	resp, b := e.do("POST", "/v1.0/users", ga, map[string]any{
		"accountEnabled": true, "displayName": upnLocal, "userPrincipalName": upn,
		"passwordProfile": map[string]any{"password": password},
	}, &u)
	if resp.StatusCode != http.StatusCreated {
		e.t.Fatalf("create user: %d %s", resp.StatusCode, b)
	}
	for _, role := range roles {
		resp, b := e.do("POST", "/v1.0/directoryRoles/roleTemplateId="+roleTemplate(role)+"/members/$ref", ga,
			map[string]any{"@odata.id": e.boot.GraphEndpoint + "v1.0/directoryObjects/" + u.ID}, nil)
		if resp.StatusCode != http.StatusNoContent {
			e.t.Fatalf("add role %s: %d %s", role, resp.StatusCode, b)
		}
	}
	return u.ID, upn
}

// createServicePrincipal creates an application's service principal through
// the directory API as the Global Administrator and returns its object id and
// a credential from a new client secret.
func (e *env) createServicePrincipal(name string) (string, azcore.TokenCredential) {
	e.t.Helper()
	ga := e.token(e.user(e.boot.AdminUsername, e.boot.AdminPassword), identity.AudienceGraph)
	var sp struct {
		ID    string `json:"id"`
		AppID string `json:"appId"`
	}
	if resp, b := e.do("POST", "/v1.0/servicePrincipals", ga, map[string]any{"displayName": name}, &sp); resp.StatusCode != http.StatusCreated {
		e.t.Fatalf("create service principal: %d %s", resp.StatusCode, b)
	}
	var pw struct {
		SecretText string `json:"secretText"`
	}
	if resp, b := e.do("POST", "/v1.0/servicePrincipals/"+sp.ID+"/addPassword", ga, map[string]any{}, &pw); resp.StatusCode != http.StatusOK {
		e.t.Fatalf("add password: %d %s", resp.StatusCode, b)
	}
	return sp.ID, e.secretCredential(sp.AppID, pw.SecretText)
}
