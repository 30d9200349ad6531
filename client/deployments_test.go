package client

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
)

func TestDeploymentBodyKeepsTextThatIsNotJSON(t *testing.T) {
	tests := []struct {
		name, template string
		wantString     bool
	}{
		{"json", `{"resources": []}`, false},
		{"placeholders", `{"name": {EnterprisePolicyName}}`, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got struct {
				Properties struct {
					Template   json.RawMessage            `json:"template"`
					Parameters map[string]json.RawMessage `json:"parameters"`
					Mode       string                     `json:"mode"`
				} `json:"properties"`
			}
			_, c := newServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if r.Method != http.MethodPut || r.URL.Path != "/subscriptions/s/resourcegroups/rg/providers/Microsoft.Resources/deployments/d1" ||
					r.URL.Query().Get("api-version") != APIVersionDeployments {
					t.Errorf("request %s %s", r.Method, r.URL)
				}
				b, _ := io.ReadAll(r.Body)
				if err := json.Unmarshal(b, &got); err != nil {
					t.Error(err)
				}
				w.WriteHeader(http.StatusCreated)
				fmt.Fprint(w, `{"name":"d1","properties":{"provisioningState":"Accepted"}}`)
			}))
			d, err := c.CreateDeployment(context.Background(), "s", "rg", "d1", []byte(tt.template), map[string]any{"n": 3})
			if err != nil {
				t.Fatal(err)
			}
			if d.Properties.ProvisioningState != "Accepted" || d.Done() {
				t.Errorf("deployment = %+v", d)
			}
			isString := strings.HasPrefix(string(got.Properties.Template), `"`)
			if isString != tt.wantString {
				t.Errorf("template sent as %s, want string=%v", got.Properties.Template, tt.wantString)
			}
			if string(got.Properties.Parameters["n"]) != `{"value":3}` || got.Properties.Mode != "Incremental" {
				t.Errorf("parameters %s, mode %s", got.Properties.Parameters["n"], got.Properties.Mode)
			}
		})
	}
}

func TestWaitDeployment(t *testing.T) {
	states := []string{"Accepted", "Running", "Failed"}
	var gets atomic.Int32
	_, c := newServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case strings.HasSuffix(r.URL.Path, "/deployments/d1"):
			i := min(int(gets.Add(1))-1, len(states)-1)
			body := `{"name":"d1","properties":{"provisioningState":"` + states[i] + `"`
			if states[i] == "Failed" {
				body += `,"error":{"code":"DeploymentFailed","message":"At least one resource deployment operation failed.",` +
					`"details":[{"code":"KeyNotFound","message":"The key 'cmk' was not found.","target":"/x/ep"}]}`
			}
			fmt.Fprint(w, body+`}}`)
		case strings.HasSuffix(r.URL.Path, "/deployments/d1/operations"):
			fmt.Fprint(w, `{"value":[{"operationId":"1","properties":{"provisioningState":"Running","targetResource":{"id":"/x/ep","resourceType":"T","resourceName":"ep"}}}]}`)
		default:
			t.Errorf("unexpected %s %s", r.Method, r.URL)
		}
	}))
	var seen []string
	d, err := c.WaitDeployment(context.Background(), "s", "rg", "d1", nil, func(d *Deployment, ops []DeploymentOperation) {
		seen = append(seen, fmt.Sprintf("%s/%d", d.Properties.ProvisioningState, len(ops)))
	})
	var de *DeploymentError
	if !errors.As(err, &de) {
		t.Fatalf("err = %v, want a *DeploymentError", err)
	}
	want := "deployment d1 failed: At least one resource deployment operation failed. (DeploymentFailed); The key 'cmk' was not found. (KeyNotFound, /x/ep)"
	if err.Error() != want {
		t.Errorf("err = %q\nwant %q", err, want)
	}
	if strings.Join(seen, ",") != "Accepted/1,Running/1,Failed/1" || d.Properties.ProvisioningState != "Failed" {
		t.Errorf("progress = %v, last = %+v", seen, d)
	}
}

func TestDeploymentErrorsAreServerErrors(t *testing.T) {
	_, c := newServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusBadRequest)
		fmt.Fprint(w, `{"error":{"code":"InvalidTemplate","message":"The template is not valid JSON at line 9, column 22."}}`)
	}))
	_, err := c.ValidateDeployment(context.Background(), "s", "rg", "d1", []byte("{"), nil)
	if StatusCode(err) != http.StatusBadRequest || !strings.Contains(err.Error(), "line 9, column 22") {
		t.Errorf("err = %v", err)
	}
	if err := c.GetResourceByID(context.Background(), "not-an-id", "1", nil); err == nil {
		t.Error("GetResourceByID took a relative id")
	}
}
