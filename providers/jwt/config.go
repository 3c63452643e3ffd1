package jwt

import (
	"encoding/json"
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/idbridge/idbridge/configs"
	"github.com/idbridge/idbridge/providers"
)

// Defaults, per CONTRACT.md.
const (
	defaultLeeway      = 30 * time.Second
	defaultJWKSRefresh = time.Hour
	defaultTimeout     = 5 * time.Second
	defaultAlgorithm   = "RS256"
)

// Config is a `type: jwt` provider's own section. The shared keys (name, type, lookup,
// userinfo, mapping) are decoded by configs.
type Config struct {
	// Issuer is required; a token's iss must equal it exactly (RFC 8725 §3.8).
	Issuer string `yaml:"issuer"`
	// Discovery fetches jwks_uri (and userinfo_endpoint) from
	// {issuer}/.well-known/openid-configuration. Default true when neither jwks_uri nor
	// jwks_file is given.
	Discovery *bool `yaml:"discovery"`
	// JWKSURI names the key set directly; default "".
	JWKSURI string `yaml:"jwks_uri"`
	// JWKSFile is a static JWKS or PEM public key file (air-gapped sites); default "".
	// A PEM key without kid gets its RFC 7638 thumbprint as kid.
	JWKSFile string `yaml:"jwks_file"`
	// Audiences is required and non-empty: aud must contain one of them.
	Audiences []string `yaml:"audiences"`
	// ClientIDs, when set, must contain the token's client: the first of ClientIDClaims
	// present in the token. Default: any.
	ClientIDs []string `yaml:"client_ids"`
	// ClientIDClaims names the claims that carry the client, in order; the first present
	// one is the client, for client_ids and spotnana.allowed_token_clients. Default
	// [client_id, azp, cid, appid]: RFC 9068/8693 client_id, OIDC azp (Entra v2, Keycloak,
	// Google, Auth0), Okta's cid, Entra v1's appid.
	ClientIDClaims []string `yaml:"client_id_claims"`
	// Types, when set, must contain the header typ, compared case-insensitively with
	// the "application/" prefix optional (RFC 9068 §2.1). Default: any typ.
	Types []string `yaml:"types"`
	// Algorithms is the allowlist (RFC 8725 §3.1); default [RS256]. "none" and HMAC are
	// refused: a verifier holding only public keys must never accept a MAC.
	Algorithms []string `yaml:"algorithms"`
	// Leeway absorbs clock skew on exp, nbf and iat; default 30s.
	Leeway *time.Duration `yaml:"leeway"`
	// RequiredClaims maps a claim to the exact JSON value it must have; default none.
	RequiredClaims map[string]any `yaml:"required_claims"`
	// RequiredScopes must each appear in scope (space-separated) or scp; default none.
	RequiredScopes []string `yaml:"required_scopes"`
	// JWKSRefresh is the key refresh period; default 1h.
	JWKSRefresh time.Duration `yaml:"jwks_refresh"`
	// Timeout bounds each outbound call (discovery, JWKS); default 5s.
	Timeout time.Duration `yaml:"timeout"`
}

// allowedAlgs is every algorithm this provider can verify with a public key. HMAC and
// none are absent on purpose (RFC 8725 §2.1, §3.1).
var allowedAlgs = map[string]keyKind{
	"RS256": kindRSA, "RS384": kindRSA, "RS512": kindRSA,
	"PS256": kindRSA, "PS384": kindRSA, "PS512": kindRSA,
	"ES256": kindP256, "ES384": kindP384,
	"EdDSA": kindEd25519,
}

// settings is the validated, defaulted form of Config that the hot path reads.
type settings struct {
	cfg            Config
	discovery      bool
	leeway         time.Duration
	algs           map[string]keyKind
	clientIDClaims []string // top-level claim names, in order
	// policyNames are the members CheckPolicy reads in one pass: exp, aud, scope, scp,
	// then clientIDClaims, then the required claims' names.
	policyNames []string
	types       []string // normalised: lower case, without "application/"
	// policy is audiences, client_ids, required_claims and required_scopes.
	policy     *providers.ClaimPolicy
	refresh    time.Duration
	timeout    time.Duration
	wellKnown  string // discovery document URL
	issuerNorm string // issuer without a trailing slash, for discovery
}

// parseConfig decodes and validates sec, reporting every error at once.
func parseConfig(sec *configs.ProviderSection) (*settings, error) {
	var cfg Config
	if errs := sec.Decode(&cfg); len(errs) > 0 {
		return nil, errs
	}
	var errs configs.Errors
	s := &settings{cfg: cfg}

	if cfg.Issuer == "" {
		errs = append(errs, sec.Errorf("issuer", "required"))
	}

	// Key source: exactly one.
	sources := 0
	if cfg.JWKSURI != "" {
		sources++
		if u, err := url.Parse(cfg.JWKSURI); err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
			errs = append(errs, sec.Errorf("jwks_uri", "must be an http(s) URL"))
		}
	}
	if cfg.JWKSFile != "" {
		sources++
	}
	switch {
	case sources > 1:
		errs = append(errs, sec.Errorf("jwks_file", "give only one key source: jwks_uri or jwks_file"))
	case sources == 1 && cfg.Discovery != nil && *cfg.Discovery:
		errs = append(errs, sec.Errorf("discovery", "give only one key source: discovery: true conflicts with jwks_uri/jwks_file"))
	case sources == 0 && cfg.Discovery != nil && !*cfg.Discovery:
		errs = append(errs, sec.Errorf("discovery", "no key source: set discovery: true, jwks_uri or jwks_file"))
	case sources == 0:
		s.discovery = true
	}
	if s.discovery && cfg.Issuer != "" {
		u, err := url.Parse(cfg.Issuer)
		if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
			errs = append(errs, sec.Errorf("issuer", "must be an http(s) URL for discovery"))
		}
		s.issuerNorm = strings.TrimSuffix(cfg.Issuer, "/")
		s.wellKnown = s.issuerNorm + "/.well-known/openid-configuration"
	}

	if len(cfg.Audiences) == 0 {
		errs = append(errs, sec.Errorf("audiences", "required, non-empty"))
	}
	for _, a := range cfg.Audiences {
		if a == "" {
			errs = append(errs, sec.Errorf("audiences", "empty audience"))
		}
	}
	if len(cfg.ClientIDs) > 0 {
		for _, c := range cfg.ClientIDs {
			if c == "" {
				errs = append(errs, sec.Errorf("client_ids", "empty client id"))
			}
		}
	}
	s.clientIDClaims, errs = clientClaimPaths(sec, cfg.ClientIDClaims, errs)
	for _, t := range cfg.Types {
		if t == "" {
			errs = append(errs, sec.Errorf("types", "empty type"))
			continue
		}
		s.types = append(s.types, normType(t))
	}

	algs := cfg.Algorithms
	if len(algs) == 0 {
		algs = []string{defaultAlgorithm}
	}
	s.algs = make(map[string]keyKind, len(algs))
	for _, a := range algs {
		kind, ok := allowedAlgs[a]
		switch {
		case ok:
			s.algs[a] = kind
		case strings.EqualFold(a, "none"):
			errs = append(errs, sec.Errorf("algorithms", "%q is never allowed (RFC 8725 §3.1)", a))
		case strings.HasPrefix(strings.ToUpper(a), "HS"):
			errs = append(errs, sec.Errorf("algorithms", "%q: HMAC is not allowed: a verifier with public keys must not accept MACs (RFC 8725 §2.1)", a))
		default:
			errs = append(errs, sec.Errorf("algorithms", "%q is not supported; use RS256 RS384 RS512 PS256 PS384 PS512 ES256 ES384 EdDSA", a))
		}
	}

	s.leeway = defaultLeeway
	if cfg.Leeway != nil {
		s.leeway = *cfg.Leeway
		if s.leeway < 0 {
			errs = append(errs, sec.Errorf("leeway", "must not be negative"))
		}
	}
	s.refresh = cfg.JWKSRefresh
	switch {
	case s.refresh == 0:
		s.refresh = defaultJWKSRefresh
	case s.refresh < time.Second:
		errs = append(errs, sec.Errorf("jwks_refresh", "must be at least 1s"))
	}
	s.timeout = cfg.Timeout
	switch {
	case s.timeout == 0:
		s.timeout = defaultTimeout
	case s.timeout < 0:
		errs = append(errs, sec.Errorf("timeout", "must be positive"))
	}

	var claims []providers.RequiredClaim
	for name, v := range cfg.RequiredClaims {
		if name == "" {
			errs = append(errs, sec.Errorf("required_claims", "empty claim name"))
			continue
		}
		m, err := newClaimMatcher(name, v)
		if err != nil {
			errs = append(errs, sec.Errorf("required_claims", "%s: %v", name, err))
			continue
		}
		claims = append(claims, m)
	}
	for _, sc := range cfg.RequiredScopes {
		if sc == "" || strings.ContainsAny(sc, " \t") {
			errs = append(errs, sec.Errorf("required_scopes", "%q is not a scope token", sc))
		}
	}

	if len(errs) > 0 {
		return nil, errs
	}
	s.policyNames = append([]string{"exp", "aud", "scope", "scp"}, s.clientIDClaims...)
	for _, m := range claims {
		s.policyNames = append(s.policyNames, m.Name)
	}
	s.policy = providers.NewClaimPolicy(cfg.Audiences, cfg.ClientIDs, claims, cfg.RequiredScopes)
	return s, nil
}

// clientClaimPaths validates client_id_claims.
func clientClaimPaths(sec *configs.ProviderSection, names []string, errs configs.Errors) ([]string, configs.Errors) {
	if names == nil {
		names = providers.DefaultClientIDClaims
	}
	if len(names) == 0 {
		errs = append(errs, sec.Errorf("client_id_claims", "must not be empty (default %v)", providers.DefaultClientIDClaims))
	}
	out := make([]string, 0, len(names))
	for _, n := range names {
		if n == "" {
			errs = append(errs, sec.Errorf("client_id_claims", "empty claim name"))
			continue
		}
		out = append(out, n)
	}
	return out, errs
}

// normType folds a typ for comparison: RFC 7515 §4.1.9 makes it case-insensitive and
// lets "application/" be omitted.
func normType(t string) string {
	t = strings.ToLower(t)
	return strings.TrimPrefix(t, "application/")
}

// newClaimMatcher returns a required claim whose value is held as canonical JSON, so
// that comparison is type-strict ("5" never equals 5) and arrays and objects compare whole.
func newClaimMatcher(name string, v any) (providers.RequiredClaim, error) {
	b, err := json.Marshal(normYAML(v))
	if err != nil {
		return providers.RequiredClaim{}, err
	}
	var want any
	if err := json.Unmarshal(b, &want); err != nil {
		return providers.RequiredClaim{}, err
	}
	return providers.RequiredClaim{Name: name, Want: want}, nil
}

// normYAML turns yaml.v3's map[any]any (from non-string keys) into JSON-encodable maps.
func normYAML(v any) any {
	switch t := v.(type) {
	case map[string]any:
		out := make(map[string]any, len(t))
		for k, e := range t {
			out[k] = normYAML(e)
		}
		return out
	case map[any]any:
		out := make(map[string]any, len(t))
		for k, e := range t {
			out[fmt.Sprint(k)] = normYAML(e)
		}
		return out
	case []any:
		out := make([]any, len(t))
		for i, e := range t {
			out[i] = normYAML(e)
		}
		return out
	default:
		return v
	}
}
