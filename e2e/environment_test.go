package e2e

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/keyvault/armkeyvault"
	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/resources/armresources"
	"github.com/Azure/azure-sdk-for-go/sdk/security/keyvault/azkeys"

	"github.com/keyhold/keyhold"
	"github.com/keyhold/keyhold/identity"
	"github.com/keyhold/keyhold/internal/testenv"
	"github.com/keyhold/keyhold/server"
)

// cmk is a customer's key set up as the seed's key vault administrator does
// it: a vault with purge protection, an RSA key, an Encryption policy whose
// identity holds get, wrapKey and unwrapKey on the vault.
type cmk struct {
	vault, policyID, systemID, principal string
	access                               armkeyvault.VaultAccessPolicyParameters
}

func (e *env) setupCMK(t *testing.T, group, vault, policyName string) *cmk {
	t.Helper()
	ctx := context.Background()
	sub, tenant := e.Boot.SubscriptionID, e.Boot.TenantID
	owner, opts := e.ServicePrincipal(), e.ARMOptions()
	v := e.createVault(t, group, vault, false)
	if _, err := e.vaultClient(vault, owner).CreateKey(ctx, "cmk", azkeys.CreateKeyParameters{Kty: to.Ptr(azkeys.KeyTypeRSA), KeySize: to.Ptr(int32(2048))}, nil); err != nil {
		t.Fatal(err)
	}
	generic, _ := armresources.NewClient(sub, owner, opts)
	id := "/subscriptions/" + sub + "/resourceGroups/" + group + "/providers/Microsoft.PowerPlatform/enterprisePolicies/" + policyName
	pp, err := generic.BeginCreateOrUpdateByID(ctx, id, "2020-10-30", armresources.GenericResource{
		Location: to.Ptr("unitedstates"), Kind: to.Ptr("Encryption"),
		Identity: &armresources.Identity{Type: to.Ptr(armresources.ResourceIdentityTypeSystemAssigned)},
		Properties: map[string]any{"encryption": map[string]any{"state": "Enabled",
			"keyVault": map[string]any{"id": *v.ID, "key": map[string]any{"name": "cmk"}}}},
	}, nil)
	if err != nil {
		t.Fatalf("create policy: %v", err)
	}
	pol, err := pp.PollUntilDone(ctx, fastPoll)
	if err != nil {
		t.Fatal(err)
	}
	c := &cmk{vault: vault, policyID: id, principal: *pol.Identity.PrincipalID,
		systemID: pol.Properties.(map[string]any)["systemId"].(string)}
	c.access = armkeyvault.VaultAccessPolicyParameters{Properties: &armkeyvault.VaultAccessPolicyProperties{
		AccessPolicies: []*armkeyvault.AccessPolicyEntry{{TenantID: to.Ptr(tenant), ObjectID: to.Ptr(c.principal),
			Permissions: &armkeyvault.Permissions{Keys: []*armkeyvault.KeyPermissions{
				to.Ptr(armkeyvault.KeyPermissionsGet), to.Ptr(armkeyvault.KeyPermissionsWrapKey), to.Ptr(armkeyvault.KeyPermissionsUnwrapKey)}}}},
	}}
	e.setAccess(t, group, c, armkeyvault.AccessPolicyUpdateKindAdd)
	e.waitPolicyHealth(t, c, "Healthy")
	return c
}

func (e *env) setAccess(t *testing.T, group string, c *cmk, kind armkeyvault.AccessPolicyUpdateKind) {
	t.Helper()
	vaults, _ := armkeyvault.NewVaultsClient(e.Boot.SubscriptionID, e.ServicePrincipal(), e.ARMOptions())
	if _, err := vaults.UpdateAccessPolicy(context.Background(), group, c.vault, kind, c.access, nil); err != nil {
		t.Fatal(err)
	}
}

func (e *env) waitPolicyHealth(t *testing.T, c *cmk, want string) {
	t.Helper()
	generic, _ := armresources.NewClient(e.Boot.SubscriptionID, e.ServicePrincipal(), e.ARMOptions())
	waitFor(t, "policy "+want, func() bool {
		p, err := generic.GetByID(context.Background(), c.policyID, "2020-10-30", nil)
		return err == nil && p.Properties.(map[string]any)["healthStatus"] == want
	})
}

const bapEnvs = "/providers/Microsoft.BusinessAppPlatform/environments"

// writer keeps updating a few rows (each PATCH conditional on the version it
// read) and creating new ones while a lifecycle operation runs, so the test
// can show that no request failed and no update was lost.
type writer struct {
	e          *env
	token, url string
	ids        []string
	stop       chan struct{}
	done       chan struct{}

	mu       sync.Mutex
	last     map[string]float64 // row id -> revenue last written
	created  map[string]string  // new row id -> name
	writes   int
	failures []string
}

func (e *env) startWriter(token, dataURL string, ids []string) *writer {
	w := &writer{e: e, token: token, url: strings.TrimSuffix(e.Server.URL(), "/") + dataURL, ids: ids,
		stop: make(chan struct{}), done: make(chan struct{}), last: map[string]float64{}, created: map[string]string{}}
	go w.run()
	return w
}

func (w *writer) call(method, path string, body string, hdr map[string]string, out any) (int, error) {
	req, err := http.NewRequest(method, w.url+path, strings.NewReader(body))
	if err != nil {
		return 0, err
	}
	req.Header.Set("Authorization", "Bearer "+w.token)
	req.Header.Set("Content-Type", "application/json")
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := w.e.HTTP.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	if out != nil {
		return resp.StatusCode, json.NewDecoder(resp.Body).Decode(out)
	}
	return resp.StatusCode, nil
}

func (w *writer) fail(format string, args ...any) {
	w.mu.Lock()
	w.failures = append(w.failures, fmt.Sprintf(format, args...))
	w.mu.Unlock()
}

func (w *writer) run() {
	defer close(w.done)
	for n := 0; ; n++ {
		select {
		case <-w.stop:
			return
		default:
		}
		id := w.ids[n%len(w.ids)]
		var row map[string]any
		if code, err := w.call("GET", "account("+id+")", "", nil, &row); err != nil || code != http.StatusOK {
			w.fail("read %s: %d %v", id, code, err)
			continue
		}
		revenue := float64(1_000_000 + n)
		code, err := w.call("PATCH", "account("+id+")", fmt.Sprintf(`{"revenue":%d}`, int(revenue)),
			map[string]string{"If-Match": row["@odata.etag"].(string)}, nil)
		if err != nil || code >= 300 {
			w.fail("update %s: %d %v", id, code, err)
			continue
		}
		name := fmt.Sprintf("written during the operation %d", n)
		var created map[string]any
		if code, err := w.call("POST", "account", fmt.Sprintf(`{"name":%q,"revenue":1}`, name), nil, &created); err != nil || code != http.StatusCreated {
			w.fail("create: %d %v", code, err)
			continue
		}
		w.mu.Lock()
		w.last[id] = revenue
		w.created[created["accountid"].(string)] = name
		w.writes++
		w.mu.Unlock()
	}
}

// finish stops the writer and fails the test if any request failed.
func (w *writer) finish(t *testing.T, step string, want map[string]string) map[string]float64 {
	t.Helper()
	close(w.stop)
	<-w.done
	if len(w.failures) > 0 {
		t.Fatalf("%s: %d of the writer's requests failed, first: %s", step, len(w.failures), w.failures[0])
	}
	if w.writes == 0 {
		t.Fatalf("%s: the writer wrote nothing while the operation ran", step)
	}
	for id, name := range w.created {
		want[id] = name
	}
	return w.last
}

// lifecycle posts a link or unlink and follows operation-location until the
// operation ends, as Microsoft's scripts do.
func (e *env) lifecycle(t *testing.T, token, envID, verb, systemID string) {
	t.Helper()
	resp, b := e.Do("POST", bapEnvs+"/"+envID+"/enterprisePolicies/Encryption/"+verb+"?&api-version=2019-10-01", token,
		map[string]string{"SystemId": systemID}, nil)
	if resp.StatusCode != http.StatusAccepted {
		t.Fatalf("%s: %d %s", verb, resp.StatusCode, b)
	}
	loc := resp.Header.Get("operation-location")
	if loc == "" || resp.Header.Get("Retry-After") == "" {
		t.Fatalf("%s: no operation-location or Retry-After", verb)
	}
	var op struct {
		State struct{ ID string }      `json:"state"`
		Error struct{ Message string } `json:"error"`
	}
	// Re-encrypting 10,000 rows under the race detector on a busy machine
	// takes a while; the bound only stops a stuck operation.
	waitForUpTo(t, 10*time.Minute, verb+" operation", func() bool {
		e.Do("GET", loc, token, nil, &op)
		return op.State.ID == "Succeeded" || op.State.ID == "Failed"
	})
	if op.State.ID != "Succeeded" {
		t.Fatalf("%s operation %s: %s", verb, op.State.ID, op.Error.Message)
	}
}

// TestEnvironmentCMKWalk walks the seed's platform administrator: an
// environment with rows under the platform key is added to a policy (its data
// re-encrypted online), locked when key access is revoked, re-enabled when it
// is restored, moved to a second policy's key, and reverted to the platform
// key; every row reads back equal after each step.
func TestEnvironmentCMKWalk(t *testing.T) {
	e := start(t, "")
	walkEnvironment(t, e, func(secrets [][]byte) {
		files, _ := filepath.Glob(filepath.Join(e.Dir, "keyhold.db*"))
		if len(files) < 2 {
			t.Fatalf("database files = %v, want the main file and its WAL", files)
		}
		for _, f := range files {
			b, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			scan(t, filepath.Base(f), b, secrets)
		}
	})
}

// TestEnvironmentCMKWalkPostgres is the same walk on PostgreSQL, scanning
// every table's data for secrets.
func TestEnvironmentCMKWalkPostgres(t *testing.T) {
	dsn, schema, db := testenv.PostgresSchema(t)
	e := &env{testenv.Start(t, testenv.WithCapturedLogs(), testenv.WithConfig(func(c *server.Config) {
		c.DatabaseURL = dsn
		c.RegistrationDelay = 50 * time.Millisecond
	}))}
	walkEnvironment(t, e, func(secrets [][]byte) {
		ctx := context.Background()
		tables, err := db.QueryContext(ctx, `SELECT table_name FROM information_schema.tables WHERE table_schema = $1`, schema)
		if err != nil {
			t.Fatal(err)
		}
		var names []string
		for tables.Next() {
			var n string
			tables.Scan(&n)
			names = append(names, n)
		}
		tables.Close()
		if len(names) < 10 {
			t.Fatalf("schema %s has %d tables", schema, len(names))
		}
		for _, n := range names {
			// Each row as its text form: every column, bytea as hex.
			rows, err := db.QueryContext(ctx, fmt.Sprintf(`SELECT t::text FROM %s.%s t`, schema, n))
			if err != nil {
				t.Fatal(err)
			}
			var all []byte
			for rows.Next() {
				var line string
				rows.Scan(&line)
				all = append(all, line...)
			}
			rows.Close()
			scan(t, "table "+n, all, secrets)
		}
	})
}

// scan fails the test if b holds any of secrets.
func scan(t *testing.T, where string, b []byte, secrets [][]byte) {
	t.Helper()
	for i, sec := range secrets {
		if bytes.Contains(b, sec) {
			t.Errorf("%s holds secret %d (a root key or row content)", where, i)
		}
	}
}

// walkEnvironment is the platform administrator's walk on server e; scanStore
// looks for the secrets it is given in the server's stored data.
func walkEnvironment(t *testing.T, e *env, scanStore func(secrets [][]byte)) {
	rows := 10000
	if testing.Short() {
		rows = 500
	}
	ctx := context.Background()
	e.createGroup(t, "rg-cmk")
	e.registerPowerPlatform(t)
	first := e.setupCMK(t, "rg-cmk", "kv-first", "ep-first")
	second := e.setupCMK(t, "rg-cmk", "kv-second", "ep-second")

	// The Power Platform administrator holds Reader on both policies.
	const ppPassword = "Pp-admin-password-42!"
	ppID, ppUPN := e.CreateUser("ppadmin", ppPassword, keyhold.RolePowerPlatformAdministrator)
	for _, c := range []*cmk{first, second} {
		e.assignRole(t, c.policyID, readerRoleID, ppID)
	}
	pp := e.User(ppUPN, ppPassword)
	bap := e.Token(pp, identity.AudiencePlatform)

	// An environment with rows under the platform key.
	envID := e.createEnvironment(t, bap, "Contoso Sandbox", "Sandbox")
	data := "/environments/" + envID + "/api/data/v9.2/"
	if resp, b := e.Do("POST", data+"tables", bap, map[string]any{"name": "account",
		"columns": []map[string]any{{"name": "name", "type": "String"}, {"name": "revenue", "type": "Integer"}}}, nil); resp.StatusCode != http.StatusCreated {
		t.Fatalf("create table: %d %s", resp.StatusCode, b)
	}
	want := map[string]string{} // row id -> name
	var mu sync.Mutex
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for w := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < rows; i += 8 {
				name := fmt.Sprintf("Contoso %05d confidential", i)
				var row map[string]any
				resp, b := e.Do("POST", data+"account", bap, map[string]any{"name": name, "revenue": i}, &row)
				if resp.StatusCode != http.StatusCreated {
					errs <- fmt.Errorf("create row %d: %d %s", i, resp.StatusCode, b)
					return
				}
				mu.Lock()
				want[row["accountid"].(string)] = name
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	revenue := map[string]float64{} // last revenue the writers set, by row id
	checkRows := func(step string) {
		t.Helper()
		got := map[string]string{}
		next := data + "account" // $top would cap the total, as OData says
		for next != "" {
			var page struct {
				Value []map[string]any `json:"value"`
				Next  string           `json:"@odata.nextLink"`
			}
			resp, b := e.Do("GET", next, bap, nil, &page)
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("%s: list rows: %d %s", step, resp.StatusCode, b)
			}
			for _, r := range page.Value {
				id := r["accountid"].(string)
				got[id] = r["name"].(string)
				if want, ok := revenue[id]; ok && r["revenue"] != want {
					t.Fatalf("%s: row %s revenue = %v, want %v: an update was lost", step, id, r["revenue"], want)
				}
			}
			next = page.Next
		}
		if len(got) != len(want) {
			t.Fatalf("%s: %d rows, want %d", step, len(got), len(want))
		}
		for id, name := range want {
			if got[id] != name {
				t.Fatalf("%s: row %s = %q, want %q", step, id, got[id], name)
			}
		}
	}
	envView := func() map[string]any {
		var v struct {
			Properties map[string]any `json:"properties"`
		}
		e.Do("GET", bapEnvs+"/"+envID+"?api-version=2021-04-01", bap, nil, &v)
		return v.Properties
	}
	keyManagedBy := func() string { return envView()["protectionStatus"].(map[string]any)["keyManagedBy"].(string) }
	checkRows("under the platform key")

	hot := make([]string, 0, 16)
	for id := range want {
		if hot = append(hot, id); len(hot) == 16 {
			break
		}
	}
	during := func(step string, op func()) {
		t.Helper()
		w := e.startWriter(bap, data, hot)
		op()
		for id, v := range w.finish(t, step, want) {
			revenue[id] = v
		}
	}

	// Add the environment to the first policy, with a writer at work:
	// linked, encrypted, every row equal, no write failed or lost.
	during("link", func() { e.lifecycle(t, bap, envID, "link", strings.ToUpper(first.systemID)) })
	if got := keyManagedBy(); got != "Customer" {
		t.Fatalf("keyManagedBy after link = %s", got)
	}
	if status := envView()["encryption"].(map[string]any)["status"]; status != "Encrypted" {
		t.Fatalf("encryption status after link = %v", status)
	}
	checkRows("after link")

	// Revoke the policy identity's access: data requests are refused.
	e.setAccess(t, "rg-cmk", first, armkeyvault.AccessPolicyUpdateKindRemove)
	waitFor(t, "environment locked", func() bool {
		resp, _ := e.Do("GET", data+"account?$top=1", bap, nil, nil)
		return resp.StatusCode == http.StatusForbidden
	})
	resp, b := e.Do("GET", data+"account?$top=1", bap, nil, nil)
	if !strings.Contains(string(b), "EnvironmentLocked") {
		t.Fatalf("locked data request: %d %s", resp.StatusCode, b)
	}
	// The data path is refused first; the stored state follows.
	waitFor(t, "runtime state Disabled", func() bool {
		return envView()["states"].(map[string]any)["runtime"].(map[string]any)["id"] == "Disabled"
	})

	// Restore it and re-enable: nothing is lost.
	e.setAccess(t, "rg-cmk", first, armkeyvault.AccessPolicyUpdateKindAdd)
	e.waitPolicyHealth(t, first, "Healthy")
	if resp, b := e.Do("POST", bapEnvs+"/"+envID+"/enable?api-version=2021-04-01", bap, nil, nil); resp.StatusCode >= 300 {
		t.Fatalf("re-enable: %d %s", resp.StatusCode, b)
	}
	checkRows("after re-enable")

	// Change key: link to the second policy while linked.
	during("swap", func() { e.lifecycle(t, bap, envID, "link", second.systemID) })
	if pid := envView()["enterprisePolicies"].(map[string]any)["customerManagedKeys"].(map[string]any)["id"]; !strings.EqualFold(fmt.Sprint(pid), second.policyID) {
		t.Fatalf("linked policy after swap = %v", pid)
	}
	checkRows("after swap")

	// Revert to the platform key.
	during("unlink", func() { e.lifecycle(t, bap, envID, "unlink", second.systemID) })
	if got := keyManagedBy(); got != "Microsoft" {
		t.Fatalf("keyManagedBy after unlink = %s", got)
	}
	checkRows("after unlink")

	// No row content and no root-key bytes in the database files or the log.
	gens, err := e.Server.Store().ListGenerations(ctx, envID)
	if err != nil {
		t.Fatal(err)
	}
	var secrets [][]byte
	for _, g := range gens {
		if g.State == keyhold.GenerationDestroyed {
			continue
		}
		k, err := e.Server.Environments().Keyring().Get(ctx, envID, g.Generation)
		if err != nil {
			t.Fatal(err)
		}
		raw := k.Reveal()
		// Raw bytes, and the text forms a database or a log could hold them in
		// (PostgreSQL shows bytea as \x + hex).
		secrets = append(secrets, bytes.Clone(raw), []byte(hex.EncodeToString(raw)),
			[]byte(base64.StdEncoding.EncodeToString(raw)), []byte(base64.RawURLEncoding.EncodeToString(raw)))
		k.Wipe()
	}
	if len(secrets) == 0 {
		t.Fatal("no live root-key generation to look for")
	}
	secrets = append(secrets, []byte("confidential"))
	scan(t, "the server log", []byte(e.Logs.String()), secrets)
	scanStore(secrets)
}
