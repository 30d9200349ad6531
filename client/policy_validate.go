package client

import (
	"context"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// PolicyCheck is one check of a policy validation, as the server made it.
type PolicyCheck struct {
	Name    string `json:"name"`
	OK      bool   `json:"ok"`
	Message string `json:"message"`
	Fix     string `json:"fix,omitempty"`
	// Failure is "Definite" or "Unreachable" for a failure that stops the
	// policy's identity from using its key, empty otherwise.
	Failure string `json:"failure,omitempty"`
	// Warning marks a check that needs attention without blocking access.
	Warning bool `json:"warning,omitempty"`
}

// PolicyValidation is the result of validating an enterprise policy: every
// check that Microsoft's ValidateKeyVaultForCMK script makes, and the
// health they give the policy.
type PolicyValidation struct {
	PolicyID     string        `json:"policyId"`
	Passed       bool          `json:"passed"`
	HealthStatus string        `json:"healthStatus"`
	Reason       string        `json:"reason"`
	Definite     bool          `json:"definite,omitempty"`
	VaultID      string        `json:"vaultId,omitempty"`
	KeyName      string        `json:"keyName,omitempty"`
	KeyVersion   string        `json:"keyVersion,omitempty"`
	PrincipalID  string        `json:"principalId,omitempty"`
	CheckedAt    time.Time     `json:"checkedAt"`
	Checks       []PolicyCheck `json:"checks"`
}

// Failed returns the checks that did not pass.
func (v *PolicyValidation) Failed() []PolicyCheck {
	var out []PolicyCheck
	for _, c := range v.Checks {
		if !c.OK {
			out = append(out, c)
		}
	}
	return out
}

// ValidatePolicy asks the server to run every check of the enterprise policy
// with resource id policyID: that it is an Encryption policy with a managed
// identity, that its vault exists with soft delete and purge protection and
// lets the identity through its firewall, that the identity holds get,
// wrapKey and unwrapKey, and that the key exists, is enabled, unexpired, RSA
// of at least 2048 bits and permits wrapKey and unwrapKey. Failed checks are
// not an error: they come back in the result, each with its fix. The caller
// needs read access to the policy (403 otherwise); a policy that does not
// exist is a 404 *Error.
func (c *Client) ValidatePolicy(ctx context.Context, policyID string) (*PolicyValidation, error) {
	var out PolicyValidation
	path := "keyhold/v1/policies/validate?id=" + url.QueryEscape(strings.TrimSpace(policyID))
	if _, err := c.Do(ctx, http.MethodGet, AudienceARM, path, nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}
