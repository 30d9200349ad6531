package main

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/keyhold/keyhold"
	"github.com/keyhold/keyhold/client"
)

// fake is a Keyhold server that fakes the few endpoints the CLI calls, with
// fixed ids so that output is stable.
type fake struct {
	t   *testing.T
	srv *httptest.Server

	mu            sync.Mutex
	tokenRequests []string // grant_type + " " + scope
	groups        map[string]client.ResourceGroup
	deletePolls   int
	providers     map[string]string
	providerGets  int
	features      map[string]string
	users         []client.User
	roles         map[string][]string // template id -> member ids
	sps           []client.ServicePrincipal
	assignments   []client.RoleAssignment
	audit         []*keyhold.AuditRecord
}

const (
	fakeTenant   = "72f988bf-86f1-41af-91ab-2d7cd011db47"
	fakeSub      = "8a7b6c5d-0000-4000-8000-000000000001"
	adminUPN     = "admin@contoso.keyhold.local"
	adminPW      = "admin-pw-123"
	spID         = "3f2a1b0c-1111-4111-8111-000000000002"
	spAppID      = "c0ffee00-2222-4222-8222-000000000003"
	spSecretText = "sp-secret-Xy9~abcdef"
)

// fakeToken is an unsigned JWT-shaped token naming its audience.
func fakeToken(aud string, n int) string {
	claims, _ := json.Marshal(map[string]any{"aud": aud, "tid": fakeTenant, "oid": spID, "n": n})
	return "eyJhbGciOiJub25lIn0." + base64.RawURLEncoding.EncodeToString(claims) + ".sig"
}

func audienceOf(tok string) string {
	m, err := client.Claims(tok)
	if err != nil {
		return ""
	}
	s, _ := m["aud"].(string)
	return s
}

func newFake(t *testing.T) *fake {
	f := &fake{
		t:         t,
		groups:    map[string]client.ResourceGroup{},
		providers: map[string]string{"Microsoft.KeyVault": "Registered", "Microsoft.PowerPlatform": "NotRegistered"},
		features:  map[string]string{},
		roles:     map[string][]string{},
		users: []client.User{{ID: "11111111-1111-4111-8111-111111111111", DisplayName: "Administrator", UserPrincipalName: adminUPN, AccountEnabled: ptr(true)},
			{ID: "22222222-2222-4222-8222-222222222222", DisplayName: "Key Vault Admin", UserPrincipalName: "kvadmin@contoso.keyhold.local", AccountEnabled: ptr(true)}},
		sps: []client.ServicePrincipal{{ID: spID, AppID: spAppID, DisplayName: "bootstrap", ServicePrincipalType: "Application"}},
	}
	prev := keyhold.AuditGenesisHash
	for i, a := range []string{"Microsoft.Resources/subscriptions/resourceGroups/write", "Microsoft.Resources/subscriptions/resourceGroups/delete"} {
		r := &keyhold.AuditRecord{Seq: int64(i + 1), Time: time.Date(2026, 5, 1, 10, i, 0, 0, time.UTC), TenantID: fakeTenant,
			PrincipalID: f.users[0].ID, PrincipalName: adminUPN, Action: a, Method: "PUT", Scope: "/subscriptions/" + fakeSub + "/resourceGroups/rg1",
			Status: 200, Result: "Succeeded", RequestID: fmt.Sprintf("req-%d", i+1), PrevHash: prev}
		r.Hash = r.ComputeHash()
		prev = r.Hash
		f.audit = append(f.audit, r)
	}
	mux := http.NewServeMux()
	f.routes(mux)
	f.srv = httptest.NewTLSServer(mux)
	t.Cleanup(f.srv.Close)
	return f
}

func ptr[T any](v T) *T { return &v }

func azErr(w http.ResponseWriter, status int, code, msg string) {
	w.Header().Set("x-ms-request-id", "fake-req-"+code)
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(map[string]any{"error": map[string]string{"code": code, "message": msg}})
}

func reply(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}

// auth wraps h so that it answers only bearer tokens for aud.
func (f *fake) auth(aud string, h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		if !ok || audienceOf(tok) != aud {
			azErr(w, 401, "InvalidAuthenticationToken", "The access token is missing or has the wrong audience.")
			return
		}
		f.mu.Lock()
		defer f.mu.Unlock()
		h(w, r)
	}
}

func (f *fake) routes(mux *http.ServeMux) {
	arm, graph := client.AudienceARM, client.AudienceGraph
	mux.HandleFunc("POST /{tenant}/oauth2/v2.0/token", func(w http.ResponseWriter, r *http.Request) {
		r.ParseForm()
		ok := false
		switch r.PostForm.Get("grant_type") {
		case "password":
			ok = r.PostForm.Get("client_id") == client.DefaultPublicClientID && strings.EqualFold(r.PostForm.Get("username"), adminUPN) && r.PostForm.Get("password") == adminPW
		case "client_credentials":
			ok = r.PostForm.Get("client_id") == spAppID && r.PostForm.Get("client_secret") == spSecretText
		}
		if !ok {
			w.WriteHeader(400)
			json.NewEncoder(w).Encode(map[string]string{"error": "invalid_grant", "error_description": "AADSTS50126: Error validating credentials due to invalid username or password."})
			return
		}
		f.mu.Lock()
		f.tokenRequests = append(f.tokenRequests, r.PostForm.Get("grant_type")+" "+r.PostForm.Get("scope"))
		n := len(f.tokenRequests)
		f.mu.Unlock()
		aud := strings.TrimSuffix(r.PostForm.Get("scope"), "/.default")
		reply(w, 200, map[string]any{"token_type": "Bearer", "expires_in": 3600, "access_token": fakeToken(aud, n)})
	})
	mux.HandleFunc("GET /subscriptions", f.auth(arm, func(w http.ResponseWriter, r *http.Request) {
		reply(w, 200, map[string]any{"value": []client.Subscription{{ID: "/subscriptions/" + fakeSub, SubscriptionID: fakeSub, DisplayName: "Keyhold", State: "Enabled"}}})
	}))
	rgPath := "/subscriptions/{sub}/resourcegroups/{rg}"
	mux.HandleFunc("PUT "+rgPath, f.auth(arm, func(w http.ResponseWriter, r *http.Request) {
		var in client.ResourceGroup
		json.NewDecoder(r.Body).Decode(&in)
		in.Name = r.PathValue("rg")
		in.ID = "/subscriptions/" + fakeSub + "/resourceGroups/" + in.Name
		in.Type = "Microsoft.Resources/resourceGroups"
		in.Properties.ProvisioningState = "Succeeded"
		f.groups[strings.ToLower(in.Name)] = in
		reply(w, 201, in)
	}))
	mux.HandleFunc("GET "+rgPath, f.auth(arm, func(w http.ResponseWriter, r *http.Request) {
		g, ok := f.groups[strings.ToLower(r.PathValue("rg"))]
		if !ok {
			azErr(w, 404, "ResourceGroupNotFound", fmt.Sprintf("Resource group '%s' could not be found.", r.PathValue("rg")))
			return
		}
		reply(w, 200, g)
	}))
	mux.HandleFunc("DELETE "+rgPath, f.auth(arm, func(w http.ResponseWriter, r *http.Request) {
		if _, ok := f.groups[strings.ToLower(r.PathValue("rg"))]; !ok {
			azErr(w, 404, "ResourceGroupNotFound", fmt.Sprintf("Resource group '%s' could not be found.", r.PathValue("rg")))
			return
		}
		delete(f.groups, strings.ToLower(r.PathValue("rg")))
		w.Header().Set("Location", "/subscriptions/"+fakeSub+"/operationresults/del1?api-version=2021-04-01")
		w.Header().Set("Retry-After", "0")
		w.WriteHeader(202)
	}))
	mux.HandleFunc("GET /subscriptions/{sub}/operationresults/{op}", f.auth(arm, func(w http.ResponseWriter, r *http.Request) {
		f.deletePolls++
		if f.deletePolls < 2 {
			w.Header().Set("Retry-After", "0")
			w.WriteHeader(202)
			return
		}
		w.WriteHeader(200)
	}))
	mux.HandleFunc("GET /subscriptions/{sub}/resourcegroups", f.auth(arm, func(w http.ResponseWriter, r *http.Request) {
		var gs []client.ResourceGroup
		for _, g := range f.groups {
			gs = append(gs, g)
		}
		sort.Slice(gs, func(i, j int) bool { return gs[i].Name < gs[j].Name })
		reply(w, 200, map[string]any{"value": orEmpty(gs)})
	}))
	provider := func(ns string) client.Provider {
		return client.Provider{ID: "/subscriptions/" + fakeSub + "/providers/" + ns, Namespace: ns, RegistrationState: f.providers[ns]}
	}
	mux.HandleFunc("GET /subscriptions/{sub}/providers", f.auth(arm, func(w http.ResponseWriter, r *http.Request) {
		reply(w, 200, map[string]any{"value": []client.Provider{provider("Microsoft.KeyVault"), provider("Microsoft.PowerPlatform")}})
	}))
	mux.HandleFunc("GET /subscriptions/{sub}/providers/{ns}", f.auth(arm, func(w http.ResponseWriter, r *http.Request) {
		ns := r.PathValue("ns")
		if _, ok := f.providers[ns]; !ok {
			azErr(w, 404, "InvalidResourceNamespace", fmt.Sprintf("The resource namespace '%s' is invalid.", ns))
			return
		}
		f.providerGets++
		if f.providers[ns] == "Registering" && f.providerGets >= 2 {
			f.providers[ns] = "Registered"
		}
		reply(w, 200, provider(ns))
	}))
	mux.HandleFunc("POST /subscriptions/{sub}/providers/{ns}/register", f.auth(arm, func(w http.ResponseWriter, r *http.Request) {
		ns := r.PathValue("ns")
		if _, ok := f.providers[ns]; !ok {
			azErr(w, 404, "InvalidResourceNamespace", fmt.Sprintf("The resource namespace '%s' is invalid.", ns))
			return
		}
		f.providers[ns] = "Registering"
		reply(w, 200, provider(ns))
	}))
	feature := func(ns, name string) client.Feature {
		ft := client.Feature{ID: "/subscriptions/" + fakeSub + "/providers/Microsoft.Features/providers/" + ns + "/features/" + name, Name: ns + "/" + name, Type: "Microsoft.Features/providers/features"}
		ft.Properties.State = f.features[ns+"/"+name]
		if ft.Properties.State == "" {
			ft.Properties.State = "NotRegistered"
		}
		return ft
	}
	mux.HandleFunc("POST /subscriptions/{sub}/providers/Microsoft.Features/providers/{ns}/features/{name}/register", f.auth(arm, func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Query().Get("api-version") != "2014-08-01-preview" {
			azErr(w, 400, "InvalidApiVersionParameter", "wrong api-version")
			return
		}
		f.features[r.PathValue("ns")+"/"+r.PathValue("name")] = "Registered"
		reply(w, 200, feature(r.PathValue("ns"), r.PathValue("name")))
	}))
	mux.HandleFunc("GET /subscriptions/{sub}/providers/Microsoft.Features/providers/{ns}/features/{name}", f.auth(arm, func(w http.ResponseWriter, r *http.Request) {
		reply(w, 200, feature(r.PathValue("ns"), r.PathValue("name")))
	}))
	mux.HandleFunc("GET /subscriptions/{sub}/providers/Microsoft.Features/features", f.auth(arm, func(w http.ResponseWriter, r *http.Request) {
		var fs []client.Feature
		for k := range f.features {
			ns, name, _ := strings.Cut(k, "/")
			fs = append(fs, feature(ns, name))
		}
		sort.Slice(fs, func(i, j int) bool { return fs[i].Name < fs[j].Name })
		reply(w, 200, map[string]any{"value": orEmpty(fs)})
	}))
	defs := func() []client.RoleDefinition {
		var out []client.RoleDefinition
		for _, d := range [][3]string{{"acdd72a7-3385-48ef-bd42-f606fba81ae7", "Reader", "View all resources."}, {"b24988ac-6180-42a0-ab88-20f7382dd24c", "Contributor", "Manage all resources."}} {
			var rd client.RoleDefinition
			rd.ID = "/subscriptions/" + fakeSub + "/providers/Microsoft.Authorization/roleDefinitions/" + d[0]
			rd.Name, rd.Type = d[0], "Microsoft.Authorization/roleDefinitions"
			rd.Properties.RoleName, rd.Properties.Description, rd.Properties.Type = d[1], d[2], "BuiltInRole"
			out = append(out, rd)
		}
		return out
	}
	mux.HandleFunc("GET /subscriptions/{sub}/providers/Microsoft.Authorization/roleDefinitions", f.auth(arm, func(w http.ResponseWriter, r *http.Request) {
		reply(w, 200, map[string]any{"value": defs()}) // ignores $filter, as a server may
	}))
	mux.HandleFunc("PUT /subscriptions/{sub}/providers/Microsoft.Authorization/roleAssignments/{name}", f.auth(arm, func(w http.ResponseWriter, r *http.Request) {
		var in client.RoleAssignment
		json.NewDecoder(r.Body).Decode(&in)
		in.Name = "0b5c2f4e-3f0a-4d2b-9e55-3c1d7a9f1e21" // stable for golden files
		in.ID = "/subscriptions/" + fakeSub + "/providers/Microsoft.Authorization/roleAssignments/" + in.Name
		in.Type = "Microsoft.Authorization/roleAssignments"
		in.Properties.Scope = "/subscriptions/" + fakeSub
		f.assignments = append(f.assignments, in)
		reply(w, 201, in)
	}))
	mux.HandleFunc("GET /subscriptions/{sub}/providers/Microsoft.Authorization/roleAssignments", f.auth(arm, func(w http.ResponseWriter, r *http.Request) {
		reply(w, 200, map[string]any{"value": orEmpty(f.assignments)})
	}))
	mux.HandleFunc("DELETE /subscriptions/{sub}/providers/Microsoft.Authorization/roleAssignments/{name}", f.auth(arm, func(w http.ResponseWriter, r *http.Request) {
		for i, a := range f.assignments {
			if a.Name == r.PathValue("name") {
				f.assignments = append(f.assignments[:i], f.assignments[i+1:]...)
				reply(w, 200, a)
				return
			}
		}
		w.WriteHeader(204)
	}))
	mux.HandleFunc("GET /keyhold/v1/audit", f.auth(arm, func(w http.ResponseWriter, r *http.Request) {
		var out []*keyhold.AuditRecord
		for _, rec := range f.audit {
			if p := r.URL.Query().Get("principal"); p == "" || p == rec.PrincipalID {
				out = append(out, rec)
			}
		}
		reply(w, 200, map[string]any{"value": orEmpty(out)})
	}))
	mux.HandleFunc("GET /keyhold/v1/audit/verify", f.auth(arm, func(w http.ResponseWriter, r *http.Request) {
		last, err := keyhold.VerifyAuditChain(nil, f.audit)
		if err != nil {
			azErr(w, 409, "AuditChainBroken", keyhold.ErrorMessage(err))
			return
		}
		reply(w, 200, map[string]any{"verified": true, "records": len(f.audit), "lastHash": last.Hash})
	}))
	findUser := func(id string) int {
		for i, u := range f.users {
			if strings.EqualFold(u.ID, id) || strings.EqualFold(u.UserPrincipalName, id) {
				return i
			}
		}
		return -1
	}
	mux.HandleFunc("POST /v1.0/users", f.auth(graph, func(w http.ResponseWriter, r *http.Request) {
		var in struct {
			DisplayName       string `json:"displayName"`
			UserPrincipalName string `json:"userPrincipalName"`
			PasswordProfile   struct {
				Password string `json:"password"`
			} `json:"passwordProfile"`
		}
		json.NewDecoder(r.Body).Decode(&in)
		if in.PasswordProfile.Password == "" {
			azErr(w, 400, "Request_BadRequest", "A password is required.")
			return
		}
		if findUser(in.UserPrincipalName) >= 0 {
			azErr(w, 400, "Request_BadRequest", "Another object with the same value for property userPrincipalName already exists.")
			return
		}
		u := client.User{ID: "33333333-3333-4333-8333-333333333333", DisplayName: in.DisplayName, UserPrincipalName: in.UserPrincipalName, AccountEnabled: ptr(true)}
		f.users = append(f.users, u)
		reply(w, 201, u)
	}))
	mux.HandleFunc("GET /v1.0/users", f.auth(graph, func(w http.ResponseWriter, r *http.Request) {
		reply(w, 200, map[string]any{"value": f.users})
	}))
	getAndDelete(f, mux, "/v1.0/users", "user", &f.users, findUser)
	mux.HandleFunc("PATCH /v1.0/users/{id}", f.auth(graph, func(w http.ResponseWriter, r *http.Request) {
		if findUser(r.PathValue("id")) < 0 {
			notFound(w, "user", r.PathValue("id"))
			return
		}
		w.WriteHeader(204)
	}))
	mux.HandleFunc("POST /v1.0/directoryRoles/{role}/members/$ref", f.auth(graph, func(w http.ResponseWriter, r *http.Request) {
		var in map[string]string
		json.NewDecoder(r.Body).Decode(&in)
		id := in["@odata.id"][strings.LastIndex(in["@odata.id"], "/")+1:]
		role := strings.TrimPrefix(r.PathValue("role"), "roleTemplateId=")
		f.roles[role] = append(f.roles[role], id)
		w.WriteHeader(204)
	}))
	mux.HandleFunc("DELETE /v1.0/directoryRoles/{role}/members/{id}/$ref", f.auth(graph, func(w http.ResponseWriter, r *http.Request) {
		role := strings.TrimPrefix(r.PathValue("role"), "roleTemplateId=")
		f.roles[role] = nil
		w.WriteHeader(204)
	}))
	findSP := func(id string) int {
		for i, s := range f.sps {
			if s.ID == id {
				return i
			}
		}
		return -1
	}
	mux.HandleFunc("POST /v1.0/servicePrincipals", f.auth(graph, func(w http.ResponseWriter, r *http.Request) {
		var in client.ServicePrincipal
		json.NewDecoder(r.Body).Decode(&in)
		sp := client.ServicePrincipal{ID: "44444444-4444-4444-8444-444444444444", AppID: "55555555-5555-4555-8555-555555555555", DisplayName: in.DisplayName, ServicePrincipalType: "Application"}
		f.sps = append(f.sps, sp)
		reply(w, 201, sp)
	}))
	mux.HandleFunc("GET /v1.0/servicePrincipals", f.auth(graph, func(w http.ResponseWriter, r *http.Request) {
		var out []client.ServicePrincipal
		for _, s := range f.sps {
			if filter := r.URL.Query().Get("$filter"); filter == "" || strings.Contains(filter, "'"+s.AppID+"'") {
				out = append(out, s)
			}
		}
		reply(w, 200, map[string]any{"value": orEmpty(out)})
	}))
	getAndDelete(f, mux, "/v1.0/servicePrincipals", "servicePrincipal", &f.sps, findSP)
	mux.HandleFunc("POST /v1.0/servicePrincipals/{id}/addPassword", f.auth(graph, func(w http.ResponseWriter, r *http.Request) {
		if findSP(r.PathValue("id")) < 0 {
			notFound(w, "servicePrincipal", r.PathValue("id"))
			return
		}
		reply(w, 200, client.PasswordCredential{KeyID: "66666666-6666-4666-8666-666666666666", DisplayName: "keyhold cli", Hint: "new", SecretText: "new-secret-value"})
	}))
}

// notFound answers as Graph does for a directory object (what) that is
// not there; Graph names only the id.
func notFound(w http.ResponseWriter, what, id string) {
	azErr(w, 404, "Request_ResourceNotFound", fmt.Sprintf("Resource '%s' does not exist or one of its queried reference-property objects are not present.", id))
}

// getAndDelete serves GET and DELETE of path/{id} for the directory objects
// in *objs that find finds (-1 for none), as Graph does; kind names them in
// the 404.
func getAndDelete[T any](f *fake, mux *http.ServeMux, path, kind string, objs *[]T, find func(id string) int) {
	found := func(w http.ResponseWriter, r *http.Request) int {
		i := find(r.PathValue("id"))
		if i < 0 {
			notFound(w, kind, r.PathValue("id"))
		}
		return i
	}
	mux.HandleFunc("GET "+path+"/{id}", f.auth(client.AudienceGraph, func(w http.ResponseWriter, r *http.Request) {
		if i := found(w, r); i >= 0 {
			reply(w, 200, (*objs)[i])
		}
	}))
	mux.HandleFunc("DELETE "+path+"/{id}", f.auth(client.AudienceGraph, func(w http.ResponseWriter, r *http.Request) {
		if i := found(w, r); i >= 0 {
			*objs = append((*objs)[:i], (*objs)[i+1:]...)
			w.WriteHeader(204)
		}
	}))
}
