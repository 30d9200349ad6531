package keyhold

import (
	"errors"
	"fmt"
)

// Error codes. Callers branch on these; each HTTP surface maps them to its
// contract's status and error body.
const (
	EInvalid         = "invalid"           // 400: the request is malformed or breaks a rule
	EUnauthenticated = "unauthenticated"   // 401: no valid credential
	EForbidden       = "forbidden"         // 403: authenticated, but not allowed
	ENotFound        = "not_found"         // 404
	EConflict        = "conflict"          // 409: the state forbids it (exists, in use, deleted)
	ETooManyRequests = "too_many_requests" // 429
	EUnavailable     = "unavailable"       // 503: a dependency cannot be reached now
	EInternal        = "internal"          // 500: a bug or an unexpected failure; details go to the log only
)

// DetailSeparationOfDuties is the detail code of an EConflict that refuses a
// grant because the tenant keeps key vault administrators and platform
// administrators apart (package duties); every surface sends it as its
// error code, or in its message where the contract has fixed codes (Graph).
const DetailSeparationOfDuties = "SeparationOfDutiesViolation"

// Error is the one error type of Keyhold. Message is safe to show the caller;
// Err (the cause) is for the log only and never reaches a response.
type Error struct {
	// Code is one of the E* constants.
	Code string
	// Detail is the contract's own error code where one is known, such as
	// "MissingSubscriptionRegistration" or "KeyNotFound". Empty means the
	// surface picks its default for Code.
	Detail string
	// Message is a sentence for the caller.
	Message string
	// Err is the internal cause, if any.
	Err error
}

func (e *Error) Error() string {
	if e.Err != nil {
		return e.Message + ": " + e.Err.Error()
	}
	return e.Message
}

func (e *Error) Unwrap() error { return e.Err }

// Errorf returns an *Error with the given code and a formatted message.
func Errorf(code, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

// Errorc returns an *Error with a code, the contract's detail code and a message.
func Errorc(code, detail, format string, args ...any) *Error {
	return &Error{Code: code, Detail: detail, Message: fmt.Sprintf(format, args...)}
}

// Internal wraps an unexpected failure. The caller sees only "internal error".
func Internal(where string, err error) *Error {
	return &Error{Code: EInternal, Message: where + ": internal error", Err: err}
}

// ErrorCode returns the code of err, EInternal for an error that is not an
// *Error, and "" for nil.
func ErrorCode(err error) string {
	if err == nil {
		return ""
	}
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	return EInternal
}

// ErrorDetail returns the contract detail code of err, or "".
func ErrorDetail(err error) string {
	var e *Error
	if errors.As(err, &e) {
		return e.Detail
	}
	return ""
}

// ErrorMessage returns the caller-safe message of err. Errors that are not an
// *Error, and internal ones, become "internal error".
func ErrorMessage(err error) string {
	var e *Error
	if errors.As(err, &e) && e.Code != EInternal {
		return e.Message
	}
	return "internal error"
}

// IsNotFound reports whether err has the code ENotFound.
func IsNotFound(err error) bool { return ErrorCode(err) == ENotFound }

// IsConflict reports whether err has the code EConflict.
func IsConflict(err error) bool { return ErrorCode(err) == EConflict }
