package keyvault

import (
	"context"

	"github.com/keyhold/keyhold"
	"github.com/keyhold/keyhold/arm"
)

// managementAPIVersions are the api-versions the vault resource type takes:
// what armkeyvault v1.5.0 (2024-11-01), the Azure CLI and common templates send.
var managementAPIVersions = []string{
	"2024-11-01", "2024-04-01-preview", "2023-07-01", "2023-02-01", "2022-11-01", "2022-07-01",
	"2022-02-01-preview", "2021-11-01-preview", "2021-10-01", "2021-06-01-preview", "2021-04-01-preview",
	"2020-04-01-preview", "2019-09-01", "2018-02-14", "2016-10-01",
}

// vaultType is Microsoft.KeyVault/vaults as a resource-manager resource type.
type vaultType struct{ s *Service }

// ResourceType returns Microsoft.KeyVault/vaults for the resource manager:
// register it with arm.Server.Register.
func (s *Service) ResourceType() arm.ResourceType { return vaultType{s} }

func (vaultType) Type() string          { return ResourceType }
func (vaultType) APIVersions() []string { return managementAPIVersions }

func (t vaultType) Put(ctx context.Context, req *arm.PutRequest) (*keyhold.Resource, int, error) {
	return nil, 0, keyhold.Errorc(keyhold.EInvalid, "BadRequest", "keyvault: vaults are not implemented yet")
}

func (t vaultType) Patch(ctx context.Context, req *arm.PutRequest) (*keyhold.Resource, error) {
	return nil, keyhold.Errorc(keyhold.EInvalid, "BadRequest", "keyvault: vaults are not implemented yet")
}

func (t vaultType) Delete(ctx context.Context, r *keyhold.Resource) error { return nil }

func (t vaultType) Render(r *keyhold.Resource) any { return arm.DefaultRender(r) }
