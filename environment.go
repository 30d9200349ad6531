package keyhold

import (
	"context"
	"encoding/json"
	"time"
)

// Environment types, as Power Platform names them.
const (
	EnvProduction = "Production"
	EnvSandbox    = "Sandbox"
	EnvTrial      = "Trial"
	EnvDeveloper  = "Developer"
	EnvTeams      = "Teams"
)

// Who manages the key an environment's data is encrypted under
// (properties.protectionStatus.keyManagedBy).
const (
	KeyManagedByMicrosoft            = "Microsoft"            // the platform-managed key
	KeyManagedByCustomer             = "Customer"             // a customer-managed key through a policy
	KeyManagedByCustomerViaMicrosoft = "CustomerViaMicrosoft" // migrated from a tenant-uploaded (BYOK) key
)

// Runtime states of an environment (properties.states.runtime.id).
const (
	RuntimeEnabled  = "Enabled"
	RuntimeDisabled = "Disabled" // locked: the key is unusable; "Environment disabled" in the admin center
)

// Encryption states of an environment.
const (
	EncryptionPlatform   = "NotApplicable" // under the platform-managed key, nothing to do
	EncryptionEncrypting = "Encrypting"    // a link is moving data to a new root-key generation
	EncryptionEncrypted  = "Encrypted"     // every record is under the customer's key
	EncryptionFailed     = "Failed"        // the last operation failed; re-running resumes it
	EncryptionWarning    = "Warning"
)

// Environment is a tenant's database of tables and rows, encrypted at rest
// under the platform's key or, once linked to an enterprise policy, under the
// customer's key.
type Environment struct {
	ID           string `json:"id"` // a GUID
	TenantID     string `json:"tenantId"`
	DisplayName  string `json:"displayName"`
	Region       string `json:"region"` // a Power Platform region, as a policy's location
	Type         string `json:"type"`   // Production, Sandbox, Trial, Developer, Teams
	Managed      bool   `json:"managed"`
	RuntimeState string `json:"runtimeState"` // Enabled or Disabled
	// LockReason says why the environment is disabled, in words.
	LockReason string    `json:"lockReason,omitempty"`
	LockedAt   time.Time `json:"lockedAt,omitzero"`

	KeyManagedBy string `json:"keyManagedBy"`
	// PolicyID is the resource id of the linked Encryption policy, or "".
	PolicyID       string `json:"policyId,omitempty"`
	PolicySystemID string `json:"policySystemId,omitempty"`
	LinkStatus     string `json:"linkStatus,omitempty"` // Linked, Linking, Unlinking

	EncryptionStatus string `json:"encryptionStatus"`
	// NoRevertUntil forbids unlinking a migrated BYOK environment until then.
	NoRevertUntil time.Time `json:"noRevertUntil,omitzero"`

	CreatedBy string    `json:"createdBy,omitempty"`
	CreatedAt time.Time `json:"createdAt"`
	UpdatedAt time.Time `json:"updatedAt"`
	// Version increases with every update, for optimistic concurrency.
	Version int64 `json:"version"`
}

// Root-key generation states.
const (
	GenerationActive    = "active"    // new writes use it
	GenerationRetiring  = "retiring"  // still readable; records move off it
	GenerationDestroyed = "destroyed" // wrapped key erased: records under it are crypto-shredded
)

// Kinds of key that wrap a root-key generation.
const (
	WrapPlatform = "platform" // the platform-managed key in the system vault
	WrapCustomer = "customer" // a policy's key in the customer's vault
	WrapBYOK     = "byok"     // a tenant-uploaded key in the system vault (legacy)
)

// WrapRef names the key that wraps a root key, exactly enough to unwrap it
// again: a specific key version.
type WrapRef struct {
	Kind       string `json:"kind"`               // WrapPlatform, WrapCustomer or WrapBYOK
	PolicyID   string `json:"policyId,omitempty"` // customer keys: the policy that granted access
	VaultID    string `json:"vaultId"`            // the vault's resource id
	KeyName    string `json:"keyName"`
	KeyVersion string `json:"keyVersion"`
	Algorithm  string `json:"alg"` // RSA-OAEP-256
}

// RootKeyGeneration is one generation of an environment's root key. The key
// itself (32 random bytes) is stored only wrapped; unwrapped copies live in
// memory and are wiped on lock.
type RootKeyGeneration struct {
	EnvironmentID string    `json:"environmentId"`
	Generation    int64     `json:"generation"` // 1, 2, ...
	Wrapped       []byte    `json:"-"`
	WrappedBy     WrapRef   `json:"wrappedBy"`
	State         string    `json:"state"`
	CreatedAt     time.Time `json:"createdAt"`
	UpdatedAt     time.Time `json:"updatedAt"`
}

// Table is a table of an environment.
type Table struct {
	EnvironmentID string          `json:"environmentId"`
	Name          string          `json:"name"` // logical name, case-insensitive
	DisplayName   string          `json:"displayName,omitempty"`
	Schema        json.RawMessage `json:"schema,omitempty"` // column definitions
	CreatedAt     time.Time       `json:"createdAt"`
}

// SealedRow is a row as stored: its content sealed under a root-key
// generation (envelope format), bound to its environment, table and id.
// Stores return Table lower-cased (tables compare case-insensitively), so
// sealing should bind the lower-cased table name, which is what a reader or
// the re-encryption job will have; ids compare exactly.
type SealedRow struct {
	EnvironmentID string    `json:"environmentId"`
	Table         string    `json:"table"`
	ID            string    `json:"id"`
	Version       int64     `json:"version"`    // the row's ETag: bumps on every write
	Generation    int64     `json:"generation"` // the generation Sealed is under
	Sealed        []byte    `json:"-"`
	CreatedAt     time.Time `json:"createdAt"`
	UpdatedAt     time.Time `json:"updatedAt"`
}

// Lifecycle operation states, as the platform admin API reports state.id.
const (
	OpNotStarted = "NotStarted"
	OpRunning    = "Running"
	OpSucceeded  = "Succeeded"
	OpFailed     = "Failed"
)

// Operation is a durable record of a long lifecycle operation (link, unlink,
// swap, re-encrypt, re-enable, ...): who asked, what, its state, progress and
// error. A crash resumes it from here; the API and pages show it.
type Operation struct {
	ID            string          `json:"id"`
	TenantID      string          `json:"tenantId"`
	EnvironmentID string          `json:"environmentId"`
	Type          string          `json:"type"` // e.g. "Update Customer Managed Key"
	Action        string          `json:"action"`
	State         string          `json:"state"`
	Stages        json.RawMessage `json:"stages,omitempty"`
	Params        json.RawMessage `json:"params,omitempty"` // what the operation needs to resume
	Cursor        string          `json:"cursor,omitempty"` // resume point of a background job
	Done          int64           `json:"done"`
	Total         int64           `json:"total"`
	Error         string          `json:"error,omitempty"`
	RequestedBy   string          `json:"requestedBy,omitempty"`
	LeaseOwner    string          `json:"-"`
	LeaseUntil    time.Time       `json:"-"`
	CreatedAt     time.Time       `json:"createdAt"`
	UpdatedAt     time.Time       `json:"updatedAt"`
}

// EnvironmentStore keeps environments, their root-key generations and their
// lifecycle operations.
type EnvironmentStore interface {
	CreateEnvironment(ctx context.Context, e *Environment) error
	GetEnvironment(ctx context.Context, id string) (*Environment, error)
	// ListEnvironments lists a tenant's environments ("" for every tenant).
	ListEnvironments(ctx context.Context, tenantID string) ([]*Environment, error)
	// ListEnvironmentsByPolicy lists the environments linked to a policy id
	// (case-insensitive).
	ListEnvironmentsByPolicy(ctx context.Context, policyID string) ([]*Environment, error)
	// UpdateEnvironment replaces the mutable fields if e.Version is the
	// stored version, and bumps it; EConflict otherwise.
	UpdateEnvironment(ctx context.Context, e *Environment) error
	// DeleteEnvironment deletes the environment with its tables, rows,
	// generations and operations.
	DeleteEnvironment(ctx context.Context, id string) error

	CreateGeneration(ctx context.Context, g *RootKeyGeneration) error
	// ListGenerations returns an environment's generations, oldest first.
	ListGenerations(ctx context.Context, environmentID string) ([]*RootKeyGeneration, error)
	// UpdateGeneration replaces Wrapped, WrappedBy, State and UpdatedAt.
	UpdateGeneration(ctx context.Context, g *RootKeyGeneration) error

	CreateOperation(ctx context.Context, op *Operation) error
	GetOperation(ctx context.Context, id string) (*Operation, error)
	// ListOperations returns an environment's operations, newest first.
	ListOperations(ctx context.Context, environmentID string) ([]*Operation, error)
	// UpdateOperation replaces the mutable fields of an operation.
	UpdateOperation(ctx context.Context, op *Operation) error
	// LeaseOperation claims one operation that is NotStarted or Running and
	// whose lease has run out, for owner until until; ENotFound if none.
	// Several processes may call it at once; each operation goes to one.
	LeaseOperation(ctx context.Context, owner string, now, until time.Time) (*Operation, error)
}

// RowStore keeps environment tables and sealed rows.
type RowStore interface {
	CreateTable(ctx context.Context, t *Table) error
	GetTable(ctx context.Context, environmentID, name string) (*Table, error)
	ListTables(ctx context.Context, environmentID string) ([]*Table, error)
	// DeleteTable deletes a table and its rows.
	DeleteTable(ctx context.Context, environmentID, name string) error

	// PutRow creates a row (ifVersion -1: EConflict if it exists), replaces
	// it whatever its version (ifVersion 0), or replaces it only at that
	// version (ifVersion > 0: EConflict otherwise, ENotFound if there is no
	// such row). It sets r.Version (1 for a new row) and r.CreatedAt (kept
	// from the first write); ENotFound if the table does not exist.
	PutRow(ctx context.Context, r *SealedRow, ifVersion int64) error
	GetRow(ctx context.Context, environmentID, table, id string) (*SealedRow, error)
	// DeleteRow deletes a row (ifVersion 0) or deletes it only at that
	// version (ifVersion > 0: EConflict otherwise), with its files;
	// ENotFound if there is no such row.
	DeleteRow(ctx context.Context, environmentID, table, id string, ifVersion int64) error
	// ListRows pages a table's rows by id after afterID ("" from the start),
	// at most limit (0: all); ENotFound if the table does not exist.
	ListRows(ctx context.Context, environmentID, table, afterID string, limit int) ([]*SealedRow, error)
	// ListRowsBelowGeneration pages an environment's rows (every table) that
	// are sealed under a generation lower than gen, ordered by (table, id)
	// after the cursor, for the re-encryption job.
	ListRowsBelowGeneration(ctx context.Context, environmentID string, gen int64, afterTable, afterID string, limit int) ([]*SealedRow, error)
	// ResealRow replaces a row's Sealed and Generation only if its Version is
	// still r.Version, without bumping the version (content is unchanged);
	// it reports whether it did, so that a concurrent writer always wins.
	ResealRow(ctx context.Context, r *SealedRow) (bool, error)
	// ResealRows is ResealRow for a batch, in one transaction; it returns
	// how many rows it replaced (the others lost to a concurrent writer).
	ResealRows(ctx context.Context, rows []*SealedRow) (int, error)
	// CountRows counts an environment's rows, and those under generation
	// lower than gen.
	CountRows(ctx context.Context, environmentID string, gen int64) (total, below int64, err error)
}
