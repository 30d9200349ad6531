package environment

import (
	"context"
	"net/http"

	"github.com/keyhold/keyhold"
	"github.com/keyhold/keyhold/httpapi"
	"github.com/keyhold/keyhold/keyvault/keycrypto"
)

// TenantKeyImporter stores a tenant's uploaded protection key (legacy BYOK)
// in the platform's system vault; kms/builtin's Driver is one.
type TenantKeyImporter interface {
	ImportBYOK(ctx context.Context, tenantID string, jwk keycrypto.JWK) (keyhold.WrapRef, error)
}

// TenantKeysPath is where a platform administrator uploads the tenant's
// protection key, as the legacy New-PowerAppImportProtectionKey did.
const TenantKeysPath = "/keyhold/v1/tenantProtectionKeys"

// serveImportTenantKey takes {"key": <RSA JWK with its private part>} from a
// platform administrator and answers 201 with {"ref": <WrapRef>}, which
// POST /keyhold/v1/environments/{id}/byok applies to an environment. The key
// never comes back out.
func (s *Service) serveImportTenantKey(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	c := keyhold.CallerFrom(ctx)
	httpapi.Annotate(ctx, "Keyhold/tenantProtectionKeys/write", TenantKeysPath)
	if c == nil || c.Principal == nil || !c.Principal.IsPlatformAdmin() {
		httpapi.WriteError(w, r, keyhold.Errorc(keyhold.EForbidden, "Forbidden",
			"only a Global, Power Platform or Dynamics 365 administrator may upload the tenant's protection key"))
		return
	}
	if s.cfg.TenantKeys == nil {
		httpapi.WriteError(w, r, keyhold.Errorf(keyhold.EUnavailable, "environment: this server keeps no tenant protection keys"))
		return
	}
	var body struct {
		Key keycrypto.JWK `json:"key"`
	}
	if err := httpapi.DecodeJSON(r, &body, "InvalidRequestContent"); err != nil {
		httpapi.WriteError(w, r, err)
		return
	}
	ref, err := s.cfg.TenantKeys.ImportBYOK(ctx, c.TenantID, body.Key)
	if err != nil {
		httpapi.WriteError(w, r, err)
		return
	}
	s.log.Info("environment: tenant protection key uploaded", "tenant", c.TenantID, "keyVersion", ref.KeyVersion, "by", c.Principal.ID)
	httpapi.WriteJSON(w, http.StatusCreated, map[string]any{"ref": ref})
}
