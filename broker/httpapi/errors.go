package httpapi

import (
	"errors"
	"log/slog"

	"github.com/gofiber/fiber/v2"

	"github.com/sieve-broker/sieve/broker"
)

// statusOf is the one table from error codes to HTTP statuses.
var statusOf = map[string]int{
	broker.EInvalid:      fiber.StatusBadRequest,
	broker.EUnauthorized: fiber.StatusUnauthorized,
	broker.EForbidden:    fiber.StatusForbidden,
	broker.EDenied:       fiber.StatusForbidden,
	broker.ENotFound:     fiber.StatusNotFound,
	broker.EMethod:       fiber.StatusMethodNotAllowed,
	broker.EConflict:     fiber.StatusConflict,
	broker.ETooLarge:     fiber.StatusRequestEntityTooLarge,
	broker.EUnsupported:  fiber.StatusUnsupportedMediaType,
	broker.ERateLimited:  fiber.StatusTooManyRequests,
	broker.EUnavailable:  fiber.StatusServiceUnavailable,
	broker.EInternal:     fiber.StatusInternalServerError,
}

// StatusOf returns the HTTP status of a broker error code (500 for codes
// outside the table). The dashboard uses it too: there is one table.
func StatusOf(code string) int {
	if s, ok := statusOf[code]; ok {
		return s
	}
	return fiber.StatusInternalServerError
}

// codeOfStatus maps Fiber's own errors (routing, limits) back to codes.
var codeOfStatus = map[int]string{
	fiber.StatusBadRequest:                  broker.EInvalid,
	fiber.StatusUnauthorized:                broker.EUnauthorized,
	fiber.StatusForbidden:                   broker.EForbidden,
	fiber.StatusNotFound:                    broker.ENotFound,
	fiber.StatusMethodNotAllowed:            broker.EMethod,
	fiber.StatusRequestEntityTooLarge:       broker.ETooLarge,
	fiber.StatusUnsupportedMediaType:        broker.EUnsupported,
	fiber.StatusTooManyRequests:             broker.ERateLimited,
	fiber.StatusRequestHeaderFieldsTooLarge: "header_too_large",
	fiber.StatusRequestTimeout:              "timeout",
	fiber.StatusServiceUnavailable:          broker.EUnavailable,
}

// ErrorBody is the JSON error shape of every endpoint but /oauth/token.
type ErrorBody struct {
	Error ErrorDetail `json:"error"`
}

// ErrorDetail is the inside of ErrorBody.
type ErrorDetail struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

// errorHandler renders every error as JSON. Domain errors keep their safe
// message; anything else is logged in full and answered with a fixed text.
func errorHandler(log *slog.Logger) fiber.ErrorHandler {
	return func(c *fiber.Ctx, err error) error {
		status, code, msg := fiber.StatusInternalServerError, broker.EInternal, "internal error"
		var fe *fiber.Error
		var be *broker.Error
		switch {
		case errors.As(err, &be):
			code, msg = be.Code, be.Message
			if s, ok := statusOf[be.Code]; ok {
				status = s
			}
			// A refusal that was audited (a partner asking for an order
			// not its own) names its entry.
			var dec interface{ Decision() string }
			if errors.As(err, &dec) && dec.Decision() != "" {
				c.Set("X-Decision-Id", dec.Decision())
			}
			if status >= 500 {
				log.Error("request failed", "method", c.Method(), "route", c.Route().Path, "code", code, "err", be.Err)
				if code == broker.EInternal {
					msg = "internal error"
				}
			}
		case errors.As(err, &fe):
			status = fe.Code
			code = codeOfStatus[fe.Code]
			if code == "" {
				code = broker.EInvalid
				if status >= 500 {
					code = broker.EInternal
				}
			}
			msg = fe.Message
			if status == fiber.StatusNotFound {
				msg = "no such route"
			}
			if status >= 500 {
				log.Error("request failed", "method", c.Method(), "status", status, "err", fe.Message)
				msg = "internal error"
			}
		default:
			log.Error("request failed", "method", c.Method(), "route", c.Route().Path, "err", err)
		}
		if status == fiber.StatusUnauthorized && c.Get(fiber.HeaderWWWAuthenticate) == "" &&
			len(c.Request().Header.Peek(fiber.HeaderAuthorization)) > 0 {
			c.Set(fiber.HeaderWWWAuthenticate, `Bearer error="invalid_token"`)
		}
		c.Set(fiber.HeaderCacheControl, "no-store")
		return c.Status(status).JSON(ErrorBody{ErrorDetail{Code: code, Message: msg}})
	}
}
