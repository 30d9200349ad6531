package duties

import (
	"context"
	"net/http"
	"slices"
	"strings"

	"github.com/keyhold/keyhold"
	"github.com/keyhold/keyhold/httpapi"
	"github.com/keyhold/keyhold/rbac"
)

// Path is where Handler serves the tenant's separation of duties.
const Path = "/keyhold/v1/separationOfDuties"

// Actions recorded in the audit log.
const (
	actionRead  = "Keyhold/separationOfDuties/read"
	actionWrite = "Keyhold/separationOfDuties/write"
)

// Handler serves Path for the caller's tenant; it expects an authenticated
// *keyhold.Caller in the request context.
//
// GET answers the Status. Any administrator may read it: a holder of a
// directory role, or of Owner, User Access Administrator or a key vault
// role anywhere in the tenant. PUT takes {"enabled": true|false}, stores
// the tenant's setting and answers the Status; only a Global Administrator
// may change it. Turning it on revokes nothing. Errors are in the Azure
// shape: 400 for a bad body, 401 without a caller, 403 for anyone else,
// 405 for other methods.
func (c *Checker) Handler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.TrimSuffix(r.URL.Path, "/") != Path {
			httpapi.WriteError(w, r, keyhold.Errorc(keyhold.ENotFound, "NotFound", "duties: no such endpoint: %s", r.URL.Path))
			return
		}
		var err error
		switch r.Method {
		case http.MethodGet, http.MethodHead:
			err = c.serveGet(w, r)
		case http.MethodPut:
			err = c.servePut(w, r)
		default:
			w.Header().Set("Allow", "GET, PUT")
			w.Header().Set("x-ms-error-code", "MethodNotAllowed")
			httpapi.WriteJSON(w, http.StatusMethodNotAllowed, httpapi.AzureError{Error: httpapi.AzureErrorBody{
				Code: "MethodNotAllowed", Message: "duties: use GET to read separation of duties and PUT to change it"}})
			return
		}
		if err != nil {
			httpapi.WriteError(w, r, err)
		}
	})
}

func callerOf(ctx context.Context) (*keyhold.Caller, error) {
	c := keyhold.CallerFrom(ctx)
	if c == nil || c.Principal == nil {
		return nil, keyhold.Errorc(keyhold.EUnauthenticated, "AuthenticationFailed", "duties: the request carries no caller")
	}
	return c, nil
}

func (c *Checker) serveGet(w http.ResponseWriter, r *http.Request) error {
	ctx := r.Context()
	caller, err := callerOf(ctx)
	if err != nil {
		return err
	}
	httpapi.Annotate(ctx, actionRead, Path)
	ok, err := c.isAdministrator(ctx, caller)
	if err != nil {
		return err
	}
	if !ok {
		return keyhold.Errorc(keyhold.EForbidden, "AuthorizationFailed",
			"duties: only administrators (directory roles, or Owner, User Access Administrator or a key vault role) may read separation of duties")
	}
	st, err := c.Status(ctx, caller.TenantID)
	if err != nil {
		return err
	}
	httpapi.WriteJSON(w, http.StatusOK, st)
	return nil
}

// isAdministrator reports whether caller holds a directory role, or Owner,
// User Access Administrator or a key vault role at some scope.
func (c *Checker) isAdministrator(ctx context.Context, caller *keyhold.Caller) (bool, error) {
	if len(caller.Principal.DirectoryRoles) > 0 {
		return true, nil
	}
	g, err := c.authz.Grants(ctx, caller)
	if err != nil {
		return false, err
	}
	for _, gr := range g.List() {
		if gr.Role.Name == rbac.RoleUserAccessAdministrator || slices.Contains(KeyVaultRoles, gr.Role.Name) {
			return true, nil
		}
	}
	return false, nil
}

// putBody is the body of PUT Path.
type putBody struct {
	Enabled *bool `json:"enabled"`
}

func (c *Checker) servePut(w http.ResponseWriter, r *http.Request) error {
	ctx := r.Context()
	caller, err := callerOf(ctx)
	if err != nil {
		return err
	}
	// Annotated first, so that a refused change is audited as one.
	httpapi.Annotate(ctx, actionWrite, Path)
	if !caller.Principal.HasDirectoryRole(keyhold.RoleGlobalAdministrator) {
		return keyhold.Errorc(keyhold.EForbidden, "AuthorizationFailed",
			"duties: only a Global Administrator may turn separation of duties on or off")
	}
	var b putBody
	if err := httpapi.DecodeJSON(r, &b, "InvalidRequestContent"); err != nil {
		return err
	}
	if b.Enabled == nil {
		return keyhold.Errorc(keyhold.EInvalid, "InvalidRequestContent", `duties: the body must be {"enabled": true} or {"enabled": false}`)
	}
	if err := c.setEnabled(ctx, caller.TenantID, caller.Principal.ID, *b.Enabled); err != nil {
		return err
	}
	if info := httpapi.InfoFrom(ctx); info != nil {
		info.Detail = "separation of duties " + map[bool]string{true: "on", false: "off"}[*b.Enabled]
	}
	st, err := c.Status(ctx, caller.TenantID)
	if err != nil {
		return err
	}
	httpapi.WriteJSON(w, http.StatusOK, st)
	return nil
}
