package broker

import (
	"errors"
	"fmt"
)

// Error codes: a closed set. Each maps to one HTTP status in the httpapi
// adapter's table; anything that is not an *Error is internal.
const (
	EInvalid      = "invalid"            // bad input: 400
	EUnauthorized = "unauthorized"       // missing or bad credentials: 401
	EForbidden    = "forbidden"          // authenticated but not allowed: 403
	ENotFound     = "not_found"          // absent, or private to the caller: 404
	EMethod       = "method_not_allowed" // 405
	EConflict     = "conflict"           // state does not allow it: 409
	ETooLarge     = "too_large"          // body over the limit: 413
	EUnsupported  = "unsupported_media"  // 415
	ERateLimited  = "rate_limited"       // 429
	EUnavailable  = "unavailable"        // a dependency is down: 503
	EInternal     = "internal"           // 500, message never shown
	EDenied       = "denied"             // policy refused the release: 403
)

// Error is a domain error with a code from the closed set and a message that
// is safe to show to the caller: it never carries personal data.
type Error struct {
	Code    string
	Message string
	// Err is the underlying cause, logged but never shown.
	Err error
}

func (e *Error) Error() string {
	if e.Err != nil {
		return fmt.Sprintf("%s: %s: %v", e.Code, e.Message, e.Err)
	}
	return e.Code + ": " + e.Message
}

// Unwrap returns the cause.
func (e *Error) Unwrap() error { return e.Err }

// Errorf returns an *Error with the given code and a formatted message.
func Errorf(code, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

// Wrap returns an *Error with the given code and message that keeps err as
// its (unshown) cause.
func Wrap(code string, err error, message string) *Error {
	return &Error{Code: code, Message: message, Err: err}
}

// ErrorCode returns the code of the first *Error in err's chain, EInternal
// for any other non-nil error, and "" for nil.
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

// ErrorMessage returns the caller-safe message of err: the message of its
// *Error, or a fixed text for internal errors.
func ErrorMessage(err error) string {
	var e *Error
	if errors.As(err, &e) && e.Code != EInternal {
		return e.Message
	}
	return "internal error"
}

// IsNotFound reports whether err is a not-found error.
func IsNotFound(err error) bool { return ErrorCode(err) == ENotFound }

// ErrNotFound is a generic not-found error for adapters to return.
var ErrNotFound = &Error{Code: ENotFound, Message: "not found"}
