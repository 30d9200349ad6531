package dataverse

import (
	"net/http"

	"github.com/keyhold/keyhold"
	"github.com/keyhold/keyhold/httpapi"
)

// Dataverse error codes this API answers with, as the real Web API words
// them in error.code. Keyhold's own conditions (a locked environment, a
// record that fails its integrity check) keep their names instead of a
// number, so that scripts can branch on them.
const (
	CodeBadRequest        = "0x80048d19" // the payload is malformed or breaks the table's schema
	CodeResourceNotFound  = "0x80060888" // the URL names no table or segment
	CodeRecordNotFound    = "0x80040217" // the row (or file) does not exist
	CodeDuplicateRecord   = "0x80040237" // a row or table with that key exists
	CodeVersionMismatch   = "0x80060882" // If-Match names another version (412)
	CodePrivilegeDenied   = "0x80040220" // the caller may not use the environment
	CodeUnauthenticated   = "0x80072560" // no valid token
	CodeThrottled         = "0x80072322"
	CodeUnavailable       = "0x80044151"
	CodeUnexpected        = "0x80040216" // a bug; details are in the server's log only
	CodeMethodNotAllowed  = "0x8006088a"
	CodeFileTooLarge      = "0x80090001"
	CodeEnvironmentLocked = "EnvironmentLocked"
)

// detailVersionMismatch marks the EConflict errors that answer 412 rather
// than 409.
const detailVersionMismatch = "ConcurrencyVersionMismatch"

// errorBody is the Dataverse error shape: {"error":{"code","message"}}.
type errorBody struct {
	Error struct {
		Code    string `json:"code"`
		Message string `json:"message"`
	} `json:"error"`
}

// statusAndCode maps an error to its HTTP status and Dataverse code. An
// error's own Detail wins where it is a Dataverse code or a Keyhold name the
// caller can act on.
func statusAndCode(err error) (int, string) {
	code, detail := keyhold.ErrorCode(err), keyhold.ErrorDetail(err)
	status := httpapi.Status(code)
	switch detail {
	case detailVersionMismatch:
		return http.StatusPreconditionFailed, CodeVersionMismatch
	case CodeFileTooLarge:
		return http.StatusRequestEntityTooLarge, CodeFileTooLarge
	case CodeMethodNotAllowed:
		return http.StatusMethodNotAllowed, CodeMethodNotAllowed
	case "":
	default:
		return status, detail
	}
	switch code {
	case keyhold.EInvalid:
		return status, CodeBadRequest
	case keyhold.EUnauthenticated:
		return status, CodeUnauthenticated
	case keyhold.EForbidden:
		return status, CodePrivilegeDenied
	case keyhold.ENotFound:
		return status, CodeRecordNotFound
	case keyhold.EConflict:
		return status, CodeDuplicateRecord
	case keyhold.ETooManyRequests:
		return status, CodeThrottled
	case keyhold.EUnavailable:
		return status, CodeUnavailable
	}
	return status, CodeUnexpected
}

// writeError answers err in the Dataverse shape. Internal causes go to the
// log, never to the caller; no message here ever holds row content.
func writeError(w http.ResponseWriter, r *http.Request, err error) int {
	status, code := statusAndCode(err)
	if status >= 500 {
		httpapi.Logger(r.Context()).Error("data request failed", "err", err.Error(), "status", status)
	}
	var body errorBody
	body.Error.Code = code
	body.Error.Message = keyhold.ErrorMessage(err)
	w.Header().Set("x-ms-error-code", code)
	httpapi.WriteJSON(w, status, body)
	return status
}

func badRequest(format string, args ...any) error {
	return keyhold.Errorc(keyhold.EInvalid, CodeBadRequest, format, args...)
}

func versionMismatch(what string, want, have int64) error {
	if have == 0 {
		return keyhold.Errorc(keyhold.EConflict, detailVersionMismatch,
			"the version of the existing %s does not match the If-Match version %d", what, want)
	}
	return keyhold.Errorc(keyhold.EConflict, detailVersionMismatch,
		"the version of the existing %s is %d, not the If-Match version %d", what, have, want)
}
