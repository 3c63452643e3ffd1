package introspection

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"path/filepath"
	"strings"
	"time"

	"github.com/idbridge/idbridge/configs"
	"github.com/idbridge/idbridge/providers"
)

// Type is the provider type this package implements (`type: introspection`).
const Type = "introspection"

// Client authentication methods for the introspection endpoint (OIDC Core §9 names).
const (
	AuthClientSecretBasic = "client_secret_basic" // RFC 6749 §2.3.1, the default
	AuthClientSecretPost  = "client_secret_post"  // RFC 6749 §2.3.1, id and secret in the body
	AuthPrivateKeyJWT     = "private_key_jwt"     // RFC 7523 §2.2, a signed client assertion
)

// Token shapes a provider is sent (`accepts`): see providers.Accepts.
const (
	AcceptsOpaque = providers.AcceptsOpaque // the default: anything that is not a JWT
	AcceptsJWT    = providers.AcceptsJWT
	AcceptsAny    = providers.AcceptsAny
)

// Defaults, applied to zero values.
const (
	DefaultTokenTypeHint    = "access_token"
	DefaultCacheTTL         = 60 * time.Second
	DefaultNegativeCacheTTL = 10 * time.Second
	DefaultTimeout          = 5 * time.Second
)

// Config is a `type: introspection` provider section (RFC 7662).
type Config struct {
	// Endpoint is the introspection endpoint URL. Required.
	Endpoint string `yaml:"endpoint"`
	// Accepts names the token shapes sent to this endpoint: opaque (default), jwt or any.
	// A token of another shape is not ours, so it never reaches an IdP that did not issue it.
	Accepts string `yaml:"accepts"`
	// ClientID is idbridge's client at the IdP. Required.
	ClientID string `yaml:"client_id"`
	// ClientSecret authenticates it (secret); required for the client_secret_* methods.
	ClientSecret string `yaml:"client_secret"`
	// AuthMethod: client_secret_basic (default), client_secret_post or private_key_jwt.
	AuthMethod string `yaml:"auth_method"`
	// PrivateKeyFile is a PEM RSA or P-256 private key for private_key_jwt (secret); a
	// relative path is relative to the config file's folder.
	PrivateKeyFile string `yaml:"private_key_file"`
	// TokenTypeHint is sent as token_type_hint; default access_token.
	TokenTypeHint string `yaml:"token_type_hint"`
	// Issuer, when set, must equal the answer's iss (an answer without iss is refused).
	Issuer string `yaml:"issuer"`
	// Audiences, when set: the answer's aud must contain one of them.
	Audiences []string `yaml:"audiences"`
	// ClientIDs, when set: the answer's client must be one of them.
	ClientIDs []string `yaml:"client_ids"`
	// ClientIDClaims names the members that carry the client, in order; the first present
	// is the client, for client_ids and spotnana.allowed_token_clients. Default
	// [client_id, azp, cid, appid], as for jwt providers.
	ClientIDClaims []string `yaml:"client_id_claims"`
	// RequiredClaims: each top-level member must equal its value (string, number or
	// boolean); when the member is an array, one of its elements must.
	RequiredClaims map[string]any `yaml:"required_claims"`
	// RequiredScopes must all be in scope (space-separated) or scp.
	RequiredScopes []string `yaml:"required_scopes"`
	// CacheTTL bounds how long an accepted answer is reused (never past exp); default 60s,
	// 0 disables the cache. A pointer so that an explicit 0 is not the default.
	CacheTTL *time.Duration `yaml:"cache_ttl"`
	// NegativeCacheTTL keeps "not active" verdicts; default 10s, 0 disables.
	NegativeCacheTTL *time.Duration `yaml:"negative_cache_ttl"`
	// Timeout bounds each call to the endpoint, body included; default 5s.
	Timeout time.Duration `yaml:"timeout"`
}

// settings is a Config checked and completed with its defaults.
type settings struct {
	endpoint      string
	accepts       providers.Accepts
	clientID      string
	clientSecret  string
	authMethod    string
	signer        crypto.Signer // private_key_jwt only
	tokenTypeHint string
	cacheTTL      time.Duration
	negativeTTL   time.Duration
	timeout       time.Duration
	policy        *policy
}

// load decodes and validates sec, collecting every error.
func load(sec *configs.ProviderSection) (*Config, *settings, configs.Errors) {
	var cfg Config
	if errs := sec.Decode(&cfg); len(errs) > 0 {
		return nil, nil, errs
	}
	var errs configs.Errors
	add := func(key, format string, args ...any) { errs = append(errs, sec.Errorf(key, format, args...)) }

	s := &settings{
		endpoint:      cfg.Endpoint,
		clientID:      cfg.ClientID,
		clientSecret:  cfg.ClientSecret,
		authMethod:    orDefault(cfg.AuthMethod, AuthClientSecretBasic),
		tokenTypeHint: orDefault(cfg.TokenTypeHint, DefaultTokenTypeHint),
		cacheTTL:      durationOr(cfg.CacheTTL, DefaultCacheTTL),
		negativeTTL:   durationOr(cfg.NegativeCacheTTL, DefaultNegativeCacheTTL),
		timeout:       cfg.Timeout,
	}
	if s.timeout == 0 {
		s.timeout = DefaultTimeout
	}

	switch {
	case cfg.Endpoint == "":
		add("endpoint", "is required")
	default:
		if msg := providers.CheckEndpointURL(cfg.Endpoint); msg != "" {
			add("endpoint", "%s", msg)
		}
	}
	if a, err := providers.ParseAccepts(cfg.Accepts); err != nil {
		add("accepts", "%v", err)
	} else {
		s.accepts = a
	}
	if cfg.ClientID == "" {
		add("client_id", "is required")
	}
	switch s.authMethod {
	case AuthClientSecretBasic, AuthClientSecretPost:
		if cfg.ClientSecret == "" {
			add("client_secret", "is required with auth_method %s", s.authMethod)
		}
		if cfg.PrivateKeyFile != "" {
			add("private_key_file", "is used only with auth_method private_key_jwt")
		}
	case AuthPrivateKeyJWT:
		if cfg.PrivateKeyFile == "" {
			add("private_key_file", "is required with auth_method private_key_jwt")
		} else {
			signer, err := loadSigner(sec.File, cfg.PrivateKeyFile)
			if err != nil {
				add("private_key_file", "%v", err)
			}
			s.signer = signer
		}
	default:
		add("auth_method", "must be client_secret_basic, client_secret_post or private_key_jwt")
	}
	if s.timeout < 0 {
		add("timeout", "must be positive")
	}
	if s.cacheTTL < 0 {
		add("cache_ttl", "must not be negative")
	}
	if s.negativeTTL < 0 {
		add("negative_cache_ttl", "must not be negative")
	}
	for _, a := range cfg.Audiences {
		if a == "" {
			add("audiences", "must not contain an empty audience")
		}
	}
	for _, c := range cfg.ClientIDs {
		if c == "" {
			add("client_ids", "must not contain an empty client id")
		}
	}
	if cfg.ClientIDClaims != nil && len(cfg.ClientIDClaims) == 0 {
		add("client_id_claims", "must not be empty (default %v)", providers.DefaultClientIDClaims)
	}
	for _, c := range cfg.ClientIDClaims {
		if c == "" {
			add("client_id_claims", "must not contain an empty claim name")
		}
	}
	for _, sc := range cfg.RequiredScopes {
		if sc == "" || strings.ContainsAny(sc, " \t\n") {
			add("required_scopes", "%q is not a scope token (RFC 6749 §3.3)", sc)
		}
	}
	p, claimErrs := newPolicy(&cfg)
	for _, msg := range claimErrs {
		add("required_claims", "%s", msg)
	}
	s.policy = p
	if len(errs) > 0 {
		return nil, nil, errs
	}
	return &cfg, s, nil
}

// Warnings returns advice about a section that is valid but risky: with neither
// audiences nor client_ids, a token issued to any client of the IdP, however low its
// trust, is accepted. The section must decode; errors are New's to report.
func Warnings(sec *configs.ProviderSection) configs.Errors {
	cfg, _, errs := load(sec)
	if len(errs) > 0 {
		return nil
	}
	return warnings(sec, cfg)
}

func warnings(sec *configs.ProviderSection, cfg *Config) configs.Errors {
	var ws configs.Errors
	if len(cfg.Audiences) == 0 && len(cfg.ClientIDs) == 0 {
		w := sec.Errorf("", "neither audiences nor client_ids is set: any client's token, however low its trust, is accepted")
		w.Warning = true
		ws = append(ws, w)
	}
	if w := providers.PlainHTTPWarning(sec, "endpoint", cfg.Endpoint, "client credentials and tokens"); w != nil {
		ws = append(ws, w)
	}
	return ws
}

// loadSigner reads a PEM private key usable for RS256 or ES256 (RFC 7518 §3.3, §3.4).
func loadSigner(configFile, path string) (crypto.Signer, error) {
	if !filepath.IsAbs(path) && configFile != "" {
		path = filepath.Join(filepath.Dir(configFile), path)
	}
	data, err := configs.ReadFileLimited(path, 1<<20)
	if err != nil {
		return nil, fmt.Errorf("cannot read the key file: %w", err)
	}
	block, _ := pem.Decode(data)
	if block == nil {
		return nil, fmt.Errorf("no PEM block in the key file")
	}
	var key any
	switch block.Type {
	case "RSA PRIVATE KEY":
		key, err = x509.ParsePKCS1PrivateKey(block.Bytes)
	case "EC PRIVATE KEY":
		key, err = x509.ParseECPrivateKey(block.Bytes)
	case "PRIVATE KEY":
		key, err = x509.ParsePKCS8PrivateKey(block.Bytes)
	default:
		return nil, fmt.Errorf("PEM block %q is not a private key", block.Type)
	}
	if err != nil {
		// The parse error names the structure, never the key material.
		return nil, fmt.Errorf("cannot parse the private key: %w", err)
	}
	switch k := key.(type) {
	case *rsa.PrivateKey:
		if k.N.BitLen() < 2048 {
			return nil, fmt.Errorf("RSA key of %d bits; at least 2048 are required", k.N.BitLen())
		}
		return k, nil
	case *ecdsa.PrivateKey:
		if k.Curve != elliptic.P256() {
			return nil, fmt.Errorf("EC key must be on P-256 (ES256)")
		}
		return k, nil
	}
	return nil, fmt.Errorf("unsupported key type %T; use RSA (RS256) or P-256 (ES256)", key)
}

func orDefault(v, def string) string {
	if v == "" {
		return def
	}
	return v
}

func durationOr(v *time.Duration, def time.Duration) time.Duration {
	if v == nil {
		return def
	}
	return *v
}
