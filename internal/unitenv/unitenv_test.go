package unitenv_test

import (
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/keyhold/keyhold"
	"github.com/keyhold/keyhold/internal/unitenv"
)

func TestBody(t *testing.T) {
	tests := []struct {
		name string
		body any
		want string
		nil  bool
	}{
		{"nil", nil, "", true},
		{"string as is", `{"a":`, `{"a":`, false},
		{"bytes as is", []byte("raw"), "raw", false},
		{"value as JSON", map[string]any{"a": 1}, `{"a":1}`, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rd := unitenv.Body(t, tt.body)
			if (rd == nil) != tt.nil {
				t.Fatalf("reader %v, want nil %v", rd, tt.nil)
			}
			if rd == nil {
				return
			}
			b, _ := io.ReadAll(rd)
			if string(b) != tt.want {
				t.Errorf("body %q, want %q", b, tt.want)
			}
		})
	}
}

func TestClock(t *testing.T) {
	start := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	c := unitenv.NewClock(start)
	c.Add(time.Hour)
	if got := c.Now(); !got.Equal(start.Add(time.Hour)) {
		t.Errorf("after Add: %v", got)
	}
	c.Set(start)
	if got := c.Now(); !got.Equal(start) {
		t.Errorf("after Set: %v", got)
	}
}

// TestAuth sends requests through the stand-in for authentication and
// reports which caller, if any, the handler behind it saw.
func TestAuth(t *testing.T) {
	st := unitenv.SQLite(t, "u.db")
	seed := unitenv.Seeder{TB: t, Store: st, Now: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	const tenant, user, group = "aaaaaaaa-0000-4000-8000-000000000000", "aaaaaaaa-0000-4000-8000-000000000001", "aaaaaaaa-0000-4000-8000-0000000000f1"
	seed.Tenant(tenant, "Contoso", "contoso.keyhold")
	seed.Principals(unitenv.User(user, tenant, "User", "user@contoso.keyhold"),
		&keyhold.Principal{ID: group, TenantID: tenant, Type: keyhold.PrincipalGroup, DisplayName: "G"})
	seed.Must(st.AddGroupMember(t.Context(), group, user))
	var seen *keyhold.Caller
	h := unitenv.Auth{Store: st, PrincipalOf: unitenv.Bearer, Audience: "aud"}.Handler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		seen = keyhold.CallerFrom(r.Context())
		w.WriteHeader(http.StatusNoContent)
	}))
	tests := []struct {
		name, auth string
		status     int
		caller     bool
	}{
		{"anonymous", "", http.StatusNoContent, false},
		{"known principal", "Bearer " + user, http.StatusNoContent, true},
		{"unknown principal", "Bearer bbbbbbbb-0000-4000-8000-000000000001", http.StatusUnauthorized, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			seen = nil
			req := httptest.NewRequest("GET", "/", nil)
			if tt.auth != "" {
				req.Header.Set("Authorization", tt.auth)
			}
			r := unitenv.Serve(h, req)
			if r.Status != tt.status || (seen != nil) != tt.caller {
				t.Fatalf("status %d, caller %+v; want %d, caller %v", r.Status, seen, tt.status, tt.caller)
			}
			if seen != nil && (seen.Principal.ID != user || seen.Audience != "aud" || len(seen.GroupIDs) != 1 || seen.GroupIDs[0] != group) {
				t.Errorf("caller %+v", seen)
			}
		})
	}
}
