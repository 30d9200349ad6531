package environment

import (
	"context"
	"strings"

	"github.com/keyhold/keyhold"
	"github.com/keyhold/keyhold/keyvault"
	"github.com/keyhold/keyhold/policy"
)

// PolicyChecker runs every check of an Encryption policy: its kind,
// identity and key, and the identity's access to the key. policy.Monitor
// implements it.
type PolicyChecker interface {
	Check(ctx context.Context, policyID string) (*keyvault.AccessReport, error)
}

var _ PolicyChecker = (*policy.Monitor)(nil)

// ActionPolicyRead is what a caller must be allowed on a policy to link an
// environment to it, unlink or re-enable: the documentation's "read access
// to the enterprise policy".
const ActionPolicyRead = "Microsoft.PowerPlatform/enterprisePolicies/read"

// Details of the errors lifecycle preconditions return (BAP shape).
const (
	DetailEnvironmentNotFound     = "EnvironmentNotFound"
	DetailPolicyNotFound          = "EnterprisePolicyNotFound"
	DetailPolicyReadRequired      = "EnterprisePolicyReadAccessRequired"
	DetailRegionMismatch          = "EnterprisePolicyLocationMismatch"
	DetailPolicyKind              = "InvalidEnterprisePolicyKind"
	DetailPolicyUnhealthy         = "EnterprisePolicyUnhealthy"
	DetailEnvironmentTypeNotAllow = "EnvironmentTypeNotSupported"
	DetailManagedRequired         = "ManagedEnvironmentRequired"
	DetailOperationInProgress     = "OperationInProgress"
	DetailNotLinked               = "EnterprisePolicyNotLinked"
	DetailNoRevertWindow          = "BYOKMigrationRevertNotAllowed"
	DetailBadSystemID             = "InvalidEnterprisePolicySystemId"
)

// checkDetails gives each failed key-access check its own error detail.
var checkDetails = map[string]string{
	policy.CheckPolicyKind:        DetailPolicyKind,
	policy.CheckPolicyIdentity:    "EnterprisePolicyIdentityMissing",
	policy.CheckPolicyKeyVault:    "EnterprisePolicyKeyVaultMissing",
	keyvault.CheckVaultExists:     "KeyVaultNotFound",
	keyvault.CheckSoftDelete:      "KeyVaultSoftDeleteDisabled",
	keyvault.CheckPurgeProtection: "KeyVaultPurgeProtectionDisabled",
	keyvault.CheckIdentity:        "EnterprisePolicyIdentityDisabled",
	keyvault.CheckNetwork:         "KeyVaultNetworkAccessDenied",
	keyvault.CheckPermissions:     "KeyVaultAccessDenied",
	keyvault.CheckKeyExists:       "KeyNotFound",
	keyvault.CheckKeyEnabled:      "KeyDisabled",
	keyvault.CheckKeyValidity:     "KeyExpired",
	keyvault.CheckKeyType:         "KeyTypeNotSupported",
	keyvault.CheckKeyOperations:   "KeyOperationsNotPermitted",
	keyvault.CheckKeyUsable:       "KeyNotUsable",
}

// CheckDetail returns the error detail a failed check of name gets.
func CheckDetail(name string) string {
	if d, ok := checkDetails[name]; ok {
		return d
	}
	return DetailPolicyUnhealthy
}

// platformAdmin returns a 404 as Microsoft answers a caller who may not
// administer environments, so that they learn nothing of the environment.
func platformAdmin(c *keyhold.Caller, envID string) error {
	if c == nil || c.Principal == nil || !c.Principal.IsPlatformAdmin() {
		return envNotFound(envID)
	}
	return nil
}

func envNotFound(envID string) error {
	return keyhold.Errorc(keyhold.ENotFound, DetailEnvironmentNotFound,
		"The environment '%s' could not be found in the tenant.", envID)
}

// lifecycleEnv returns the environment for a lifecycle request of c: it must
// exist in c's tenant and c must be a platform administrator (404
// otherwise, as Microsoft answers).
func (s *Service) lifecycleEnv(ctx context.Context, c *keyhold.Caller, envID string) (*keyhold.Environment, error) {
	if err := platformAdmin(c, envID); err != nil {
		return nil, err
	}
	e, err := s.cfg.Store.GetEnvironment(ctx, envID)
	if keyhold.IsNotFound(err) || (err == nil && !strings.EqualFold(e.TenantID, c.TenantID)) {
		return nil, envNotFound(envID)
	}
	return e, err
}

// policyBySystemID finds the tenant's enterprise policy whose systemId is
// systemID (case-insensitive), of any kind so that a wrong kind gets its
// own error. It returns EInvalid for an empty systemId and ENotFound when
// the tenant has no such policy.
func (s *Service) policyBySystemID(ctx context.Context, tenantID, systemID string) (*policy.Policy, error) {
	systemID = strings.TrimSpace(systemID)
	if systemID == "" {
		return nil, keyhold.Errorc(keyhold.EInvalid, DetailBadSystemID,
			"The request body must name the enterprise policy by its SystemId, e.g. {\"SystemId\": \"/regions/unitedstates/providers/Microsoft.PowerPlatform/enterprisePolicies/<guid>\"}.")
	}
	rs, err := s.cfg.Store.ListResources(ctx, keyhold.ResourceFilter{Type: policy.ResourceType})
	if err != nil {
		return nil, err
	}
	for _, r := range rs {
		p, err := policy.Decode(r)
		if err != nil {
			return nil, err
		}
		if !strings.EqualFold(strings.TrimSpace(p.Properties.SystemID), systemID) {
			continue
		}
		sub, err := s.cfg.Store.GetSubscription(ctx, r.SubscriptionID)
		if err != nil || !strings.EqualFold(sub.TenantID, tenantID) {
			continue
		}
		return p, nil
	}
	return nil, keyhold.Errorc(keyhold.ENotFound, DetailPolicyNotFound,
		"The enterprise policy with SystemId '%s' could not be found in the tenant.", systemID)
}

// policyByID returns the policy with resource id id, or nil when it no
// longer exists.
func (s *Service) policyByID(ctx context.Context, id string) (*policy.Policy, error) {
	r, err := s.cfg.Store.GetResource(ctx, id)
	if keyhold.IsNotFound(err) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	return policy.Decode(r)
}

// checkPolicyReader refuses a caller without Reader on the policy, with the
// documentation's words.
func (s *Service) checkPolicyReader(ctx context.Context, c *keyhold.Caller, policyID string) error {
	if s.cfg.Authz == nil {
		return nil
	}
	ok, err := s.cfg.Authz.Check(ctx, c, ActionPolicyRead, policyID)
	if err != nil {
		return err
	}
	if !ok {
		return keyhold.Errorc(keyhold.EForbidden, DetailPolicyReadRequired,
			"The caller does not have read access to the enterprise policy %s. The admin must have read access to the enterprise policy (the Reader role on it) to add or remove environments and to re-enable them.", policyID)
	}
	return nil
}

// regionAliases are the pairs of locations Microsoft's module treats as one.
var regionAliases = map[string]string{"unitedstateseuap": "unitedstates", "unitedkingdom": "uk"}

func sameRegion(a, b string) bool {
	norm := func(s string) string {
		s = strings.ToLower(strings.ReplaceAll(strings.TrimSpace(s), " ", ""))
		if t, ok := regionAliases[s]; ok {
			return t
		}
		return s
	}
	return norm(a) == norm(b)
}

// checkEnvType says whether the environment's type may use a
// customer-managed key under the profile. Default profile: managed
// Production, Sandbox and Developer environments (Developer environments
// can be managed and hold real data, so they get the same protection); never
// Trial or Teams. Preview profile: Sandbox only, as the seed's preview.
func checkEnvType(profile string, e *keyhold.Environment) error {
	if profile == ProfilePreview {
		if e.Type != keyhold.EnvSandbox {
			return keyhold.Errorc(keyhold.EInvalid, DetailEnvironmentTypeNotAllow,
				"Environment %s is of type %s; in the preview profile only Sandbox environments can use a customer-managed key.", e.ID, e.Type)
		}
		return nil
	}
	switch e.Type {
	case keyhold.EnvProduction, keyhold.EnvSandbox, keyhold.EnvDeveloper:
	default:
		return keyhold.Errorc(keyhold.EInvalid, DetailEnvironmentTypeNotAllow,
			"Environment %s is of type %s; customer-managed keys apply to Production, Sandbox and Developer environments, not Trial or Teams environments.", e.ID, e.Type)
	}
	if !e.Managed {
		return keyhold.Errorc(keyhold.EInvalid, DetailManagedRequired,
			"Environment %s is not a Managed Environment; enable Managed Environments on it before applying a customer-managed key.", e.ID)
	}
	return nil
}

// checkNotBusy refuses a request while another lifecycle operation of the
// environment is pending or running, or while it is locked.
func (s *Service) checkNotBusy(ctx context.Context, e *keyhold.Environment) error {
	if e.RuntimeState == keyhold.RuntimeDisabled || s.lockedReason(e.ID) != "" {
		reason := e.LockReason
		if reason == "" {
			reason = s.lockedReason(e.ID)
		}
		return keyhold.Errorc(keyhold.EConflict, DetailEnvironmentLocked,
			"Environment %s is locked (Environment disabled): %s. Restore access to the key and re-enable the environment first.", e.ID, reason)
	}
	op, err := s.activeOperation(ctx, e.ID)
	if err != nil {
		return err
	}
	if op != nil {
		return keyhold.Errorc(keyhold.EConflict, DetailOperationInProgress,
			"Environment %s has a lifecycle operation in progress (%s, %s); wait for it to end.", e.ID, op.ID, op.State)
	}
	return nil
}

// checkPolicyUsable checks that p is an Encryption policy in the
// environment's region whose identity can use its key right now, with soft
// delete and purge protection on the vault: every check of the checker must
// pass (a key that expires soon only warns).
func (s *Service) checkPolicyUsable(ctx context.Context, e *keyhold.Environment, p *policy.Policy) error {
	if !strings.EqualFold(p.Resource.Kind, policy.KindEncryption) {
		return keyhold.Errorc(keyhold.EInvalid, DetailPolicyKind,
			"The enterprise policy %s is of kind %s; only a policy of kind Encryption can protect an environment with a customer-managed key.", p.Resource.Name, p.Resource.Kind)
	}
	if !sameRegion(e.Region, p.Resource.Location) {
		return keyhold.Errorc(keyhold.EInvalid, DetailRegionMismatch,
			"The enterprise policy %s is in %s but environment %s is in %s; the policy and the environment must be in the same region.", p.Resource.Name, p.Resource.Location, e.ID, e.Region)
	}
	checker := s.cfg.Lifecycle.Checker
	if checker == nil {
		if p.Properties.HealthStatus != policy.HealthHealthy {
			reason := ""
			if d := p.Properties.HealthDetail; d != nil {
				reason = ": " + d.Reason
			}
			return keyhold.Errorc(keyhold.EInvalid, DetailPolicyUnhealthy,
				"The enterprise policy %s is not Healthy (%s)%s.", p.Resource.Name, orUndetermined(p.Properties.HealthStatus), reason)
		}
		return nil
	}
	rep, err := checker.Check(ctx, p.Resource.ID)
	if err != nil {
		return err
	}
	for _, c := range rep.Checks {
		if c.OK {
			continue
		}
		code := keyhold.EInvalid
		if c.Failure == keyvault.FailureUnreachable {
			code = keyhold.EUnavailable
		}
		msg := c.Message
		if c.Fix != "" {
			msg += "; fix: " + c.Fix
		}
		return keyhold.Errorc(code, CheckDetail(c.Name), "The enterprise policy %s cannot protect the environment: %s.", p.Resource.Name, msg)
	}
	return nil
}

func orUndetermined(s string) string {
	if s == "" {
		return policy.HealthUndetermined
	}
	return s
}
