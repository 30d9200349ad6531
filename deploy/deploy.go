// Package deploy is Keyhold's template deployments: the resource manager's
// Microsoft.Resources/deployments at resource-group scope (create, get, list,
// delete, validate, cancel, operations, export), and the engine that
// validates an ARM template and deploys its resources in dependsOn order.
//
// A deployment is a durable record in the store. Its resources are applied
// by calling the resource manager's own handler in-process, as the caller
// who started the deployment, so that RBAC, validation, provider
// registration and the audit log apply exactly as for a direct call. A
// deployment left Running when its process stopped is resumed by the next
// process that runs Service.Run; resources are idempotent PUTs.
//
// The template language covers parameters (types, defaultValue,
// allowedValues, length and value limits), variables, outputs, condition,
// dependsOn (names or resourceId() expressions) and expressions in "[...]"
// with parameters, variables, resourceGroup, subscription, tenant,
// deployment, resourceId, subscriptionResourceId, extensionResourceId,
// tenantResourceId, reference (with 'Full'), concat, format, toLower,
// toUpper, guid, uniqueString, string, int, bool, true, false, null, if,
// equals, not, and, or, empty, length, contains, createArray, createObject,
// json, coalesce, replace, split, first and last. "[[" escapes a literal
// bracket. Copy loops, linked templates, user-defined functions and
// Complete mode are refused with a clear error.
package deploy

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/keyhold/keyhold"
	"github.com/keyhold/keyhold/arm"
	"github.com/keyhold/keyhold/seal"
)

// ResourceType is the resource-manager type of a deployment.
const ResourceType = "Microsoft.Resources/deployments"

// Provisioning states of a deployment, as ARM spells them.
const (
	StateAccepted  = "Accepted"
	StateRunning   = "Running"
	StateSucceeded = "Succeeded"
	StateFailed    = "Failed"
	StateCanceled  = "Canceled"
)

// DefaultLeaseTTL is how long a process may go without renewing its claim
// on a running deployment before another process resumes it.
const DefaultLeaseTTL = 30 * time.Second

// APIVersions are the api-versions the deployments surface takes: what
// armresources v1.2.0 (2021-04-01), the Azure CLI and PowerShell send.
var APIVersions = []string{
	"2025-04-01", "2024-11-01", "2024-07-01", "2024-03-01", "2023-07-01", "2022-09-01", "2021-04-01",
	"2021-01-01", "2020-10-01", "2020-08-01", "2020-06-01", "2019-10-01", "2019-08-01", "2019-07-01",
	"2019-05-10", "2019-05-01", "2019-03-01", "2018-05-01", "2018-02-01", "2017-05-10", "2016-09-01",
	"2016-07-01", "2016-02-01", "2015-11-01",
}

// Config configures a Service.
type Config struct {
	// Store keeps the deployment records.
	Store keyhold.Store
	// ARM is the resource manager's handler that resources are applied
	// through, wrapped in the audit middleware so that each applied
	// resource is recorded. It must not authenticate: the deploying
	// caller travels in the request context.
	ARM http.Handler
	// Seal encrypts the values of secure parameters at rest; nil stores
	// them as given (they are never shown either way).
	Seal *seal.Key
	// PublicURL is the server's URL with a trailing slash, for the
	// Azure-AsyncOperation and Location headers; empty means the URL
	// the client used.
	PublicURL string
	// Logger receives the service's own log lines; nil discards them.
	Logger *slog.Logger
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// LeaseTTL is DefaultLeaseTTL when zero.
	LeaseTTL time.Duration
	// RetryAfter is what the Retry-After header of a running deployment
	// asks pollers to wait; zero means one second.
	RetryAfter time.Duration
}

// Service serves deployments and runs them.
type Service struct {
	cfg   Config
	log   *slog.Logger
	now   func() time.Time
	owner string // this process's claim on the deployments it runs

	base context.Context
	stop context.CancelFunc
	wg   sync.WaitGroup

	mu      sync.Mutex
	running map[string]*runEntry // by lower-case deployment id
}

// New returns a Service for cfg. Register its ResourceType with the
// resource manager and call Run to resume deployments after a restart.
func New(cfg Config) *Service {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.LeaseTTL <= 0 {
		cfg.LeaseTTL = DefaultLeaseTTL
	}
	if cfg.RetryAfter <= 0 {
		cfg.RetryAfter = time.Second
	}
	base, stop := context.WithCancel(context.Background())
	var b [8]byte
	rand.Read(b[:])
	return &Service{
		cfg: cfg, log: cfg.Logger, now: cfg.Now, owner: hex.EncodeToString(b[:]),
		base: base, stop: stop, running: map[string]*runEntry{},
	}
}

// Run resumes deployments that were left Accepted or Running by a process
// that stopped, at once and then whenever a claim lapses, until ctx ends.
// It then stops this process's deployments where they are (they stay
// Running, for the next start to resume) and returns when they have.
func (s *Service) Run(ctx context.Context) {
	defer func() {
		s.stop()
		s.wg.Wait()
	}()
	s.resume(ctx)
	t := time.NewTicker(max(s.cfg.LeaseTTL/2, 50*time.Millisecond))
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			s.resume(ctx)
		}
	}
}

// Close stops this process's deployments, as the end of Run does, for
// callers that never ran Run.
func (s *Service) Close() {
	s.stop()
	s.wg.Wait()
}

// resourceType is the deployments' arm.ResourceType: its routes serve every
// request; the plain CRUD methods only see what the framework does on its
// own, such as the deletion of a resource group.
type resourceType struct{ s *Service }

// ResourceType returns the type to register with the resource manager.
func (s *Service) ResourceType() arm.ResourceType { return resourceType{s} }

func (resourceType) Type() string          { return ResourceType }
func (resourceType) APIVersions() []string { return APIVersions }

func (resourceType) Put(context.Context, *arm.PutRequest) (*keyhold.Resource, int, error) {
	return nil, 0, keyhold.Errorc(keyhold.EInvalid, "MethodNotAllowed", "Deployments are created with PUT on their own route.")
}

func (resourceType) Patch(context.Context, *arm.PutRequest) (*keyhold.Resource, error) {
	return nil, keyhold.Errorc(keyhold.EInvalid, "MethodNotAllowed", "The requested resource does not support http method 'PATCH'.")
}

// Delete lets a resource group take its deployments along; a deployment
// still running there stops at its next step, when its record is gone.
func (t resourceType) Delete(ctx context.Context, r *keyhold.Resource) error {
	t.s.cancelLocal(r.ID, errDeleted)
	return nil
}

func (t resourceType) Render(r *keyhold.Resource) any {
	rec, err := decodeRecord(r)
	if err != nil {
		return map[string]any{"id": r.ID, "name": r.Name, "type": r.Type}
	}
	return t.s.render(r, rec)
}
