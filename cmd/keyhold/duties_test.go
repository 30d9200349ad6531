package main

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/keyhold/keyhold"
	"github.com/keyhold/keyhold/client"
)

// TestDutiesCommands walks the duties noun against a real server, signed
// in as the bootstrap Global Administrator: off by default with the
// administrator listed as exempt; a Power Platform Administrator made Key
// Vault Administrator while it is off; enforce lists that violation without
// revoking it and refuses the next such grant; relax turns it off again.
func TestDutiesCommands(t *testing.T) {
	h, e := newEnvHarness(t)
	sub := "/subscriptions/" + e.Boot.SubscriptionID

	wantAll(t, "duties --help", h.ok("duties", "--help"), "show", "enforce", "relax", "Key Vault Crypto", "setrotationpolicy", "Global Administrators are exempt")
	wantAll(t, "duties show", h.ok("duties", "show"),
		"Separation of duties is off (tenant setting: off; server --separation-of-duties: off).",
		"PRINCIPAL", "DIRECTORY ROLES", "KEY VAULT RIGHT", "SCOPE", "STATE",
		e.Boot.AdminUsername, "Global Administrator", "Owner", sub, "exempt")

	_, upn := e.CreateUser("ppadmin", "Platform-Admin-Pass-1", keyhold.RolePowerPlatformAdministrator)
	h.ok("role", "assignment", "create", "--assignee", upn, "--role", "Key Vault Administrator", "--scope", sub)

	out := h.ok("duties", "enforce")
	wantAll(t, "duties enforce", out, "Separation of duties is on (tenant setting: on;", "1 platform administrator holds a key vault right. Existing rights are not revoked",
		upn, "Power Platform Administrator", "Key Vault Administrator", "violation")

	code, _, errOut := h.run("role", "assignment", "create", "--assignee", upn, "--role", "Key Vault Crypto Officer", "--scope", sub)
	if code != exitError || !strings.Contains(errOut, "principal "+upn+" is a Power Platform Administrator; with separation of duties on, it may not also hold Key Vault Crypto Officer on "+sub) ||
		!strings.Contains(errOut, "(SeparationOfDutiesViolation)") {
		t.Errorf("a refused grant: exit %d, %s", code, errOut)
	}

	var st client.SeparationOfDuties
	if err := json.Unmarshal([]byte(h.ok("duties", "show", "-o", "json")), &st); err != nil {
		t.Fatal(err)
	}
	if !st.Enabled || !st.TenantSetting || st.ServerEnforced || len(st.Violations) != 1 || st.Violations[0].PrincipalName != upn ||
		len(st.Violations[0].KeyVaultAccess) != 1 || len(st.Exempt) != 1 || len(st.Rules.ManagementKeyPermissions) == 0 {
		t.Errorf("show -o json = %+v", st)
	}

	wantAll(t, "duties relax", h.ok("duties", "relax"), "Separation of duties is off")
	h.ok("role", "assignment", "create", "--assignee", upn, "--role", "Key Vault Crypto Officer", "--scope", sub)
	if code, _, errOut := h.run("duties", "show", "extra"); code != exitUsage || !strings.Contains(errOut, "unexpected argument") {
		t.Errorf("show with an argument: exit %d, %s", code, errOut)
	}
}
