package keyvault

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/netip"
	"regexp"
	"strings"

	"github.com/keyhold/keyhold"
	"github.com/keyhold/keyhold/armid"
	"github.com/keyhold/keyhold/httpapi"
	"github.com/keyhold/keyhold/rbac"
)

// defaultAudience is the vault audience when Config.Audience is empty; it is
// identity.AudienceVault, spelled out to keep this package free of identity.
const defaultAudience = "https://vault.keyhold.internal"

// Key Vault's error codes (error.code and innererror.code), as the real
// service sends them.
const (
	codeBadParameter        = "BadParameter"
	codeUnauthorized        = "Unauthorized"
	codeForbidden           = "Forbidden"
	codeKeyNotFound         = "KeyNotFound"
	codeConflict            = "Conflict"
	innerForbiddenByPolicy  = "ForbiddenByPolicy"
	innerForbiddenByRbac    = "ForbiddenByRbac"
	innerForbiddenFirewall  = "ForbiddenByFirewall"
	innerKeyOpForbidden     = "KeyOperationForbidden"
	innerKeyDisabled        = "KeyDisabled"
	innerKeyExpired         = "KeyExpired"
	innerKeyNotYetValid     = "KeyNotYetValid"
	innerDeletedRecoverable = "ObjectIsDeletedButRecoverable"
)

// missingTokenMessage is the body message of Key Vault's 401.
const missingTokenMessage = "AKV10000: Request is missing a Bearer or PoP token."

// latestAPIVersion is what the "not recognized" message recommends.
const latestAPIVersion = "2025-07-01"

// vaultError is a keyhold.Error with Key Vault's innererror code, for the
// refusals whose inner code tells a client why (ForbiddenByPolicy,
// KeyOperationForbidden, ObjectIsDeletedButRecoverable, ...).
type vaultError struct {
	err   *keyhold.Error
	inner string
}

func (e *vaultError) Error() string { return e.err.Error() }
func (e *vaultError) Unwrap() error { return e.err }

// kvErr returns an error with a keyhold code, Key Vault's outer code
// (detail), its inner code (may be empty) and a message.
func kvErr(code, detail, inner, format string, args ...any) error {
	e := keyhold.Errorc(code, detail, format, args...)
	if inner == "" {
		return e
	}
	return &vaultError{err: e, inner: inner}
}

func badParam(format string, args ...any) error {
	return keyhold.Errorc(keyhold.EInvalid, codeBadParameter, "keyvault: "+format, args...)
}

// defaultCodes are Key Vault's codes for errors that name none.
var defaultCodes = map[string]string{
	keyhold.EInvalid:         codeBadParameter,
	keyhold.EUnauthenticated: codeUnauthorized,
	keyhold.EForbidden:       codeForbidden,
	keyhold.ENotFound:        "NotFound",
	keyhold.EConflict:        codeConflict,
	keyhold.ETooManyRequests: "Throttled",
	keyhold.EUnavailable:     "ServiceUnavailable",
	keyhold.EInternal:        "InternalServerError",
}

// writeError writes err in Key Vault's error shape: the status for its code,
// {"error":{"code","message","innererror":{"code"}}} and x-ms-error-code.
// Internal causes go to the log only.
func writeError(w http.ResponseWriter, r *http.Request, err error) {
	code := keyhold.ErrorCode(err)
	status := httpapi.Status(code)
	body := httpapi.AzureError{Error: httpapi.AzureErrorBody{Code: keyhold.ErrorDetail(err), Message: keyhold.ErrorMessage(err)}}
	if body.Error.Code == "" || code == keyhold.EInternal {
		body.Error.Code = defaultCodes[code]
	}
	var ve *vaultError
	if errors.As(err, &ve) {
		body.Error.InnerError = &httpapi.InnerError{Code: ve.inner}
	}
	if status >= 500 {
		httpapi.Logger(r.Context()).Error("vault request failed", "err", err.Error(), "status", status)
	}
	w.Header().Set("x-ms-error-code", body.Error.Code)
	httpapi.WriteJSON(w, status, body)
}

// Challenge answers a request that failed authentication as Key Vault does:
// 401 with `WWW-Authenticate: Bearer authorization="<PublicURL><tenant>",
// resource="<audience>"`, where the tenant is the vault's (or, for a vault
// that does not exist, the server's first tenant) and the resource is
// HostAudience for a request to a host-style vault URL, and the body
// {"error":{"code":"Unauthorized","message":"AKV10000: ..."}}. It never
// reads the request body: the Azure SDKs send the first request of a client
// without its body to elicit this challenge. An error that is not
// EUnauthenticated (the store is down, say) is written as it is.
func (s *Service) Challenge(w http.ResponseWriter, r *http.Request, err error) {
	if keyhold.ErrorCode(err) != keyhold.EUnauthenticated {
		writeError(w, r, err)
		return
	}
	name, _, _, byHost, _ := s.vaultOf(r)
	tenant := s.challengeTenant(r.Context(), name)
	resource := s.audience()
	if byHost {
		// The SDKs check that the vault's host, port included, ends with
		// "." + the resource's host: the vault audience's would not.
		resource = s.HostAudience()
	}
	w.Header().Set("WWW-Authenticate", `Bearer authorization="`+s.cfg.PublicURL+tenant+`", resource="`+resource+`"`)
	msg := missingTokenMessage
	if r.Header.Get("Authorization") != "" {
		// A token was sent but refused; say why, in Key Vault's manner.
		msg = "AKV10022: Invalid token: " + strings.TrimSuffix(keyhold.ErrorMessage(err), ".") + "."
	}
	if r.ContentLength != 0 {
		// net/http drains an unread body before it answers, so that the
		// connection can be reused; a client still sending its body would
		// then wait for the challenge. Closing the connection instead lets
		// the 401 go out at once, without reading a byte of the body.
		w.Header().Set("Connection", "close")
	}
	w.Header().Set("x-ms-error-code", codeUnauthorized)
	httpapi.WriteJSON(w, http.StatusUnauthorized, httpapi.AzureError{Error: httpapi.AzureErrorBody{Code: codeUnauthorized, Message: msg}})
}

func (s *Service) audience() string {
	if s.cfg.Audience != "" {
		return strings.TrimRight(s.cfg.Audience, "/")
	}
	return defaultAudience
}

// challengeTenant names the tenant a client should get a token from: the
// named vault's, else the server's first, else "common". The azkeys client takes
// the fourth '/'-separated part of the authority as the tenant, so the
// result is always one non-empty segment.
func (s *Service) challengeTenant(ctx context.Context, name string) string {
	if validVaultName(name) {
		if _, p, err := s.lookupVault(ctx, name); err == nil && p.TenantID != "" && !strings.Contains(p.TenantID, "/") {
			return p.TenantID
		}
	}
	if ts, err := s.cfg.Store.ListTenants(ctx); err == nil && len(ts) > 0 && ts[0].ID != "" {
		return ts[0].ID
	}
	return "common"
}

// splitVaultPath splits "/vaults/{name}/rest" into the name and the rest
// (without its leading slash).
func splitVaultPath(path string) (name, rest string, ok bool) {
	p, found := strings.CutPrefix(path, "/vaults/")
	if !found {
		return "", "", false
	}
	name, rest, _ = strings.Cut(p, "/")
	return name, rest, name != ""
}

// checkAPIVersion accepts what Key Vault accepts today: 7.0 to 7.6, their
// previews, and the dated versions from 2025-07-01 on.
func checkAPIVersion(v string) error {
	if v == "" {
		return keyhold.Errorc(keyhold.EInvalid, codeBadParameter, "The api-version query parameter is missing. Consider using the latest supported version (%s).", latestAPIVersion)
	}
	if apiVersionRE.MatchString(v) {
		if m := datedRE.FindStringSubmatch(v); m == nil || m[1] >= latestAPIVersion {
			return nil
		}
	}
	return keyhold.Errorc(keyhold.EInvalid, codeBadParameter, "The specified version (%s) is not recognized. Consider using the latest supported version (%s).", v, latestAPIVersion)
}

var (
	apiVersionRE = regexp.MustCompile(`^(7\.[0-6](-preview(\.[0-9]+)?)?|[0-9]{4}-[0-9]{2}-[0-9]{2}(-preview(\.[0-9]+)?)?)$`)
	datedRE      = regexp.MustCompile(`^([0-9]{4}-[0-9]{2}-[0-9]{2})`)
	keyNameRE    = regexp.MustCompile(`^[0-9a-zA-Z-]{1,127}$`)
)

// request is one data-plane request after routing: who asks, on which
// vault, and the URL base that kids are built from.
type request struct {
	w          http.ResponseWriter
	r          *http.Request
	apiVersion string
	caller     *keyhold.Caller
	vault      *keyhold.Resource
	props      *Properties
	// base is scheme://host/vaults/{name}, or scheme://host for a
	// host-style vault URL, as the client addressed the vault, without a
	// trailing slash: kids and nextLinks start with it, so that a client
	// follows them back to where it came from.
	base string
}

func (rq *request) ctx() context.Context { return rq.r.Context() }

// vaultName is the vault's stored name.
func (rq *request) vaultName() string { return rq.vault.Name }

// keyScope is the resource-style id of a key, for RBAC, events and audit.
func (rq *request) keyScope(name string) string { return rq.vault.ID + "/keys/" + name }

// operation is one routed data-plane operation.
type operation struct {
	// perm is the access-policy key permission it needs ("" for any).
	perm string
	// action is the RBAC data action it needs.
	action string
	// key is the key name the operation is about, "" for vault-wide ones.
	key string
	// readOnly marks a POST that changes nothing (a cryptographic operation
	// or random bytes): the audit log keeps only its refusals.
	readOnly bool
	// serve does the work.
	serve func(s *Service, rq *request) error
}

// Handler returns the keys data plane for paths /vaults/{name}/... and, with
// a vault domain, for every path of a host below it (VaultHost): it expects an authenticated *keyhold.Caller in the request context (the
// server's surface wiring puts it there, or answers with Challenge).
func (s *Service) Handler() http.Handler {
	return http.HandlerFunc(s.serveData)
}

func (s *Service) serveData(w http.ResponseWriter, r *http.Request) {
	name, rest, base, byHost, ok := s.vaultOf(r)
	if !ok {
		writeError(w, r, keyhold.Errorc(keyhold.ENotFound, "NotFound", "keyvault: the path %s names no vault; vault URLs look like %svaults/{name}/", r.URL.Path, s.cfg.PublicURL))
		return
	}
	caller := keyhold.CallerFrom(r.Context())
	if caller == nil || caller.Principal == nil {
		s.Challenge(w, r, keyhold.Errorc(keyhold.EUnauthenticated, codeUnauthorized, "the request is not authenticated"))
		return
	}
	apiVersion := r.URL.Query().Get("api-version")
	if err := checkAPIVersion(apiVersion); err != nil {
		writeError(w, r, err)
		return
	}
	op, err := route(r.Method, rest)
	if err != nil {
		writeError(w, r, err)
		return
	}
	if byHost && !validVaultName(name) {
		// A host below the vault domain that cannot be a vault's is a vault
		// that does not exist, not a malformed parameter.
		writeError(w, r, keyhold.Errorc(keyhold.ENotFound, DetailVaultNotFound, "keyvault: no vault on this server has the host %s", r.Host))
		return
	}
	vault, props, err := s.lookupVault(r.Context(), name)
	if err != nil {
		writeError(w, r, err)
		return
	}
	rq := &request{w: w, r: r, apiVersion: apiVersion, caller: caller, vault: vault, props: props, base: base}
	scope := vault.ID
	if op.key != "" {
		scope = rq.keyScope(op.key)
	}
	httpapi.Annotate(r.Context(), op.action, scope)
	if op.readOnly {
		httpapi.MarkReadOnly(r.Context())
	}
	if err := s.authorize(rq, op, scope); err != nil {
		writeError(w, r, err)
		return
	}
	if err := op.serve(s, rq); err != nil {
		writeError(w, r, err)
	}
}

// authorize applies the vault firewall, then the vault's access policies
// or, on an RBAC vault, the caller's role assignments.
func (s *Service) authorize(rq *request, op operation, scope string) error {
	if !rq.props.NetworkAllows(clientAddr(rq.r), trustedService(rq.caller)) {
		return kvErr(keyhold.EForbidden, codeForbidden, innerForbiddenFirewall,
			"Client address is not authorized and caller is not a trusted service.\r\nClient address: %s\r\nCaller: %s\r\nVault: %s;location=%s",
			clientAddr(rq.r), s.callerString(rq.caller), rq.vaultName(), rq.vault.Location)
	}
	if rq.props.RBAC() {
		authz := s.cfg.Authz
		if authz == nil {
			authz = rbac.New(s.cfg.Store)
		}
		ok, err := authz.CheckData(rq.ctx(), rq.caller, op.action, scope)
		if err != nil {
			return err
		}
		if !ok {
			return kvErr(keyhold.EForbidden, codeForbidden, innerForbiddenByRbac,
				"Caller is not authorized to perform action on resource.\r\nIf role assignments, deny assignments or role definitions were changed recently, please observe propagation time.\r\nCaller: %s\r\nAction: '%s'\r\nResource: '%s'\r\nAssignment: (not found)\r\nDecisionReason: 'DeniedWithNoValidRBAC'\r\nVault: %s;location=%s\r\n",
				s.callerString(rq.caller), op.action, strings.ToLower(scope), rq.vaultName(), rq.vault.Location)
		}
		return nil
	}
	perms := rq.props.KeyPermissions(rq.caller.TenantID, rq.caller.ObjectIDs())
	if op.perm == "" && len(perms) > 0 || perms[strings.ToLower(op.perm)] {
		return nil
	}
	what := op.perm
	if what == "" {
		what = "any"
	}
	return kvErr(keyhold.EForbidden, codeForbidden, innerForbiddenByPolicy,
		"The user, group or application '%s' does not have keys %s permission on key vault '%s;location=%s'. For help resolving this issue, please see https://go.microsoft.com/fwlink/?linkid=2125287",
		s.callerString(rq.caller), what, rq.vaultName(), rq.vault.Location)
}

// callerString names a caller as Key Vault's refusals do.
func (s *Service) callerString(c *keyhold.Caller) string {
	appid := c.ClientID
	if appid == "" {
		appid = c.Principal.AppID
	}
	return fmt.Sprintf("appid=%s;oid=%s;iss=%s%s/v2.0", appid, c.Principal.ID, s.cfg.PublicURL, c.TenantID)
}

// clientAddr is the client's IP address, IPv4-mapped IPv6 unmapped so that
// an IPv4 firewall rule matches a dual-stack listener's peers.
func clientAddr(r *http.Request) netip.Addr {
	ap, err := netip.ParseAddrPort(r.RemoteAddr)
	if err != nil {
		return netip.Addr{}
	}
	return ap.Addr().Unmap()
}

// trustedService reports whether c is a trusted platform service: the
// managed identity of a Power Platform enterprise policy, which a vault
// firewall lets through when its bypass names AzureServices.
func trustedService(c *keyhold.Caller) bool {
	p := c.Principal
	if p == nil || p.Type != keyhold.PrincipalManagedIdentity || p.ResourceID == "" {
		return false
	}
	id, err := armid.Parse(p.ResourceID)
	return err == nil && strings.EqualFold(id.Type(), "Microsoft.PowerPlatform/enterprisePolicies")
}
