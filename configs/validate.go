package configs

import (
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/idbridge/idbridge/internal/loopback"
)

// validator checks a decoded, defaulted Config and places each error at the line of
// its key, or of the nearest enclosing key when the key itself is missing.
type validator struct {
	file  string
	lines map[string]int    // key path → line, recorded by the decoder
	root  int               // line of the top-level mapping
	skip  map[string]bool   // paths whose references failed, already reported
	refs  map[string]string // paths whose value came from a reference → the reference
	// absent are, offline, the paths whose reference cannot be resolved here (→ ""):
	// their value is a stand-in, already warned about, and no warning judges it.
	absent map[string]string
	// secrets are the secret key names, whose values are never shown.
	secrets secretSet
	errs    Errors
}

func (v *validator) line(path string) int {
	for p := path; ; p = parentPath(p) {
		if l, ok := v.lines[p]; ok && l > 0 {
			return l
		}
		if p == "" {
			return max(v.root, 1)
		}
	}
}

// parentPath strips the last key or index: a.b[2] → a.b, a.b → a, a → "".
func parentPath(p string) string {
	if strings.HasSuffix(p, "]") {
		if i := strings.LastIndexByte(p, '['); i >= 0 {
			return p[:i]
		}
	}
	if i := strings.LastIndexByte(p, '.'); i >= 0 {
		return p[:i]
	}
	return ""
}

// q quotes a value for a message, unless it may be a secret: see showValue.
func (v *validator) q(path, value string) string { return showValue(v.refs, v.secrets, path, value) }

func (v *validator) errf(path, format string, args ...any) {
	if v.skip[path] {
		return
	}
	v.errs = append(v.errs, &Error{File: v.file, Line: v.line(path), Path: path, Msg: fmt.Sprintf(format, args...)})
}

func (v *validator) warnf(path, format string, args ...any) {
	if file, ok := v.absent[path]; v.skip[path] || ok && file == "" {
		return
	}
	v.errs = append(v.errs, &Error{File: v.file, Line: v.line(path), Path: path, Msg: fmt.Sprintf(format, args...), Warning: true})
}

// config runs every check; hasProviders tells a missing providers: key from an empty one.
func (v *validator) config(c *Config, hasProviders bool) {
	v.server(&c.Server)
	v.oneOf("log.level", c.Log.Level, "debug", "info", "warn", "error")
	v.oneOf("log.format", c.Log.Format, "json", "text")
	if (c.Outbound.ClientCertFile == "") != (c.Outbound.ClientKeyFile == "") {
		v.errf("outbound", "client_cert_file and client_key_file go together: give both or neither")
	}
	v.cache(&c.Cache)
	v.providers(c)
	v.response(c)
	if c.Spotnana != nil {
		v.spotnana(c)
	}
}

func (v *validator) server(s *Server) {
	v.listen("server.listen", s.Listen)
	v.listen("server.admin_listen", s.AdminListen)
	v.httpPath("server.user_detail_path", s.UserDetailPath)
	if s.ExchangePath != nil && *s.ExchangePath != "" {
		v.httpPath("server.exchange_path", *s.ExchangePath)
		if *s.ExchangePath == s.UserDetailPath {
			v.errf("server.exchange_path", "is the same as user_detail_path")
		}
	}
	if strings.ContainsAny(s.Realm, "\"\\") || hasControl(s.Realm) {
		v.errf("server.realm", `must not contain quotes, backslashes or control characters (it is sent in WWW-Authenticate)`)
	}
	if (s.TLS.CertFile == "") != (s.TLS.KeyFile == "") {
		v.errf("server.tls", "cert_file and key_file go together: give both or neither")
	}
	v.nonNegative("server.read_header_timeout", s.ReadHeaderTimeout)
	v.nonNegative("server.request_timeout", s.RequestTimeout)
	v.nonNegative("server.shutdown_timeout", s.ShutdownTimeout)
	if s.MaxHeaderBytes < 0 {
		v.errf("server.max_header_bytes", "must not be negative")
	}
	v.nonNegative("server.idle_timeout", s.IdleTimeout)
	if s.MaxConnections < 0 {
		v.errf("server.max_connections", "must not be negative")
	}
	if s.MaxConnectionsPerClient < 0 {
		v.errf("server.max_connections_per_client", "must not be negative")
	}
	if s.AdminToken != "" && len(s.AdminToken) < 16 {
		v.errf("server.admin_token", "must be at least 16 characters (a random secret, e.g. openssl rand -hex 32)")
	}
	if s.AdminListen != "" && s.AdminListen == s.Listen && !strings.HasSuffix(s.Listen, ":0") {
		v.warnf("server.admin_listen", "is listen's address: the admin routes (metrics, readiness, cache purge) are then served on the API listener to whoever reaches it; give admin_listen an address of its own, on loopback")
	}
	if s.AdminToken == "" && !v.skip["server.admin_token"] && s.AdminListen != "" && !loopback.HostPort(s.AdminListen) {
		v.warnf("server.admin_listen", "is not loopback and admin_token is not set: whoever reaches it can read the metrics and purge the cache, and it answers only requests addressed to an IP address; set admin_token")
	}
	for i, p := range s.TrustedProxies {
		path := fmt.Sprintf("server.trusted_proxies[%d]", i)
		if _, err := netip.ParseAddr(p); err == nil {
			continue
		}
		if _, err := netip.ParsePrefix(p); err != nil {
			v.errf(path, "invalid IP address or CIDR %s", v.q(path, p))
		}
	}
	for i, p := range s.AllowedClients {
		path := fmt.Sprintf("server.allowed_clients[%d]", i)
		if _, err := netip.ParsePrefix(p); err != nil {
			hint := ""
			if a, err := netip.ParseAddr(p); err == nil && v.refs[path] == "" {
				hint = fmt.Sprintf(" (for one address write %s/%d)", a, a.BitLen())
			}
			v.errf(path, "invalid CIDR %s%s", v.q(path, p), hint)
		}
	}
	v.cors(s)
	if s.RateLimit.RPS < 0 {
		v.errf("server.rate_limit.rps", "must not be negative")
	}
	if s.RateLimit.Burst < 0 {
		v.errf("server.rate_limit.burst", "must not be negative")
	}
	if s.RateLimit.RPS == 0 && s.RateLimit.Burst > 0 {
		v.warnf("server.rate_limit.burst", "has no effect while rps is 0 (rate limiting is off)")
	}
}

// cors checks server.cors and keeps the configured routes off the embed script's paths.
func (v *validator) cors(s *Server) {
	seen := map[string]bool{}
	for i, o := range s.CORS.AllowedOrigins {
		path := fmt.Sprintf("server.cors.allowed_origins[%d]", i)
		warning, err := CheckOrigin(o)
		switch {
		case err != nil:
			v.errf(path, "%v", err)
		case seen[o]:
			v.errf(path, "%q is listed twice", o)
		case warning != "":
			v.warnf(path, "%s", warning)
		}
		seen[o] = true
	}
	if len(s.CORS.AllowedOrigins) > 0 && s.ExchangePath != nil && *s.ExchangePath == "" {
		v.warnf("server.cors.allowed_origins", "has no effect while exchange_path is \"\" (the exchange route is off)")
	}
	routes := []struct{ key, path string }{{"server.user_detail_path", s.UserDetailPath}}
	if s.ExchangePath != nil {
		routes = append(routes, struct{ key, path string }{"server.exchange_path", *s.ExchangePath})
	}
	for _, r := range routes {
		if strings.HasPrefix(r.path, EmbedPathPrefix) {
			v.errf(r.key, "%s is reserved for the embed script (%sspotnana.js)", EmbedPathPrefix, EmbedPathPrefix)
		}
	}
}

func (v *validator) cache(c *Cache) {
	v.oneOf("cache.backend", c.Backend, "memory", "redis")
	if c.MaxEntries < 0 {
		v.errf("cache.max_entries", "must not be negative")
	}
	if c.MaxBytes < 0 {
		v.errf("cache.max_bytes", "must not be negative")
	} else if c.MaxBytes > 0 && c.MaxBytes < 1<<20 {
		v.warnf("cache.max_bytes", "is below 1 MiB: a document larger than 1/16 of it (%d bytes) is never cached, and few fit at all", c.MaxBytes/16)
	}
	if c.EncryptionKey != "" {
		if _, err := c.Key(); err != nil {
			v.errf("cache.encryption_key", "%v", err)
		}
	}
	if c.Backend != "redis" {
		return
	}
	if c.EncryptionKey == "" {
		v.errf("cache.encryption_key", "required with backend redis: 32 random bytes in hex or base64 (e.g. openssl rand -hex 32)")
	}
	v.redis(&c.Redis)
}

// redis checks the shape of `cache.redis:`; the cache package reads the TLS files.
func (v *validator) redis(r *Redis) {
	const p = "cache.redis"
	var given []string
	for name, set := range map[string]bool{"addr": r.Addr != "", "sentinel": r.Sentinel != nil, "cluster": r.Cluster != nil} {
		if set {
			given = append(given, name)
		}
	}
	slices.Sort(given)
	if len(given) > 1 {
		v.errf(p, "give one topology: addr (standalone), sentinel or cluster; found %s", strings.Join(given, " and "))
	}
	var addrs []string // every server idbridge connects to, for the TLS warning
	if r.Addr != "" {
		v.listen(p+".addr", r.Addr)
		addrs = append(addrs, r.Addr)
	}
	if s := r.Sentinel; s != nil {
		if s.MasterName == "" {
			v.errf(p+".sentinel.master_name", "required: the name the sentinels monitor (sentinel monitor <name> …)")
		}
		v.redisAddrs(p+".sentinel.addrs", s.Addrs, "the sentinels")
		addrs = append(addrs, s.Addrs...)
	}
	if c := r.Cluster; c != nil {
		v.redisAddrs(p+".cluster.addrs", c.Addrs, "one or more cluster nodes")
		if r.DB != 0 {
			v.errf(p+".db", "must be 0 with cluster (Redis Cluster has only database 0)")
		}
		addrs = append(addrs, c.Addrs...)
	}
	if r.DB < 0 {
		v.errf(p+".db", "must not be negative")
	}
	if strings.ContainsAny(r.KeyPrefix, "{}") {
		v.errf(p+".key_prefix", "must not contain { or }: idbridge places its own Redis Cluster hash tags after the prefix")
	}
	if !r.TLS {
		for _, f := range []struct{ key, val string }{{"ca_file", r.CAFile}, {"server_name", r.ServerName}, {"client_cert_file", r.ClientCertFile}, {"client_key_file", r.ClientKeyFile}} {
			if f.val != "" {
				v.errf(p+"."+f.key, "needs tls: true")
			}
		}
	}
	if (r.ClientCertFile == "") != (r.ClientKeyFile == "") {
		v.errf(p, "client_cert_file and client_key_file go together: give both or neither")
	}
	if !r.TLS && (r.Password != "" || (r.Sentinel != nil && r.Sentinel.Password != "")) {
		for _, a := range addrs {
			if !loopback.HostPort(a) {
				v.warnf(p+".tls", "is off while a password is sent to a non-loopback Redis")
				break
			}
		}
	}
}

// redisAddrs checks a non-empty list of host:port addresses.
func (v *validator) redisAddrs(path string, addrs []string, what string) {
	if len(addrs) == 0 {
		v.errf(path, "required: host:port of %s", what)
	}
	for i, a := range addrs {
		v.listen(fmt.Sprintf("%s[%d]", path, i), a)
	}
}

// Key decodes the cache encryption key: exactly 32 bytes, written in hex or base64.
// The error never contains the key.
func (c Cache) Key() ([]byte, error) {
	s := strings.TrimSpace(c.EncryptionKey)
	if len(s) == 64 {
		if k, err := hex.DecodeString(s); err == nil {
			return k, nil
		}
	}
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding, base64.URLEncoding, base64.RawURLEncoding} {
		if k, err := enc.DecodeString(s); err == nil {
			if len(k) == 32 {
				return k, nil
			}
			return nil, fmt.Errorf("must be 32 bytes, got %d (write 32 random bytes in hex or base64, e.g. openssl rand -hex 32)", len(k))
		}
	}
	return nil, fmt.Errorf("must be 32 bytes written in hex (64 digits) or base64")
}

var providerNameRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]*$`)

func (v *validator) providers(c *Config) {
	if len(c.Providers) == 0 {
		if _, ok := v.lines["providers"]; ok {
			v.errf("providers", "at least one provider is required")
		} else {
			v.errf("providers", "required: at least one provider")
		}
	}
	names := map[string]string{}
	everyOverrides := len(c.Providers) > 0
	for _, p := range c.Providers {
		switch {
		case p.Name == "":
			v.errf(p.Path+".name", "required")
		case !providerNameRE.MatchString(p.Name):
			v.errf(p.Path+".name", "invalid name %s: use letters, digits, '.', '_' and '-'", v.q(p.Path+".name", p.Name))
		default:
			if first, dup := names[p.Name]; dup {
				v.errf(p.Path+".name", "duplicate provider name %s (also %s)", v.q(p.Path+".name", p.Name), first)
			} else {
				names[p.Name] = p.Path
			}
		}
		// The type itself (required, registered) is the registry's to check: it alone
		// knows the type names.
		if p.Mapping == nil {
			everyOverrides = false
		}
	}
	// The top-level mapping is required unless every provider brings its own. Its rules
	// are the mapping package's to check.
	if c.Mapping.Line == 0 && !everyOverrides {
		v.errf("mapping", "required: how to find the email (mapping: {email: [{path: email, …}]})")
	}
}

func (v *validator) response(c *Config) {
	r := &c.Response
	for _, f := range sortedKeys(r.Extra) {
		p := "response.extra." + f
		if f == "" {
			v.errf("response.extra", "a field name must not be empty")
		}
		if f == r.EmailField {
			v.errf(p, "is the email field (%s) itself", v.q("response.email_field", r.EmailField))
		}
		if strings.TrimSpace(r.Extra[f]) == "" {
			v.errf(p, "needs a gjson path")
		}
	}
}

func (v *validator) spotnana(c *Config) {
	s := c.Spotnana
	if s.TokenURL == "" {
		v.errf("spotnana.token_url", "required")
	} else if v.httpURL("spotnana.token_url", s.TokenURL) {
		if u, _ := url.Parse(s.TokenURL); u.Scheme == "http" && !loopback.Host(u.Hostname()) {
			v.warnf("spotnana.token_url", "uses http:// to a non-loopback host: the client secret and tokens travel in clear")
		}
	}
	if s.ClientID == "" {
		v.errf("spotnana.client_id", "required")
	}
	if s.ClientSecret == "" {
		v.errf("spotnana.client_secret", "required")
	}
	v.oneOf("spotnana.mode", s.Mode, "callback", "assertion")
	v.nonNegative("spotnana.timeout", s.Timeout)
	if s.MaxRetries != nil && *s.MaxRetries < 0 {
		v.errf("spotnana.max_retries", "must not be negative")
	}
	for i, id := range s.AllowedTokenClients {
		if strings.TrimSpace(id) == "" {
			v.errf(fmt.Sprintf("spotnana.allowed_token_clients[%d]", i), "must not be empty")
		}
	}
	a := &s.Assertion
	if s.Mode != "assertion" {
		if a.Issuer != "" || a.KeysDir != "" {
			v.warnf("spotnana.assertion", "is ignored unless mode is assertion")
		}
		return
	}
	if a.Issuer == "" {
		v.errf("spotnana.assertion.issuer", "required in assertion mode")
	} else {
		v.httpURL("spotnana.assertion.issuer", a.Issuer)
	}
	if a.KeysDir == "" {
		v.errf("spotnana.assertion.keys_dir", "required in assertion mode (create a key with: idbridge keys generate --dir DIR)")
	}
	v.nonNegative("spotnana.assertion.ttl", a.TTL)
	v.nonNegative("spotnana.assertion.publish_ahead", a.PublishAhead)
	if v.httpPath("spotnana.assertion.jwks_path", a.JWKSPath) {
		if a.JWKSPath == c.Server.UserDetailPath || c.Server.ExchangePath != nil && a.JWKSPath == *c.Server.ExchangePath {
			v.errf("spotnana.assertion.jwks_path", "is the same as another route's path")
		}
		if strings.HasPrefix(a.JWKSPath, EmbedPathPrefix) {
			v.errf("spotnana.assertion.jwks_path", "%s is reserved for the embed script (%sspotnana.js)", EmbedPathPrefix, EmbedPathPrefix)
		}
	}
}

// Small checks.

func (v *validator) oneOf(path, val string, allowed ...string) {
	if !slices.Contains(allowed, val) {
		v.errf(path, "invalid value %s: want %s", v.q(path, val), strings.Join(allowed, " | "))
	}
}

func (v *validator) nonNegative(path string, d time.Duration) {
	if d < 0 {
		v.errf(path, "must not be negative")
	}
}

func (v *validator) listen(path, addr string) {
	host, port, err := net.SplitHostPort(addr)
	if err == nil {
		if n, perr := strconv.Atoi(port); perr != nil || n < 0 || n > 65535 {
			err = fmt.Errorf("bad port")
		}
	}
	if err == nil && strings.ContainsAny(host, " /") {
		err = fmt.Errorf("bad host")
	}
	if err != nil {
		v.errf(path, "invalid address %s: want host:port, e.g. 127.0.0.1:8080", v.q(path, addr))
	}
}

func (v *validator) httpPath(path, p string) bool {
	if !strings.HasPrefix(p, "/") || strings.ContainsAny(p, " ?#") {
		v.errf(path, "invalid path %s: must start with / (no query, no spaces)", v.q(path, p))
		return false
	}
	// The router reads ":" and "*" as wildcards: such a route would answer other paths,
	// and two that overlap make it panic when the server is built.
	if strings.ContainsAny(p, ":*") {
		v.errf(path, "invalid path %s: must not contain ':' or '*'", v.q(path, p))
		return false
	}
	return true
}

func (v *validator) httpURL(path, s string) bool {
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		v.errf(path, "invalid URL %s: want http:// or https://", v.q(path, s))
		return false
	}
	return true
}

func hasControl(s string) bool {
	return strings.ContainsFunc(s, func(r rune) bool { return r < 0x20 || r == 0x7f })
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
