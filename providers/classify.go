package providers

import (
	"context"
	"errors"

	"github.com/idbridge/idbridge/mapping"
)

// Class is what an error means for a request. Classify decides it once, for every use:
// the server's HTTP status, the metrics' outcome labels, the chain and `idbridge
// resolve`'s verdict, so that they cannot disagree.
type Class uint8

// Classes, from the most specific. An error that wraps several sentinels takes the first
// class in this order: a valid token that lacks a scope is not also "invalid".
const (
	Accepted          Class = iota // nil
	InsufficientScope              // RFC 6750 §3.1 insufficient_scope: 403
	Denied                         // valid token, user may not pass (no email, domain, directory entry): 403
	Invalid                        // invalid_token (expired, revoked, wrong signature, unknown to every provider): 401
	Unavailable                    // the backend that must decide could not: 503
	NotMine                        // a provider does not consider the token; the chain tries the next
	Internal                       // none of the above: a bug, 500
)

// Classify returns err's class.
func Classify(err error) Class {
	var se *ScopeError
	switch {
	case err == nil:
		return Accepted
	case errors.As(err, &se), errors.Is(err, ErrInsufficientScope):
		return InsufficientScope
	case errors.Is(err, ErrAccessDenied), errors.Is(err, mapping.ErrNoEmail), errors.Is(err, mapping.ErrDomainNotAllowed):
		return Denied
	case errors.Is(err, ErrInvalidToken):
		return Invalid
	case errors.Is(err, ErrUnavailable), errors.Is(err, context.DeadlineExceeded), errors.Is(err, context.Canceled):
		// Canceled: the client left; nobody reads the answer, and it is no one's verdict.
		return Unavailable
	case errors.Is(err, ErrNotMine):
		return NotMine
	}
	return Internal
}

// Outcome is the class's label in the metrics (idbridge_provider_outcomes_total) and in
// logs: accepted, denied (a missing scope too), invalid, unavailable, not_mine, error.
func (c Class) Outcome() string {
	switch c {
	case Accepted:
		return OutcomeAccepted
	case InsufficientScope, Denied:
		return OutcomeDenied
	case Invalid:
		return OutcomeInvalid
	case Unavailable:
		return OutcomeUnavailable
	case NotMine:
		return OutcomeNotMine
	}
	return OutcomeError
}

// String is the class in words, for people (`idbridge resolve`).
func (c Class) String() string {
	switch c {
	case Accepted:
		return "accepted"
	case InsufficientScope:
		return "insufficient scope"
	case Denied:
		return "access denied"
	case Invalid:
		return "invalid token"
	case Unavailable:
		return "unavailable"
	case NotMine:
		return "not handled by any provider"
	}
	return "error"
}
