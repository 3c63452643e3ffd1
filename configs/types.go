package configs

import (
	"time"

	"gopkg.in/yaml.v3"
)

// Config is the whole configuration file. Every field documents its default; see also
// ../shared/design/CONTRACT.md and README.md.
type Config struct {
	// File is the path the config was loaded from (not a YAML key).
	File string `yaml:"-"`

	Server      Server                `yaml:"server"`
	Log         Log                   `yaml:"log"`
	Outbound    Outbound              `yaml:"outbound"`
	Cache       Cache                 `yaml:"cache"`
	Directories map[string]*Directory `yaml:"directories"`
	// Providers are tried in order; at least one is required. Each provider's own keys
	// stay a yaml.Node for its package to decode.
	Providers []*ProviderSection `yaml:"-"`
	// Mapping is required.
	Mapping  Mapping   `yaml:"mapping"`
	Response Response  `yaml:"response"`
	Spotnana *Spotnana `yaml:"spotnana"` // nil: the exchange route is off
}

// Server is the `server:` section.
type Server struct {
	Listen            string        `yaml:"listen"`              // default 127.0.0.1:8080
	AdminListen       string        `yaml:"admin_listen"`        // default 127.0.0.1:9090
	UserDetailPath    string        `yaml:"user_detail_path"`    // default /v1/user-detail
	ExchangePath      *string       `yaml:"exchange_path"`       // default /v1/token-exchange; "" disables
	Realm             string        `yaml:"realm"`               // default idbridge
	TLS               TLS           `yaml:"tls"`                 // default: plain HTTP
	ReadHeaderTimeout time.Duration `yaml:"read_header_timeout"` // default 5s
	RequestTimeout    time.Duration `yaml:"request_timeout"`     // default 15s
	ShutdownTimeout   time.Duration `yaml:"shutdown_timeout"`    // default 20s
	MaxHeaderBytes    int           `yaml:"max_header_bytes"`    // default 16384
	TrustedProxies    []string      `yaml:"trusted_proxies"`     // default none
	AllowedClients    []string      `yaml:"allowed_clients"`     // default any (user-detail only)
	RateLimit         RateLimit     `yaml:"rate_limit"`          // default off
}

// TLS names the main listener's certificate and key; both empty means plain HTTP.
type TLS struct {
	CertFile string `yaml:"cert_file"`
	KeyFile  string `yaml:"key_file"`
}

// RateLimit is a per-client token bucket; rps 0 turns it off.
type RateLimit struct {
	RPS   float64 `yaml:"rps"`   // default 0 (off)
	Burst int     `yaml:"burst"` // default 0; with rps set, 0 means max(1, rps)
}

// Log is the `log:` section.
type Log struct {
	Level  string `yaml:"level"`  // default info; debug | info | warn | error
	Format string `yaml:"format"` // default json; json | text
}

// Outbound applies to every outbound HTTP call (IdPs, Spotnana).
type Outbound struct {
	CAFile         string `yaml:"ca_file"`          // default "": system roots
	ClientCertFile string `yaml:"client_cert_file"` // default "": no client certificate
	ClientKeyFile  string `yaml:"client_key_file"`  // secret; default ""
}

// Cache is the `cache:` section.
type Cache struct {
	Backend       string `yaml:"backend"`        // default memory; memory | redis
	MaxEntries    int    `yaml:"max_entries"`    // default 100000
	Redis         Redis  `yaml:"redis"`          // used with backend: redis
	EncryptionKey string `yaml:"encryption_key"` // secret; 32 bytes hex or base64; required with redis
}

// Redis is the `cache.redis:` section.
type Redis struct {
	Addr      string `yaml:"addr"`       // default 127.0.0.1:6379
	Username  string `yaml:"username"`   // default ""
	Password  string `yaml:"password"`   // secret; default ""
	DB        int    `yaml:"db"`         // default 0
	TLS       bool   `yaml:"tls"`        // default false
	KeyPrefix string `yaml:"key_prefix"` // default "idbridge:"
}

// Directory is one LDAP connection under `directories:`.
type Directory struct {
	Name               string        `yaml:"-"`
	Line               int           `yaml:"-"`
	URL                string        `yaml:"url"`                  // required; ldap:// or ldaps://
	StartTLS           bool          `yaml:"start_tls"`            // default false
	CAFile             string        `yaml:"ca_file"`              // default "": system roots
	InsecureSkipVerify bool          `yaml:"insecure_skip_verify"` // default false
	BindDN             string        `yaml:"bind_dn"`              // default "": anonymous
	BindPassword       string        `yaml:"bind_password"`        // secret
	BaseDN             string        `yaml:"base_dn"`              // required
	Scope              string        `yaml:"scope"`                // default sub; base | one | sub
	PoolSize           int           `yaml:"pool_size"`            // default 8
	Timeout            time.Duration `yaml:"timeout"`              // default 5s
	SizeLimit          int           `yaml:"size_limit"`           // default 2
	TimeLimit          time.Duration `yaml:"time_limit"`           // default 5s
}

// ProviderSection is one entry of `providers:`. The keys every provider type shares are
// decoded here; the rest stays in Node for the type's own package to decode strictly.
type ProviderSection struct {
	Name string // required, unique
	Type string // required; a registered provider type
	// File, Path ("providers[2]") and Line locate the section for error messages.
	File string
	Path string
	Line int
	// Node is the provider's mapping node without the shared keys (name, type, mapping,
	// lookup, userinfo), with references already resolved.
	Node *yaml.Node
	// Mapping overrides the top-level mapping for this provider; nil: use the top level.
	Mapping *Mapping
	// Lookup and Userinfo are optional enrichment steps; nil when absent.
	Lookup   *Lookup
	Userinfo *Userinfo
	// Fingerprint is a hex digest of the section's resolved content.
	Fingerprint string

	// refs maps the paths of values that came from references to the reference text,
	// so that Decode never shows a resolved value in an error.
	refs map[string]string
}

// Lookup enriches an identity from a directory (`lookup:` in a provider).
type Lookup struct {
	Line       int           `yaml:"-"`
	Directory  string        `yaml:"directory"`  // required; a name under directories
	Filter     string        `yaml:"filter"`     // required; {{gjson path}} placeholders, RFC 4515-escaped
	Attributes []string      `yaml:"attributes"` // default: all user attributes
	Into       string        `yaml:"into"`       // default directory
	Required   *bool         `yaml:"required"`   // default true: no entry, or two → 403
	CacheTTL   time.Duration `yaml:"cache_ttl"`  // default 5m
}

// Userinfo enriches an identity with the OIDC userinfo answer (`userinfo:` in a provider).
type Userinfo struct {
	Line        int     `yaml:"-"`
	Endpoint    string  `yaml:"endpoint"`     // default: from discovery
	Into        string  `yaml:"into"`         // default userinfo
	WhenMissing *string `yaml:"when_missing"` // default email; "" = always
	// SubjectClaim names the document claim that must equal the answer's sub (OIDC Core
	// §5.3.2); default sub. Okta access tokens need uid.
	SubjectClaim string `yaml:"subject_claim"`
}

// Mapping is the `mapping:` section (top level, or a provider's override).
type Mapping struct {
	Line           int               `yaml:"-"`
	Email          []Candidate       `yaml:"email"`           // required, non-empty
	AllowedDomains []string          `yaml:"allowed_domains"` // default any
	RewriteDomains map[string]string `yaml:"rewrite_domains"` // default none
}

// Candidate is one way to find the email; the first that yields a valid address wins.
type Candidate struct {
	Line       int         `yaml:"-"`
	Path       string      `yaml:"path"`     // a gjson path; exactly one of path, template
	Template   string      `yaml:"template"` // "{{path}}@example.com"
	When       *When       `yaml:"when"`     // optional condition
	Transforms []Transform `yaml:"transforms"`
}

// When is a candidate's condition: exactly one of equals, matches, exists.
type When struct {
	Path    string `yaml:"path"`    // required
	Equals  any    `yaml:"equals"`  // the value at path equals this (string, number, bool)
	Matches string `yaml:"matches"` // the value at path matches this regex
	Exists  *bool  `yaml:"exists"`  // the path exists (true) or not (false)
}

// Transform is one step: a bare name (trim, lower) or a one-key map
// ({trim_prefix: "SMTP:"}, {trim_suffix: …}, {replace: {regex: …, with: …}}).
type Transform struct {
	Line int    `yaml:"-"`
	Name string // trim | lower | trim_prefix | trim_suffix | replace
	Arg  string // trim_prefix/trim_suffix argument, or replace's regex
	With string // replace's replacement
}

// Response shapes the user-detail answer.
type Response struct {
	EmailField string            `yaml:"email_field"` // default email
	Extra      map[string]string `yaml:"extra"`       // default none; field: gjson path
}

// Spotnana is the `spotnana:` section, required for the exchange route.
type Spotnana struct {
	Line                int           `yaml:"-"`
	TokenURL            string        `yaml:"token_url"`             // required
	ClientID            string        `yaml:"client_id"`             // required
	ClientSecret        string        `yaml:"client_secret"`         // required, secret
	Audience            string        `yaml:"audience"`              // default "": not sent
	Mode                string        `yaml:"mode"`                  // default callback; callback | assertion
	Timeout             time.Duration `yaml:"timeout"`               // default 10s
	MaxRetries          *int          `yaml:"max_retries"`           // default 3
	TokenCache          *bool         `yaml:"token_cache"`           // default true
	AllowedTokenClients []string      `yaml:"allowed_token_clients"` // default any
	Assertion           Assertion     `yaml:"assertion"`
}

// Assertion configures assertion mode (Spotnana's JWKS variant).
type Assertion struct {
	Issuer           string        `yaml:"issuer"`             // required in assertion mode
	Audience         string        `yaml:"audience"`           // default spotnana
	SubjectPath      string        `yaml:"subject_path"`       // default sub
	SubjectTokenType string        `yaml:"subject_token_type"` // default urn:ietf:params:oauth:token-type:access_token
	TTL              time.Duration `yaml:"ttl"`                // default 5m
	KeysDir          string        `yaml:"keys_dir"`           // required in assertion mode
	PublishAhead     time.Duration `yaml:"publish_ahead"`      // default 10m
	JWKSPath         string        `yaml:"jwks_path"`          // default /.well-known/jwks.json
}
