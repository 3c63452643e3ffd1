package ldap

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"log/slog"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-ldap/ldap/v3"
	"github.com/tidwall/gjson"
	"gopkg.in/yaml.v3"

	"github.com/idbridge/idbridge/configs"
	"github.com/idbridge/idbridge/mapping"
	"github.com/idbridge/idbridge/providers"
	"github.com/idbridge/idbridge/providers/ldap/ldaptest"
)

// Tests in this file run against a throwaway slapd (ldaptest); they skip without one,
// unless IDBRIDGE_REQUIRE_SERVERS=1.

// section builds a provider section from the provider's own keys in YAML.
func section(t testing.TB, src string) *configs.ProviderSection {
	t.Helper()
	var n yaml.Node
	if err := yaml.Unmarshal([]byte(src), &n); err != nil {
		t.Fatal(err)
	}
	return &configs.ProviderSection{Name: "test", Type: "ldap", File: "test.yaml", Path: "providers[0]",
		Line: 1, Node: n.Content[0], Fingerprint: "fp"}
}

// lookupSection builds a lookup: step's section from its decoded form.
func lookupSection(t testing.TB, lk LookupConfig) *configs.Section {
	t.Helper()
	out, err := yaml.Marshal(lk)
	if err != nil {
		t.Fatal(err)
	}
	var n yaml.Node
	if err := yaml.Unmarshal(out, &n); err != nil {
		t.Fatal(err)
	}
	return &configs.Section{Name: "lookup", File: "test.yaml", Path: "providers[0].lookup", Line: 1, Node: n.Content[0]}
}

// syncBuffer collects log output written from several goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

type env struct {
	srv  *ldaptest.Server
	ds   *Directories
	dir  *Directory
	deps providers.Deps
	log  *syncBuffer
}

// newEnv starts slapd (or reuses srv) and opens a directory "corp" on it; edit adjusts the
// configuration before the pool is opened.
func newEnv(t testing.TB, srv *ldaptest.Server, edit func(*DirectoryConfig)) *env {
	t.Helper()
	if srv == nil {
		srv = ldaptest.Start(t)
	}
	cfg := &DirectoryConfig{
		URL: srv.URL(), BindDN: srv.BindDN(), BindPassword: srv.BindPassword(),
		BaseDN: ldaptest.PeopleDN, Timeout: 2 * time.Second,
	}
	if edit != nil {
		edit(cfg)
	}
	buf := &syncBuffer{}
	log := slog.New(slog.NewTextHandler(buf, &slog.HandlerOptions{Level: slog.LevelDebug}))
	ds, err := newDirectoriesFrom(map[string]*DirectoryConfig{"corp": cfg}, providers.Deps{Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ds.Close() })
	ds.Start(t.Context())
	v, _ := ds.directory("corp")
	return &env{srv: srv, ds: ds, dir: v, log: buf,
		deps: providers.Deps{Logger: log, Directories: ds, File: "test.yaml"}}
}

func (e *env) lookup(t testing.TB, lk LookupConfig) providers.Enricher {
	t.Helper()
	lk.Directory = "corp"
	en, err := NewLookup(lookupSection(t, lk), section(t, "{}"), nil, e.deps)
	if err != nil {
		t.Fatal(err)
	}
	return en
}

func (e *env) tokenProvider(t testing.TB, src string) providers.Provider {
	t.Helper()
	inst, err := New(section(t, "directory: corp\n"+src), e.deps)
	if err != nil {
		t.Fatal(err)
	}
	return inst.Provider
}

func ptr[T any](v T) *T { return &v }

// waitUntil polls cond until it holds, failing t after a generous deadline.
func waitUntil(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

const uidFilter = "(&(objectClass=inetOrgPerson)(uid={{sub}}))"

// jwtClaims is what a jwt provider hands to the lookup: verified claims.
const jwtClaims = `{"iss":"https://idp.example.com","sub":"alice","aud":"idbridge","exp":1900000000,"email_verified":false}`

func TestLookupDocument(t *testing.T) {
	e := newEnv(t, nil, nil)
	en := e.lookup(t, LookupConfig{Filter: uidFilter,
		Attributes: []string{"mail", "userPrincipalName", "proxyAddresses", "objectGUID", "jpegPhoto", "employeeNumber"}})
	doc, err := en.Enrich(context.Background(), "token", []byte(jwtClaims))
	if err != nil {
		t.Fatal(err)
	}
	for path, want := range map[string]string{
		"sub":                                   "alice",
		"iss":                                   "https://idp.example.com",
		"exp":                                   "1900000000",
		"directory.dn":                          "uid=alice,ou=people,dc=example,dc=com",
		"directory.mail":                        `["alice@example.com"]`,
		"directory.userPrincipalName":           `["alice@corp.example.com"]`,
		"directory.employeeNumber":              `["1001"]`,
		"directory.objectGUID":                  `["ABEiM0RVZneImaq7zN3u/w=="]`,
		"directory.jpegPhoto":                   `["/9j/4GJpbmFyeQ=="]`,
		"directory.proxyAddresses.#":            "2",
		`directory.proxyAddresses.#(%"SMTP:*")`: "SMTP:Alice.Smith@Example.com",
	} {
		v := gjson.GetBytes(doc, path)
		if v.Raw != want && v.String() != want {
			t.Errorf("%s = %s; want %s", path, v.Raw, want)
		}
	}
	if v := gjson.GetBytes(doc, "directory.cn"); v.Exists() {
		t.Errorf("directory.cn present though not requested: %s", v.Raw)
	}
	if en.TTL() != DefaultCacheTTL {
		t.Errorf("TTL = %v", en.TTL())
	}
	if h := en.(providers.HealthChecker).Health(context.Background()); !h.OK {
		t.Errorf("Health = %+v", h)
	}

	// Every attribute when attributes: is empty, but never the password.
	all := e.lookup(t, LookupConfig{Filter: uidFilter, Into: "ldap"})
	doc, err = all.Enrich(context.Background(), "", []byte(`{"sub":"alice"}`))
	if err != nil {
		t.Fatal(err)
	}
	if gjson.GetBytes(doc, "ldap.cn.0").String() != "Alice Smith" || gjson.GetBytes(doc, "ldap.userPassword").Exists() {
		t.Errorf("all attributes: %s", doc)
	}
}

// TestLookupMissingMail: an entry without mail yields a document without directory.mail,
// so the mapping falls through to its next candidate.
func TestLookupMissingMail(t *testing.T) {
	e := newEnv(t, nil, nil)
	en := e.lookup(t, LookupConfig{Filter: uidFilter, Attributes: []string{"mail", "userPrincipalName", "proxyAddresses"}})
	doc, err := en.Enrich(context.Background(), "", []byte(`{"sub":"carol"}`))
	if err != nil {
		t.Fatal(err)
	}
	if v := gjson.GetBytes(doc, "directory.mail"); v.Exists() {
		t.Fatalf("directory.mail = %s; want absent", v.Raw)
	}
	rules, errs := mapping.Compile(mapping.Spec{Candidates: []mapping.Candidate{
		{Path: "directory.mail"},
		{Path: `directory.proxyAddresses.#(%"SMTP:*")`, Transforms: []mapping.Transform{{Name: "trim_prefix", Arg: "SMTP:"}, {Name: "lower"}}},
		{Path: "directory.userPrincipalName"},
	}})
	if len(errs) > 0 {
		t.Fatal(errs)
	}
	email, err := rules.Email(doc)
	if err != nil || email != "carol.white@example.com" {
		t.Fatalf("mapping = %q, %v; want carol.white@example.com from proxyAddresses", email, err)
	}
}

func TestLookupNotFoundAndAmbiguous(t *testing.T) {
	e := newEnv(t, nil, nil)
	required := e.lookup(t, LookupConfig{Filter: uidFilter})
	optional := e.lookup(t, LookupConfig{Filter: uidFilter, Required: ptr(false)})
	byAccount := e.lookup(t, LookupConfig{Filter: "(sAMAccountName={{name}})"})
	optionalByAccount := e.lookup(t, LookupConfig{Filter: "(sAMAccountName={{name}})", Required: ptr(false)})
	ctx := context.Background()

	tests := []struct {
		name    string
		en      providers.Enricher
		doc     string
		wantErr error // nil: the document comes back unchanged
	}{
		{"no entry, required", required, `{"sub":"nobody"}`, ErrNotFound},
		{"no entry, optional", optional, `{"sub":"nobody"}`, nil},
		{"claim missing, required", required, `{"email":"x@example.com"}`, ErrNotFound},
		{"claim missing, optional", optional, `{"email":"x@example.com"}`, nil},
		{"two entries, required", byAccount, `{"name":"twin"}`, ErrAmbiguous},
		{"two entries, optional", optionalByAccount, `{"name":"twin"}`, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := tt.en.Enrich(ctx, "", []byte(tt.doc))
			if tt.wantErr == nil {
				if err != nil || string(got) != tt.doc {
					t.Fatalf("Enrich = %s, %v; want the document unchanged", got, err)
				}
				return
			}
			if !errors.Is(err, providers.ErrAccessDenied) || !errors.Is(err, tt.wantErr) {
				t.Fatalf("Enrich err = %v; want ErrAccessDenied wrapping %v", err, tt.wantErr)
			}
		})
	}
	if !strings.Contains(e.log.String(), "matches several entries") || !strings.Contains(e.log.String(), "uid=twin2") {
		t.Errorf("ambiguous lookup not logged:\n%s", e.log)
	}
}

// TestInjection: values made of filter syntax never match another user's entry.
func TestInjection(t *testing.T) {
	e := newEnv(t, nil, nil)
	en := e.lookup(t, LookupConfig{Filter: uidFilter, Attributes: []string{"uid"}})
	tests := []struct {
		name, sub string
		wantDN    string // "" → no entry
	}{
		{"star", "*", ""},
		{"prefix", "al*", "cn=Weird Star,ou=people,dc=example,dc=com"}, // the entry whose uid is literally al*
		{"close and reopen", "alice)(uid=*", ""},
		{"or", "*)(|(uid=*", ""},
		{"backslash", `back\slash`, "cn=Back Slash,ou=people,dc=example,dc=com"},
		{"escaped star", `al\2a`, ""},
		{"NUL", "alice\x00", ""},
		{"NUL inside", "ali\x00ce", ""},
		{"escaped NUL", `alice\00`, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			doc := marshal(map[string]string{"sub": tt.sub})
			got, err := en.Enrich(context.Background(), "", doc)
			if tt.wantDN == "" {
				if !errors.Is(err, ErrNotFound) {
					t.Fatalf("Enrich(sub=%q) = %s, %v; want not found", tt.sub, gjson.GetBytes(got, "directory.dn"), err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if dn := gjson.GetBytes(got, "directory.dn").String(); dn != tt.wantDN {
				t.Fatalf("sub=%q matched %s; want %s", tt.sub, dn, tt.wantDN)
			}
		})
	}
}

func TestTokenProvider(t *testing.T) {
	e := newEnv(t, nil, nil)
	p := e.tokenProvider(t, "filter: (apiTokenHash={{token_sha256}})\nattributes: [mail, uid, apiTokenHash]")
	ctx := context.Background()

	id, err := p.Authenticate(ctx, "alice-api-token")
	if err != nil {
		t.Fatal(err)
	}
	if dn := gjson.GetBytes(id.Document, "dn").String(); dn != "uid=alice,ou=people,dc=example,dc=com" {
		t.Errorf("dn = %s", dn)
	}
	if mail := gjson.GetBytes(id.Document, "mail").Raw; mail != `["alice@example.com"]` {
		t.Errorf("mail = %s", mail)
	}
	if bytes.Contains(id.Document, []byte("b6903fe9")) || gjson.GetBytes(id.Document, "apiTokenHash").Exists() {
		t.Errorf("document carries the token's hash: %s", id.Document)
	}

	id, err = p.Authenticate(ctx, "carol-api-token")
	if err != nil || gjson.GetBytes(id.Document, "uid.0").String() != "carol" || gjson.GetBytes(id.Document, "mail").Exists() {
		t.Errorf("carol: %s, %v", id.Document, err)
	}

	for _, tt := range []struct {
		name, token string
		want        error
	}{
		{"unknown token", "nobody-api-token", ErrNotFound},
		{"shared token", "dup-api-token", ErrAmbiguous},
		{"injection", "*", ErrNotFound},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := p.Authenticate(ctx, tt.token)
			if !errors.Is(err, providers.ErrInvalidToken) || !errors.Is(err, tt.want) {
				t.Fatalf("err = %v; want ErrInvalidToken wrapping %v", err, tt.want)
			}
		})
	}
	jwt := "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJhbGljZSJ9.c2ln"
	if _, err := p.Authenticate(ctx, jwt); !errors.Is(err, providers.ErrNotMine) {
		t.Errorf("JWT-shaped token: %v; want ErrNotMine (accepts: opaque)", err)
	}
	anyShape := e.tokenProvider(t, "filter: (apiTokenHash={{token_sha256}})\naccepts: any")
	if _, err := anyShape.Authenticate(ctx, jwt); !errors.Is(err, providers.ErrInvalidToken) {
		t.Errorf("accepts: any, unknown JWT: %v; want ErrInvalidToken", err)
	}
	logs := e.log.String()
	for _, secret := range []string{"alice-api-token", "dup-api-token", ldaptest.BindPassword} {
		if strings.Contains(logs, secret) {
			t.Errorf("log carries %q:\n%s", secret, logs)
		}
	}
	// The full SHA-256 is what the directory stores for the token; a log line may carry
	// only its fingerprint (the first 8 hex digits), even at debug level.
	for _, tok := range []string{"alice-api-token", "dup-api-token", "nobody-api-token"} {
		sum := sha256.Sum256([]byte(tok))
		if full := hex.EncodeToString(sum[:]); strings.Contains(logs, full) {
			t.Errorf("log carries the full SHA-256 of %q:\n%s", tok, logs)
		}
	}
	if !strings.Contains(logs, "a token matches several entries") {
		t.Errorf("ambiguous token not logged:\n%s", logs)
	}
}

// TestRestart: slapd dies while searches run; they fail as unavailable, and succeed
// again once it is back, on the same Directories.
func TestRestart(t *testing.T) {
	e := newEnv(t, nil, func(c *DirectoryConfig) { c.PoolSize = 4; c.Timeout = time.Second })
	en := e.lookup(t, LookupConfig{Filter: uidFilter, Attributes: []string{"mail"}})
	doc := []byte(`{"sub":"alice"}`)
	ctx := context.Background()

	var stop atomic.Bool
	var ok, unavailable, other atomic.Int64
	var otherErr atomic.Value
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for !stop.Load() {
				_, err := en.Enrich(ctx, "", doc)
				switch {
				case err == nil:
					ok.Add(1)
				case errors.Is(err, providers.ErrUnavailable):
					unavailable.Add(1)
				default:
					other.Add(1)
					otherErr.Store(err)
				}
			}
		})
	}
	// Stop the workers however the test ends, before the pool is closed.
	defer func() { stop.Store(true); wg.Wait() }()
	// Wait for progress, not for a fixed time: a busy CI machine may not have run a
	// single search in any given 100 ms.
	waitUntil(t, "a search to succeed before the outage", func() bool { return ok.Load() > 0 })
	e.srv.Kill()
	waitUntil(t, "a search to fail during the outage", func() bool { return unavailable.Load() > 0 })
	if _, err := en.Enrich(ctx, "", doc); !errors.Is(err, providers.ErrUnavailable) {
		t.Errorf("during the outage: %v; want ErrUnavailable", err)
	}
	if h := e.dir.Health(ctx); h.OK {
		t.Errorf("Health during the outage = %+v", h)
	}
	e.srv.Restart()
	// The first search after the restart succeeds: dead pooled connections are
	// discarded, not handed out.
	if _, err := en.Enrich(ctx, "", doc); err != nil {
		t.Errorf("first search after restart: %v", err)
	}
	okBefore := ok.Load()
	waitUntil(t, "the workers to succeed again after the restart", func() bool { return ok.Load() > okBefore })
	stop.Store(true)
	wg.Wait()
	if other.Load() > 0 {
		t.Errorf("%d searches failed with something other than ErrUnavailable: %v", other.Load(), otherErr.Load())
	}
	if unavailable.Load() == 0 || ok.Load() == 0 {
		t.Errorf("ok=%d unavailable=%d; want both", ok.Load(), unavailable.Load())
	}
	if h := e.dir.Health(ctx); !h.OK {
		t.Errorf("Health after restart = %+v", h)
	}
	if st := e.dir.Stats(); st.InUse != 0 || st.Idle > 4 {
		t.Errorf("stats = %+v", st)
	}
	if logs := e.log.String(); !strings.Contains(logs, "directory unavailable") || !strings.Contains(logs, "available again") {
		t.Errorf("outage transitions not logged:\n%s", logs)
	}
	t.Logf("ok=%d unavailable=%d", ok.Load(), unavailable.Load())
}

// TestPoolBound: 50 concurrent lookups never hold more than pool_size connections open,
// counted by the server.
func TestPoolBound(t *testing.T) {
	const size = 3
	e := newEnv(t, nil, func(c *DirectoryConfig) { c.PoolSize = size })
	en := e.lookup(t, LookupConfig{Filter: uidFilter, Attributes: []string{"mail"}})

	var maxServer, maxInUse atomic.Int64
	done := make(chan struct{})
	sampled := make(chan struct{})
	go func() {
		defer close(sampled)
		for {
			if n, err := e.srv.Connections(); err == nil && int64(n) > maxServer.Load() {
				maxServer.Store(int64(n))
			}
			if st := e.dir.Stats(); int64(st.InUse+st.Idle) > maxInUse.Load() {
				maxInUse.Store(int64(st.InUse + st.Idle))
			}
			select {
			case <-done:
				return
			case <-time.After(time.Millisecond):
			}
		}
	}()
	var wg sync.WaitGroup
	var failed atomic.Int64
	for i := range 50 {
		wg.Go(func() {
			sub := []string{"alice", "bob"}[i%2]
			for range 20 {
				if _, err := en.Enrich(context.Background(), "", marshal(map[string]string{"sub": sub})); err != nil {
					failed.Add(1)
				}
			}
		})
	}
	wg.Wait()
	close(done)
	<-sampled
	if failed.Load() > 0 {
		t.Errorf("%d lookups failed", failed.Load())
	}
	if m := maxServer.Load(); m > size || m < 1 {
		t.Errorf("server saw up to %d connections; want 1..%d", m, size)
	}
	if m := maxInUse.Load(); m > size {
		t.Errorf("pool held up to %d connections; want <= %d", m, size)
	}
	t.Logf("max connections: server %d, pool %d", maxServer.Load(), maxInUse.Load())
}

func TestWrongBindPassword(t *testing.T) {
	const wrong = "not-the-password-42"
	e := newEnv(t, nil, func(c *DirectoryConfig) { c.BindPassword = wrong })
	ctx := context.Background()
	h := e.dir.Health(ctx)
	if h.OK || !strings.Contains(h.Detail, "Invalid Credentials") {
		t.Errorf("Health = %+v; want not OK, invalid credentials", h)
	}
	if hs := e.ds.Health(ctx); hs["corp"].OK {
		t.Errorf("Directories.Health = %+v", hs)
	}
	if _, err := e.lookup(t, LookupConfig{Filter: uidFilter}).Enrich(ctx, "", []byte(`{"sub":"alice"}`)); !errors.Is(err, providers.ErrUnavailable) || errors.Is(err, providers.ErrAccessDenied) {
		t.Errorf("lookup: %v; want ErrUnavailable only", err)
	}
	p := e.tokenProvider(t, "filter: (apiTokenHash={{token_sha256}})")
	if _, err := p.Authenticate(ctx, "alice-api-token"); !errors.Is(err, providers.ErrUnavailable) || errors.Is(err, providers.ErrInvalidToken) {
		t.Errorf("provider: %v; want ErrUnavailable only", err)
	}
	logs := e.log.String()
	if !strings.Contains(logs, "directory check failed at start") {
		t.Errorf("failed start check not logged:\n%s", logs)
	}
	if strings.Contains(logs, wrong) || strings.Contains(h.Detail, wrong) {
		t.Errorf("the bind password leaked:\n%s", logs)
	}
}

func TestTLS(t *testing.T) {
	srv := ldaptest.Start(t)
	other := ldaptest.UntrustedCAFile(t)
	tests := []struct {
		name   string
		edit   func(*DirectoryConfig)
		wantOK bool
		log    string
	}{
		{"ldaps", func(c *DirectoryConfig) { c.URL = srv.LDAPSURL(); c.CAFile = srv.CAFile() }, true, ""},
		{"starttls", func(c *DirectoryConfig) { c.StartTLS = true; c.CAFile = srv.CAFile() }, true, ""},
		{"ldaps wrong CA", func(c *DirectoryConfig) { c.URL = srv.LDAPSURL(); c.CAFile = other }, false, ""},
		{"starttls wrong CA", func(c *DirectoryConfig) { c.StartTLS = true; c.CAFile = other }, false, ""},
		{"ldaps system roots", func(c *DirectoryConfig) { c.URL = srv.LDAPSURL() }, false, ""},
		{"ldaps insecure", func(c *DirectoryConfig) { c.URL = srv.LDAPSURL(); c.InsecureSkipVerify = true }, true, "insecure_skip_verify is on"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, srv, tt.edit)
			ctx := context.Background()
			h := e.dir.Health(ctx)
			_, err := e.lookup(t, LookupConfig{Filter: uidFilter}).Enrich(ctx, "", []byte(`{"sub":"alice"}`))
			if tt.wantOK {
				if !h.OK || err != nil {
					t.Fatalf("Health = %+v, lookup = %v; want both OK", h, err)
				}
			} else {
				if h.OK || !strings.Contains(h.Detail, "certificate") {
					t.Errorf("Health = %+v; want a certificate failure", h)
				}
				if !errors.Is(err, providers.ErrUnavailable) {
					t.Errorf("lookup = %v; want ErrUnavailable", err)
				}
			}
			if tt.log != "" && !strings.Contains(e.log.String(), tt.log) {
				t.Errorf("log lacks %q:\n%s", tt.log, e.log)
			}
		})
	}
}

func BenchmarkLookupPooled(b *testing.B) {
	e := newEnv(b, nil, nil)
	en := e.lookup(b, LookupConfig{Filter: uidFilter, Attributes: []string{"mail", "userPrincipalName"}})
	doc := []byte(jwtClaims)
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := en.Enrich(ctx, "", doc); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkLookupNewConnPerRequest is what a lookup would cost without the pool: dial,
// bind, search, close for every request.
func BenchmarkLookupNewConnPerRequest(b *testing.B) {
	srv := ldaptest.Start(b)
	req := ldap.NewSearchRequest(ldaptest.PeopleDN, ldap.ScopeWholeSubtree, ldap.NeverDerefAliases, 2, 5,
		false, "(&(objectClass=inetOrgPerson)(uid=alice))", []string{"mail", "userPrincipalName"}, nil)
	b.ReportAllocs()
	for b.Loop() {
		c, err := ldap.DialURL(srv.URL(), ldap.DialWithDialer(&net.Dialer{Timeout: 2 * time.Second}))
		if err != nil {
			b.Fatal(err)
		}
		c.SetTimeout(2 * time.Second)
		if err := c.Bind(srv.BindDN(), srv.BindPassword()); err != nil {
			b.Fatal(err)
		}
		res, err := c.Search(req)
		if err != nil || len(res.Entries) != 1 {
			b.Fatal(err)
		}
		c.Close()
	}
}
