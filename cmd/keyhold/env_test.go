package main

import (
	"context"
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/keyhold/keyhold/internal/testenv"
	"github.com/keyhold/keyhold/server"
)

// newEnvHarness runs the CLI against a real server, signed in as the
// bootstrap Global Administrator (a platform administrator).
func newEnvHarness(t *testing.T) (*keyHarness, *testenv.Env) {
	t.Helper()
	dir := t.TempDir()
	e := testenv.Start(t, testenv.WithDir(filepath.Join(dir, "data")), testenv.WithConfig(func(c *server.Config) {
		c.Getenv = func(string) string { return "" }
		c.ShutdownTimeout = 5 * time.Second
	}))
	h := &keyHarness{t: t, dir: dir, env: map[string]string{"KEYHOLD_CONFIG": filepath.Join(dir, "profile.json"), "HOME": dir}}
	h.ok("login", "--bootstrap", e.Server.BootstrapFile())
	return h, e
}

func wantAll(t *testing.T, what, got string, words ...string) {
	t.Helper()
	for _, w := range words {
		if !strings.Contains(got, w) {
			t.Errorf("%s lacks %q:\n%s", what, w, got)
		}
	}
}

func TestEnvCommands(t *testing.T) {
	h, e := newEnvHarness(t)

	wantAll(t, "env --help", h.ok("env", "--help"), "create", "list", "show", "delete", "reenable", "history", "role", "settings")
	wantAll(t, "env create --help", h.ok("env", "create", "--help"), "--name NAME", "--region REGION", "--type TYPE", "--managed", "-o, --output")
	if code, _, errOut := h.run("env", "create", "--name", "x", "--region", "unitedstates"); code != exitUsage || !strings.Contains(errOut, "--type is required") {
		t.Errorf("create without --type: exit %d, %s", code, errOut)
	}
	if code, _, errOut := h.run("env", "create", "--name", "x", "--region", "unitedstates", "--type", "Galactic"); code != exitError || !strings.Contains(errOut, "Galactic") {
		t.Errorf("create with a bad type: exit %d, %s", code, errOut)
	}

	var created struct {
		Name       string `json:"name"`
		Properties struct {
			EnvironmentSku string `json:"environmentSku"`
		} `json:"properties"`
	}
	if err := json.Unmarshal([]byte(h.ok("env", "create", "--name", "Sales EU", "--region", "europe", "--type", "Sandbox", "--managed", "-o", "json")), &created); err != nil {
		t.Fatal(err)
	}
	id := created.Name
	if id == "" || created.Properties.EnvironmentSku != "Sandbox" {
		t.Fatalf("created = %+v", created)
	}

	list := h.ok("env", "list")
	wantAll(t, "env list", list, "NAME", "ID", "TYPE", "REGION", "STATE", "KEY MANAGED BY", "ENCRYPTION",
		"Sales EU", id, "Sandbox (managed)", "europe", "Enabled", "Microsoft", "NotApplicable")
	var listed []map[string]any
	if err := json.Unmarshal([]byte(h.ok("env", "list", "-o", "json")), &listed); err != nil || len(listed) != 1 {
		t.Errorf("env list -o json = %v, %v", listed, err)
	}

	show := h.ok("env", "show", id)
	wantAll(t, "env show", show, "KEY MANAGED BY", "Microsoft", "the platform's key", "ENCRYPTION", "westeurope")
	if strings.Contains(show, "Environment disabled") {
		t.Errorf("an enabled environment shows as disabled:\n%s", show)
	}
	if code, _, errOut := h.run("env", "show"); code != exitUsage || !strings.Contains(errOut, "needs the environment's ID") {
		t.Errorf("show without an id: exit %d, %s", code, errOut)
	}

	// Locked: show leads with the reason; re-enable unlocks.
	if err := e.Server.Environments().Lock(context.Background(), id, "the key cmk was disabled"); err != nil {
		t.Fatal(err)
	}
	show = h.ok("env", "show", id)
	if first, _, _ := strings.Cut(show, "\n"); !strings.HasPrefix(first, "Environment disabled:") || !strings.Contains(first, "the key cmk was disabled") {
		t.Errorf("locked show starts with %q, want the Environment disabled line", first)
	}
	wantAll(t, "locked show", show, "Disabled", "DISABLED AT")
	wantAll(t, "locked list", h.ok("env", "list"), "Disabled")
	wantAll(t, "reenable", h.ok("env", "reenable", id), "Sales EU", "enabled again")
	if code, _, errOut := h.run("env", "reenable", id); code != exitError || !strings.Contains(errOut, "nothing to re-enable") {
		t.Errorf("re-enable twice: exit %d, %s", code, errOut)
	}

	hist := h.ok("env", "history", id)
	wantAll(t, "history", hist, "TYPE", "STATE", "STARTED", "ENDED", "ERROR", "Re-enable", "Disable", "Succeeded")
	if lines := strings.Split(strings.TrimSpace(hist), "\n"); len(lines) != 4 || !strings.HasPrefix(lines[1], "Re-enable") {
		t.Errorf("history, newest first:\n%s", hist)
	}
	var ops []struct {
		State struct{ ID string } `json:"state"`
	}
	if err := json.Unmarshal([]byte(h.ok("env", "history", id, "-o", "json")), &ops); err != nil || len(ops) != 3 {
		t.Errorf("history -o json = %+v, %v", ops, err)
	}

	// Roles.
	uid, _ := e.CreateUser("maker", "Maker-password-42!")
	wantAll(t, "role grant", h.ok("env", "role", "grant", id, "--principal", uid, "--role", "user"), uid, "Environment User")
	wantAll(t, "role list", h.ok("env", "role", "list", id), "PRINCIPAL", uid, "Environment User")
	if code, _, errOut := h.run("env", "role", "grant", id, "--principal", uid, "--role", "owner"); code != exitError || !strings.Contains(errOut, "owner") {
		t.Errorf("grant an unknown role: exit %d, %s", code, errOut)
	}
	wantAll(t, "role revoke", h.ok("env", "role", "revoke", id, "--principal", uid), "Revoked")
	if out := h.ok("env", "role", "list", id, "-o", "json"); strings.TrimSpace(out) != "[]" {
		t.Errorf("roles after revoke = %s", out)
	}

	// Settings.
	wantAll(t, "settings show", h.ok("env", "settings", "show"), "AUTO REENABLE", "RETENTION", "false")
	if code, _, errOut := h.run("env", "settings", "set"); code != exitUsage || !strings.Contains(errOut, "nothing to change") {
		t.Errorf("settings set without flags: exit %d, %s", code, errOut)
	}
	if code, _, errOut := h.run("env", "settings", "set", "--retention", "maybe"); code != exitUsage || !strings.Contains(errOut, "true or false") {
		t.Errorf("settings set --retention maybe: exit %d, %s", code, errOut)
	}
	h.ok("env", "settings", "set", "--auto-reenable", "true")
	var st struct{ AutoReenable, Retention bool }
	if err := json.Unmarshal([]byte(h.ok("env", "settings", "set", "--retention", "true", "-o", "json")), &st); err != nil || !st.AutoReenable || !st.Retention {
		t.Errorf("settings after two sets = %+v, %v; want both on", st, err)
	}

	// Delete.
	if code, _, errOut := h.run("env", "delete", id); code != exitUsage || !strings.Contains(errOut, "--yes") {
		t.Errorf("delete without --yes off a terminal: exit %d, %s", code, errOut)
	}
	wantAll(t, "delete", h.ok("env", "delete", id, "--yes"), "Deleted environment Sales EU")
	if code, _, errOut := h.run("env", "show", id); code != exitError || !strings.Contains(errOut, "could not be found") {
		t.Errorf("show after delete: exit %d, %s", code, errOut)
	}
}
