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
	"maps"
	"net/http"
	"slices"
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

// StateAdopter is implemented by providers that can start from the state of the one they
// replace on a reload, when both have the same name and configuration (Instance.
// Fingerprint). AdoptState reports whether it took anything. A jwt provider whose IdP
// does not answer at the reload keeps the running provider's keys, so that a mapping
// edit made during an IdP outage neither fails nor takes the keys away.
type StateAdopter interface {
	AdoptState(from Provider) bool
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

// Instance is one configured provider, ready for the chain once started.
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
	// Start, when not nil, does what building must not: network calls, goroutines (a jwt
	// provider's first key load and its refresher). It is bounded by ctx. A factory has
	// no side effects, so that `idbridge check` and a refused reload start nothing.
	Start func(ctx context.Context) error
	// Close releases what Start started (key refreshers, pools); may be nil. It must be
	// safe to call when Start was not called or failed.
	Close func() error
}

// Deps are what the wiring gives every factory. Nothing here is global state.
type Deps struct {
	// HTTPClient makes every outbound call (CA, client certificate and proxy applied; it
	// never follows a redirect: see outbound.New). Each provider still sets its own
	// per-call deadline from its timeout.
	HTTPClient *http.Client
	Logger     *slog.Logger
	// Now is the clock; tests inject their own.
	Now func() time.Time
	// Directories are the configured directories (type: ldap providers and lookups);
	// nil when the config has none.
	Directories Directories
	// File is the config file's path, for error positions and relative paths.
	File string
}

// Directories are the connections under `directories:`, built by the package the
// registry names for them. The wiring only starts, reports on and closes them; the
// providers and steps of the owning package look inside.
type Directories interface {
	// Has reports whether name is configured, even when its section had errors (a
	// reference to it then adds no second error).
	Has(name string) bool
	// Start checks each directory once (a bind), bounded by ctx; a failure is logged,
	// not returned: the directory may come back.
	Start(ctx context.Context)
	// Health probes each directory, by name.
	Health(ctx context.Context) map[string]Health
	// PoolStats reports each directory's connections in use and idle, by name.
	PoolStats() map[string]PoolStats
	Close() error
}

// PoolStats is one connection pool's occupancy.
type PoolStats struct{ InUse, Idle int }

// Counter is one monotonic count a provider keeps for the metrics (the jwt provider's
// key loads by result). The metrics export it as idbridge_<Name>_total{provider, result}.
type Counter struct {
	Name   string // e.g. jwks_refreshes
	Help   string
	Result string
	Value  int64
}

// Counters is implemented by providers that keep counts of their own for the metrics.
type Counters interface {
	Counters() []Counter
}

// Factory builds one provider from its section, without side effects (no network, no
// goroutine: see Instance.Start). Errors carry the section's file and line
// (configs.Errors), so that `idbridge check` reports them with everything else.
type Factory func(sec *configs.ProviderSection, deps Deps) (Instance, error)

// StepFactory builds an enrichment step from its section (a provider's lookup:,
// userinfo: or rest:), without side effects. p is the provider it follows (for
// discovery of a userinfo endpoint); owner is that provider's section.
type StepFactory func(step *configs.Section, owner *configs.ProviderSection, p Provider, deps Deps) (Enricher, error)

// DirectoriesFactory builds the directories from their sections, without side effects.
// It returns what it could build with every error: a directory with errors is still
// known by name (Has), so that what refers to it is not reported again.
type DirectoriesFactory func(secs []*configs.Section, deps Deps) (Directories, configs.Errors)

// Type is one provider type's registration: everything the core needs to know about it.
type Type struct {
	New Factory
	// Secrets are the keys of its section whose values are secrets (${file:} allowed,
	// never shown).
	Secrets []string
	// Warnings gives advice about a valid but risky section, printed by `idbridge
	// check` and logged at start; may be nil.
	Warnings func(*configs.ProviderSection) configs.Errors
}

// Step is one enrichment step's registration.
type Step struct {
	// Key is the provider key that holds the step (lookup, userinfo, rest).
	Key     string
	New     StepFactory
	Secrets []string
	// Warnings gives advice about a valid but risky step section (a plain-http
	// endpoint), printed by `idbridge check` and logged at start; may be nil.
	Warnings func(step *configs.Section) configs.Errors
}

// DirectoriesType is the registration of the `directories:` section's owner.
type DirectoriesType struct {
	New     DirectoriesFactory
	Secrets []string
}

// Registry maps provider types, enrichment steps and the directories section to the
// packages that own them. cmd fills it; nothing registers itself, and no code outside
// the owning package names a type.
type Registry struct {
	Types map[string]Type
	// Steps run in this order on every accepted document, whatever the order of their
	// keys in the file.
	Steps       []Step
	Directories *DirectoriesType // nil: a directories: section is refused
}

// TypeNames lists the registered provider types, sorted.
func (r Registry) TypeNames() []string {
	return slices.Sorted(maps.Keys(r.Types))
}

// StepKeys lists the registered steps' keys, in running order.
func (r Registry) StepKeys() []string {
	keys := make([]string, len(r.Steps))
	for i, s := range r.Steps {
		keys[i] = s.Key
	}
	return keys
}

// SecretKeys lists every secret key name the registered packages declare, for
// configs.Load.
func (r Registry) SecretKeys() []string {
	var out []string
	for _, name := range r.TypeNames() {
		out = append(out, r.Types[name].Secrets...)
	}
	for _, s := range r.Steps {
		out = append(out, s.Secrets...)
	}
	if r.Directories != nil {
		out = append(out, r.Directories.Secrets...)
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// ProviderFunc adapts a function to the Provider interface, as http.HandlerFunc does
// for handlers: fakes in tests of the chain and the server are one line.
type ProviderFunc func(ctx context.Context, token string) (Identity, error)

// Authenticate calls f.
func (f ProviderFunc) Authenticate(ctx context.Context, token string) (Identity, error) {
	return f(ctx, token)
}

var _ Provider = ProviderFunc(nil)
