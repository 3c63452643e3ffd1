package configs

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"
)

// base completes a snippet into a valid file; snippets come first so that their line
// numbers are the ones written in the test.
const base = `
providers:
  - name: p
    type: jwt
mapping:
  email:
    - path: email
`

const hexKey = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f"

func env(kv ...string) func(string) (string, bool) {
	m := map[string]string{}
	for i := 0; i+1 < len(kv); i += 2 {
		m[kv[i]] = kv[i+1]
	}
	return func(k string) (string, bool) { v, ok := m[k]; return v, ok }
}

// errorLines renders errors as the CLI prints them.
func errorLines(es Errors) []string {
	out := make([]string, len(es))
	for i, e := range es {
		out[i] = e.Error()
	}
	return out
}

// sameErrors checks that got holds exactly one error per want, each starting with it.
func sameErrors(t *testing.T, got Errors, want []string) {
	t.Helper()
	lines := errorLines(got)
	used := make([]bool, len(lines))
	for _, w := range want {
		found := false
		for i, l := range lines {
			if !used[i] && strings.HasPrefix(l, w) {
				used[i], found = true, true
				break
			}
		}
		if !found {
			t.Errorf("missing error %q", w)
		}
	}
	for i, l := range lines {
		if !used[i] {
			t.Errorf("unexpected error %q", l)
		}
	}
	if t.Failed() {
		t.Logf("all errors:\n%s", strings.Join(lines, "\n"))
	}
}

func TestErrors(t *testing.T) {
	tests := []struct {
		name string
		yaml string // base is appended unless full is set
		full bool
		want []string
	}{
		{name: "valid", yaml: ``},
		{name: "unknown top-level key", yaml: "servr: {}\n",
			want: []string{`c.yaml:1: servr: unknown key (did you mean "server"?)`}},
		{name: "unknown server key", yaml: "server:\n  listn: :80\n",
			want: []string{`c.yaml:2: server.listn: unknown key (did you mean "listen"?)`}},
		{name: "unknown key deep", yaml: "server:\n  tls:\n    cert: x\n",
			want: []string{`c.yaml:3: server.tls.cert: unknown key`}},
		{name: "unknown key without suggestion", yaml: "log:\n  colour: red\n",
			want: []string{`c.yaml:2: log.colour: unknown key`}},
		{name: "duplicate key", yaml: "log: {level: info}\nlog: {level: debug}\n",
			want: []string{`c.yaml:2: log: duplicate key (first given at line 1)`}},
		{name: "invalid duration", yaml: "server:\n  read_header_timeout: 5x\n",
			want: []string{`c.yaml:2: server.read_header_timeout: invalid duration "5x"`}},
		{name: "negative duration", yaml: "server:\n  request_timeout: -1s\n",
			want: []string{`c.yaml:2: server.request_timeout: must not be negative`}},
		{name: "not an integer", yaml: "server:\n  max_header_bytes: lots\n",
			want: []string{`c.yaml:2: server.max_header_bytes: expected an integer, got "lots"`}},
		{name: "quoted integer", yaml: "cache:\n  max_entries: \"10\"\n",
			want: []string{`c.yaml:2: cache.max_entries: expected an integer, got "10"`}},
		{name: "not a bool", yaml: "cache:\n  redis: {tls: maybe}\n",
			want: []string{`c.yaml:2: cache.redis.tls: expected true or false, got "maybe"`}},
		{name: "mapping for a scalar", yaml: "server:\n  listen: {a: b}\n",
			want: []string{`c.yaml:2: server.listen: expected a single value, got a mapping`}},
		{name: "scalar for a section", yaml: "server: yes\n",
			want: []string{`c.yaml:1: server: expected a mapping of keys, got a single value`}},
		{name: "scalar for a list", yaml: "server:\n  trusted_proxies: 10.0.0.1\n",
			want: []string{`c.yaml:2: server.trusted_proxies: expected a list, got a single value`}},
		{name: "every error at once", yaml: "server:\n  listen: nope\n  admin_listen: \"1.2.3.4:99999\"\n  read_header_timeout: 1y\n",
			want: []string{
				`c.yaml:2: server.listen: invalid address "nope"`,
				`c.yaml:3: server.admin_listen: invalid address "1.2.3.4:99999"`,
				`c.yaml:4: server.read_header_timeout: invalid duration "1y"`,
			}},
		{name: "paths", yaml: "server:\n  user_detail_path: v1/user\n  exchange_path: /v1/user\n",
			want: []string{`c.yaml:2: server.user_detail_path: invalid path "v1/user"`}},
		{name: "wildcard paths", yaml: "server:\n  user_detail_path: /v1/*rest\n  exchange_path: /v1/:x\n",
			want: []string{
				`c.yaml:2: server.user_detail_path: invalid path "/v1/*rest": must not contain ':' or '*'`,
				`c.yaml:3: server.exchange_path: invalid path "/v1/:x": must not contain ':' or '*'`,
			}},
		{name: "same paths", yaml: "server:\n  exchange_path: /v1/user-detail\n",
			want: []string{`c.yaml:2: server.exchange_path: is the same as user_detail_path`}},
		{name: "realm with a quote", yaml: "server:\n  realm: 'a\"b'\n",
			want: []string{`c.yaml:2: server.realm: must not contain quotes`}},
		{name: "tls half", yaml: "server:\n  tls:\n    key_file: k.pem\n",
			want: []string{`c.yaml:2: server.tls: cert_file and key_file go together`}},
		{name: "cidrs", yaml: "server:\n  trusted_proxies: [10.0.0.1, 10.0.0.0/8, bad]\n  allowed_clients:\n    - 10.1.0.0/16\n    - 10.1.2.3\n",
			want: []string{
				`c.yaml:2: server.trusted_proxies[2]: invalid IP address or CIDR "bad"`,
				`c.yaml:5: server.allowed_clients[1]: invalid CIDR "10.1.2.3" (for one address write 10.1.2.3/32)`,
			}},
		{name: "rate limit", yaml: "server:\n  rate_limit: {rps: -1, burst: -2}\n",
			want: []string{
				`c.yaml:2: server.rate_limit.rps: must not be negative`,
				`c.yaml:2: server.rate_limit.burst: must not be negative`,
			}},
		{name: "log enums", yaml: "log:\n  level: loud\n  format: xml\n",
			want: []string{
				`c.yaml:2: log.level: invalid value "loud": want debug | info | warn | error`,
				`c.yaml:3: log.format: invalid value "xml": want json | text`,
			}},
		{name: "cache backend", yaml: "cache:\n  backend: memcached\n",
			want: []string{`c.yaml:2: cache.backend: invalid value "memcached"`}},
		{name: "redis needs a key", yaml: "cache:\n  backend: redis\n",
			want: []string{`c.yaml:1: cache.encryption_key: required with backend redis`}},
		{name: "redis key too short", yaml: "cache:\n  backend: redis\n  encryption_key: c2hvcnQ=\n",
			want: []string{`c.yaml:3: cache.encryption_key: must be 32 bytes, got 5`}},
		{name: "redis key hex", yaml: "cache:\n  backend: redis\n  encryption_key: " + hexKey + "\n"},
		{name: "redis addr", yaml: "cache:\n  backend: redis\n  encryption_key: " + hexKey + "\n  redis: {addr: redis}\n",
			want: []string{`c.yaml:4: cache.redis.addr: invalid address "redis"`}},
		{name: "redis sentinel", yaml: "cache:\n  backend: redis\n  encryption_key: " + hexKey + "\n  redis:\n    sentinel: {master_name: idb, addrs: [10.0.0.1:26379, 10.0.0.2:26379], password: p}\n    password: q\n    tls: true\n"},
		{name: "redis cluster", yaml: "cache:\n  backend: redis\n  encryption_key: " + hexKey + "\n  redis:\n    cluster: {addrs: [127.0.0.1:7000]}\n"},
		{name: "redis topologies exclusive", yaml: "cache:\n  backend: redis\n  encryption_key: " + hexKey + "\n  redis:\n    addr: 127.0.0.1:6379\n    cluster: {addrs: [127.0.0.1:7000]}\n",
			want: []string{`c.yaml:4: cache.redis: give one topology: addr (standalone), sentinel or cluster; found addr and cluster`}},
		{name: "redis sentinel shape", yaml: "cache:\n  backend: redis\n  encryption_key: " + hexKey + "\n  redis:\n    sentinel:\n      addrs: [nope]\n",
			want: []string{
				`c.yaml:5: cache.redis.sentinel.master_name: required`,
				`c.yaml:6: cache.redis.sentinel.addrs[0]: invalid address "nope"`,
			}},
		{name: "redis cluster shape", yaml: "cache:\n  backend: redis\n  encryption_key: " + hexKey + "\n  redis:\n    cluster: {}\n    db: 2\n    key_prefix: \"{idb}:\"\n",
			want: []string{
				`c.yaml:5: cache.redis.cluster.addrs: required: host:port of one or more cluster nodes`,
				`c.yaml:6: cache.redis.db: must be 0 with cluster`,
				`c.yaml:7: cache.redis.key_prefix: must not contain { or }`,
			}},
		{name: "redis tls keys need tls", yaml: "cache:\n  backend: redis\n  encryption_key: " + hexKey + "\n  redis:\n    ca_file: ca.pem\n    server_name: redis.internal\n    client_cert_file: c.pem\n",
			want: []string{
				`c.yaml:5: cache.redis.ca_file: needs tls: true`,
				`c.yaml:6: cache.redis.server_name: needs tls: true`,
				`c.yaml:7: cache.redis.client_cert_file: needs tls: true`,
				`c.yaml:4: cache.redis: client_cert_file and client_key_file go together`,
			}},
		{name: "no providers", full: true, yaml: "mapping:\n  email: [{path: email}]\n",
			want: []string{`c.yaml:1: providers: required: at least one provider`}},
		{name: "empty providers", full: true, yaml: "providers: []\nmapping:\n  email: [{path: email}]\n",
			want: []string{`c.yaml:1: providers: at least one provider is required`}},
		{name: "providers not a list", full: true, yaml: "providers: {name: p}\nmapping:\n  email: [{path: email}]\n",
			want: []string{`c.yaml:1: providers: expected a list of providers, got a mapping`, `c.yaml:1: providers: at least one provider is required`}},
		// The type (required, registered) is the registry's rule, checked by app.Load.
		{name: "provider name and type", full: true, yaml: "providers:\n  - type: jwt\n  - name: a b\n  - name: x\n    type: jwt\n  - name: x\n    type: jwt\nmapping:\n  email: [{path: email}]\n",
			want: []string{
				`c.yaml:2: providers[0].name: required`,
				`c.yaml:3: providers[1].name: invalid name "a b"`,
				`c.yaml:6: providers[3].name: duplicate provider name "x" (also providers[2])`,
			}},
		{name: "mapping required", full: true, yaml: "providers:\n  - name: p\n    type: jwt\n",
			want: []string{`c.yaml:1: mapping: required`}},
		{name: "mapping not needed when every provider has one", full: true, yaml: "providers:\n  - name: p\n    type: jwt\n    mapping: {email: [{path: email}]}\n"},
		// The rules themselves are the mapping package's (see app's tests); configs
		// reports the shape only.
		{name: "mapping candidates", full: true, yaml: `providers:
  - name: p
    type: jwt
mapping:
  email:
    - path: email
      tempalte: x
    - {path: a, template: "{{b}}"}
    - when: {path: x, equals: 1}
    - template: "{{}}@x.com"
    - template: "{{a}@x.com"
    - template: "me@x.com"
    - path: a
      when: {matches: "("}
    - path: a
      transforms: [trim, shout, {trim_prefix: "SMTP:"}, {replace: {regex: "[", with: ""}}, trim_suffix, {replace: {regex: x}}]
  allowed_domains: [example.com, "*.example.com", "*", "ex ample.com"]
`,
			want: []string{
				`c.yaml:7: mapping.email[0].tempalte: unknown key (did you mean "template"?)`,
				`c.yaml:16: mapping.email[7].transforms[5].replace.with: required`,
			}},
		{name: "response", yaml: "response:\n  email_field: mail\n  extra:\n    mail: x\n    employee: \"\"\n",
			want: []string{
				`c.yaml:4: response.extra.mail: is the email field ("mail") itself`,
				`c.yaml:5: response.extra.employee: needs a gjson path`,
			}},
		{name: "spotnana required", yaml: "spotnana:\n  mode: jwks\n",
			want: []string{
				`c.yaml:1: spotnana.token_url: required`,
				`c.yaml:1: spotnana.client_id: required`,
				`c.yaml:1: spotnana.client_secret: required`,
				`c.yaml:2: spotnana.mode: invalid value "jwks": want callback | assertion`,
			}},
		{name: "spotnana assertion", yaml: "spotnana:\n  token_url: ftp://x\n  client_id: a\n  client_secret: b\n  mode: assertion\n  max_retries: -1\n  assertion:\n    jwks_path: jwks\n",
			want: []string{
				`c.yaml:2: spotnana.token_url: invalid URL "ftp://x"`,
				`c.yaml:6: spotnana.max_retries: must not be negative`,
				`c.yaml:7: spotnana.assertion.issuer: required in assertion mode`,
				`c.yaml:7: spotnana.assertion.keys_dir: required in assertion mode`,
				`c.yaml:8: spotnana.assertion.jwks_path: invalid path "jwks"`,
			}},
		{name: "yaml syntax", full: true, yaml: "server:\n  listen: [\n",
			want: []string{`c.yaml:2: invalid YAML: did not find expected node content`}},
		{name: "not a mapping", full: true, yaml: "- a\n- b\n",
			want: []string{`c.yaml:1: the configuration must be a mapping`}},
		{name: "empty", full: true, yaml: "",
			want: []string{`c.yaml:1: the configuration is empty`}},
		{name: "two documents", full: true, yaml: "server: {}\n---\nlog: {}\n",
			want: []string{`c.yaml:2: invalid YAML: a second document`}},
		{name: "merge keys", yaml: "x-base: &b {listen: \"127.0.0.1:1\"}\nserver:\n  <<: *b\n  realm: r\n",
			want: []string{`c.yaml:1: x-base: unknown key`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			src := tt.yaml
			if !tt.full {
				src += base
			}
			_, errs := Parse("c.yaml", []byte(src), env())
			sameErrors(t, errs.Fatal(), tt.want)
		})
	}
}

func TestRedisWarnings(t *testing.T) {
	// A sentinel password sent in clear to a remote sentinel is a password in clear too.
	src := "cache:\n  backend: redis\n  encryption_key: " + hexKey + "\n  redis:\n    sentinel: {master_name: m, addrs: [10.0.0.1:26379], password: p}\n" + base
	_, errs := Parse("c.yaml", []byte(src), env())
	sameErrors(t, errs.Warnings(), []string{
		`c.yaml:3: cache.encryption_key: warning: a secret written inline: reference it (${env:NAME} or ${file:PATH}) so that the file holds no secret`,
		`c.yaml:4: cache.redis.tls: warning: is off while a password is sent to a non-loopback Redis`,
		`c.yaml:5: cache.redis.sentinel.password: warning: a secret written inline: reference it (${env:NAME} or ${file:PATH}) so that the file holds no secret`,
	})
}

// TestAdminListenWarning: an admin listener off loopback without admin_token is open to
// whoever reaches it; with a token, or on loopback, nothing is said.
func TestAdminListenWarning(t *testing.T) {
	for _, tc := range []struct {
		server string
		want   []string
	}{
		{"server:\n  admin_listen: 0.0.0.0:9090\n", []string{`c.yaml:2: server.admin_listen: warning: is not loopback and admin_token is not set: whoever reaches it can read the metrics and purge the cache, and it answers only requests addressed to an IP address; set admin_token`}},
		{"server:\n  admin_listen: :9090\n", []string{`c.yaml:2: server.admin_listen: warning: is not loopback and admin_token is not set: whoever reaches it can read the metrics and purge the cache, and it answers only requests addressed to an IP address; set admin_token`}},
		{"server:\n  admin_listen: 0.0.0.0:9090\n  admin_token: ${env:ADMIN_TOKEN}\n", nil},
		{"server:\n  admin_listen: '[::1]:9090'\n", nil},
		{"server:\n  admin_listen: localhost:9090\n", nil},
		// On the API listener's own address, the admin routes are on the API port.
		{"server:\n  listen: 127.0.0.1:8080\n  admin_listen: 127.0.0.1:8080\n", []string{`c.yaml:3: server.admin_listen: warning: is listen's address: the admin routes (metrics, readiness, cache purge) are then served on the API listener to whoever reaches it; give admin_listen an address of its own, on loopback`}},
		{"server:\n  listen: 127.0.0.1:0\n  admin_listen: 127.0.0.1:0\n", nil}, // two free ports
	} {
		_, errs := Parse("c.yaml", []byte(tc.server+base), env("ADMIN_TOKEN", "0123456789abcdef0123"))
		sameErrors(t, errs.Warnings(), tc.want)
	}
	// Offline, an admin_listen whose reference cannot be resolved here is a stand-in:
	// the unresolved reference is warned about, and its value is not judged.
	path := filepath.Join(t.TempDir(), "c.yaml")
	os.WriteFile(path, []byte("server:\n  admin_listen: ${env:IDBRIDGE_TEST_UNSET_ADMIN}\n"+base), 0o600)
	_, errs := LoadOffline(path)
	for _, w := range errs.Warnings() {
		if strings.Contains(w.Msg, "is not loopback") {
			t.Errorf("an unresolved admin_listen was judged: %v", w)
		}
	}
	if !strings.Contains(errs.Error(), "IDBRIDGE_TEST_UNSET_ADMIN is not set here") {
		t.Errorf("the unresolved reference is not warned about: %v", errs)
	}
}

// TestValueWarnings: a secret written inline and a value that looks like an unexpanded
// shell variable are warnings that name the key, never the value.
func TestValueWarnings(t *testing.T) {
	src := "spotnana:\n  token_url: https://spotnana.example.com/token\n  client_id: $SPOTNANA_CLIENT_ID\n  client_secret: hunter2-inline\n" +
		"server:\n  realm: 'https://$OKTA_DOMAIN/x'\n" + base
	_, errs := Parse("c.yaml", []byte(src), env())
	sameErrors(t, errs.Warnings(), []string{
		`c.yaml:3: spotnana.client_id: warning: $SPOTNANA_CLIENT_ID looks like a shell variable, which idbridge does not expand: write ${env:SPOTNANA_CLIENT_ID}`,
		`c.yaml:4: spotnana.client_secret: warning: a secret written inline: reference it (${env:NAME} or ${file:PATH}) so that the file holds no secret`,
		`c.yaml:6: server.realm: warning: $OKTA_DOMAIN looks like a shell variable, which idbridge does not expand: write ${env:OKTA_DOMAIN}`,
	})
	if strings.Contains(errs.Error(), "hunter2") {
		t.Errorf("a warning shows the secret: %v", errs)
	}
}

func TestReferences(t *testing.T) {
	const secret = "s3cr3t-Value"
	files := map[string]string{
		"/abs/secret":       secret + "\n",
		"/etc/idb/rel/pw":   secret + "\r\n\n",
		"/etc/idb/key":      hexKey + "\n",
		"/etc/idb/notnl":    "kept",
		"/etc/idb/template": "ignored",
	}
	read := func(p string) ([]byte, error) {
		if v, ok := files[p]; ok {
			return []byte(v), nil
		}
		return nil, &os.PathError{Op: "open", Path: p, Err: os.ErrNotExist}
	}
	tests := []struct {
		name  string
		yaml  string
		env   map[string]string
		check func(t *testing.T, c *Config)
		want  []string
	}{
		{name: "env in a string", yaml: "server:\n  realm: \"pre-${env:R}-post\"\n", env: map[string]string{"R": "x"},
			check: func(t *testing.T, c *Config) { eq(t, c.Server.Realm, "pre-x-post") }},
		{name: "two env references", yaml: "server:\n  listen: ${env:H}:${env:P}\n", env: map[string]string{"H": "0.0.0.0", "P": "80"},
			check: func(t *testing.T, c *Config) { eq(t, c.Server.Listen, "0.0.0.0:80") }},
		{name: "env typed as written", yaml: "cache:\n  max_entries: ${env:N}\n", env: map[string]string{"N": "42"},
			check: func(t *testing.T, c *Config) { eq(t, c.Cache.MaxEntries, 42) }},
		{name: "env duration", yaml: "server:\n  request_timeout: ${env:T}\n", env: map[string]string{"T": "3s"},
			check: func(t *testing.T, c *Config) { eq(t, c.Server.RequestTimeout, 3*time.Second) }},
		{name: "env missing", yaml: "server:\n  realm: ${env:NOPE}\n",
			want: []string{`c.yaml:2: server.realm: environment variable NOPE is not set`}},
		{name: "env missing in a provider section", yaml: "providers:\n  - name: p\n    type: jwt\n    issuer: ${env:ISS}\n" + mappingOnly,
			want: []string{`c.yaml:4: providers[0].issuer: environment variable ISS is not set`}},
		{name: "env resolved in a provider section", yaml: "providers:\n  - name: p\n    type: jwt\n    issuer: ${env:ISS}\n" + mappingOnly, env: map[string]string{"ISS": "https://i"},
			check: func(t *testing.T, c *Config) {
				var own struct {
					Issuer string `yaml:"issuer"`
				}
				if errs := c.Providers[0].Decode(&own); errs != nil {
					t.Fatal(errs)
				}
				eq(t, own.Issuer, "https://i")
			}},
		{name: "a resolved value is not shown", yaml: "server:\n  listen: ${env:L}\n  read_header_timeout: ${env:L}\n", env: map[string]string{"L": "bad"},
			want: []string{
				`c.yaml:2: server.listen: invalid address "${env:L}" (resolved value not shown)`,
				`c.yaml:3: server.read_header_timeout: invalid duration "${env:L}" (resolved value not shown)`,
			}},
		{name: "escape", yaml: "server:\n  realm: \"a$${env:X}b\"\n",
			check: func(t *testing.T, c *Config) { eq(t, c.Server.Realm, "a${env:X}b") }},
		{name: "not recursive", yaml: "server:\n  realm: ${env:A}\n", env: map[string]string{"A": "${env:B}", "B": "no"},
			check: func(t *testing.T, c *Config) { eq(t, c.Server.Realm, "${env:B}") }},
		{name: "unterminated", yaml: "server:\n  realm: \"${env:X\"\n",
			want: []string{`c.yaml:2: server.realm: unterminated reference`}},
		{name: "unknown kind", yaml: "server:\n  realm: ${vault:x}\n",
			want: []string{`c.yaml:2: server.realm: unknown reference ${vault}`}},
		{name: "file absolute", yaml: "cache:\n  redis:\n    password: ${file:/abs/secret}\n",
			check: func(t *testing.T, c *Config) { eq(t, c.Cache.Redis.Password, secret) }},
		{name: "file relative with trailing newlines", yaml: "directories:\n  corp:\n    url: ldaps://x\n    base_dn: dc=x\n    bind_dn: cn=x\n    bind_password: ${file:rel/pw}\n",
			check: func(t *testing.T, c *Config) {
				var d struct {
					URL          string `yaml:"url"`
					BaseDN       string `yaml:"base_dn"`
					BindDN       string `yaml:"bind_dn"`
					BindPassword string `yaml:"bind_password"`
				}
				if errs := c.Directories[0].Decode(&d); errs != nil {
					t.Fatal(errs)
				}
				eq(t, d.BindPassword, secret)
			}},
		{name: "file without newline", yaml: "outbound:\n  client_cert_file: c.pem\n  client_key_file: ${file:notnl}\n",
			check: func(t *testing.T, c *Config) { eq(t, c.Outbound.ClientKeyFile, "kept") }},
		{name: "file key", yaml: "cache:\n  backend: redis\n  encryption_key: ${file:key}\n",
			check: func(t *testing.T, c *Config) {
				k, err := c.Cache.Key()
				if err != nil || len(k) != 32 {
					t.Errorf("Key() = %d bytes, %v", len(k), err)
				}
			}},
		{name: "file in a provider's secret key", yaml: "providers:\n  - name: p\n    type: introspection\n    client_secret: ${file:/abs/secret}\n" + mappingOnly,
			check: func(t *testing.T, c *Config) {
				var own struct {
					ClientSecret string `yaml:"client_secret"`
				}
				if errs := c.Providers[0].Decode(&own); errs != nil {
					t.Fatal(errs)
				}
				eq(t, own.ClientSecret, secret)
			}},
		{name: "file missing", yaml: "cache:\n  redis:\n    password: ${file:missing}\n",
			want: []string{`c.yaml:3: cache.redis.password: cannot read ${file:missing}: file does not exist`}},
		{name: "file in a non-secret key", yaml: "server:\n  realm: ${file:template}\n",
			want: []string{`c.yaml:2: server.realm: ${file:} is allowed only in secret keys`}},
		{name: "file in a provider's non-secret key", yaml: "providers:\n  - name: p\n    type: jwt\n    issuer: ${file:template}\n" + mappingOnly,
			want: []string{`c.yaml:4: providers[0].issuer: ${file:} is allowed only in secret keys`}},
		{name: "failed reference is not judged again", yaml: "cache:\n  backend: redis\n  encryption_key: ${env:NOPE}\n",
			want: []string{`c.yaml:3: cache.encryption_key: environment variable NOPE is not set`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			src := tt.yaml
			if !strings.Contains(src, "providers:") {
				src += base
			}
			c, errs := parse("/etc/idb/c.yaml", []byte(src), env(flatten(tt.env)...), read, ownersSecrets...)
			for i := range tt.want {
				tt.want[i] = "/etc/idb/" + tt.want[i]
			}
			sameErrors(t, errs.Fatal(), tt.want)
			if tt.check != nil && c != nil {
				tt.check(t, c)
			}
		})
	}
}

// ownersSecrets stand for the secret keys the registry collects from the packages that
// own the other sections (ldap: bind_password; introspection: private_key_file).
var ownersSecrets = []string{"bind_password", "private_key_file"}

const mappingOnly = "mapping:\n  email:\n    - path: email\n"

func flatten(m map[string]string) []string {
	var kv []string
	for k, v := range m {
		kv = append(kv, k, v)
	}
	return kv
}

func eq[T comparable](t *testing.T, got, want T) {
	t.Helper()
	if got != want {
		t.Errorf("got %v, want %v", got, want)
	}
}

// TestRelativeFile goes through the public Parse and the real file system.
func TestRelativeFile(t *testing.T) {
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "secrets"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "secrets", "pw"), []byte("from-file\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "idbridge.yaml")
	src := "cache:\n  redis:\n    password: ${file:secrets/pw}\n" + base
	if err := os.WriteFile(path, []byte(src), 0o600); err != nil {
		t.Fatal(err)
	}
	c, errs := Load(path)
	if errs.Err() != nil {
		t.Fatal(errs)
	}
	eq(t, c.Cache.Redis.Password, "from-file")
	eq(t, c.File, path)

	_, errs = Load(filepath.Join(dir, "missing.yaml"))
	if len(errs) != 1 || !strings.HasPrefix(errs[0].Error(), filepath.Join(dir, "missing.yaml")+": cannot read the configuration") {
		t.Errorf("Load(missing) = %v", errs)
	}
}

// TestSecretsNeverShown puts a secret in every secret key, breaks the file in every way
// near them, and checks no error text carries the secret.
func TestSecretsNeverShown(t *testing.T) {
	const secret = "TOPSECRET-42"
	sources := map[string]string{
		"wrong type":      "cache:\n  redis:\n    password: [${env:S}]\n    db: ${env:S}\n",
		"bad key":         "cache:\n  backend: redis\n  encryption_key: ${env:S}\n",
		"bad key in file": "cache:\n  backend: redis\n  encryption_key: ${file:s}\n",
		"secret as a duration": "server:\n  request_timeout: x\nspotnana:\n  token_url: ${env:S}\n  client_id: ${env:S}\n" +
			"  client_secret: ${env:S}\n  mode: ${env:S}\n",
		"unknown reference in a secret": "cache:\n  redis:\n    password: \"" + secret + "${" + secret + "}\"\n",
		"provider secret":               "providers:\n  - name: p\n    type: x\n    client_secret: ${env:S}\n    private_key_file: ${file:s}\n" + mappingOnly,
	}
	read := func(string) ([]byte, error) { return []byte(secret + "\n"), nil }
	for name, src := range sources {
		t.Run(name, func(t *testing.T) {
			if !strings.Contains(src, "providers:") {
				src += base
			}
			c, errs := parse("c.yaml", []byte(src), env("S", secret), read, ownersSecrets...)
			text := errs.Error()
			if c != nil {
				for _, p := range c.Providers {
					var own struct {
						ClientSecret   int `yaml:"client_secret"`
						PrivateKeyFile int `yaml:"private_key_file"`
					}
					text += p.Decode(&own).Error()
				}
			}
			if strings.Contains(text, secret) {
				t.Errorf("secret in errors:\n%s", text)
			}
		})
	}
	// And the secret-key strict decoder hides values of secret keys it cannot decode.
	var n yaml.Node
	if err := yaml.Unmarshal([]byte("password: "+secret+"\n"), &n); err != nil {
		t.Fatal(err)
	}
	var out struct {
		Password int `yaml:"password"`
	}
	if errs := DecodeStrict("f", "x", &n, &out); len(errs) != 1 || strings.Contains(errs.Error(), secret) {
		t.Errorf("DecodeStrict = %v", errs)
	}
}

func TestDefaults(t *testing.T) {
	src := "spotnana:\n  token_url: https://s\n  client_id: a\n  client_secret: b\n" +
		"directories:\n  corp: {url: \"ldaps://x\", base_dn: dc=x}\n" +
		"providers:\n  - name: p\n    type: jwt\n    lookup: {directory: corp, filter: \"(uid={{sub}})\"}\n    userinfo: {}\n" + mappingOnly
	c, errs := Parse("c.yaml", []byte(src), env())
	if errs.Err() != nil {
		t.Fatal(errs)
	}
	s := c.Server
	eq(t, s.Listen, "127.0.0.1:8080")
	eq(t, s.AdminListen, "127.0.0.1:9090")
	eq(t, s.UserDetailPath, "/v1/user-detail")
	eq(t, *s.ExchangePath, "/v1/token-exchange")
	eq(t, s.Realm, "idbridge")
	eq(t, s.ReadHeaderTimeout, 5*time.Second)
	eq(t, s.RequestTimeout, 15*time.Second)
	eq(t, s.ShutdownTimeout, 20*time.Second)
	eq(t, s.MaxHeaderBytes, 16384)
	eq(t, c.Log, Log{Level: "info", Format: "json"})
	eq(t, c.Cache.Backend, "memory")
	eq(t, c.Cache.MaxEntries, 100000)
	eq(t, c.Cache.Redis.Addr, "127.0.0.1:6379")
	eq(t, c.Cache.Redis.KeyPrefix, "idbridge:")
	// A directory's and a step's defaults are their owners' (providers/ldap,
	// providers/userinfo); configs only locates the sections.
	d := c.Directories[0]
	eq(t, d.Name, "corp")
	eq(t, d.Line, 6)
	eq(t, d.Path, "directories.corp")
	eq(t, c.Response.EmailField, "email")
	sp := c.Spotnana
	eq(t, sp.Mode, "callback")
	eq(t, sp.Timeout, 10*time.Second)
	eq(t, *sp.MaxRetries, 3)
	eq(t, *sp.TokenCache, true)
	a := sp.Assertion
	eq(t, a.Audience, "spotnana")
	eq(t, a.SubjectPath, "sub")
	eq(t, a.SubjectTokenType, "urn:ietf:params:oauth:token-type:access_token")
	eq(t, a.TTL, 5*time.Minute)
	eq(t, a.PublishAhead, 10*time.Minute)
	eq(t, a.JWKSPath, "/.well-known/jwks.json")

	// Explicit values that mean "off" survive the defaults.
	src = "server:\n  exchange_path: \"\"\nspotnana:\n  token_url: https://s\n  client_id: a\n  client_secret: b\n  max_retries: 0\n  token_cache: false\n" +
		"providers:\n  - name: p\n    type: jwt\n    userinfo: {when_missing: \"\"}\n" + mappingOnly
	c, errs = Parse("c.yaml", []byte(src), env())
	if errs.Err() != nil {
		t.Fatal(errs)
	}
	eq(t, *c.Server.ExchangePath, "")
	eq(t, *c.Spotnana.MaxRetries, 0)
	eq(t, *c.Spotnana.TokenCache, false)

	// No spotnana section: the exchange route's client is off.
	c, _ = Parse("c.yaml", []byte(base), env())
	if c.Spotnana != nil {
		t.Errorf("Spotnana = %+v, want nil", c.Spotnana)
	}
}

func TestProviderSections(t *testing.T) {
	src := `providers:
  - name: a
    type: jwt
    issuer: https://a
    audiences: [x]
    mapping:
      email:
        - path: upn
          transforms: [trim, {trim_prefix: "SMTP:"}, {replace: {regex: "@old$", with: "@new"}}]
    lookup: {directory: corp, filter: "(uid={{sub}})"}
  - name: b
    type: introspection
    endpoint: https://b
directories:
  corp: {url: "ldaps://x", base_dn: dc=x}
` + mappingOnly
	c, errs := Parse("c.yaml", []byte(src), env())
	if errs.Err() != nil {
		t.Fatal(errs)
	}
	if len(c.Providers) != 2 {
		t.Fatalf("%d providers", len(c.Providers))
	}
	a, b := c.Providers[0], c.Providers[1]
	eq(t, a.Name, "a")
	eq(t, a.Type, "jwt")
	eq(t, a.Path, "providers[0]")
	eq(t, a.Line, 2)
	eq(t, b.Path, "providers[1]")
	eq(t, b.Line, 11)
	eq(t, a.File, "c.yaml")
	// The type's own keys and its steps remain in the node; Split takes the steps.
	keysOf := func(n *yaml.Node) string {
		var keys []string
		for i := 0; i < len(n.Content); i += 2 {
			keys = append(keys, n.Content[i].Value)
		}
		return strings.Join(keys, ",")
	}
	eq(t, keysOf(a.Node), "issuer,audiences,lookup")
	own0, steps := a.Split([]string{"userinfo", "lookup"})
	eq(t, keysOf(own0.Node), "issuer,audiences")
	eq(t, keysOf(a.Node), "issuer,audiences,lookup")
	if len(steps) != 1 || steps[0].Name != "lookup" || steps[0].Path != "providers[0].lookup" {
		t.Fatalf("steps = %+v", steps)
	}
	var lk struct {
		Directory string `yaml:"directory"`
		Filter    string `yaml:"filter"`
	}
	if errs := steps[0].Decode(&lk); errs != nil {
		t.Fatal(errs)
	}
	eq(t, lk.Directory, "corp")
	eq(t, a.Mapping.Line, 6)
	eq(t, a.Mapping.Email[0].Line, 8)
	tr := a.Mapping.Email[0].Transforms
	if len(tr) != 3 {
		t.Fatalf("transforms = %+v", tr)
	}
	eq(t, tr[0], Transform{Line: 9, Name: "trim"})
	eq(t, tr[1], Transform{Line: 9, Name: "trim_prefix", Arg: "SMTP:"})
	eq(t, tr[2], Transform{Line: 9, Name: "replace", Arg: "@old$", With: "@new"})
	if len(a.Fingerprint) != 64 || a.Fingerprint == b.Fingerprint {
		t.Errorf("fingerprints %q %q", a.Fingerprint, b.Fingerprint)
	}

	// A provider's own strict decode reports unknown keys at their line.
	var own struct {
		Issuer string `yaml:"issuer"`
	}
	sameErrors(t, own0.Decode(&own), []string{`c.yaml:5: providers[0].audiences: unknown key`})
	eq(t, own.Issuer, "https://a")
	eq(t, a.Errorf("issuer", "bad %s", "x").Error(), "c.yaml:4: providers[0].issuer: bad x")
	eq(t, a.Errorf("absent", "m").Error(), "c.yaml:2: providers[0].absent: m")
}

func TestFingerprint(t *testing.T) {
	fp := func(src string) string {
		t.Helper()
		c, errs := Parse("c.yaml", []byte(src+mappingOnly), env("X", "https://a"))
		if errs.Err() != nil {
			t.Fatal(errs)
		}
		return c.Providers[0].Fingerprint
	}
	one := fp("providers:\n  - name: a\n    type: jwt\n    issuer: https://a\n    audiences: [x]\n")
	tests := []struct {
		name string
		src  string
		same bool
	}{
		{"reordered and restyled", "providers:\n  - {audiences: [\"x\"], issuer: 'https://a', type: jwt, name: a}\n", true},
		{"via env", "providers:\n  - name: a\n    type: jwt\n    issuer: ${env:X}\n    audiences: [x]\n", true},
		{"other value", "providers:\n  - name: a\n    type: jwt\n    issuer: https://b\n    audiences: [x]\n", false},
		{"shared key added", "providers:\n  - name: a\n    type: jwt\n    issuer: https://a\n    audiences: [x]\n    userinfo: {}\n", false},
		{"other name", "providers:\n  - name: b\n    type: jwt\n    issuer: https://a\n    audiences: [x]\n", false},
		{"number, not string", "providers:\n  - name: a\n    type: jwt\n    issuer: https://a\n    audiences: [x]\n    leeway: \"1\"\n", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := fp(tt.src); (got == one) != tt.same {
				t.Errorf("same fingerprint = %v, want %v", got == one, tt.same)
			}
		})
	}
}

func TestDecodeStrict(t *testing.T) {
	type inner struct {
		Line int           `yaml:"-"`
		D    time.Duration `yaml:"d"`
	}
	type target struct {
		S    string            `yaml:"s"`
		N    *int              `yaml:"n"`
		F    float64           `yaml:"f"`
		L    []string          `yaml:"l"`
		M    map[string]*inner `yaml:"m"`
		Raw  yaml.Node         `yaml:"raw"`
		Any  any               `yaml:"any"`
		In   inner             `yaml:"in"`
		Base struct {
			X string `yaml:"x"`
		} `yaml:",inline"`
	}
	tests := []struct {
		name  string
		src   string
		check func(t *testing.T, v *target)
		want  []string
	}{
		{name: "everything", src: "s: a\nn: 3\nf: 1.5\nl: [a, b]\nm:\n  k: {d: 1m}\nraw: {any: thing}\nany: [1]\nin:\n  d: 2s\nx: inline\n",
			check: func(t *testing.T, v *target) {
				eq(t, v.S, "a")
				eq(t, *v.N, 3)
				eq(t, v.F, 1.5)
				eq(t, strings.Join(v.L, ","), "a,b")
				eq(t, v.M["k"].D, time.Minute)
				eq(t, v.M["k"].Line, 6)
				eq(t, v.Raw.Kind, yaml.MappingNode)
				eq(t, v.In.Line, 9)
				eq(t, v.In.D, 2*time.Second)
				eq(t, v.Base.X, "inline")
			}},
		{name: "errors at depth", src: "n: x\nl: [a, [b]]\nm:\n  k: {d: 1m, e: 2}\nin: {d: soon}\nzz: 1\n",
			want: []string{
				`f:1: p.n: expected an integer, got "x"`,
				`f:2: p.l[1]: expected a single value, got a list`,
				`f:4: p.m.k.e: unknown key`,
				`f:5: p.in.d: invalid duration "soon"`,
				`f:6: p.zz: unknown key`,
			}},
		{name: "merge", src: "base: &b {d: 3s}\n",
			want: []string{`f:1: p.base: unknown key`}},
		{name: "alias cycle", src: "l: &a [*a]\n",
			want: []string{`f:1: p.l[0]: expected a single value, got a list`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var n yaml.Node
			if err := yaml.Unmarshal([]byte(tt.src), &n); err != nil {
				t.Fatal(err)
			}
			var v target
			errs := DecodeStrict("f", "p", &n, &v)
			sameErrors(t, errs, tt.want)
			if tt.check != nil {
				tt.check(t, &v)
			}
		})
	}
}

func TestExamples(t *testing.T) {
	files, err := filepath.Glob(filepath.Join("examples", "*.yaml"))
	if err != nil || len(files) < 4 {
		t.Fatalf("examples: %v %v", files, err)
	}
	lookup := env("SPOTNANA_CLIENT_ID", "client", "SPOTNANA_CLIENT_SECRET", "secret", "REDIS_PASSWORD", "pw", "GRAPH_CLIENT_ID", "graph-app", "IDBRIDGE_ADMIN_TOKEN", "0123456789abcdef0123456789abcdef")
	// Secret files are mounted at deploy time; stand in for them.
	read := func(p string) ([]byte, error) {
		if strings.Contains(p, "key") {
			return []byte(hexKey + "\n"), nil
		}
		return []byte("secret\n"), nil
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			data, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			c, errs := parse(f, data, lookup, read, ownersSecrets...)
			if errs.Err() != nil {
				t.Fatal(errs)
			}
			if len(errs) > 0 {
				t.Errorf("warnings:\n%v", errs)
			}
			if len(c.Providers) == 0 || c.Providers[0].Node == nil {
				t.Errorf("no provider section")
			}
		})
	}
}

func TestErrorFormat(t *testing.T) {
	tests := []struct {
		e    Error
		want string
	}{
		{Error{File: "f", Line: 3, Path: "a.b", Msg: "m"}, "f:3: a.b: m"},
		{Error{File: "f", Line: 3, Msg: "m"}, "f:3: m"},
		{Error{File: "f", Path: "a", Msg: "m"}, "f: a: m"},
		{Error{File: "f", Line: 1, Path: "a", Msg: "m", Warning: true}, "f:1: a: warning: m"},
	}
	for _, tt := range tests {
		t.Run(tt.want, func(t *testing.T) { eq(t, tt.e.Error(), tt.want) })
	}
	var nilErrs Errors
	if nilErrs.Err() != nil {
		t.Error("nil Errors: Err() != nil")
	}
	var target Errors
	if err := (Errors{{File: "f", Msg: "m"}}).Err(); !errors.As(err, &target) || len(target) != 1 {
		t.Errorf("Err() = %v", err)
	}
}

func FuzzParse(f *testing.F) {
	f.Add([]byte(base))
	f.Add([]byte("server: {listen: ${env:X}}\n" + base))
	f.Add([]byte("a: &a [*a]\n"))
	f.Add([]byte("x: &x {<<: *x}\n"))
	f.Add([]byte("providers:\n  - &a {<<: [*a, *a], name: p, type: jwt}\n"))
	f.Add([]byte("providers:\n  - <<: {name: a}\n    type: jwt\nmapping: {email: [{template: \"{{a}\"}]}\n"))
	f.Add([]byte("mapping:\n  email:\n    - transforms: [{replace: {regex: '(', with: 1}}, {trim_prefix: [1]}]\n"))
	f.Add([]byte("cache: {backend: redis, encryption_key: ${file:x}}\n---\n"))
	for _, name := range []string{"okta.yaml", "entra-id.yaml", "multi-issuer.yaml", "minimal.yaml"} {
		if data, err := os.ReadFile(filepath.Join("examples", name)); err == nil {
			f.Add(data)
		}
	}
	read := func(string) ([]byte, error) { return []byte("v\n"), nil }
	f.Fuzz(func(t *testing.T, data []byte) {
		c, errs := parse("f.yaml", data, env("X", "1"), read)
		for _, e := range errs {
			_ = e.Error()
		}
		if c != nil {
			for _, p := range c.Providers {
				var own map[string]any
				_ = p.Decode(&own)
			}
		}
	})
}

func TestMergeKeys(t *testing.T) {
	src := `providers:
  - &corp
    name: a
    type: jwt
    issuer: https://a
    audiences: [x]
  - <<: *corp
    name: b
    issuer: https://b
` + mappingOnly
	c, errs := Parse("c.yaml", []byte(src), env())
	if errs.Err() != nil {
		t.Fatal(errs)
	}
	b := c.Providers[1]
	eq(t, b.Name, "b")
	eq(t, b.Type, "jwt")
	var own struct {
		Issuer    string   `yaml:"issuer"`
		Audiences []string `yaml:"audiences"`
	}
	if errs := b.Decode(&own); errs != nil {
		t.Fatal(errs)
	}
	eq(t, own.Issuer, "https://b")
	eq(t, strings.Join(own.Audiences, ","), "x")

	// A mapping that merges itself is refused, not expanded forever.
	_, errs = Parse("c.yaml", []byte("server: &s {<<: *s}\n"+base), env())
	sameErrors(t, errs.Fatal(), []string{`c.yaml:1: server: a merge (<<) refers to the mapping that contains it`})
}

// TestCacheMaxBytesWarning: a byte budget below 1 MiB is allowed but said to cache little.
func TestCacheMaxBytesWarning(t *testing.T) {
	_, errs := Parse("c.yaml", []byte("cache:\n  max_bytes: 1000\n"+base), env())
	sameErrors(t, errs.Warnings(), []string{`c.yaml:2: cache.max_bytes: warning: is below 1 MiB: a document larger than 1/16 of it (62 bytes) is never cached, and few fit at all`})
	_, errs = Parse("c.yaml", []byte("cache:\n  max_bytes: 1048576\n"+base), env())
	sameErrors(t, errs.Warnings(), nil)
	if _, errs = Parse("c.yaml", []byte("cache:\n  max_bytes: -1\n"+base), env()); !strings.Contains(errs.Error(), "cache.max_bytes: must not be negative") {
		t.Errorf("negative max_bytes: %v", errs)
	}
}
