package keyvault

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/keyhold/keyhold"
	"github.com/keyhold/keyhold/armid"
	"github.com/keyhold/keyhold/keyvault/keycrypto"
)

// Names of the checks CheckKeyAccess makes, in the order it makes them.
// They follow Microsoft's ValidateKeyVaultForCMK script and the CMK
// documentation's prerequisites.
const (
	CheckVaultExists     = "VaultExists"
	CheckSoftDelete      = "SoftDelete"
	CheckPurgeProtection = "PurgeProtection"
	CheckIdentity        = "IdentityEnabled"
	CheckNetwork         = "NetworkAccess"
	CheckPermissions     = "KeyPermissions"
	CheckKeyExists       = "KeyExists"
	CheckKeyEnabled      = "KeyEnabled"
	CheckKeyValidity     = "KeyValidityPeriod"
	CheckKeyType         = "KeyType"
	CheckKeyOperations   = "KeyOperations"
	CheckKeyUsable       = "KeyUsable"
)

// Failure classes of a check that stops the identity from using the key.
const (
	// FailureDefinite is a definite denial: access removed, key disabled,
	// expired, deleted or missing, vault deleted or closed by its firewall.
	// The platform locks at once.
	FailureDefinite = "Definite"
	// FailureUnreachable means the vault could not be asked. Built-in
	// vaults are always reachable; remote vaults (later drivers) use it, and
	// the platform keeps serving from its cache for a grace period.
	FailureUnreachable = "Unreachable"
)

// ExpiryWarning is how long before a key's exp CheckKeyAccess starts to warn.
const ExpiryWarning = 30 * 24 * time.Hour

// MinRSAKeySize is the smallest RSA modulus, in bits, a customer key may have.
const MinRSAKeySize = 2048

// AccessCheck is the result of one check of CheckKeyAccess. Message says in
// words what was found; Fix says what to change when the check fails (or
// warns).
type AccessCheck struct {
	Name    string `json:"name"`
	OK      bool   `json:"ok"`
	Message string `json:"message"`
	Fix     string `json:"fix,omitempty"`
	// Failure is FailureDefinite or FailureUnreachable for a failed check
	// that stops the identity from using the key now, and empty for a
	// passed check or a failed one that does not (purge protection off).
	Failure string `json:"failure,omitempty"`
	// Warning marks a check that needs attention without blocking access:
	// a failed configuration check, or a passed one close to failing (a key
	// that expires within ExpiryWarning).
	Warning bool `json:"warning,omitempty"`
}

// Blocking reports whether the check failed in a way that stops the
// identity from using the key.
func (c AccessCheck) Blocking() bool { return !c.OK && c.Failure != "" }

// AccessReport is what CheckKeyAccess found: every check it made, in order.
// It holds no key material.
type AccessReport struct {
	VaultID     string `json:"vaultId"`
	VaultName   string `json:"vaultName,omitempty"`
	KeyName     string `json:"keyName"`
	KeyVersion  string `json:"keyVersion,omitempty"` // the version checked: the one asked for, else the newest
	PrincipalID string `json:"principalId"`
	// CheckedAt is the vault service's time of the check.
	CheckedAt time.Time     `json:"checkedAt"`
	Checks    []AccessCheck `json:"checks"`
}

// Add appends a check to the report.
func (r *AccessReport) Add(c AccessCheck) { r.Checks = append(r.Checks, c) }

// Passed reports whether every check passed.
func (r *AccessReport) Passed() bool {
	for _, c := range r.Checks {
		if !c.OK {
			return false
		}
	}
	return true
}

// Usable reports whether no check found a failure that stops the identity
// from using the key.
func (r *AccessReport) Usable() bool { return len(r.Blocking()) == 0 }

// Blocking returns the failed checks that stop the identity from using the key.
func (r *AccessReport) Blocking() []AccessCheck {
	var out []AccessCheck
	for _, c := range r.Checks {
		if c.Blocking() {
			out = append(out, c)
		}
	}
	return out
}

// Warnings returns the checks that need attention without blocking access.
func (r *AccessReport) Warnings() []AccessCheck {
	var out []AccessCheck
	for _, c := range r.Checks {
		if c.Warning && !c.Blocking() {
			out = append(out, c)
		}
	}
	return out
}

// Definite reports whether some blocking failure is a definite denial
// rather than an unreachable vault.
func (r *AccessReport) Definite() bool {
	for _, c := range r.Blocking() {
		if c.Failure == FailureDefinite {
			return true
		}
	}
	return false
}

// Reason sums the report up in words: the blocking failures if there are
// any, else the warnings, else that the identity can use the key.
func (r *AccessReport) Reason() string {
	list := r.Blocking()
	if len(list) == 0 {
		list = r.Warnings()
	}
	if len(list) == 0 {
		return fmt.Sprintf("identity %s can get, wrap and unwrap with key %s in vault %s", r.PrincipalID, r.KeyName, r.vaultLabel())
	}
	msgs := make([]string, len(list))
	for i, c := range list {
		msgs[i] = c.Message
	}
	return strings.Join(msgs, "; ")
}

func (r *AccessReport) vaultLabel() string {
	if r.VaultName != "" {
		return r.VaultName
	}
	return r.VaultID
}

// requiredKeyPermissions are what the platform needs of a customer key, as
// access-policy permissions with the data-plane operation that needs each.
var requiredKeyPermissions = []struct{ perm, action string }{
	{"get", ActionKeysRead},
	{keycrypto.OpWrapKey, ActionKeysWrap},
	{keycrypto.OpUnwrapKey, ActionKeysUnwrap},
}

// CheckKeyAccess evaluates, without doing any cryptography, whether
// principal can use the key keyName (version keyVersion, "" for the newest)
// in the vault with resource id vaultID the way the platform uses a
// customer key: get, wrapKey and unwrapKey. It applies the data plane's own
// rules (firewall with the trusted-service bypass, access policies or RBAC
// data actions, key attributes and key_ops) and the CMK prerequisites (soft
// delete, purge protection, RSA of at least 2048 bits), and reports each
// check with a message and a fix. A missing or deleted vault, key or
// identity is a failed check, not an error. It returns EInvalid for a
// vaultID that is not a vault's resource id or a nil principal, and the
// store's error if it fails.
func (s *Service) CheckKeyAccess(ctx context.Context, vaultID, keyName, keyVersion string, principal *keyhold.Principal) (*AccessReport, error) {
	if principal == nil {
		return nil, keyhold.Errorf(keyhold.EInvalid, "keyvault: no identity to check key access for")
	}
	id, err := armid.Parse(vaultID)
	if err != nil || !strings.EqualFold(id.Type(), ResourceType) {
		return nil, keyhold.Errorc(keyhold.EInvalid, "InvalidKeyVaultId",
			"keyvault: %q is not a key vault resource id; it looks like /subscriptions/{id}/resourceGroups/{group}/providers/Microsoft.KeyVault/vaults/{name}", vaultID)
	}
	now := s.now()
	rep := &AccessReport{VaultID: vaultID, VaultName: id.Name(), KeyName: keyName, KeyVersion: keyVersion, PrincipalID: principal.ID, CheckedAt: now}
	who := "identity " + principal.ID

	vault, props, err := s.checkVault(ctx, rep, vaultID, id.Name())
	if err != nil || vault == nil {
		return rep, err
	}
	rep.VaultID, rep.VaultName = vault.ID, vault.Name
	checkRecoverability(rep, props)

	caller, err := s.callerFor(ctx, principal)
	if err != nil {
		return nil, err
	}
	if principal.Disabled {
		rep.Add(AccessCheck{Name: CheckIdentity, Message: who + " is disabled, so it cannot get tokens for the vault",
			Fix: "enable the policy's managed identity again in the directory", Failure: FailureDefinite})
	}
	if props.NetworkAllows(platformAddr, trustedService(caller)) {
		rep.Add(AccessCheck{Name: CheckNetwork, OK: true, Message: fmt.Sprintf("the firewall of vault %s lets %s through", vault.Name, who)})
	} else {
		rep.Add(AccessCheck{Name: CheckNetwork, Failure: FailureDefinite,
			Message: fmt.Sprintf("the firewall of vault %s refuses %s: public network access is closed and trusted services may not bypass it", vault.Name, who),
			Fix:     "let trusted services bypass the vault's firewall (networkAcls.bypass AzureServices), or open public network access"})
	}
	if err := s.checkPermissions(ctx, rep, vault, props, caller, keyName, who); err != nil {
		return nil, err
	}
	if err := s.checkKey(ctx, rep, vault, props, keyName, keyVersion, now); err != nil {
		return nil, err
	}
	return rep, nil
}

// platformAddr is the client address the vault firewall sees for the
// platform: it calls built-in vaults from inside the server, so no IP rule
// can name it and only the trusted-service bypass or an open firewall lets
// it through. The zero Addr matches no rule.
var platformAddr = clientAddr(&http.Request{})

// checkVault finds the vault and adds the VaultExists check. It returns a
// nil vault when the vault is missing or soft-deleted.
func (s *Service) checkVault(ctx context.Context, rep *AccessReport, vaultID, name string) (*keyhold.Resource, *Properties, error) {
	r, err := s.cfg.Store.GetResource(ctx, vaultID)
	if err != nil && !keyhold.IsNotFound(err) {
		return nil, nil, err
	}
	if err == nil && strings.EqualFold(r.Type, ResourceType) {
		p, err := ParseProperties(r)
		if err != nil {
			return nil, nil, err
		}
		rep.Add(AccessCheck{Name: CheckVaultExists, OK: true, Message: fmt.Sprintf("vault %s exists", r.Name)})
		return r, p, nil
	}
	deleted, err := findDeletedVault(ctx, s.cfg.Store, name)
	if err != nil {
		return nil, nil, err
	}
	c := AccessCheck{Name: CheckVaultExists, Failure: FailureDefinite,
		Message: fmt.Sprintf("vault %s does not exist", name),
		Fix:     "point the policy at an existing vault (encryption.keyVault.id), or create the vault and the key again"}
	if deleted != nil {
		c.Message = fmt.Sprintf("vault %s is deleted", name)
		c.Fix = "recover the deleted vault (keyvault recover, or a PUT with createMode recover) before its scheduled purge date"
		if d, err := parseDeleted(deleted); err == nil {
			c.Message += fmt.Sprintf(" (on %s; it can be recovered until %s)", d.DeletionDate.UTC().Format(time.RFC3339), d.ScheduledPurgeDate.UTC().Format(time.RFC3339))
		}
	}
	rep.Add(c)
	return nil, nil, nil
}

// checkRecoverability adds the soft-delete and purge-protection checks.
// Neither stops the identity from using the key, so a failure warns.
func checkRecoverability(rep *AccessReport, p *Properties) {
	if p.EnableSoftDelete == nil || *p.EnableSoftDelete {
		rep.Add(AccessCheck{Name: CheckSoftDelete, OK: true, Message: fmt.Sprintf("soft delete is on for vault %s (%d days)", rep.VaultName, p.RetentionDays())})
	} else {
		rep.Add(AccessCheck{Name: CheckSoftDelete, Warning: true,
			Message: fmt.Sprintf("soft delete is off for vault %s, so a deleted key is gone at once", rep.VaultName),
			Fix:     "turn soft delete on for the vault (enableSoftDelete true)"})
	}
	if p.PurgeProtected() {
		rep.Add(AccessCheck{Name: CheckPurgeProtection, OK: true, Message: fmt.Sprintf("purge protection is on for vault %s", rep.VaultName)})
	} else {
		rep.Add(AccessCheck{Name: CheckPurgeProtection, Warning: true,
			Message: fmt.Sprintf("purge protection is off for vault %s, so a deleted key can be purged before its retention period ends", rep.VaultName),
			Fix:     "turn purge protection on for the vault (enablePurgeProtection true); it cannot be turned off again"})
	}
}

// checkPermissions adds the KeyPermissions check. It asks the data plane's
// own authorize for each operation the platform needs, with the firewall
// left out (checked on its own), so that access policies and RBAC count
// exactly as they do for a real request.
func (s *Service) checkPermissions(ctx context.Context, rep *AccessReport, vault *keyhold.Resource, props *Properties, caller *keyhold.Caller, keyName, who string) error {
	open := *props
	open.PublicNetworkAccess, open.NetworkACLs = "", nil
	rq := &request{r: (&http.Request{}).WithContext(ctx), caller: caller, vault: vault, props: &open}
	scope := rq.keyScope(keyName)
	var missing []string
	for _, p := range requiredKeyPermissions {
		err := s.authorize(rq, operation{perm: p.perm, action: p.action, key: keyName}, scope)
		if keyhold.ErrorCode(err) == keyhold.EForbidden {
			missing = append(missing, p.perm)
			continue
		}
		if err != nil {
			return err
		}
	}
	if len(missing) == 0 {
		how := "access policy"
		if props.RBAC() {
			how = "role assignment"
		}
		rep.Add(AccessCheck{Name: CheckPermissions, OK: true,
			Message: fmt.Sprintf("%s holds get, wrapKey and unwrapKey on vault %s by %s", who, vault.Name, how)})
		return nil
	}
	c := AccessCheck{Name: CheckPermissions, Failure: FailureDefinite,
		Message: fmt.Sprintf("%s lacks %s on vault %s", who, andList(missing), vault.Name),
		Fix:     "grant the policy's identity Get, Wrap key and Unwrap key in the vault's access policies, or the Key Vault Crypto Service Encryption User role"}
	if props.RBAC() {
		c.Message += " (the vault uses Azure RBAC, so only role assignments count)"
		c.Fix = "assign the policy's identity the Key Vault Crypto Service Encryption User role on the vault or the key; the vault uses Azure RBAC, so access policies do not count"
	}
	rep.Add(c)
	return nil
}

// checkKey adds the checks of the key version itself.
func (s *Service) checkKey(ctx context.Context, rep *AccessReport, vault *keyhold.Resource, props *Properties, name, version string, now time.Time) error {
	label := "key " + name
	if version != "" {
		label += " version " + version
	}
	v, err := s.getVersion(ctx, vault.Name, name, version)
	if keyhold.IsNotFound(err) {
		c := AccessCheck{Name: CheckKeyExists, Failure: FailureDefinite,
			Message: fmt.Sprintf("%s does not exist in vault %s", label, vault.Name),
			Fix:     "point the policy at a key that exists (encryption.keyVault.key), or create it"}
		ks, kerr := s.keyStore()
		if kerr != nil {
			return kerr
		}
		d, derr := ks.GetDeletedKey(ctx, vault.Name, name)
		switch {
		case derr == nil:
			c.Message = fmt.Sprintf("key %s in vault %s is deleted (on %s; it can be recovered until %s)", name, vault.Name,
				d.DeletedAt.UTC().Format(time.RFC3339), d.ScheduledPurgeAt.UTC().Format(time.RFC3339))
			c.Fix = "recover the deleted key (POST /deletedkeys/" + name + "/recover, or az keyvault key recover) before its scheduled purge date"
		case !keyhold.IsNotFound(derr):
			return derr
		}
		rep.Add(c)
		return nil
	}
	if err != nil {
		return err
	}
	rep.KeyName, rep.KeyVersion = v.Name, v.Version
	label = fmt.Sprintf("key %s version %s", v.Name, v.Version)
	rep.Add(AccessCheck{Name: CheckKeyExists, OK: true, Message: fmt.Sprintf("%s exists in vault %s", label, vault.Name)})

	if v.Enabled {
		rep.Add(AccessCheck{Name: CheckKeyEnabled, OK: true, Message: label + " is enabled"})
	} else {
		rep.Add(AccessCheck{Name: CheckKeyEnabled, Failure: FailureDefinite, Message: label + " is disabled",
			Fix: "enable the key version again (attributes.enabled true)"})
	}

	switch {
	case !v.NotBefore.IsZero() && now.Before(v.NotBefore):
		rep.Add(AccessCheck{Name: CheckKeyValidity, Failure: FailureDefinite,
			Message: fmt.Sprintf("%s is not valid before %s", label, v.NotBefore.UTC().Format(time.RFC3339)),
			Fix:     "move the key's activation date (nbf) to now or earlier"})
	case !v.Expires.IsZero() && !now.Before(v.Expires):
		rep.Add(AccessCheck{Name: CheckKeyValidity, Failure: FailureDefinite,
			Message: fmt.Sprintf("%s expired on %s", label, v.Expires.UTC().Format(time.RFC3339)),
			Fix:     "move the key's expiry date (exp) into the future, or point the policy at a new key"})
	case !v.Expires.IsZero() && v.Expires.Sub(now) < ExpiryWarning:
		days := int(v.Expires.Sub(now).Hours() / 24)
		rep.Add(AccessCheck{Name: CheckKeyValidity, OK: true, Warning: true,
			Message: fmt.Sprintf("%s expires on %s, in %d days", label, v.Expires.UTC().Format(time.RFC3339), days),
			Fix:     "move the key's expiry date (exp) further out, or rotate to a new key before it expires"})
	default:
		msg := label + " has no expiry date"
		if !v.Expires.IsZero() {
			msg = fmt.Sprintf("%s is valid until %s", label, v.Expires.UTC().Format(time.RFC3339))
		}
		rep.Add(AccessCheck{Name: CheckKeyValidity, OK: true, Message: msg})
	}

	if keycrypto.IsRSA(v.Kty) && v.KeySize >= MinRSAKeySize {
		rep.Add(AccessCheck{Name: CheckKeyType, OK: true, Message: fmt.Sprintf("%s is %s %d", label, v.Kty, v.KeySize)})
	} else {
		what := v.Kty
		if keycrypto.IsRSA(v.Kty) {
			what = fmt.Sprintf("%s %d", v.Kty, v.KeySize)
		}
		rep.Add(AccessCheck{Name: CheckKeyType, Failure: FailureDefinite,
			Message: fmt.Sprintf("%s is %s; a customer key must be RSA or RSA-HSM of at least %d bits", label, what, MinRSAKeySize),
			Fix:     fmt.Sprintf("create an RSA or RSA-HSM key of %d, 3072 or 4096 bits and point the policy at it", MinRSAKeySize)})
	}

	var lacking []string
	for _, op := range []string{keycrypto.OpWrapKey, keycrypto.OpUnwrapKey} {
		if !keycrypto.HasKeyOp(v.KeyOps, op) {
			lacking = append(lacking, op)
		}
	}
	if len(lacking) == 0 {
		rep.Add(AccessCheck{Name: CheckKeyOperations, OK: true, Message: label + " permits wrapKey and unwrapKey"})
	} else {
		rep.Add(AccessCheck{Name: CheckKeyOperations, Failure: FailureDefinite,
			Message: fmt.Sprintf("%s does not permit %s (key_ops %s)", label, andList(lacking), strings.Join(v.KeyOps, ",")),
			Fix:     "add wrapKey and unwrapKey to the key's permitted operations (key_ops)"})
	}

	// The data plane's own verdict has the last word, so that the report
	// can never call a key usable that a wrap or unwrap would refuse.
	if rep.Usable() {
		for _, op := range []string{keycrypto.OpWrapKey, keycrypto.OpUnwrapKey} {
			if err := usable(v, op, now); err != nil {
				rep.Add(AccessCheck{Name: CheckKeyUsable, Failure: FailureDefinite,
					Message: fmt.Sprintf("vault %s refuses %s with %s: %s", vault.Name, op, label, keyhold.ErrorMessage(err)),
					Fix:     "make the key version enabled, within its nbf/exp dates and permitting wrapKey and unwrapKey"})
				break
			}
		}
	}
	return nil
}

// callerFor is the caller the data plane would see for principal: its
// tenant, client id and the groups it belongs to, directly or not.
func (s *Service) callerFor(ctx context.Context, p *keyhold.Principal) (*keyhold.Caller, error) {
	var groups []string
	seen := map[string]bool{strings.ToLower(p.ID): true}
	queue := []string{p.ID}
	for len(queue) > 0 {
		id := queue[0]
		queue = queue[1:]
		parents, err := s.cfg.Store.ListMemberships(ctx, id)
		if keyhold.IsNotFound(err) {
			continue
		}
		if err != nil {
			return nil, err
		}
		for _, g := range parents {
			if !seen[strings.ToLower(g)] {
				seen[strings.ToLower(g)] = true
				groups = append(groups, g)
				queue = append(queue, g)
			}
		}
	}
	return &keyhold.Caller{Principal: p, TenantID: p.TenantID, GroupIDs: groups, ClientID: p.AppID}, nil
}

// andList joins words as "a", "a and b", "a, b and c".
func andList(words []string) string {
	switch len(words) {
	case 0:
		return ""
	case 1:
		return words[0]
	}
	return strings.Join(words[:len(words)-1], ", ") + " and " + words[len(words)-1]
}
