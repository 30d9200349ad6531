package httpapi_test

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/keyhold/keyhold"
	"github.com/keyhold/keyhold/httpapi"
)

func TestWriteError(t *testing.T) {
	tests := []struct {
		err        error
		wantStatus int
		wantCode   string
		wantMsg    string
	}{
		{keyhold.Errorc(keyhold.EConflict, "MissingSubscriptionRegistration", "not registered"), 409, "MissingSubscriptionRegistration", "not registered"},
		{keyhold.Errorf(keyhold.ENotFound, "gone"), 404, "NotFound", "gone"},
		{keyhold.Internal("sqlstore", keyhold.Errorf(keyhold.EInvalid, "SELECT secret FROM x")), 500, "InternalServerError", "internal error"},
	}
	for _, tt := range tests {
		rec := httptest.NewRecorder()
		httpapi.WriteError(rec, httptest.NewRequest("GET", "/", nil), tt.err)
		var body httpapi.AzureError
		if err := json.Unmarshal(rec.Body.Bytes(), &body); err != nil {
			t.Fatal(err)
		}
		if rec.Code != tt.wantStatus || body.Error.Code != tt.wantCode || body.Error.Message != tt.wantMsg {
			t.Errorf("got %d %+v, want %d %s %q", rec.Code, body.Error, tt.wantStatus, tt.wantCode, tt.wantMsg)
		}
		if got := rec.Header().Get("x-ms-error-code"); got != tt.wantCode {
			t.Errorf("x-ms-error-code = %q", got)
		}
		if strings.Contains(rec.Body.String(), "SELECT") {
			t.Error("internal cause leaked into the response")
		}
	}
}

func TestDecodeJSONErrorsSayWhere(t *testing.T) {
	var v struct {
		Location string `json:"location"`
		Tags     map[string]string
	}
	tests := []struct{ body, want string }{
		{"", "the body is empty"},
		{"{\n  \"location\": ,\n}", "(line 2, column 15)"},
		{`{"location": 5}`, "the value at 'location' must be of type string, not number"},
		{`{"Tags": []}`, "must be of type object, not array"},
	}
	for _, tt := range tests {
		r := httptest.NewRequest(http.MethodPut, "/", strings.NewReader(tt.body))
		err := httpapi.DecodeJSON(r, &v, "InvalidRequestContent")
		if err == nil || !strings.Contains(err.Error(), tt.want) || keyhold.ErrorDetail(err) != "InvalidRequestContent" {
			t.Errorf("DecodeJSON(%q) = %v, want it to mention %q", tt.body, err, tt.want)
		}
	}
	big := strings.NewReader(`{"location":"` + strings.Repeat("a", httpapi.MaxBodyBytes) + `"}`)
	if err := httpapi.DecodeJSON(httptest.NewRequest("PUT", "/", big), &v, "X"); err == nil || !strings.Contains(err.Error(), "larger than") {
		t.Errorf("oversized body: %v", err)
	}
}

func FuzzUnmarshal(f *testing.F) {
	for _, s := range []string{`{}`, `{"location":"x"}`, "{\n\"a\":", `[1,2`, `{"tags":{"a":1}}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		var v struct {
			Location string            `json:"location"`
			Tags     map[string]string `json:"tags"`
			N        int               `json:"n"`
		}
		err := httpapi.Unmarshal(b, &v, "InvalidRequestContent")
		if err != nil && keyhold.ErrorCode(err) != keyhold.EInvalid {
			t.Fatalf("code %q for %q", keyhold.ErrorCode(err), b)
		}
	})
}
