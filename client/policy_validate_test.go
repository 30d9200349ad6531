package client

import (
	"context"
	"fmt"
	"net/http"
	"testing"
)

func TestValidatePolicy(t *testing.T) {
	const id = "/subscriptions/s1/resourceGroups/rg/providers/Microsoft.PowerPlatform/enterprisePolicies/ep 1"
	var gotQuery, gotAuth string
	_, c := newServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		gotQuery, gotAuth = r.URL.Query().Get("id"), r.Header.Get("Authorization")
		switch {
		case r.URL.Path != "/keyhold/v1/policies/validate" || r.Method != http.MethodGet:
			w.WriteHeader(404)
		case gotQuery == id:
			fmt.Fprint(w, `{"policyId":"`+id+`","passed":false,"healthStatus":"Unhealthy","reason":"identity 3f2 lacks unwrapKey on vault kv",
				"checks":[{"name":"KeyExists","ok":true,"message":"key cmk exists"},
				          {"name":"KeyPermissions","ok":false,"message":"identity 3f2 lacks unwrapKey on vault kv","fix":"grant it","failure":"Definite"}]}`)
		default:
			w.Header().Set("x-ms-request-id", "req-404")
			w.WriteHeader(404)
			fmt.Fprint(w, `{"error":{"code":"ResourceNotFound","message":"policy: enterprise policy x was not found"}}`)
		}
	}))
	v, err := c.ValidatePolicy(context.Background(), " "+id+" ")
	if err != nil {
		t.Fatal(err)
	}
	if gotQuery != id || gotAuth != "Bearer tok-"+AudienceARM {
		t.Errorf("sent id %q with %q, want %q with a management token", gotQuery, gotAuth, id)
	}
	failed := v.Failed()
	if v.Passed || v.HealthStatus != "Unhealthy" || len(v.Checks) != 2 || len(failed) != 1 || failed[0].Fix != "grant it" || failed[0].Failure != "Definite" {
		t.Errorf("validation = %+v", v)
	}
	_, err = c.ValidatePolicy(context.Background(), "/subscriptions/s1/other")
	if !IsNotFound(err) || err.Error() != "policy: enterprise policy x was not found (ResourceNotFound)" {
		t.Errorf("err = %v, want the server's 404", err)
	}
}
