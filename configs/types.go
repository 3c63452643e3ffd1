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

	Server   Server   `yaml:"server"`
	Log      Log      `yaml:"log"`
	Outbound Outbound `yaml:"outbound"`
	Cache    Cache    `yaml:"cache"`
	// Directories are the LDAP connections under `directories:`, in file order; each is
	// decoded and checked by the package the registry names for them (providers/ldap).
	Directories []*Section `yaml:"-"`
	// Providers are tried in order; at least one is required. Each provider's own keys
	// stay a yaml.Node for its package to decode.
	Providers []*ProviderSection `yaml:"-"`
	// Mapping is required.
	Mapping  Mapping   `yaml:"mapping"`
	Response Response  `yaml:"response"`
	Spotnana *Spotnana `yaml:"spotnana"` // nil: the exchange route is off

	// reported are the key paths configs reported a fatal error at; unresolved those
	// whose reference failed. See Reported and Unresolved.
	reported []string
	// absent holds the keys LoadOffline could not resolve here: a reference ("") or a
	// file (its name). See Excused.
	absent     map[string]string
	unresolved map[string]bool
	// resolved is every ${env:}/${file:} reference with its value, for Redact.
	resolved []resolvedRef
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
	IdleTimeout       time.Duration `yaml:"idle_timeout"`        // default 60s; both listeners
	// MaxConnections bounds the API listener's open connections, in total and per
	// client address (the TCP peer: behind a proxy, the proxy).
	MaxConnections          int       `yaml:"max_connections"`            // default 2048
	MaxConnectionsPerClient int       `yaml:"max_connections_per_client"` // default 256
	AdminToken              string    `yaml:"admin_token"`                // secret; default "": no token
	TrustedProxies          []string  `yaml:"trusted_proxies"`            // default none
	AllowedClients          []string  `yaml:"allowed_clients"`            // default any (user-detail only)
	RateLimit               RateLimit `yaml:"rate_limit"`                 // default off
	CORS                    CORS      `yaml:"cors"`                       // default: no origin
	// Playground serves the mapping playground at GET /playground on the admin listener.
	// Default: on while admin_listen is a loopback address, off otherwise.
	Playground *bool `yaml:"playground"`
}

// CORS lets web pages on other origins call the exchange route from the browser
// (Spotnana's iframe integration). User-detail never answers CORS.
type CORS struct {
	// AllowedOrigins are exact origins (scheme://host[:port], as browsers send them);
	// default none. No wildcard, no "null".
	AllowedOrigins []string `yaml:"allowed_origins"`
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
	// RedactEmails masks the local part of the email that 403 and 502 request lines
	// show (***@example.com), for sites whose logs must not hold addresses. Default false.
	RedactEmails bool `yaml:"redact_emails"`
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
	MaxBytes      int    `yaml:"max_bytes"`      // default 268435456 (256 MiB), per kind, memory only
	Redis         Redis  `yaml:"redis"`          // used with backend: redis
	EncryptionKey string `yaml:"encryption_key"` // secret; 32 bytes hex or base64; required with redis
}

// Redis is the `cache.redis:` section. Exactly one topology: addr (one standalone
// Redis), sentinel (a primary and its replicas watched by Redis Sentinel) or cluster
// (Redis Cluster, which managed services in cluster mode also are).
type Redis struct {
	Line           int            `yaml:"-"`
	Addr           string         `yaml:"addr"`             // default 127.0.0.1:6379 when neither sentinel nor cluster is given
	Sentinel       *RedisSentinel `yaml:"sentinel"`         // default none
	Cluster        *RedisCluster  `yaml:"cluster"`          // default none
	Username       string         `yaml:"username"`         // default "": the default user (or a password-only AUTH)
	Password       string         `yaml:"password"`         // secret; default ""
	DB             int            `yaml:"db"`               // default 0; must be 0 with cluster
	TLS            bool           `yaml:"tls"`              // default false
	CAFile         string         `yaml:"ca_file"`          // default "": system roots; needs tls
	ServerName     string         `yaml:"server_name"`      // default "": the host of each address; needs tls
	ClientCertFile string         `yaml:"client_cert_file"` // default "": none; needs tls
	ClientKeyFile  string         `yaml:"client_key_file"`  // secret; with client_cert_file
	KeyPrefix      string         `yaml:"key_prefix"`       // default "idbridge:"
}

// RedisSentinel names a primary watched by Redis Sentinel (`cache.redis.sentinel:`).
type RedisSentinel struct {
	MasterName string   `yaml:"master_name"` // required; the name in the sentinels' `sentinel monitor`
	Addrs      []string `yaml:"addrs"`       // required; host:port of the sentinels
	Username   string   `yaml:"username"`    // default "": the sentinels' own ACL user
	Password   string   `yaml:"password"`    // secret; default "": the sentinels' own password
}

// RedisCluster lists seed nodes of a Redis Cluster (`cache.redis.cluster:`).
type RedisCluster struct {
	Addrs []string `yaml:"addrs"` // required; host:port of one or more nodes (a managed service's configuration endpoint)
}

// Section is a part of the file that another package decodes and checks itself: a
// directory under `directories:`, an enrichment step of a provider (lookup:, userinfo:,
// rest:). Decode it with Decode, report with Errorf: errors carry FILE:LINE: key.path.
type Section struct {
	// Name is the section's key (the directory's name, the step's key).
	Name string
	// File, Path ("directories.corp", "providers[0].lookup") and Line locate it.
	File string
	Path string
	Line int
	// Node is the section's value, with references already resolved.
	Node *yaml.Node

	refs    map[string]string
	secrets secretSet
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
	// Node is the provider's mapping node without the shared keys (name, type,
	// mapping), with references already resolved. Enrichment steps (lookup:, …) are
	// still in it: Split takes them out.
	Node *yaml.Node
	// Mapping overrides the top-level mapping for this provider; nil: use the top level.
	Mapping *Mapping
	// Fingerprint is a hex digest of the section's resolved content, steps included.
	Fingerprint string

	// refs maps the paths of values that came from references to the reference text,
	// so that Decode never shows a resolved value in an error.
	refs    map[string]string
	secrets secretSet
	// sharedLines are the lines of the shared keys (name, type, mapping).
	sharedLines map[string]int
}

// Mapping is the `mapping:` section (top level, or a provider's override).
type Mapping struct {
	Line           int               `yaml:"-"`
	Email          []Candidate       `yaml:"email"`           // required, non-empty
	AllowedDomains []string          `yaml:"allowed_domains"` // default any
	RewriteDomains map[string]string `yaml:"rewrite_domains"` // default none
	AllowUnicode   bool              `yaml:"allow_unicode"`   // default false: printable ASCII emails only
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
