package main

import (
	"bytes"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/keyhold/keyhold"
	"github.com/keyhold/keyhold/client"
	"github.com/keyhold/keyhold/dataverse/dataversetest"
)

const dataEnvID = "00000000-0000-0000-0000-0000000000d1"

// newDataHarness runs the CLI against the real data API over SQLite, with
// the fake's token endpoint.
func newDataHarness(t *testing.T) (*harness, *dataversetest.Envs) {
	t.Helper()
	envs := dataversetest.New(t)
	envs.Add(t, dataEnvID, fakeTenant, keyhold.WrapCustomer)
	data := envs.Service().Handler()
	mux := http.NewServeMux()
	adminTokens(mux)
	mux.HandleFunc("GET /subscriptions", func(w http.ResponseWriter, r *http.Request) {
		reply(w, 200, map[string]any{"value": []client.Subscription{{ID: "/subscriptions/" + fakeSub, SubscriptionID: fakeSub, DisplayName: "Keyhold", State: "Enabled"}}})
	})
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		tok, _ := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		if audienceOf(tok) != client.AudienceData {
			azErr(w, 401, "InvalidAuthenticationToken", "wrong audience")
			return
		}
		c := &keyhold.Caller{Principal: &keyhold.Principal{ID: spID, TenantID: fakeTenant}, TenantID: fakeTenant, Audience: client.AudienceData}
		data.ServeHTTP(w, r.WithContext(keyhold.WithCaller(r.Context(), c)))
	})
	h := serveHarness(t, mux)
	h.login()
	h.env[envEnvVar] = dataEnvID
	return h, envs
}

func TestDataCommands(t *testing.T) {
	h, envs := newDataHarness(t)

	out := h.ok("data", "table", "create", "--name", "accounts", "--column", "name:String:required", "--column", "revenue:Decimal", "--column", "logo:File")
	if !strings.Contains(out, "accountsid") || !strings.Contains(out, "name:String:required,revenue:Decimal,logo:File") {
		t.Errorf("table create:\n%s", out)
	}
	out = h.ok("data", "table", "list", "-o", "json")
	var tables []client.DataTable
	if err := json.Unmarshal([]byte(out), &tables); err != nil || len(tables) != 1 || tables[0].Name != "accounts" {
		t.Fatalf("table list -o json: %v\n%s", err, out)
	}

	out = h.ok("data", "row", "create", "--table", "accounts", "--data", `{"name":"Contoso","revenue":1.5}`, "-o", "json")
	var row client.DataRow
	if err := json.Unmarshal([]byte(out), &row); err != nil {
		t.Fatalf("row create -o json: %v\n%s", err, out)
	}
	id, _ := row["accountsid"].(string)
	rowFile := filepath.Join(h.dir, "row.json")
	os.WriteFile(rowFile, []byte(`{"name":"Fabrikam"}`), 0o600)
	h.ok("data", "row", "create", "--table", "accounts", "--data", "@"+rowFile)

	out = h.ok("data", "row", "get", "--table", "accounts", "--id", id)
	if !strings.Contains(out, "Contoso") || !strings.Contains(out, `W/"1"`) || !strings.Contains(out, "REVENUE") {
		t.Errorf("row get:\n%s", out)
	}
	h.ok("data", "row", "update", "--table", "accounts", "--id", id, "--data", `{"revenue":2}`, "--if-match", `W/"1"`)
	out = h.ok("data", "row", "list", "--table", "accounts", "--page-size", "1")
	if lines := strings.Split(strings.TrimSpace(out), "\n"); len(lines) != 3 || !strings.Contains(out, "Fabrikam") || !strings.Contains(out, `W/"2"`) {
		t.Errorf("row list:\n%s", out)
	}

	content := bytes.Repeat([]byte("logo bytes "), 50_000)
	in := filepath.Join(h.dir, "logo.png")
	os.WriteFile(in, content, 0o600)
	out = h.ok("data", "file", "upload", "--table", "accounts", "--id", id, "--column", "logo", "--file", in, "--content-type", "image/png")
	if !strings.Contains(out, "logo.png") || !strings.Contains(out, "550000") {
		t.Errorf("file upload:\n%s", out)
	}
	dl := filepath.Join(h.dir, "out.png")
	h.ok("data", "file", "download", "--table", "accounts", "--id", id, "--column", "logo", "--out", dl)
	if got, _ := os.ReadFile(dl); !bytes.Equal(got, content) {
		t.Errorf("downloaded %d bytes, want the %d uploaded", len(got), len(content))
	}

	tests := []refusal{
		{"stale etag", []string{"data", "row", "update", "--table", "accounts", "--id", id, "--data", `{"revenue":3}`, "--if-match", `W/"1"`}, 1, "0x80060882"},
		{"unknown column", []string{"data", "row", "create", "--table", "accounts", "--data", `{"name":"x","color":"red"}`}, 1, "Invalid property 'color'"},
		{"bad data", []string{"data", "row", "create", "--table", "accounts", "--data", `[1]`}, 2, "JSON object"},
		{"no table", []string{"data", "row", "list"}, 2, "--table is required"},
		{"bad column flag", []string{"data", "table", "create", "--name", "x", "--column", "justname"}, 2, "NAME:TYPE"},
		{"missing row", []string{"data", "row", "get", "--table", "accounts", "--id", "22222222-2222-4222-8222-222222222222"}, 1, "does not exist"},
		{"delete without --yes", []string{"data", "table", "delete", "--name", "accounts"}, 2, "--yes"},
		{"missing file", []string{"data", "file", "download", "--table", "accounts", "--id", "22222222-2222-4222-8222-222222222222", "--column", "logo", "--out", filepath.Join(h.dir, "none")}, 1, "holds no file"},
	}
	h.refuses(t, tests)
	if _, err := os.Stat(filepath.Join(h.dir, "none")); !os.IsNotExist(err) {
		t.Errorf("a failed download left its file: %v", err)
	}

	envs.Lock(dataEnvID, "access to key k1 was removed")
	code, _, errOut := h.run("data", "row", "list", "--table", "accounts")
	if code != 1 || !strings.Contains(errOut, "EnvironmentLocked") || !strings.Contains(errOut, "access to key k1 was removed") {
		t.Errorf("locked: exit %d, %q", code, errOut)
	}
	envs.Unlock(dataEnvID)

	h.ok("data", "row", "delete", "--table", "accounts", "--id", id, "--yes")
	h.ok("data", "table", "delete", "--name", "accounts", "--yes")
	if out := h.ok("data", "table", "list"); strings.Contains(out, "accounts") {
		t.Errorf("table list after delete:\n%s", out)
	}
	if out := h.ok("data", "--help"); !strings.Contains(out, "table") || !strings.Contains(out, "row") || !strings.Contains(out, "file") {
		t.Errorf("data --help:\n%s", out)
	}
	if out := h.ok("data", "row", "update", "--help"); !strings.Contains(out, "--if-match") {
		t.Errorf("row update --help:\n%s", out)
	}
}
