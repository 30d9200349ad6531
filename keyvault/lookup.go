package keyvault

import (
	"context"
	"strings"

	"github.com/keyhold/keyhold"
)

// DetailVaultNotFound is the error code for a vault URL that names no vault
// on this server. Azure has no such answer (the DNS name does not resolve),
// so Keyhold says plainly what is wrong.
const DetailVaultNotFound = "VaultNotFound"

// lookupVault returns the vault resource called name and its parsed
// properties. Vault names are unique on a server and compare
// case-insensitively, as DNS names do. It returns an ENotFound error with
// Detail "VaultNotFound" when there is no such vault (a soft-deleted vault is
// a resource of another type, so it is not found either), EInvalid for a name
// that cannot be a vault name, and the store's error, or an EInternal one for
// stored properties that do not parse, otherwise.
func (s *Service) lookupVault(ctx context.Context, name string) (*keyhold.Resource, *Properties, error) {
	if !validVaultName(name) {
		return nil, nil, keyhold.Errorc(keyhold.EInvalid, "BadParameter",
			"keyvault: %q is not a valid vault name: use 3 to 24 letters, digits and hyphens, starting with a letter", name)
	}
	list, err := s.cfg.Store.ListResources(ctx, keyhold.ResourceFilter{Type: ResourceType, Name: name})
	if err != nil {
		return nil, nil, err
	}
	for _, r := range list {
		// The store filters already; comparing again keeps a lax driver
		// from handing out another vault.
		if !strings.EqualFold(r.Name, name) || !strings.EqualFold(r.Type, ResourceType) {
			continue
		}
		p, err := ParseProperties(r)
		if err != nil {
			return nil, nil, err
		}
		return r, p, nil
	}
	return nil, nil, keyhold.Errorc(keyhold.ENotFound, DetailVaultNotFound, "keyvault: vault %s was not found on this server", name)
}

// validVaultName reports whether name has the shape Azure allows for vault
// names: 3-24 characters, letters, digits and hyphens, starting with a
// letter, not ending with a hyphen, and without two hyphens in a row.
func validVaultName(name string) bool {
	if len(name) < 3 || len(name) > 24 {
		return false
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z':
		case c >= '0' && c <= '9' && i > 0:
		case c == '-' && i > 0 && i < len(name)-1 && name[i-1] != '-':
		default:
			return false
		}
	}
	return true
}
