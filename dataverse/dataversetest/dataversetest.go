// Package dataversetest serves the data API over a real SQLite store and a
// real keyring for tests of its clients (the client package, the CLI),
// standing in for the environment service's Open.
package dataversetest

import (
	"context"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/keyhold/keyhold"
	"github.com/keyhold/keyhold/dataverse"
	"github.com/keyhold/keyhold/envelope"
	"github.com/keyhold/keyhold/kms"
	"github.com/keyhold/keyhold/kms/kmstest"
	"github.com/keyhold/keyhold/sqlite"
)

// Envs is a set of environments with root keys wrapped by an in-memory
// vault, whose calls Calls counts.
type Envs struct {
	Store keyhold.Store
	Path  string // the store's SQLite file, for tests that read it raw
	Vault *kmstest.Memory
	Calls *kms.Metrics
	Ring  *envelope.Keyring

	mu     sync.Mutex
	active map[string]int64
	locked map[string]string
}

// New returns Envs over a new SQLite store in t's temporary directory.
func New(t testing.TB) *Envs {
	t.Helper()
	path := filepath.Join(t.TempDir(), "data.db")
	st, err := sqlite.Open(context.Background(), path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	e := &Envs{Store: st, Path: path, Vault: kmstest.NewMemory(), Calls: kms.NewMetrics(), active: map[string]int64{}, locked: map[string]string{}}
	e.Ring = envelope.NewKeyring(st, kms.GenerationUnwrapper{Wrapper: kms.Counted(e.Vault, e.Calls)})
	return e
}

// Add makes environment id of tenant with a first root-key generation
// wrapped by a new key of kind (keyhold.WrapPlatform, WrapCustomer).
func (e *Envs) Add(t testing.TB, id, tenant, kind string) {
	t.Helper()
	ctx := context.Background()
	now := time.Now().UTC()
	if err := e.Store.CreateEnvironment(ctx, &keyhold.Environment{ID: id, TenantID: tenant, DisplayName: id, Region: "europe",
		Type: keyhold.EnvProduction, RuntimeState: keyhold.RuntimeEnabled, KeyManagedBy: keyhold.KeyManagedByMicrosoft,
		EncryptionStatus: keyhold.EncryptionPlatform, CreatedAt: now, UpdatedAt: now}); err != nil {
		t.Fatal(err)
	}
	ref := e.Vault.AddKey(keyhold.WrapRef{Kind: kind, PolicyID: "/policies/test", VaultID: "/vaults/" + kind, KeyName: "k-" + id, Algorithm: kms.DefaultAlgorithm})
	root, err := envelope.NewRootKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	defer root.Wipe()
	wrapped, used, err := e.Vault.Wrap(ctx, ref, root)
	if err != nil {
		t.Fatal(err)
	}
	if err := e.Store.CreateGeneration(ctx, &keyhold.RootKeyGeneration{EnvironmentID: id, Generation: 1, Wrapped: wrapped,
		WrappedBy: used, State: keyhold.GenerationActive, CreatedAt: now, UpdatedAt: now}); err != nil {
		t.Fatal(err)
	}
	e.mu.Lock()
	e.active[id] = 1
	e.mu.Unlock()
}

// Lock refuses every data request to id with reason and wipes its keys, as
// the environment service does; Unlock lifts it.
func (e *Envs) Lock(id, reason string) {
	e.mu.Lock()
	e.locked[id] = reason
	e.mu.Unlock()
	e.Ring.Wipe(id)
}

// Unlock lifts Lock.
func (e *Envs) Unlock(id string) {
	e.mu.Lock()
	delete(e.locked, id)
	e.mu.Unlock()
}

type sealer struct {
	ring *envelope.Keyring
	gen  int64
}

func (s sealer) Seal(ctx context.Context, b envelope.Binding, pt []byte) ([]byte, int64, error) {
	out, err := s.ring.Seal(ctx, s.gen, b, pt)
	return out, s.gen, err
}

func (s sealer) Open(ctx context.Context, b envelope.Binding, sealed []byte) ([]byte, error) {
	return s.ring.Open(ctx, b, sealed)
}

// Open is a dataverse.OpenFunc with the environment service's errors:
// EUnauthenticated without a caller, ENotFound for an environment that is
// not in the caller's tenant (any caller may use any environment of its
// tenant), EForbidden EnvironmentLocked for a locked one.
func (e *Envs) Open(ctx context.Context, c *keyhold.Caller, id string, write bool) (dataverse.Handle, error) {
	if c == nil || c.Principal == nil {
		return dataverse.Handle{}, keyhold.Errorf(keyhold.EUnauthenticated, "no caller")
	}
	e.mu.Lock()
	gen, ok := e.active[id]
	reason := e.locked[id]
	e.mu.Unlock()
	if !ok {
		return dataverse.Handle{}, keyhold.Errorc(keyhold.ENotFound, "EnvironmentNotFound", "The environment '%s' could not be found in the tenant '%s'.", id, c.TenantID)
	}
	if reason != "" {
		return dataverse.Handle{}, keyhold.Errorc(keyhold.EForbidden, dataverse.CodeEnvironmentLocked,
			"environment %s is locked (Environment disabled): %s", id, reason)
	}
	return dataverse.Handle{ID: id, Sealer: sealer{e.Ring, gen}}, nil
}

// Service returns the data API over e.
func (e *Envs) Service() *dataverse.Service {
	return dataverse.New(dataverse.Config{Store: e.Store, Open: e.Open})
}
