// Package httpapi holds what every HTTP surface shares: JSON bodies, the
// Azure error shape, request ids, and the mapping from keyhold error codes to
// HTTP statuses.
package httpapi

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"

	"github.com/keyhold/keyhold"
)

// MaxBodyBytes is the default limit on a request body.
const MaxBodyBytes = 4 << 20

// Status returns the HTTP status for a keyhold error code.
func Status(code string) int {
	switch code {
	case "":
		return http.StatusOK
	case keyhold.EInvalid:
		return http.StatusBadRequest
	case keyhold.EUnauthenticated:
		return http.StatusUnauthorized
	case keyhold.EForbidden:
		return http.StatusForbidden
	case keyhold.ENotFound:
		return http.StatusNotFound
	case keyhold.EConflict:
		return http.StatusConflict
	case keyhold.ETooManyRequests:
		return http.StatusTooManyRequests
	case keyhold.EUnavailable:
		return http.StatusServiceUnavailable
	default:
		return http.StatusInternalServerError
	}
}

// azureDefaultCodes are the codes ARM uses when an error names none.
var azureDefaultCodes = map[string]string{
	keyhold.EInvalid:         "BadRequest",
	keyhold.EUnauthenticated: "AuthenticationFailed",
	keyhold.EForbidden:       "AuthorizationFailed",
	keyhold.ENotFound:        "NotFound",
	keyhold.EConflict:        "Conflict",
	keyhold.ETooManyRequests: "TooManyRequests",
	keyhold.EUnavailable:     "ServiceUnavailable",
	keyhold.EInternal:        "InternalServerError",
}

// AzureError is the body of an Azure error response:
// {"error":{"code":"...","message":"..."}}.
type AzureError struct {
	Error AzureErrorBody `json:"error"`
}

// AzureErrorBody is the inner object of AzureError.
type AzureErrorBody struct {
	Code       string           `json:"code"`
	Message    string           `json:"message"`
	Target     string           `json:"target,omitempty"`
	Details    []AzureErrorBody `json:"details,omitempty"`
	InnerError *InnerError      `json:"innererror,omitempty"`
}

// InnerError is Key Vault's innererror object.
type InnerError struct {
	Code string `json:"code"`
}

// AzureErrorOf returns the Azure error body for err and its HTTP status.
func AzureErrorOf(err error) (int, AzureError) {
	code := keyhold.ErrorCode(err)
	detail := keyhold.ErrorDetail(err)
	if detail == "" {
		detail = azureDefaultCodes[code]
	}
	return Status(code), AzureError{Error: AzureErrorBody{Code: detail, Message: keyhold.ErrorMessage(err)}}
}

// WriteError writes err in the Azure error shape with the matching status and
// the x-ms-error-code header that the Azure SDKs read. Internal causes go to
// the log only.
func WriteError(w http.ResponseWriter, r *http.Request, err error) {
	status, body := AzureErrorOf(err)
	if status >= 500 {
		Logger(r.Context()).Error("request failed", "err", err.Error(), "status", status)
	}
	w.Header().Set("x-ms-error-code", body.Error.Code)
	WriteJSON(w, status, body)
}

// WriteJSON writes v as JSON with the given status.
func WriteJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		status = http.StatusInternalServerError
		b = []byte(`{"error":{"code":"InternalServerError","message":"internal error"}}`)
	}
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	w.Write(b)
	w.Write([]byte("\n"))
}

// DecodeJSON reads the body of r into v, at most MaxBodyBytes. A missing,
// oversized, malformed or mistyped body is an EInvalid error with a message
// that says where the problem is; the contract detail code is detail (for ARM,
// "InvalidRequestContent").
func DecodeJSON(r *http.Request, v any, detail string) error {
	body, err := io.ReadAll(http.MaxBytesReader(nil, r.Body, MaxBodyBytes))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return keyhold.Errorc(keyhold.EInvalid, detail, "the request body is larger than %d bytes", MaxBodyBytes)
		}
		return keyhold.Errorc(keyhold.EInvalid, detail, "the request body could not be read")
	}
	return Unmarshal(body, v, detail)
}

// Unmarshal parses JSON in body into v with the error messages of DecodeJSON.
func Unmarshal(body []byte, v any, detail string) error {
	if len(strings.TrimSpace(string(body))) == 0 {
		return keyhold.Errorc(keyhold.EInvalid, detail, "the request content was invalid and could not be deserialized: the body is empty")
	}
	if err := json.Unmarshal(body, v); err != nil {
		line, col := 1, 1
		off := int64(-1)
		var se *json.SyntaxError
		var te *json.UnmarshalTypeError
		switch {
		case errors.As(err, &se):
			off = max(se.Offset-1, 0) // Offset counts the offending byte

		case errors.As(err, &te):
			off = te.Offset
			msg := fmt.Sprintf("the value at '%s' must be of type %s, not %s", te.Field, jsonKind(te.Type.Kind().String()), te.Value)
			line, col = LineCol(body, off)
			return keyhold.Errorc(keyhold.EInvalid, detail, "the request content was invalid and could not be deserialized: %s (line %d, column %d)", msg, line, col)
		}
		if off >= 0 {
			line, col = LineCol(body, off)
		}
		return keyhold.Errorc(keyhold.EInvalid, detail, "the request content was invalid and could not be deserialized: %s (line %d, column %d)", strings.TrimPrefix(err.Error(), "json: "), line, col)
	}
	return nil
}

func jsonKind(k string) string {
	switch k {
	case "map", "struct":
		return "object"
	case "slice", "array":
		return "array"
	case "int", "int32", "int64", "uint", "uint32", "uint64", "float64", "float32":
		return "number"
	case "bool":
		return "boolean"
	}
	return k
}

// LineCol converts a byte offset in b to a 1-based line and column.
func LineCol(b []byte, off int64) (line, col int) {
	line, col = 1, 1
	for i := int64(0); i < off && i < int64(len(b)); i++ {
		if b[i] == '\n' {
			line++
			col = 1
		} else {
			col++
		}
	}
	return line, col
}

type ctxKey int

const (
	requestIDKey ctxKey = iota
	loggerKey
)

// WithRequestID returns a context carrying the request id.
func WithRequestID(ctx context.Context, id string) context.Context {
	return context.WithValue(ctx, requestIDKey, id)
}

// RequestID returns the request id carried by ctx, or "".
func RequestID(ctx context.Context) string {
	id, _ := ctx.Value(requestIDKey).(string)
	return id
}

// WithLogger returns a context carrying a request-scoped logger.
func WithLogger(ctx context.Context, l *slog.Logger) context.Context {
	return context.WithValue(ctx, loggerKey, l)
}

// Logger returns the logger carried by ctx, or a logger that discards.
func Logger(ctx context.Context) *slog.Logger {
	if l, ok := ctx.Value(loggerKey).(*slog.Logger); ok {
		return l
	}
	return slog.New(slog.DiscardHandler)
}

// Info describes what a request did, for the audit log and the access log.
// Routers fill it in once they know the action and scope.
type Info struct {
	Action string // e.g. Microsoft.Resources/subscriptions/resourceGroups/write
	Scope  string // the resource id or scope acted on
	Detail string // optional words for the audit record; never a secret
	// ReadOnly marks a POST that changes no state (a key operation such as
	// unwrapKey). The audit log records only its failures, which keeps
	// hash-chained appends off the hot path of every wrap and unwrap.
	ReadOnly bool
}

const infoKey ctxKey = 100

// WithInfo returns a context carrying a fresh *Info that Annotate fills in.
func WithInfo(ctx context.Context) (context.Context, *Info) {
	i := &Info{}
	return context.WithValue(ctx, infoKey, i), i
}

// Annotate records the action and scope of the current request, if the
// request carries an *Info.
func Annotate(ctx context.Context, action, scope string) {
	if i, ok := ctx.Value(infoKey).(*Info); ok {
		i.Action, i.Scope = action, scope
	}
}

// MarkReadOnly marks the current request as changing no state.
func MarkReadOnly(ctx context.Context) {
	if i, ok := ctx.Value(infoKey).(*Info); ok {
		i.ReadOnly = true
	}
}

// InfoFrom returns the *Info carried by ctx, or nil.
func InfoFrom(ctx context.Context) *Info {
	i, _ := ctx.Value(infoKey).(*Info)
	return i
}
