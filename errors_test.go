package keyhold_test

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/keyhold/keyhold"
)

func TestErrorAccessors(t *testing.T) {
	cause := errors.New("dial tcp: connection refused")
	tests := []struct {
		err                       error
		wantCode, wantDetail, msg string
	}{
		{nil, "", "", "internal error"},
		{errors.New("boom"), keyhold.EInternal, "", "internal error"},
		{keyhold.Errorf(keyhold.ENotFound, "arm: resource group %q not found", "rg"), keyhold.ENotFound, "", `arm: resource group "rg" not found`},
		{keyhold.Errorc(keyhold.EConflict, "RoleAssignmentExists", "exists"), keyhold.EConflict, "RoleAssignmentExists", "exists"},
		{fmt.Errorf("wrapped: %w", keyhold.Errorf(keyhold.EForbidden, "no")), keyhold.EForbidden, "", "no"},
		{keyhold.Internal("sqlstore", cause), keyhold.EInternal, "", "internal error"},
	}
	for _, tt := range tests {
		if got := keyhold.ErrorCode(tt.err); got != tt.wantCode {
			t.Errorf("ErrorCode(%v) = %q, want %q", tt.err, got, tt.wantCode)
		}
		if got := keyhold.ErrorDetail(tt.err); got != tt.wantDetail {
			t.Errorf("ErrorDetail(%v) = %q, want %q", tt.err, got, tt.wantDetail)
		}
		if tt.err != nil {
			if got := keyhold.ErrorMessage(tt.err); got != tt.msg {
				t.Errorf("ErrorMessage(%v) = %q, want %q", tt.err, got, tt.msg)
			}
		}
	}
	if !errors.Is(keyhold.Internal("x", cause), cause) {
		t.Error("Internal does not unwrap to its cause")
	}
}

func TestSecretNeverPrints(t *testing.T) {
	s := keyhold.NewSecret([]byte("hunter2-very-secret"))
	for _, got := range []string{fmt.Sprint(s), fmt.Sprintf("%v %+v %#v %s", s, s, s, s), fmt.Sprint(struct{ S keyhold.Secret }{s})} {
		if contains(got, "hunter2") {
			t.Errorf("secret printed: %q", got)
		}
	}
	if _, err := (struct{ S keyhold.Secret }{s}).S.MarshalJSON(); err == nil {
		t.Error("MarshalJSON succeeded")
	}
	if !s.Equal(keyhold.NewSecret([]byte("hunter2-very-secret"))) || s.Equal(keyhold.NewSecret([]byte("x"))) {
		t.Error("Equal is wrong")
	}
	s.Wipe()
	if string(s.Reveal()) != string(make([]byte, len("hunter2-very-secret"))) {
		t.Error("Wipe left bytes behind")
	}
}

func contains(s, sub string) bool { return strings.Contains(s, sub) }
