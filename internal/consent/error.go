// Package consent holds optin's domain: subscribers, their per-topic
// subscriptions and the state machine between them, pending double-opt-in
// requests, the hash-chained consent ledger and the outbox job. It imports no
// HTTP, database or mail library; the bolt, mail and web packages build on it.
package consent

import (
	"errors"
	"fmt"
)

// Error codes. The web package maps each to one HTTP status, in one place.
const (
	EInvalid      = "invalid"
	ENotFound     = "not_found"
	EConflict     = "conflict"
	EExpired      = "expired"
	ERateLimited  = "rate_limited"
	EForbidden    = "forbidden"
	EUnauthorized = "unauthorized"
	EInternal     = "internal"
	// EUnavailable: a part optin needs (its database) cannot be reached
	// right now; the same request may succeed shortly.
	EUnavailable = "unavailable"
)

// Error is an application error: a code from the list above and a message
// that is safe to show to the caller.
type Error struct {
	Code    string
	Message string
}

// Error implements the error interface: the code, then the message. It
// names no program: the command line prefixes "optin:" once.
func (e *Error) Error() string { return e.Code + ": " + e.Message }

// Errorf returns an *Error with the given code and formatted message.
func Errorf(code, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

// ErrorCode returns the code of the first *Error in err's chain, EInternal for
// any other non-nil error and "" for nil.
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
// *Error, or "internal error" for anything else, so internals never leak.
func ErrorMessage(err error) string {
	var e *Error
	if errors.As(err, &e) {
		return e.Message
	}
	return "internal error"
}
