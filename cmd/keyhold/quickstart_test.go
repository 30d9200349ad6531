package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/keyhold/keyhold/internal/testenv"
	"github.com/keyhold/keyhold/server"
)

// runCLI runs the CLI with env as its environment and returns the
// exit code, stdout and stderr.
func runCLI(t *testing.T, env map[string]string, args ...string) (int, string, string) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	a := &app{stdin: strings.NewReader(""), stdout: &stdout, stderr: &stderr,
		getenv: func(k string) string { return env[k] }, now: time.Now, pollInterval: 20 * time.Millisecond}
	code := a.run(context.Background(), args)
	return code, stdout.String(), stderr.String()
}

// checkSteps fails t unless out shows want commands and each ended ✓.
func checkSteps(t *testing.T, out string, want int) {
	t.Helper()
	var cmds, oks int
	for _, line := range strings.Split(out, "\n") {
		switch {
		case strings.HasPrefix(line, "$ "):
			cmds++
		case strings.HasPrefix(line, "  ✓ "):
			oks++
		case strings.Contains(line, "✗"):
			t.Errorf("a step failed: %s", line)
		}
	}
	if cmds < want || oks != cmds {
		t.Errorf("%d steps printed, %d ended ✓; want at least %d, all ✓\n%s", cmds, oks, want, out)
	}
}

func TestQuickstart(t *testing.T) {
	dir := t.TempDir()
	srv := testenv.Start(t, testenv.WithDir(filepath.Join(dir, "data")), testenv.WithConfig(func(c *server.Config) {
		c.RegistrationDelay = 50 * time.Millisecond
		c.Getenv = func(string) string { return "" }
		c.ShutdownTimeout = 5 * time.Second
	})).Server
	env := map[string]string{"KEYHOLD_CONFIG": filepath.Join(dir, "profile.json"), "HOME": dir}

	t.Run("bootstrap, cleaned up", func(t *testing.T) {
		code, out, errOut := runCLI(t, env, "quickstart", "--bootstrap", srv.BootstrapFile())
		if code != 0 {
			t.Fatalf("exit %d\nstdout:\n%s\nstderr:\n%s", code, out, errOut)
		}
		// 18 story steps and 5 cleanup steps (environment, two policies,
		// user, vault, group).
		checkSteps(t, out, 18+6)
		for _, want := range []string{
			"EnvironmentLocked", "[####################] 100% Succeeded", "Power Platform Administrator",
			"vault soft-deleted", "Done in",
		} {
			if !strings.Contains(out, want) {
				t.Errorf("output lacks %q:\n%s", want, out)
			}
		}
		// The administrator's password is never printed; its file is gone
		// with the user.
		boot, _ := readBootstrap(srv.BootstrapFile())
		if strings.Contains(out+errOut, boot.AdminPassword) {
			t.Error("the output holds the bootstrap administrator's password")
		}
		if files, _ := filepath.Glob(filepath.Join(dir, "quickstart-*.password")); len(files) != 0 {
			t.Errorf("password files left after cleanup: %v", files)
		}
	})

	t.Run("profile, kept", func(t *testing.T) {
		if code, _, errOut := runCLI(t, env, "login", "--bootstrap", srv.BootstrapFile()); code != 0 {
			t.Fatalf("login: %s", errOut)
		}
		code, out, errOut := runCLI(t, env, "quickstart", "--keep")
		if code != 0 {
			t.Fatalf("exit %d\nstdout:\n%s\nstderr:\n%s", code, out, errOut)
		}
		checkSteps(t, out, 18)
		if strings.Contains(out, "Cleaning up") {
			t.Error("--keep cleaned up")
		}
		files, _ := filepath.Glob(filepath.Join(dir, "quickstart-*.password"))
		if len(files) != 1 {
			t.Fatalf("password files = %v, want one", files)
		}
		pw, err := os.ReadFile(files[0])
		if err != nil {
			t.Fatal(err)
		}
		if p := strings.TrimSpace(string(pw)); p == "" || strings.Contains(out, p) {
			t.Error("the platform administrator's password is empty or printed")
		}
		if fi, _ := os.Stat(files[0]); fi.Mode().Perm() != 0o600 {
			t.Errorf("password file mode = %v, want 0600", fi.Mode().Perm())
		}
		// The kept user can sign in with the password from the file.
		upn := between(out, "✓ user ", ", Power Platform Administrator")
		if code, _, errOut := runCLI(t, map[string]string{"KEYHOLD_CONFIG": filepath.Join(dir, "pp.json"), "HOME": dir},
			"login", "--server", srv.URL(), "--ca-cert", filepath.Join(dir, "data", "ca.pem"), "--username", upn,
			"--password", strings.TrimSpace(string(pw))); code != 0 {
			t.Errorf("sign-in as %q with the kept password: %s", upn, errOut)
		}
	})
}

func between(s, from, to string) string {
	_, rest, _ := strings.Cut(s, from)
	v, _, _ := strings.Cut(rest, to)
	return v
}

func TestQuickstartRefusals(t *testing.T) {
	dir := t.TempDir()
	env := map[string]string{"KEYHOLD_CONFIG": filepath.Join(dir, "profile.json"), "HOME": dir}
	for _, tc := range []struct {
		name     string
		args     []string
		wantCode int
		wantErr  string
	}{
		{"argument", []string{"quickstart", "now"}, exitUsage, `unexpected argument "now"`},
		{"no wait", []string{"quickstart", "--wait", "0s"}, exitUsage, "--wait must be positive"},
		{"missing bootstrap", []string{"quickstart", "--bootstrap", filepath.Join(dir, "nope.json")}, exitError, "reading the bootstrap file"},
		{"not logged in", []string{"quickstart"}, exitError, "no server given"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, _, errOut := runCLI(t, env, tc.args...)
			if code != tc.wantCode || !strings.Contains(errOut, tc.wantErr) {
				t.Errorf("exit %d, stderr %q; want exit %d and %q", code, errOut, tc.wantCode, tc.wantErr)
			}
		})
	}
}
