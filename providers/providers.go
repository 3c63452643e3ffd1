// Package providers is the contract between idbridge and the systems that can vouch for a
// bearer token: the Provider interface, the Identity it returns, the sentinel errors that
// steer the chain, the registry of provider types, and the chain itself.
//
// The package imports no provider implementation: cmd injects the registry, so adding a
// provider type touches its own package and one registration line.
package providers

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/idbridge/idbridge/configs"
)

// Sentinel errors. Providers wrap them (fmt.Errorf("jwt: %w", ErrInvalidToken)); only the
// server turns them into HTTP statuses.
var (
	// ErrNotMine: the provider does not consider this token (wrong shape or issuer); the
	// chain tries the next provider.
	ErrNotMine = errors.New("token not handled by this provider")
	// ErrInvalidToken: the provider considered the token and refused it.
	ErrInvalidToken = errors.New("invalid token")
	// ErrExpired is wrapped together with ErrInvalidToken when the token's time is over
	// (exp passed).
	ErrExpired = errors.New("token expired")
	// ErrNotYetValid is wrapped together with ErrInvalidToken when the token's time has not
	// come (nbf or iat beyond the leeway): usually clock skew, not a stale token.
	ErrNotYetValid = errors.New("token not yet valid")
	// ErrUnavailable: the provider could not decide (IdP or directory down, timeout, a
	// malformed answer). Never treated as acceptance.
	ErrUnavailable = errors.New("identity backend unavailable")
	// ErrAccessDenied: the token is valid but the user may not pass (a required directory
	// entry is missing or ambiguous, no email could be mapped, a domain is not allowed).
	ErrAccessDenied = errors.New("access denied")
	// ErrInsufficientScope is wrapped by *ScopeError.
	ErrInsufficientScope = errors.New("insufficient scope")
)

// ScopeError reports the required scopes a valid token lacks (RFC 6750 §3.1
// insufficient_scope). errors.Is(err, ErrInsufficientScope) holds for it.
type ScopeError struct {
	Required []string // every scope the provider requires, for the WWW-Authenticate scope=
}

func (e *ScopeError) Error() string {
	return "insufficient scope: requires " + strings.Join(e.Required, " ")
}

// Unwrap lets errors.Is match ErrInsufficientScope.
func (e *ScopeError) Unwrap() error { return ErrInsufficientScope }

// Identity is what a provider proves about a token.
type Identity struct {
	// Provider is the name of the provider that accepted the token (set by the chain).
	Provider string
	// Document is the identity document, a JSON object: the verified claims, the
	// introspection answer, the userinfo answer or the directory entry, plus whatever
	// enrichment steps merged into it. Mapping rules are gjson paths into it.
	Document []byte
	// Expires is when the token stops being valid; zero when the provider cannot tell.
	// Nothing derived from the token is cached past it.
	Expires time.Time
}

// Provider validates a bearer token and returns the identity document it proves.
// It returns an error wrapping ErrNotMine, ErrInvalidToken or ErrUnavailable.
type Provider interface {
	Authenticate(ctx context.Context, token string) (Identity, error)
}

// Policy is implemented by providers whose authorization checks (audiences, client_ids,
// required_claims, required_scopes) must run on every request, including those answered
// from the cache. The chain caches the document before the check, so a cache hit never
// skips it.
type Policy interface {
	CheckPolicy(doc []byte, now time.Time) error
}

// Enricher adds to an accepted identity document: a directory lookup, a userinfo call.
// It returns the new document, or an error wrapping ErrUnavailable or ErrAccessDenied.
type Enricher interface {
	Enrich(ctx context.Context, token string, doc []byte) ([]byte, error)
	// TTL bounds how long an enriched document may be cached; 0 means no bound of its own.
	TTL() time.Duration
}

// Health is one dependency's state, for /readyz.
type Health struct {
	// Ready is false only while the provider cannot serve at all for a reason that is not
	// an outage (a jwt provider that has never loaded keys).
	Ready bool `json:"ready"`
	// OK reports the dependency as reachable right now.
	OK bool `json:"ok"`
	// Detail is a short human-readable reason; never a secret or a token.
	Detail string `json:"detail,omitempty"`
}

// HealthChecker is implemented by providers and enrichers that can report on their
// dependency.
type HealthChecker interface {
	Health(ctx context.Context) Health
}

// UserinfoSource is implemented by providers that learn a userinfo endpoint through OIDC
// discovery, so that a userinfo enrichment step without an explicit endpoint can use it.
type UserinfoSource interface {
	UserinfoEndpoint(ctx context.Context) (string, error)
}

// ClientSource is implemented by providers that know which claim of their documents
// names the client a token was issued to (client_id_claims), so that
// spotnana.allowed_token_clients reads the same claim as the provider's client_ids.
type ClientSource interface {
	TokenClient(doc []byte) (client string, ok bool)
}

// DefaultClientIDClaims is client_id_claims' default: the claims in which the IdPs of the
// field name the client a token was issued to, in the order they are read: client_id
// (RFC 9068, RFC 7662), azp (OIDC Core; Entra v2, Keycloak, Google, Auth0), cid (Okta),
// appid (Entra v1).
var DefaultClientIDClaims = []string{"client_id", "azp", "cid", "appid"}

// Instance is one configured provider, ready for the chain.
type Instance struct {
	Name     string
	Type     string
	Provider Provider
	// Enrichers run in order on every freshly accepted document, before it is cached.
	Enrichers []Enricher
	// CacheTTL bounds how long an accepted identity is cached (never past Expires);
	// 0 disables the cache for this provider.
	CacheTTL time.Duration
	// NegativeTTL keeps invalid verdicts apart in the negative cache; 0 disables it.
	NegativeTTL time.Duration
	// Final makes an invalid verdict the chain's answer: a jwt provider that considered a
	// token never lets it fall through to another provider.
	Final bool
	// Fingerprint is a digest of the provider's configuration: a reload that changes a
	// provider starts it with a fresh cache.
	Fingerprint string
	// Section is the configuration it was built from.
	Section *configs.ProviderSection
	// Close releases the provider's resources (key refreshers, pools); may be nil.
	Close func() error
}

// Deps are what the wiring gives every factory. Nothing here is global state.
type Deps struct {
	// HTTPClient makes every outbound call (CA, client certificate and proxy applied).
	// Each provider still sets its own per-call deadline from its timeout.
	HTTPClient *http.Client
	Logger     *slog.Logger
	// Now is the clock; tests inject their own.
	Now func() time.Time
	// Directories gives type: ldap providers and lookups their connection pools; nil
	// when the config has none.
	Directories Directories
	// File is the config file's path, for error positions.
	File string
	// ValidateOnly asks a factory to check its section and return without touching the
	// network or starting goroutines (`idbridge check`). The Instance it returns is not
	// used.
	ValidateOnly bool
}

// Directories resolves a directory name to the pool a provider or lookup uses. It is an
// interface so that providers/ldap owns the implementation.
type Directories interface {
	Directory(name string) (any, bool)
}

// Factory builds one provider from its section. Errors carry the section's file and line
// (configs.Errors), so that `idbridge check` reports them with everything else.
type Factory func(sec *configs.ProviderSection, deps Deps) (Instance, error)

// EnricherFactory builds an enrichment step from a provider's lookup: or userinfo:
// section. p is the provider it follows (for discovery of a userinfo endpoint).
type EnricherFactory func(sec *configs.ProviderSection, p Provider, deps Deps) (Enricher, error)

// Registry maps provider types to their factories, plus the shared enrichment steps.
// cmd fills it; nothing registers itself.
type Registry struct {
	Types    map[string]Factory
	Lookup   EnricherFactory // nil: lookup sections are refused
	Userinfo EnricherFactory // nil: userinfo sections are refused
	// Warnings gives, per type, advice about a valid but risky section, printed by
	// `idbridge check` and logged at start.
	Warnings map[string]func(*configs.ProviderSection) configs.Errors
}
