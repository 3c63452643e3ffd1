package server

import (
	"errors"
	"net/http"
	"strings"

	"github.com/gin-gonic/gin"

	"github.com/idbridge/idbridge/providers"
	"github.com/idbridge/idbridge/spotnana"
)

// Exchange outcomes, for metrics.
const (
	ExchangeOK          = "ok"
	ExchangeRefused     = "refused"     // Spotnana said no
	ExchangeUnavailable = "unavailable" // Spotnana or an identity backend could not answer
	ExchangeDenied      = "denied"      // the user's token did not pass locally
	ExchangeError       = "error"
)

// failExchange answers errors of the exchange step; it reports false for any other error.
func (s *Server) failExchange(c *gin.Context, err error) bool {
	var refused *spotnana.RefusedError
	var unavailable *spotnana.UnavailableError
	switch {
	case errors.As(err, &refused):
		// 502: Spotnana, the upstream, refused; its error code is passed on so that the
		// company's app can tell an unknown user from bad client credentials.
		code := refused.Code
		if code == "" || !plainCode(code) {
			code = "spotnana_refused"
		}
		writeJSONError(c, http.StatusBadGateway, code, "Spotnana refused the token exchange")
	case errors.As(err, &unavailable):
		ra := retryAfterSeconds
		if unavailable.RetryAfter > 0 {
			ra = retryAfter(unavailable.RetryAfter)
		}
		c.Header("Retry-After", ra)
		writeJSONError(c, http.StatusServiceUnavailable, "temporarily_unavailable", "Spotnana is unavailable")
	case errors.Is(err, spotnana.ErrUnavailable):
		c.Header("Retry-After", retryAfterSeconds)
		writeJSONError(c, http.StatusServiceUnavailable, "temporarily_unavailable", "Spotnana is unavailable")
	case errors.Is(err, spotnana.ErrNoSigningKey):
		c.Header("Retry-After", retryAfterSeconds)
		writeJSONError(c, http.StatusServiceUnavailable, "temporarily_unavailable", "no assertion signing key is available")
	default:
		return false
	}
	return true
}

// plainCode keeps an upstream error code only when it is a short identifier, so that
// nothing Spotnana sends can inject into our answer.
func plainCode(s string) bool {
	if len(s) > 64 {
		return false
	}
	return strings.IndexFunc(s, func(r rune) bool {
		return !(r == '_' || r == '-' || r == '.' || ('a' <= r && r <= 'z') || ('A' <= r && r <= 'Z') || ('0' <= r && r <= '9'))
	}) < 0
}

// exchangeOutcome labels an exchange for the metrics: Spotnana's own answers first, then
// the user's token by its class (providers.Classify).
func exchangeOutcome(err error) string {
	var refused *spotnana.RefusedError
	switch {
	case err == nil:
		return ExchangeOK
	case errors.As(err, &refused):
		return ExchangeRefused
	case errors.Is(err, spotnana.ErrUnavailable):
		return ExchangeUnavailable
	case errors.Is(err, ErrClientNotAllowed):
		return ExchangeDenied
	}
	switch providers.Classify(err) {
	case providers.Unavailable:
		return ExchangeUnavailable
	case providers.Invalid, providers.NotMine, providers.Denied, providers.InsufficientScope:
		return ExchangeDenied
	}
	return ExchangeError
}
