// Package e2e holds end-to-end tests: a real keyhold server over TLS, driven
// by the real Azure SDK for Go clients, as a customer's tooling would.
package e2e

import (
	"context"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/keyvault/armkeyvault"

	"github.com/keyhold/keyhold/internal/testenv"
	"github.com/keyhold/keyhold/server"
)

// env is one running server and what a client needs to reach it; the
// embedding lets these tests add their own helpers.
type env struct{ *testenv.Env }

// start runs a server on a random port with its data in dir (a fresh
// temporary directory when dir is ""), its logs kept for secret scanning,
// a movable clock, and registrations that take long enough to be seen
// pending.
func start(t *testing.T, dir string) *env {
	t.Helper()
	return &env{testenv.Start(t, testenv.WithDir(dir), testenv.WithCapturedLogs(), testenv.WithClock(&testenv.Clock{}),
		testenv.WithConfig(func(c *server.Config) { c.RegistrationDelay = 50 * time.Millisecond }))}
}

// createVault creates vault name in group with armkeyvault as the bootstrap
// service principal, purge protection on and every key permission for that
// principal, with RBAC authorization when rbac is set.
func (e *env) createVault(t *testing.T, group, name string, rbac bool) *armkeyvault.Vault {
	t.Helper()
	tenant := e.Boot.TenantID
	vaults, _ := armkeyvault.NewVaultsClient(e.Boot.SubscriptionID, e.ServicePrincipal(), e.ARMOptions())
	p, err := vaults.BeginCreateOrUpdate(context.Background(), group, name, armkeyvault.VaultCreateOrUpdateParameters{
		Location: to.Ptr("westus"),
		Properties: &armkeyvault.VaultProperties{
			TenantID: to.Ptr(tenant), SKU: &armkeyvault.SKU{Family: to.Ptr(armkeyvault.SKUFamilyA), Name: to.Ptr(armkeyvault.SKUNameStandard)},
			EnablePurgeProtection: to.Ptr(true), EnableRbacAuthorization: to.Ptr(rbac),
			AccessPolicies: []*armkeyvault.AccessPolicyEntry{{TenantID: to.Ptr(tenant), ObjectID: to.Ptr(e.Server.Bootstrap().ServicePrincipalID),
				Permissions: &armkeyvault.Permissions{Keys: []*armkeyvault.KeyPermissions{to.Ptr(armkeyvault.KeyPermissionsAll)}}}},
		},
	}, nil)
	if err != nil {
		t.Fatal(err)
	}
	v, err := p.PollUntilDone(context.Background(), fastPoll)
	if err != nil {
		t.Fatal(err)
	}
	return &v.Vault
}
