package keyhold

import (
	"context"
	"time"
)

// Store keeps Keyhold's state. The sqlite and postgres packages implement it
// and pass the same conformance suite (storetest). Every method returns an
// *Error: ENotFound for a missing row, EConflict for a duplicate key. Names of
// resource groups, resources, providers and features compare
// case-insensitively, as ARM compares them; ids keep the case they were
// created with.
type Store interface {
	TenantStore
	PrincipalStore
	SubscriptionStore
	ResourceGroupStore
	RegistrationStore
	RoleAssignmentStore
	ResourceStore
	AuditStore
	SettingStore
	KeyStore
	EnvironmentStore
	RowStore
	FileStore
	AdminSessionStore
	LeaseStore
	OperationLeaseStore

	// InTx runs fn in one transaction: every call fn makes on tx commits
	// together, or none does if fn returns an error or panics.
	InTx(ctx context.Context, fn func(tx Store) error) error
	// Close releases the store's connections.
	Close() error
}

// TenantStore keeps tenants.
type TenantStore interface {
	CreateTenant(ctx context.Context, t *Tenant) error
	GetTenant(ctx context.Context, id string) (*Tenant, error)
	ListTenants(ctx context.Context) ([]*Tenant, error)
}

// PrincipalFilter selects principals; empty fields match everything.
type PrincipalFilter struct {
	TenantID          string
	Type              PrincipalType
	UserPrincipalName string // case-insensitive
	AppID             string
	ResourceID        string // case-insensitive
}

// PrincipalStore keeps principals, their credentials and group memberships.
type PrincipalStore interface {
	CreatePrincipal(ctx context.Context, p *Principal) error
	GetPrincipal(ctx context.Context, id string) (*Principal, error)
	FindPrincipals(ctx context.Context, f PrincipalFilter) ([]*Principal, error)
	// UpdatePrincipal replaces the mutable fields: DisplayName, DirectoryRoles, Disabled.
	UpdatePrincipal(ctx context.Context, p *Principal) error
	// DeletePrincipal deletes the principal, its credentials, memberships and role assignments.
	DeletePrincipal(ctx context.Context, id string) error

	AddCredential(ctx context.Context, c *Credential) error
	ListCredentials(ctx context.Context, principalID string) ([]*Credential, error)
	DeleteCredential(ctx context.Context, principalID, id string) error

	AddGroupMember(ctx context.Context, groupID, memberID string) error
	RemoveGroupMember(ctx context.Context, groupID, memberID string) error
	ListGroupMembers(ctx context.Context, groupID string) ([]string, error)
	// ListMemberships returns the ids of the groups memberID belongs to directly.
	ListMemberships(ctx context.Context, memberID string) ([]string, error)
}

// SubscriptionStore keeps subscriptions.
type SubscriptionStore interface {
	CreateSubscription(ctx context.Context, s *Subscription) error
	GetSubscription(ctx context.Context, id string) (*Subscription, error)
	ListSubscriptions(ctx context.Context, tenantID string) ([]*Subscription, error)
}

// ResourceGroupStore keeps resource groups.
type ResourceGroupStore interface {
	// PutResourceGroup creates the group or replaces its location, tags and
	// state; the stored name keeps the case of the first PUT.
	PutResourceGroup(ctx context.Context, g *ResourceGroup) error
	GetResourceGroup(ctx context.Context, subscriptionID, name string) (*ResourceGroup, error)
	ListResourceGroups(ctx context.Context, subscriptionID string) ([]*ResourceGroup, error)
	DeleteResourceGroup(ctx context.Context, subscriptionID, name string) error
}

// RegistrationStore keeps resource provider and feature registrations. A
// namespace or feature never registered is ENotFound; callers treat it as
// NotRegistered.
type RegistrationStore interface {
	PutProviderRegistration(ctx context.Context, r *ProviderRegistration) error
	GetProviderRegistration(ctx context.Context, subscriptionID, namespace string) (*ProviderRegistration, error)
	ListProviderRegistrations(ctx context.Context, subscriptionID string) ([]*ProviderRegistration, error)

	PutFeatureRegistration(ctx context.Context, f *FeatureRegistration) error
	GetFeatureRegistration(ctx context.Context, subscriptionID, namespace, name string) (*FeatureRegistration, error)
	// ListFeatureRegistrations lists a subscription's features; namespace "" lists all.
	ListFeatureRegistrations(ctx context.Context, subscriptionID, namespace string) ([]*FeatureRegistration, error)
}

// RoleAssignmentFilter selects role assignments; empty fields match everything.
type RoleAssignmentFilter struct {
	TenantID    string
	PrincipalID string
	Scope       string // exact scope, case-insensitive
	ScopePrefix string // the scope and everything below it, case-insensitive
}

// RoleAssignmentStore keeps role assignments.
type RoleAssignmentStore interface {
	// CreateRoleAssignment returns EConflict if the name is taken.
	CreateRoleAssignment(ctx context.Context, a *RoleAssignment) error
	GetRoleAssignment(ctx context.Context, name string) (*RoleAssignment, error)
	DeleteRoleAssignment(ctx context.Context, name string) error
	ListRoleAssignments(ctx context.Context, f RoleAssignmentFilter) ([]*RoleAssignment, error)
}

// ResourceFilter selects resources; empty fields match everything.
type ResourceFilter struct {
	SubscriptionID string
	ResourceGroup  string // case-insensitive
	Type           string // case-insensitive
	Name           string // the resource's name, case-insensitive, exact match
}

// ResourceStore keeps resource-manager resources of every type.
type ResourceStore interface {
	// PutResource creates or replaces the resource with r.ID (case-insensitive).
	PutResource(ctx context.Context, r *Resource) error
	GetResource(ctx context.Context, id string) (*Resource, error)
	DeleteResource(ctx context.Context, id string) error
	// ListResources returns resources ordered by id.
	ListResources(ctx context.Context, f ResourceFilter) ([]*Resource, error)
}

// AuditFilter selects audit records; zero fields match everything.
type AuditFilter struct {
	TenantID    string
	PrincipalID string
	ScopePrefix string // the scope and everything below it, case-insensitive
	Since       time.Time
	Until       time.Time
	AfterSeq    int64 // records with Seq > AfterSeq
	BeforeSeq   int64 // records with Seq < BeforeSeq, when not 0
	Limit       int   // 0 means no limit
	// Newest lists the newest records first (descending Seq), for a page
	// of the latest; the default is the log's order.
	Newest bool
}

// LeaseStore grants named leases, each held by one owner at a time across
// every process sharing the store: background work that must not run twice
// at once on several servers (a key vault's rotation round, a template
// deployment). A lease ends at its until time unless its owner renews it, so
// a crashed owner's work moves to another process by then.
type LeaseStore interface {
	// AcquireLease gives owner the lease name until until, when nobody
	// holds it, its last lease ended by now, or owner holds it already (a
	// renewal). It reports whether owner holds the lease afterwards. Errors:
	// EInvalid without a name or owner, or when until is not after now.
	AcquireLease(ctx context.Context, name, owner string, now, until time.Time) (bool, error)
	// ReleaseLease ends owner's lease of name at once; a lease that owner
	// does not hold is left alone.
	ReleaseLease(ctx context.Context, name, owner string) error
}

// DetailOperationLeaseLost is the detail of the EConflict that
// UpdateOperationLeased returns when the operation's lease moved to another
// worker (or was released) since the caller leased it.
const DetailOperationLeaseLost = "OperationLeaseLost"

// OperationLeaseStore fences the writes of lifecycle operation workers: a
// worker that stalled past its lease (a GC pause, a slow disk, a partition
// from the database) must not save an operation that another worker leased
// meanwhile, or two workers would run it and the stalled one could move its
// cursor backwards.
type OperationLeaseStore interface {
	// UpdateOperationLeased is UpdateOperation only while owner holds the
	// operation's lease (its stored LeaseOwner, whatever LeaseUntil says:
	// a lease that ran out but nobody took is still the owner's to renew).
	// Inside InTx a refusal rolls back the transaction's other writes when
	// the caller returns it. Errors: EInvalid without an owner or as
	// UpdateOperation, ENotFound if there is no such operation, and EConflict
	// with detail DetailOperationLeaseLost when another owner holds the lease
	// or it was released.
	UpdateOperationLeased(ctx context.Context, op *Operation, owner string) error
}

// AuditStore keeps the append-only, hash-chained audit log.
type AuditStore interface {
	// AppendAudit assigns r the next Seq, links it to the last record
	// (PrevHash), sets r.Hash = r.ComputeHash() and stores it, atomically
	// with respect to other appenders in any process.
	AppendAudit(ctx context.Context, r *AuditRecord) error
	// ListAudit returns matching records in ascending Seq order.
	ListAudit(ctx context.Context, f AuditFilter) ([]*AuditRecord, error)
}

// SettingStore keeps server settings and sealed secrets (signing keys, the CA
// key) by name. Values are opaque bytes; secrets are encrypted by the caller
// before they get here.
type SettingStore interface {
	GetSetting(ctx context.Context, name string) ([]byte, error)
	PutSetting(ctx context.Context, name string, value []byte) error
	// CreateSetting stores value only if name is unset; it returns EConflict
	// otherwise, so that concurrent first starts agree on one value.
	CreateSetting(ctx context.Context, name string, value []byte) error
}

// AdminSession is one signed-in person's session of the web pages, as every
// server process sharing the store sees it. The session id, which the
// browser holds, is never stored: IDHash is the hex SHA-256 of it, so that a
// reader of the database cannot present a session. Sealed is everything else
// (tokens, CSRF token, user, flash message), sealed by the caller under a
// label bound to IDHash so that rows cannot be swapped.
type AdminSession struct {
	IDHash string
	Sealed []byte
	// ExpiresAt is when the session ends; expired sessions are swept by
	// DeleteExpiredAdminSessions.
	ExpiresAt time.Time
	CreatedAt time.Time
	// Version increases with every update, for optimistic concurrency
	// between requests of one session served by different processes.
	Version int64
}

// AdminSessionStore keeps the web pages' sessions.
type AdminSessionStore interface {
	// CreateAdminSession stores a new session and sets its Version to 1. It
	// returns EConflict if IDHash is taken and EInvalid without IDHash or
	// Sealed.
	CreateAdminSession(ctx context.Context, s *AdminSession) error
	// GetAdminSession returns the session, expired or not, or ENotFound.
	GetAdminSession(ctx context.Context, idHash string) (*AdminSession, error)
	// UpdateAdminSession replaces Sealed and ExpiresAt if s.Version is the
	// stored version, and bumps it. It returns ENotFound if the session is
	// gone (signed out) and EConflict if it is at another version.
	UpdateAdminSession(ctx context.Context, s *AdminSession) error
	// DeleteAdminSession deletes the session, or returns ENotFound.
	DeleteAdminSession(ctx context.Context, idHash string) error
	// DeleteExpiredAdminSessions deletes the sessions whose ExpiresAt is not
	// after now and returns how many it deleted.
	DeleteExpiredAdminSessions(ctx context.Context, now time.Time) (int64, error)
}
