// Package server runs Keyhold's single HTTPS server: it opens the store,
// loads the master key, makes or loads the TLS certificate, wires the
// identity, resource-manager, directory and audit surfaces behind one
// middleware chain, bootstraps a first tenant on the first start, and shuts
// down gracefully.
package server

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"time"

	"github.com/keyhold/keyhold"
	"github.com/keyhold/keyhold/admin"
	"github.com/keyhold/keyhold/arm"
	"github.com/keyhold/keyhold/audit"
	"github.com/keyhold/keyhold/dataverse"
	"github.com/keyhold/keyhold/deploy"
	"github.com/keyhold/keyhold/duties"
	"github.com/keyhold/keyhold/environment"
	"github.com/keyhold/keyhold/events"
	"github.com/keyhold/keyhold/identity"
	"github.com/keyhold/keyhold/keyvault"
	"github.com/keyhold/keyhold/kms"
	"github.com/keyhold/keyhold/kms/builtin"
	"github.com/keyhold/keyhold/masterkey"
	"github.com/keyhold/keyhold/metrics"
	"github.com/keyhold/keyhold/pki"
	"github.com/keyhold/keyhold/policy"
	"github.com/keyhold/keyhold/postgres"
	"github.com/keyhold/keyhold/rbac"
	"github.com/keyhold/keyhold/resourcegraph"
	"github.com/keyhold/keyhold/seal"
	"github.com/keyhold/keyhold/sqlite"
)

// healthSetting is read by /healthz; the master key check guarantees it exists.
const healthSetting = masterkey.CheckSetting

// Server is a started Keyhold server.
type Server struct {
	cfg       Config
	logger    *slog.Logger
	publicURL string

	store    keyhold.Store
	key      *seal.Key
	identity *identity.Service
	authz    *rbac.Authorizer
	// duties checks every grant of a key vault or platform role.
	duties   *duties.Checker
	arm      *arm.Server
	audit    *audit.Log
	metrics  *metrics.Metrics
	events   *events.Bus
	vault    *keyvault.Service
	deploy   *deploy.Service
	policies *policy.Service
	health   *policy.Monitor
	// environments is the environment service; kmsCalls counts its vault
	// calls (keyhold_kms_calls_total).
	environments *environment.Service
	kmsCalls     *kms.Metrics
	// data is the environment data API (/environments/{id}/api/data/v9.2/).
	data *dataverse.Service
	// admin serves the web pages; they call the APIs in-process through api.
	admin *admin.Admin
	api   http.Handler

	// stopBackground ends the background loops (the vault's rotator and
	// purger); background is closed when they have returned.
	stopBackground context.CancelFunc
	background     chan struct{}

	listener  net.Listener
	http      *http.Server
	caFile    string
	bootstrap *BootstrapInfo

	serveErr  chan error
	closeOnce sync.Once
	closeErr  error
}

// Start opens everything the server needs and starts serving HTTPS in the
// background. It returns an error, naming what failed, when the
// configuration is invalid, the address cannot be listened on, the store
// cannot be opened, the master key is missing or wrong, the certificate
// cannot be made or loaded, or the first-start bootstrap fails. The caller
// must Close the server.
func Start(ctx context.Context, cfg Config, logger *slog.Logger) (_ *Server, err error) {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	cfg, err = cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	s := &Server{cfg: cfg, logger: logger, metrics: metrics.New(), serveErr: make(chan error, 1)}
	defer func() {
		if err != nil {
			s.closeResources()
		}
	}()

	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return nil, fmt.Errorf("server: cannot create the data directory %s: %w", cfg.DataDir, err)
	}
	// Listening first lets port 0 pick the port that the default public URL
	// and the certificate then name.
	s.listener, err = net.Listen("tcp", cfg.Listen)
	if err != nil {
		return nil, fmt.Errorf("server: cannot listen on %s: %w", cfg.Listen, err)
	}
	s.publicURL = cfg.PublicURL
	if s.publicURL == "" {
		s.publicURL = publicURLFor(s.listener.Addr())
	}

	if cfg.DatabaseURL != "" {
		s.store, err = postgres.Open(ctx, cfg.DatabaseURL)
		if err != nil {
			// The URL may hold a password: name the kind of store, not the URL.
			return nil, fmt.Errorf("server: cannot open the PostgreSQL store given by --database-url: %w", err)
		}
	} else {
		path := filepath.Join(cfg.DataDir, DefaultDBFile)
		s.store, err = sqlite.Open(ctx, path)
		if err != nil {
			return nil, fmt.Errorf("server: cannot open the SQLite store %s: %w", path, err)
		}
	}

	mk, err := masterkey.Load(masterkey.Options{File: cfg.MasterKeyFile, DataDir: cfg.DataDir, Getenv: cfg.Getenv, Logger: logger})
	if err != nil {
		return nil, err
	}
	if err := masterkey.Check(ctx, s.store, mk.Key, mk.Source); err != nil {
		return nil, err
	}
	s.key = mk.Key

	var cert tls.Certificate
	if cfg.TLSCertFile != "" {
		cert, err = pki.LoadFiles(cfg.TLSCertFile, cfg.TLSKeyFile)
		if err != nil {
			return nil, err
		}
		// Clients given this file as their CA trust the certificate itself.
		s.caFile, _ = filepath.Abs(cfg.TLSCertFile)
		if cfg.VaultDomain != "" && cert.Leaf != nil && cert.Leaf.VerifyHostname("vault."+cfg.VaultDomain) != nil {
			logger.Warn("the --tls-cert certificate does not cover host-style vault URLs; clients will refuse them", "want", "*."+cfg.VaultDomain)
		}
	} else {
		hosts := append([]string{}, cfg.Hostnames...)
		if u, err := url.Parse(s.publicURL); err == nil && u.Hostname() != "" {
			hosts = append(hosts, u.Hostname())
		}
		if cfg.VaultDomain != "" {
			// Vault names are one DNS label, so one wildcard covers them.
			hosts = append(hosts, "*."+cfg.VaultDomain)
		}
		certs, err := pki.Ensure(ctx, pki.Config{Store: s.store, Key: s.key, Hostnames: hosts, DataDir: cfg.DataDir, Now: cfg.Now, Logger: logger})
		if err != nil {
			return nil, err
		}
		cert, s.caFile = certs.Server, certs.CAFile
	}

	s.authz = rbac.New(s.store)
	// The directory, the resource manager and the vaults each ask it before
	// they grant a platform role, a membership, a role or an access policy.
	s.duties = duties.New(duties.Config{Store: s.store, Enforce: cfg.SeparationOfDuties, Authz: s.authz, Logger: logger, Now: cfg.Now})
	// Host-style vault URLs name their own resource in the challenge, so
	// tokens are issued for it too.
	audiences := identity.KnownAudiences
	if a := keyvault.HostAudience(cfg.VaultDomain, s.publicURL); a != "" {
		audiences = append(slices.Clone(audiences), a)
	}
	s.identity, err = identity.New(ctx, s.store, s.key, identity.Config{PublicURL: s.publicURL, TokenLifetime: cfg.TokenLifetime, Now: cfg.Now, Logger: logger, Duties: s.duties, Audiences: audiences})
	if err != nil {
		return nil, err
	}
	s.events = events.New(logger)
	s.arm = arm.New(arm.Config{Store: s.store, Authz: s.authz, Logger: logger, Now: cfg.Now, RegistrationDelay: cfg.RegistrationDelay, Events: s.events, Duties: s.duties})
	s.vault = keyvault.New(keyvault.Config{
		Store: s.store, Seal: s.key, Authz: s.authz, Events: s.events,
		PublicURL: s.publicURL, Audience: identity.AudienceVault, VaultDomain: cfg.VaultDomain, Logger: logger, Now: cfg.Now, Duties: s.duties,
	})
	s.arm.Register(s.vault.ResourceType())
	s.policies = policy.New(policy.Config{
		Store: s.store, Authz: s.authz, Identity: s.identity, Vault: s.vault, Events: s.events,
		Profile: cfg.Profile, Features: s.arm, Logger: logger, Now: cfg.Now,
		// A policy linked to environments keeps its key and identity.
		Links: environment.Links(s.store),
	})
	s.arm.Register(s.policies.ResourceType())
	s.health = policy.NewMonitor(policy.MonitorConfig{Store: s.store, Policies: s.policies, Vault: s.vault, Events: s.events,
		Logger: logger, Now: cfg.Now, Interval: cfg.HealthInterval, UnhealthyInterval: cfg.HealthUnhealthyInterval})
	// Resource Graph renders rows as GET does for the types listed here.
	s.arm.Register(resourcegraph.New(resourcegraph.Config{Store: s.store, Logger: logger,
		Types: []arm.ResourceType{s.vault.ResourceType(), s.policies.ResourceType()}}).ResourceType())
	// Environments wrap their root keys through the built-in vaults; every
	// vault call is counted, so that a warm data path shows none.
	platformKey, err := builtin.EnsurePlatformKey(ctx, s.store, s.key)
	if err != nil {
		return nil, fmt.Errorf("server: cannot make or load the platform key: %w", err)
	}
	s.kmsCalls = kms.NewMetrics()
	s.metrics.Registry.MustRegister(s.kmsCalls)
	driver := builtin.New(builtin.Config{Store: s.store, Vault: s.vault, Seal: s.key, Logger: logger, Now: cfg.Now})
	wrapper := kms.Counted(driver, s.kmsCalls)
	s.environments = environment.New(environment.Config{
		Store: s.store, Wrapper: wrapper, PlatformKey: platformKey, TenantKeys: driver, Policies: s.policies, Authz: s.authz, Events: s.events,
		Profile: cfg.Profile, Logger: logger, Now: cfg.Now,
		// On SQLite this process is the only worker, so that a restart
		// after a crash resumes lifecycle operations at once.
		Lifecycle: environment.LifecycleConfig{Checker: s.health, Exclusive: cfg.DatabaseURL == ""},
	})
	s.data = dataverse.New(dataverse.Config{Store: s.store, Open: dataOpen(s.environments), Logger: logger, Now: cfg.Now})
	s.metrics.Registry.MustRegister(s.data.Metrics())
	s.audit = audit.New(s.store, logger, audit.WithNow(cfg.Now), audit.WithAuthorizer(s.authz),
		audit.WithFailureHook(s.metrics.AuditAppendFailed), audit.WithBaseURL(s.publicURL))
	// Deployments apply resources through the resource manager itself,
	// audited, as the caller who deployed.
	s.deploy = deploy.New(deploy.Config{Store: s.store, ARM: s.audit.Middleware(s.arm.Handler()), Seal: s.key,
		PublicURL: s.publicURL, Logger: logger, Now: cfg.Now})
	s.arm.Register(s.deploy.ResourceType())

	s.admin, err = admin.New(admin.Config{PublicURL: s.publicURL, Authenticate: s.identity.AuthenticateToken, Logger: logger, Now: cfg.Now,
		// Sessions live in the store, so every process sharing it shares them.
		Sessions: s.store, SessionKey: s.key,
		// The chain is built below; pages only call it while serving.
		API: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { s.api.ServeHTTP(w, r) })})
	if err != nil {
		return nil, err
	}

	s.bootstrap, err = s.runBootstrap(ctx)
	if err != nil {
		return nil, err
	}

	s.api = s.Handler()
	s.http = &http.Server{
		Handler:           s.api,
		TLSConfig:         pki.TLSConfig(cert),
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       time.Minute,
		// Long operations answer 202 and are polled, so no response needs
		// longer than this.
		WriteTimeout:   2 * time.Minute,
		IdleTimeout:    2 * time.Minute,
		MaxHeaderBytes: 64 << 10,
		ErrorLog:       slog.NewLogLogger(logger.Handler(), slog.LevelWarn),
		BaseContext:    func(net.Listener) context.Context { return context.WithoutCancel(ctx) },
	}
	bg, stop := context.WithCancel(context.WithoutCancel(ctx))
	s.stopBackground, s.background = stop, make(chan struct{})
	go func() {
		defer close(s.background)
		deployed := make(chan struct{})
		go func() {
			defer close(deployed)
			s.deploy.Run(bg)
		}()
		watched := make(chan struct{})
		go func() {
			defer close(watched)
			s.health.Run(bg)
		}()
		// Locks follow policy health; the lifecycle worker runs link,
		// unlink, swap and re-encryption operations.
		locks := make(chan struct{})
		go func() {
			defer close(locks)
			if err := s.environments.RunLocks(bg); err != nil {
				logger.Error("environment lock loop stopped", "err", err.Error())
			}
		}()
		worked := make(chan struct{})
		go func() {
			defer close(worked)
			if err := s.environments.RunWorker(bg); err != nil {
				logger.Error("environment lifecycle worker stopped", "err", err.Error())
			}
		}()
		s.vault.Run(bg)
		<-deployed
		<-watched
		<-locks
		<-worked
		// No root key outlives the loops that could use it.
		s.environments.Keyring().WipeAll()
	}()
	tlsListener := tls.NewListener(s.listener, s.http.TLSConfig)
	go func() {
		err := s.http.Serve(tlsListener)
		if errors.Is(err, http.ErrServerClosed) {
			err = nil
		}
		s.serveErr <- err
	}()
	logger.Info("keyhold is listening", "url", s.publicURL, "addr", s.listener.Addr().String(),
		"profile", cfg.Profile, "dataDir", cfg.DataDir, "caFile", s.caFile, "bootstrapFile", s.BootstrapFile(),
		"separationOfDuties", cfg.SeparationOfDuties, "vaultDomain", cfg.VaultDomain)
	if cfg.Profile == ProfilePreview {
		logger.Info("preview profile: preview features will be enabled as components add them")
	}
	return s, nil
}

// Handler returns the server's whole middleware chain and routes, for tests
// that drive it without a listener.
func (s *Server) Handler() http.Handler {
	var h http.Handler = s.dispatch()
	h = s.audit.Middleware(h)
	h = limitBody(h)
	h = recoverPanics(h)
	h = accessLog(s.metrics, s.cfg.Now, h)
	h = securityHeaders(h)
	return requestIDs(s.logger, h)
}

// Addr returns the address the server listens on.
func (s *Server) Addr() net.Addr { return s.listener.Addr() }

// URL returns the server's public URL, with a trailing slash.
func (s *Server) URL() string { return s.publicURL }

// CAFile returns the absolute path of the CA certificate clients should trust.
func (s *Server) CAFile() string { return s.caFile }

// BootstrapFile returns the absolute path of bootstrap.json.
func (s *Server) BootstrapFile() string { return filepath.Join(s.cfg.DataDir, BootstrapFile) }

// Bootstrap returns the ids of the bootstrapped tenant, subscription and
// principals; it holds no secret.
func (s *Server) Bootstrap() BootstrapInfo { return *s.bootstrap }

// Store returns the server's store, for tests and for wiring later surfaces.
func (s *Server) Store() keyhold.Store { return s.store }

// Events returns the server's event bus.
func (s *Server) Events() *events.Bus { return s.events }

// Vault returns the server's built-in key vault service.
func (s *Server) Vault() *keyvault.Service { return s.vault }

// Policies returns the server's enterprise-policy service.
func (s *Server) Policies() *policy.Service { return s.policies }

// Health returns the server's policy health monitor.
func (s *Server) Health() *policy.Monitor { return s.health }

// Environments returns the server's environment service.
func (s *Server) Environments() *environment.Service { return s.environments }

// KMSCalls returns the counter of the environment service's vault calls.
func (s *Server) KMSCalls() *kms.Metrics { return s.kmsCalls }

// Identity returns the server's identity service.
func (s *Server) Identity() *identity.Service { return s.identity }

// Done returns a channel that receives the serving error (nil after a
// graceful Close) when the server stops serving.
func (s *Server) Done() <-chan error { return s.serveErr }

// Close stops accepting connections, waits up to the shutdown timeout for
// requests in flight, and closes the store. It is safe to call twice.
func (s *Server) Close() error {
	s.closeOnce.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), s.cfg.ShutdownTimeout)
		defer cancel()
		var errs []error
		if s.http != nil {
			if err := s.http.Shutdown(ctx); err != nil {
				errs = append(errs, fmt.Errorf("server: graceful shutdown: %w", err))
				s.http.Close()
			}
		}
		if s.stopBackground != nil {
			// The loops use the store, so they end before it closes.
			s.stopBackground()
			<-s.background
		}
		errs = append(errs, s.closeResources())
		s.closeErr = errors.Join(errs...)
	})
	return s.closeErr
}

func (s *Server) closeResources() error {
	var errs []error
	if s.listener != nil && s.http == nil {
		s.listener.Close()
	}
	if s.store != nil {
		if err := s.store.Close(); err != nil {
			errs = append(errs, fmt.Errorf("server: closing the store: %w", err))
		}
	}
	return errors.Join(errs...)
}

// Run starts the server and serves until ctx is cancelled, then shuts down
// gracefully. It returns Start's error, or the error that stopped serving.
func Run(ctx context.Context, cfg Config, logger *slog.Logger) error {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	s, err := Start(ctx, cfg, logger)
	if err != nil {
		return err
	}
	if cfg.OnReady != nil {
		cfg.OnReady(s)
	}
	select {
	case <-ctx.Done():
		logger.Info("shutting down", "timeout", s.cfg.ShutdownTimeout.String())
		err := s.Close()
		if err == nil {
			logger.Info("stopped")
		}
		return err
	case err := <-s.serveErr:
		cerr := s.Close()
		if err == nil {
			return cerr
		}
		return errors.Join(fmt.Errorf("server: serving stopped: %w", err), cerr)
	}
}
