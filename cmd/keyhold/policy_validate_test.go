package main

import (
	"bytes"
	"context"
	"encoding/json"
	"encoding/pem"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/keyhold/keyhold/client"
)

const (
	pvGood    = "/subscriptions/" + fakeSub + "/resourceGroups/rg-contoso/providers/Microsoft.PowerPlatform/enterprisePolicies/ep-good"
	pvBad     = "/subscriptions/" + fakeSub + "/resourceGroups/rg-contoso/providers/Microsoft.PowerPlatform/enterprisePolicies/ep-bad"
	pvMissing = "/subscriptions/" + fakeSub + "/resourceGroups/rg-contoso/providers/Microsoft.PowerPlatform/enterprisePolicies/ep-none"
)

// pvServer fakes the token endpoint and the validation endpoint.
func pvServer(t *testing.T) (srv *httptest.Server, caFile string) {
	t.Helper()
	checks := func(bad bool) []client.PolicyCheck {
		out := []client.PolicyCheck{
			{Name: "PolicyKind", OK: true, Message: "policy is of kind Encryption"},
			{Name: "PurgeProtection", OK: true, Message: "purge protection is on for vault kv-contoso"},
			{Name: "KeyValidityPeriod", OK: true, Warning: true, Message: "key cmk expires in 12 days", Fix: "move exp further out"},
		}
		if bad {
			out = append(out, client.PolicyCheck{Name: "KeyPermissions", Failure: "Definite",
				Message: "identity 3f2a lacks unwrapKey on vault kv-contoso\x1b[31m",
				Fix:     "grant the policy's identity Get, Wrap key and Unwrap key in the vault's access policies, or the Key Vault Crypto Service Encryption User role"})
		}
		return out
	}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /{tenant}/oauth2/v2.0/token", func(w http.ResponseWriter, r *http.Request) {
		r.ParseForm()
		if r.PostForm.Get("client_id") != spAppID || r.PostForm.Get("client_secret") != spSecretText {
			w.WriteHeader(400)
			json.NewEncoder(w).Encode(map[string]string{"error": "invalid_client", "error_description": "bad secret"})
			return
		}
		reply(w, 200, map[string]any{"token_type": "Bearer", "expires_in": 3600,
			"access_token": fakeToken(strings.TrimSuffix(r.PostForm.Get("scope"), "/.default"), 1)})
	})
	mux.HandleFunc("GET /keyhold/v1/policies/validate", func(w http.ResponseWriter, r *http.Request) {
		tok, _ := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		if audienceOf(tok) != client.AudienceARM {
			azErr(w, 401, "InvalidAuthenticationToken", "wrong audience")
			return
		}
		id := r.URL.Query().Get("id")
		switch id {
		case pvGood:
			reply(w, 200, client.PolicyValidation{PolicyID: id, Passed: true, HealthStatus: "Warning", Reason: "key cmk expires in 12 days", Checks: checks(false)})
		case pvBad:
			reply(w, 200, client.PolicyValidation{PolicyID: id, HealthStatus: "Unhealthy", Reason: "identity 3f2a lacks unwrapKey on vault kv-contoso",
				Definite: true, Checks: checks(true)})
		default:
			azErr(w, 404, "ResourceNotFound", "policy: enterprise policy "+id+" was not found")
		}
	})
	srv = httptest.NewTLSServer(mux)
	t.Cleanup(srv.Close)
	caFile = filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(caFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw}), 0o644); err != nil {
		t.Fatal(err)
	}
	return srv, caFile
}

// runPolicyValidate runs the command as the CLI's dispatcher would, with a
// service principal from the environment.
func runPolicyValidate(t *testing.T, srv *httptest.Server, ca, output string, args ...string) (int, string, string) {
	t.Helper()
	env := map[string]string{
		"KEYHOLD_CONFIG": filepath.Join(t.TempDir(), "profile.json"), "KEYHOLD_SERVER": srv.URL, "KEYHOLD_CA_CERT": ca,
		"KEYHOLD_TENANT": fakeTenant, "KEYHOLD_CLIENT_ID": spAppID, "KEYHOLD_CLIENT_SECRET": spSecretText,
	}
	var stdout, stderr bytes.Buffer
	a := &app{stdin: strings.NewReader(""), stdout: &stdout, stderr: &stderr, getenv: func(k string) string { return env[k] }, now: time.Now}
	a.g.output = output
	if err := a.resolveOutput(); err != nil {
		t.Fatal(err)
	}
	code := a.fail(cmdPolicyValidate(context.Background(), a, args))
	return code, stdout.String(), stderr.String()
}

func TestPolicyValidate(t *testing.T) {
	srv, ca := pvServer(t)
	tests := []struct {
		name       string
		output     string
		args       []string
		code       int
		stdout     string // exact, for table output
		stdoutHas  string
		stderrHas  string
		wantFailed int // for JSON output: failed checks in the document
	}{
		{name: "passes with a warning", args: []string{pvGood}, code: 0, stdout: "Validating enterprise policy " + pvGood + "\n" +
			"PASS  PolicyKind: policy is of kind Encryption\n" +
			"PASS  PurgeProtection: purge protection is on for vault kv-contoso\n" +
			"WARN  KeyValidityPeriod: key cmk expires in 12 days\n" +
			"      fix: move exp further out\n" +
			"Health: Warning (key cmk expires in 12 days)\n"},
		{name: "a failure exits 1 with the fix", args: []string{pvBad}, code: 1,
			stdoutHas: "FAIL  KeyPermissions: identity 3f2a lacks unwrapKey on vault kv-contoso [31m\n" +
				"      fix: grant the policy's identity Get, Wrap key and Unwrap key in the vault's access policies, or the Key Vault Crypto Service Encryption User role\n" +
				"Health: Unhealthy (identity 3f2a lacks unwrapKey on vault kv-contoso)\n",
			stderrHas: "keyhold: policy validation failed: 1 of 4 checks failed; the policy's health would be Unhealthy"},
		{name: "json", output: "json", args: []string{pvBad}, code: 1, wantFailed: 1, stderrHas: "policy validation failed"},
		{name: "json passing", output: "json", args: []string{pvGood}, code: 0},
		{name: "no such policy", args: []string{pvMissing}, code: 1, stderrHas: "was not found (ResourceNotFound)"},
		{name: "not an id", args: []string{"ep-good"}, code: 2, stderrHas: "is not an enterprise policy's resource id"},
		{name: "a vault id", args: []string{"/subscriptions/s/resourceGroups/rg/providers/Microsoft.KeyVault/vaults/kv"}, code: 2},
		{name: "no argument", code: 2, stderrHas: "takes one argument"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, out, errOut := runPolicyValidate(t, srv, ca, tt.output, tt.args...)
			if code != tt.code {
				t.Fatalf("exit %d, want %d\nstdout: %s\nstderr: %s", code, tt.code, out, errOut)
			}
			if tt.stdout != "" && out != tt.stdout {
				t.Errorf("stdout:\n%s\nwant:\n%s", out, tt.stdout)
			}
			if !strings.Contains(out, tt.stdoutHas) {
				t.Errorf("stdout:\n%s\nwant it to contain:\n%s", out, tt.stdoutHas)
			}
			if strings.ContainsRune(out, '\x1b') {
				t.Errorf("stdout passes an escape sequence from the server through to the terminal")
			}
			if !strings.Contains(errOut, tt.stderrHas) {
				t.Errorf("stderr %q, want it to contain %q", errOut, tt.stderrHas)
			}
			if tt.output == "json" {
				var v client.PolicyValidation
				if err := json.Unmarshal([]byte(out), &v); err != nil {
					t.Fatalf("-o json printed %q: %v", out, err)
				}
				if got := len(v.Failed()); got != tt.wantFailed || len(v.Checks) < 3 {
					t.Errorf("json has %d failed of %d checks, want %d failed", got, len(v.Checks), tt.wantFailed)
				}
			}
		})
	}
}

func TestPolicyValidateCommandHelp(t *testing.T) {
	c := policyValidateCommand()
	if c.name != "validate" || c.run == nil || !strings.Contains(c.long, "ValidateKeyVaultForCMK") || len(c.examples) == 0 {
		t.Errorf("command = %+v", c)
	}
}
