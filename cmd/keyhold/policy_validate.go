package main

import (
	"context"
	"fmt"
	"io"
	"strings"

	"github.com/keyhold/keyhold/client"
)

// policyValidateCommand is `keyhold policy validate ID`; the policy noun
// lists it among its verbs.
func policyValidateCommand() *command {
	return &command{
		name:    "validate",
		summary: "check that a policy's identity can use its key, as ValidateKeyVaultForCMK does; exit 1 if a check fails",
		args:    "POLICY-ID [flags]",
		long: "Runs every check of Microsoft's ValidateKeyVaultForCMK script on the server: the policy is of kind\n" +
			"Encryption with a system-assigned identity; its vault exists with soft delete and purge protection\n" +
			"and lets the identity through its firewall; the identity holds Get, Wrap key and Unwrap key (access\n" +
			"policy) or Key Vault Crypto Service Encryption User (RBAC); the key exists, is enabled, within its\n" +
			"activation and expiry dates, RSA of at least 2048 bits, and permits wrapKey and unwrapKey.\n" +
			"Each check prints PASS, WARN or FAIL with what was found, and each failure with its fix.\n" +
			"POLICY-ID is the policy's resource id; you need read access to it.",
		examples: []string{
			"keyhold policy validate /subscriptions/SUB/resourceGroups/rg-contoso/providers/Microsoft.PowerPlatform/enterprisePolicies/ep-contoso",
			"keyhold policy validate POLICY-ID -o json",
		},
		run: cmdPolicyValidate,
	}
}

// cmdPolicyValidate runs `keyhold policy validate POLICY-ID`. It prints
// every check and returns an error, so that the exit code is 1, when any
// check failed.
func cmdPolicyValidate(ctx context.Context, a *app, args []string) error {
	if len(args) != 1 {
		return usagef("policy validate takes one argument, the policy's resource id (/subscriptions/.../providers/Microsoft.PowerPlatform/enterprisePolicies/NAME)")
	}
	id := strings.TrimSpace(args[0])
	if !strings.HasPrefix(id, "/") || !strings.Contains(strings.ToLower(id), "/providers/microsoft.powerplatform/enterprisepolicies/") {
		return usagef("%q is not an enterprise policy's resource id; it looks like /subscriptions/SUB/resourceGroups/RG/providers/Microsoft.PowerPlatform/enterprisePolicies/NAME", id)
	}
	c, _, err := a.connect()
	if err != nil {
		return err
	}
	v, err := c.ValidatePolicy(ctx, id)
	if err != nil {
		return err
	}
	if a.g.output == "json" {
		if err := writeJSON(a.stdout, v); err != nil {
			return err
		}
	} else {
		printValidation(a.stdout, v)
	}
	if failed := v.Failed(); len(failed) > 0 {
		return fmt.Errorf("policy validation failed: %d of %d checks failed; the policy's health would be %s", len(failed), len(v.Checks), v.HealthStatus)
	}
	return nil
}

// printValidation writes a validation as the script does: one line per
// check, its fix under each one that needs attention, then the health.
// Server text is sanitized so that it cannot drive the terminal.
func printValidation(w io.Writer, v *client.PolicyValidation) {
	fmt.Fprintf(w, "Validating enterprise policy %s\n", oneLine(v.PolicyID))
	for _, c := range v.Checks {
		result := "PASS"
		switch {
		case !c.OK:
			result = "FAIL"
		case c.Warning:
			result = "WARN"
		}
		fmt.Fprintf(w, "%s  %s: %s\n", result, oneLine(c.Name), oneLine(c.Message))
		if (!c.OK || c.Warning) && c.Fix != "" {
			fmt.Fprintf(w, "      fix: %s\n", oneLine(c.Fix))
		}
	}
	fmt.Fprintf(w, "Health: %s (%s)\n", oneLine(v.HealthStatus), oneLine(v.Reason))
}
