package deploy

import (
	"encoding/json"
	"net/http"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/keyhold/keyhold/seal"
)

func TestDeployRunsInDependencyOrder(t *testing.T) {
	h := newHarness(t)
	code, body, hdr := h.do(hOwner, "PUT", depPath("d1"), deployBody(gadgetTemplate, map[string]any{"slow": false}))
	if code != http.StatusCreated {
		t.Fatalf("PUT = %d %v", code, body)
	}
	if got := body["properties"].(map[string]any)["provisioningState"]; got != StateAccepted {
		t.Errorf("provisioningState in the 201 = %v, want Accepted", got)
	}
	if loc := hdr.Get("Azure-AsyncOperation"); !strings.Contains(loc, depPath("d1")[len("/subscriptions/"+hSub+"/resourcegroups/"+hGroup):]+"/operationStatuses/") {
		t.Errorf("Azure-AsyncOperation = %q", loc)
	}
	done := h.waitState("d1", StateSucceeded)
	props := done["properties"].(map[string]any)
	var gotIDs []string
	for _, r := range props["outputResources"].([]any) {
		gotIDs = append(gotIDs, r.(map[string]any)["id"].(string))
	}
	wantIDs := []string{gadgetID("a"), gadgetID("b"), gadgetID("c")}
	if strings.Join(gotIDs, ",") != strings.Join(wantIDs, ",") {
		t.Errorf("outputResources = %v, want %v", gotIDs, wantIDs)
	}
	if got := props["outputs"].(map[string]any)["serialC"].(map[string]any)["value"]; got != "SN-c" {
		t.Errorf("outputs.serialC = %v, want SN-c", got)
	}
	if got := props["parameters"].(map[string]any)["slow"]; got.(map[string]any)["type"] != "Bool" || got.(map[string]any)["value"] != false {
		t.Errorf("parameters.slow = %v", got)
	}
	// c got b's serial through reference().
	code, c, _ := h.do(hOwner, "GET", gadgetID("c")+"?api-version="+slowAPI, nil)
	if code != http.StatusOK || c["properties"].(map[string]any)["fromB"] != "SN-b" {
		t.Errorf("gadget c = %d %v", code, c)
	}
	// Operations, in the path armresources' DeploymentOperationsClient uses.
	code, ops, _ := h.do(hOwner, "GET", "/subscriptions/"+hSub+"/resourcegroups/"+hGroup+"/deployments/d1/operations", nil)
	if code != http.StatusOK || len(ops["value"].([]any)) != 3 {
		t.Fatalf("operations = %d %v", code, ops)
	}
	first := ops["value"].([]any)[0].(map[string]any)["properties"].(map[string]any)
	if first["provisioningState"] != StateSucceeded || first["statusCode"] != "Created" ||
		first["targetResource"].(map[string]any)["id"] != gadgetID("a") {
		t.Errorf("first operation = %v", first)
	}
	// The deployment is listed, and the list filters by state.
	code, list, _ := h.do(hOwner, "GET", "/subscriptions/"+hSub+"/resourcegroups/"+hGroup+"/providers/Microsoft.Resources/deployments", nil)
	if code != http.StatusOK || len(list["value"].([]any)) != 1 {
		t.Errorf("list = %d %v", code, list)
	}
	code, list, _ = h.do(hOwner, "GET", "/subscriptions/"+hSub+"/resourcegroups/"+hGroup+"/providers/Microsoft.Resources/deployments?$filter=provisioningState%20eq%20'Failed'", nil)
	if code != http.StatusOK || len(list["value"].([]any)) != 0 {
		t.Errorf("list of Failed = %d %v", code, list)
	}
}

func TestFailingResourceFailsTheDeployment(t *testing.T) {
	h := newHarness(t)
	code, body, hdr := h.do(hOwner, "PUT", depPath("bad"), deployBody(gadgetTemplate, map[string]any{"slow": false, "failC": true}))
	if code != http.StatusCreated {
		t.Fatalf("PUT = %d %v", code, body)
	}
	done := h.waitState("bad", StateFailed)
	e := done["properties"].(map[string]any)["error"].(map[string]any)
	if e["code"] != "DeploymentFailed" || !strings.Contains(e["message"].(string), "list deployment operations") {
		t.Errorf("error = %v", e)
	}
	d := e["details"].([]any)[0].(map[string]any)
	if d["code"] != "GadgetRefused" || d["message"] != "The gadget 'c' refuses to be made." || d["target"] != gadgetID("c") {
		t.Errorf("details[0] = %v", d)
	}
	// The async status says so too, as the SDK's poller reads it.
	loc := hdr.Get("Azure-AsyncOperation")
	path := loc[strings.Index(loc, "/subscriptions/"):]
	code, st, _ := h.do(hOwner, "GET", path, nil)
	if code != http.StatusOK || st["status"] != StateFailed || st["error"].(map[string]any)["code"] != "DeploymentFailed" {
		t.Errorf("status = %d %v", code, st)
	}
	_, ops, _ := h.do(hOwner, "GET", depPath("bad")+"/operations", nil)
	last := ops["value"].([]any)[2].(map[string]any)["properties"].(map[string]any)
	if last["provisioningState"] != StateFailed || last["statusCode"] != "BadRequest" ||
		last["statusMessage"].(map[string]any)["error"].(map[string]any)["code"] != "GadgetRefused" {
		t.Errorf("failed operation = %v", last)
	}
}

func TestDeploymentRequestErrors(t *testing.T) {
	h := newHarness(t)
	tests := []struct {
		name      string
		principal string
		path      string
		body      any
		status    int
		code      string
		msg       string
	}{
		{"reader", hReader, depPath("d"), deployBody(gadgetTemplate, nil), http.StatusForbidden, "AuthorizationFailed", "Microsoft.Resources/deployments/write"},
		{"bad name", hOwner, depPath("bad%20name"), deployBody(gadgetTemplate, nil), http.StatusBadRequest, "InvalidDeploymentName", "is not valid"},
		{"missing group", hOwner, strings.Replace(depPath("d"), hGroup, "nope", 1), deployBody(gadgetTemplate, nil), http.StatusNotFound, "ResourceGroupNotFound", "'nope'"},
		{"complete mode", hOwner, depPath("d"), map[string]any{"properties": map[string]any{"template": json.RawMessage(gadgetTemplate), "mode": "Complete"}}, http.StatusBadRequest, "InvalidDeploymentMode", "Incremental"},
		{"no properties", hOwner, depPath("d"), map[string]any{}, http.StatusBadRequest, "InvalidRequestContent", "properties"},
		{"body not JSON", hOwner, depPath("d"), "{oops", http.StatusBadRequest, "InvalidRequestContent", "line 1, column 2"},
		{"template link", hOwner, depPath("d"), map[string]any{"properties": map[string]any{"templateLink": map[string]any{"uri": "https://x"}, "mode": "Incremental"}}, http.StatusBadRequest, "InvalidTemplate", "templateLink"},
		{"seed with placeholders as text", hOwner, depPath("d"), map[string]any{"properties": map[string]any{"template": mustRead(t, "testdata/seed_template.json"), "mode": "Incremental"}},
			http.StatusBadRequest, "InvalidTemplate", "line 9, column 22: replace the placeholders such as {EnterprisePolicyName}"},
		{"parameter type", hOwner, depPath("d"), deployBody(gadgetTemplate, map[string]any{"slow": "yes"}), http.StatusBadRequest, "InvalidTemplate", "Expected a value of type 'Bool'"},
		{"preflight", hOwner, depPath("d"), deployBody(`{"resources": [{"type": "Keyhold.Test/gadgets", "apiVersion": "2024-01-01", "name": "x",
			"scope": "/subscriptions/99999999-0000-0000-0000-000000000000/resourceGroups/other"}]}`, nil), http.StatusForbidden, "AuthorizationFailed", "Keyhold.Test/gadgets/write"},
		{"old api-version", hOwner, depPath("d") + "?api-version=2014-01-01", deployBody(gadgetTemplate, nil), http.StatusBadRequest, "InvalidApiVersionParameter", "2021-04-01"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, body, _ := h.do(tt.principal, "PUT", tt.path, tt.body)
			if code != tt.status {
				t.Fatalf("status = %d, want %d: %v", code, tt.status, body)
			}
			e := body["error"].(map[string]any)
			if e["code"] != tt.code || !strings.Contains(e["message"].(string), tt.msg) {
				t.Errorf("error = %v, want %s containing %q", e, tt.code, tt.msg)
			}
		})
	}
	// Nothing was stored by any of them.
	code, list, _ := h.do(hOwner, "GET", "/subscriptions/"+hSub+"/resourcegroups/"+hGroup+"/providers/Microsoft.Resources/deployments", nil)
	if code != http.StatusOK || len(list["value"].([]any)) > 1 {
		t.Errorf("list after refused PUTs = %d %v", code, list)
	}
}

func mustRead(t *testing.T, path string) string {
	t.Helper()
	b, err := readFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestValidate(t *testing.T) {
	h := newHarness(t)
	code, body, _ := h.do(hOwner, "POST", depPath("v")+"/validate", deployBody(gadgetTemplate, nil))
	if code != http.StatusOK {
		t.Fatalf("validate = %d %v", code, body)
	}
	res := body["properties"].(map[string]any)["validatedResources"].([]any)
	if len(res) != 3 || res[2].(map[string]any)["id"] != gadgetID("c") {
		t.Errorf("validatedResources = %v", res)
	}
	code, body, _ = h.do(hOwner, "POST", depPath("v")+"/validate", deployBody(`{"resources": [{"type": "A.B/c", "apiVersion": "1", "name": "x", "dependsOn": ["x"]}]}`, nil))
	if code != http.StatusBadRequest || body["error"].(map[string]any)["code"] != "InvalidTemplate" {
		t.Errorf("validate of a bad template = %d %v", code, body)
	}
	if code, _, _ := h.do(hOwner, "GET", depPath("v"), nil); code != http.StatusNotFound {
		t.Errorf("validate stored a deployment: GET = %d", code)
	}
	if h.gadgets.puts.Load() != 0 {
		t.Errorf("validate deployed %d gadgets", h.gadgets.puts.Load())
	}
}

func TestActiveDeploymentCannotBeReplacedOrDeletedButCanBeCanceled(t *testing.T) {
	g := gadgets{entered: make(chan string, 1), release: make(chan struct{})}
	h := startHarness(t, filepath.Join(t.TempDir(), "k.db"), g)
	if code, body, _ := h.do(hOwner, "PUT", depPath("d"), deployBody(gadgetTemplate, nil)); code != http.StatusCreated {
		t.Fatalf("PUT = %d %v", code, body)
	}
	waitEntered(t, g, "b")
	code, body, _ := h.do(hOwner, "PUT", depPath("d"), deployBody(gadgetTemplate, nil))
	if code != http.StatusConflict || body["error"].(map[string]any)["code"] != "DeploymentActive" {
		t.Errorf("second PUT = %d %v", code, body)
	}
	if code, body, _ := h.do(hOwner, "DELETE", depPath("d"), nil); code != http.StatusConflict {
		t.Errorf("DELETE while running = %d %v", code, body)
	}
	if code, body, _ := h.do(hReader, "POST", depPath("d")+"/cancel", nil); code != http.StatusForbidden {
		t.Errorf("cancel by a reader = %d %v", code, body)
	}
	if code, body, _ := h.do(hOwner, "POST", depPath("d")+"/cancel", nil); code != http.StatusNoContent {
		t.Fatalf("cancel = %d %v", code, body)
	}
	h.waitState("d", StateCanceled)
	if code, _, _ := h.do(hOwner, "GET", gadgetID("c")+"?api-version="+slowAPI, nil); code != http.StatusNotFound {
		t.Errorf("gadget c after cancel: GET = %d, want 404", code)
	}
	if code, body, _ := h.do(hOwner, "POST", depPath("d")+"/cancel", nil); code != http.StatusConflict {
		t.Errorf("second cancel = %d %v", code, body)
	}
	if code, _, _ := h.do(hOwner, "DELETE", depPath("d"), nil); code != http.StatusOK {
		t.Errorf("DELETE = %d", code)
	}
	if code, _, _ := h.do(hOwner, "GET", depPath("d"), nil); code != http.StatusNotFound {
		t.Errorf("GET after DELETE = %d", code)
	}
	if code, _, _ := h.do(hOwner, "DELETE", depPath("d"), nil); code != http.StatusNoContent {
		t.Errorf("second DELETE = %d", code)
	}
}

func waitEntered(t *testing.T, g gadgets, name string) {
	t.Helper()
	select {
	case got := <-g.entered:
		if got != name {
			t.Fatalf("slow gadget %s started, want %s", got, name)
		}
	case <-time.After(10 * time.Second):
		t.Fatalf("the slow gadget %s never started", name)
	}
}

// TestResumeAfterRestart stops the server while a slow resource is being
// deployed; the next start resumes the deployment where it stopped: the
// resource in flight is tried again, the one before it is not.
func TestResumeAfterRestart(t *testing.T) {
	path := filepath.Join(t.TempDir(), "k.db")
	g1 := gadgets{entered: make(chan string, 1), release: make(chan struct{}), puts: &atomic.Int64{}}
	h1 := startHarness(t, path, g1)
	if code, body, _ := h1.do(hOwner, "PUT", depPath("d"), deployBody(gadgetTemplate, nil)); code != http.StatusCreated {
		t.Fatalf("PUT = %d %v", code, body)
	}
	waitEntered(t, g1, "b")
	h1.stop()
	if got := g1.puts.Load(); got != 2 {
		t.Fatalf("before the stop %d gadgets were put, want 2 (a, and b in flight)", got)
	}

	// The record says Running, with a done and b in flight.
	g2 := gadgets{puts: &atomic.Int64{}}
	h2 := startHarness(t, path, g2)
	done := h2.waitState("d", StateSucceeded)
	if got := g2.puts.Load(); got != 2 {
		t.Errorf("after the restart %d gadgets were put, want 2 (b again, and c)", got)
	}
	props := done["properties"].(map[string]any)
	if got := props["outputs"].(map[string]any)["serialC"].(map[string]any)["value"]; got != "SN-c" {
		t.Errorf("outputs.serialC = %v", got)
	}
	_, ops, _ := h2.do(hOwner, "GET", depPath("d")+"/operations", nil)
	if n := len(ops["value"].([]any)); n != 3 {
		t.Errorf("%d operations after the resume, want 3 (the retried one reused): %v", n, ops)
	}
	for _, op := range ops["value"].([]any) {
		if st := op.(map[string]any)["properties"].(map[string]any)["provisioningState"]; st != StateSucceeded {
			t.Errorf("operation %v", op)
		}
	}
}

// TestResumeWaitsForALiveClaim: a deployment another live process holds is
// left alone until that process stops renewing its claim.
func TestResumeWaitsForALiveClaim(t *testing.T) {
	path := filepath.Join(t.TempDir(), "k.db")
	g1 := gadgets{entered: make(chan string, 1), release: make(chan struct{})}
	h1 := startHarness(t, path, g1)
	if code, body, _ := h1.do(hOwner, "PUT", depPath("d"), deployBody(gadgetTemplate, nil)); code != http.StatusCreated {
		t.Fatalf("PUT = %d %v", code, body)
	}
	waitEntered(t, g1, "b")
	// Another process on the same store, while h1 still renews its claim.
	h2 := New(Config{Store: h1.store, ARM: h1.arm.Handler(), LeaseTTL: 300 * time.Millisecond})
	h2.resume(t.Context())
	h2.mu.Lock()
	n := len(h2.running)
	h2.mu.Unlock()
	if n != 0 {
		t.Fatalf("a second process took over a deployment whose owner is alive")
	}
	close(g1.release)
	h1.waitState("d", StateSucceeded)
	h2.Close()
}

func TestSecureParametersAreNeverShown(t *testing.T) {
	h := newHarness(t)
	tmpl := `{"parameters": {"secret": {"type": "securestring"}, "plain": {"type": "string"}},
	  "resources": [{"type": "Keyhold.Test/gadgets", "apiVersion": "2024-01-01", "name": "s", "properties": {"len": "[length(parameters('secret'))]"}}]}`
	if code, body, _ := h.do(hOwner, "PUT", depPath("sec"), deployBody(tmpl, map[string]any{"secret": "hunter2-secret", "plain": "visible"})); code != http.StatusCreated {
		t.Fatalf("PUT = %d %v", code, body)
	}
	done := h.waitState("sec", StateSucceeded)
	b, _ := json.Marshal(done)
	if strings.Contains(string(b), "hunter2-secret") {
		t.Errorf("the deployment shows a secure value: %s", b)
	}
	params := done["properties"].(map[string]any)["parameters"].(map[string]any)
	if _, has := params["secret"].(map[string]any)["value"]; has || params["secret"].(map[string]any)["type"] != "SecureString" || params["plain"].(map[string]any)["value"] != "visible" {
		t.Errorf("parameters = %v", params)
	}
	if _, g, _ := h.do(hOwner, "GET", gadgetID("s")+"?api-version="+slowAPI, nil); g["properties"].(map[string]any)["len"] != float64(14) {
		t.Errorf("the secure value did not reach the template: %v", g)
	}

	// With a seal key the stored value is sealed, and opens again.
	key, err := seal.NewKey(seal.GenerateMasterKey())
	if err != nil {
		t.Fatal(err)
	}
	s := New(Config{Store: h.store, ARM: h.arm.Handler(), Seal: key})
	defer s.Close()
	rec := &record{}
	if err := s.sealParams(rec, "/d", map[string]any{"secret": "hunter2-secret", "plain": "visible"}, map[string]string{"secret": "SecureString", "plain": "String"}); err != nil {
		t.Fatal(err)
	}
	stored, _ := json.Marshal(rec)
	if strings.Contains(string(stored), "hunter2") || !strings.Contains(string(stored), "sealed:") {
		t.Errorf("stored record = %s", stored)
	}
	got, err := s.givenParams(rec, "/d")
	if err != nil || got["secret"] != "hunter2-secret" || got["plain"] != "visible" {
		t.Errorf("givenParams = %v, %v", got, err)
	}
	if _, err := s.givenParams(rec, "/other"); err == nil {
		t.Error("a sealed value opened under another deployment's label")
	}
}
