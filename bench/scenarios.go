package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"github.com/go-ldap/ldap/v3"
	"log"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/idbridge/idbridge/cache"
	"github.com/idbridge/idbridge/demoissuer"
	"github.com/idbridge/idbridge/providers/ldap/ldaptest"
	"github.com/idbridge/idbridge/spotnana"
)

type testingTB = testing.TB

func (t *fakeTB) Helper() {}
func (t *fakeTB) Fatalf(f string, a ...any) {
	panic(fmt.Sprintf(f, a...))
}
func (t *fakeTB) Fatal(a ...any)           { panic(fmt.Sprint(a...)) }
func (t *fakeTB) Skipf(f string, a ...any) { panic(fmt.Sprintf(f, a...)) }
func (t *fakeTB) Logf(f string, a ...any)  { log.Printf(f, a...) }
func (t *fakeTB) Cleanup(f func())         { t.e.atExit(f) }
func (t *fakeTB) Name() string             { return "bench" }
func (t *fakeTB) TempDir() string {
	t.dir++
	d := filepath.Join(t.e.tmp, "ldap"+strconv.Itoa(t.dir))
	if err := os.MkdirAll(d, 0o700); err != nil {
		panic(err)
	}
	return d
}

// startSlapd runs ldaptest.Start, turning its Fatalf into an error.
func startSlapd(e *env) (s *ldaptest.Server, err error) {
	defer func() {
		if v := recover(); v != nil {
			err = fmt.Errorf("slapd: %v", v)
		}
	}()
	return ldaptest.Start(&fakeTB{e: e}), nil
}

// scenarios holds the peers, tokens and servers of one benchmark run.
type scenarios struct {
	want  map[string]bool
	notes []string

	issuer   *demoissuer.Issuer
	hot      string   // scenario a's one token
	distinct []string // scenario b's cycled tokens
	pem      string   // issuer public key for the jwtverify baseline

	introPeer  string
	slapd      *ldaptest.Server
	ldapTokens []string // scenario d's tokens, one directory entry each
	exchTokens []string // scenario e's tokens, one user each
	sandbox    string   // host:port
	exchAddr   string   // idbridge for scenario e (the sandbox calls it back)

	srv map[string]*server
	mem func(e *env) (*memResult, error)
}

func (sc *scenarios) on(s string) bool { return sc.want[s] }

// serveHTTP serves h on a fresh loopback port in this process (core 1).
func serveHTTP(e *env, addr string, h http.Handler) (string, error) {
	if addr == "" {
		addr = "127.0.0.1:0"
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return "", err
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	e.atExit(func() { srv.Close() })
	return ln.Addr().String(), nil
}

// mintAll signs n tokens on every core (before the benchmark pins itself).
func mintAll(n int, mint func(i int) (string, error)) ([]string, error) {
	out := make([]string, n)
	var next atomic.Int64
	var firstErr error
	var mu sync.Mutex
	var wg sync.WaitGroup
	for range runtime.NumCPU() {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1) - 1)
				if i >= n {
					return
				}
				t, err := mint(i)
				if err != nil {
					mu.Lock()
					firstErr = err
					mu.Unlock()
					return
				}
				out[i] = t
			}
		}()
	}
	wg.Wait()
	return out, firstErr
}

func userClaims(i int) map[string]any {
	return map[string]any{"sub": "user-" + strconv.Itoa(i), "aud": "idbridge", "scope": "openid travel",
		"email": "user" + strconv.Itoa(i) + "@example.com", "email_verified": true, "client_id": "travel-app"}
}

func setupScenarios(e *env) (*scenarios, error) {
	sc := &scenarios{want: map[string]bool{}, srv: map[string]*server{}}
	for _, s := range []string{"a", "b", "c", "d", "e"} {
		sc.want[s] = e.o.only == "" || strings.Contains(","+e.o.only+",", ","+s+",")
	}
	var err error
	if sc.issuer, err = demoissuer.NewIssuer(); err != nil {
		return nil, err
	}
	e.atExit(sc.issuer.Close)
	if sc.hot, err = sc.issuer.Mint(map[string]any{"sub": "alice", "aud": "idbridge", "scope": "openid travel",
		"email": "alice@example.com", "email_verified": true, "client_id": "travel-app"}); err != nil {
		return nil, err
	}
	pem, err := sc.issuer.PublicKeyPEM(sc.issuer.Keys()[0].KID)
	if err != nil {
		return nil, err
	}
	sc.pem = filepath.Join(e.tmp, "issuer.pem")
	if err := os.WriteFile(sc.pem, pem, 0o600); err != nil {
		return nil, err
	}
	if sc.on("b") {
		t0 := time.Now()
		if sc.distinct, err = mintAll(e.o.distinct, func(i int) (string, error) { return sc.issuer.Mint(userClaims(i)) }); err != nil {
			return nil, err
		}
		log.Printf("minted %d RS256 tokens in %s", len(sc.distinct), time.Since(t0).Round(time.Millisecond))
		sc.notes = append(sc.notes, cyclingCheck(sc.distinct, 1000))
	}
	if sc.on("c") {
		if sc.introPeer, err = serveHTTP(e, "", introspectionPeer()); err != nil {
			return nil, err
		}
	}
	if sc.on("d") {
		if sc.slapd, err = startSlapd(e); err != nil {
			log.Printf("scenario d skipped: %v", err)
			sc.notes = append(sc.notes, "scenario d skipped: "+firstLine(err.Error()))
			sc.want["d"] = false
		} else if sc.ldapTokens, err = addLDAPUsers(sc.slapd.URL(), 256); err != nil {
			return nil, err
		}
	}
	if sc.on("e") {
		sc.exchAddr = freeAddr()
		sb := spotnana.NewSandbox(spotnana.SandboxConfig{ClientID: "sandbox-client", ClientSecret: "sandbox-secret",
			Users: []string{"*"}, UserDetailURL: "http://" + sc.exchAddr + "/v1/user-detail"})
		if sc.sandbox, err = serveHTTP(e, "", sb); err != nil {
			return nil, err
		}
		// One token per user: idbridge coalesces concurrent exchanges of one user into
		// one Spotnana call, and the scenario is meant to reach the sandbox every time.
		if sc.exchTokens, err = mintAll(256, func(i int) (string, error) { return sc.issuer.Mint(userClaims(100000 + i)) }); err != nil {
			return nil, err
		}
	}
	if e.o.memTokens > 0 {
		if err := sc.setupMemory(e); err != nil {
			return nil, err
		}
	}
	return sc, nil
}

func firstLine(s string) string {
	s, _, _ = strings.Cut(s, "\n")
	return s
}

// cyclingCheck replays scenario b's key pattern on the real memory cache with the
// same bound: two passes over the cycled tokens, counting hits in the second. The
// cache is sharded 16 ways with a per-shard LRU, so the check is that no shard keeps a
// token until its turn comes again.
func cyclingCheck(tokens []string, maxEntries int) string {
	m := cache.NewMemory(maxEntries, nil)
	ctx := context.Background()
	sums := tokenSums(tokens)
	hits := 0
	for pass := 0; pass < 2; pass++ {
		for _, s := range sums {
			k := cache.Key{Kind: cache.Identity, Group: "corp/x", ID: string(s[:])}
			if _, ok := m.Get(ctx, k); ok {
				if pass == 1 {
					hits++
				}
				continue
			}
			m.Set(ctx, k, []byte("{}"), time.Hour)
		}
	}
	return fmt.Sprintf("b: %d tokens cycled in order through cache.max_entries %d (16 shards): %d hits in a replay on cache.Memory, so every request verifies a signature",
		len(tokens), maxEntries, hits)
}

// introspectionPeer answers RFC 7662 for any token: active, with the claims the
// mapping needs. It runs in the benchmark process, on core 1.
func introspectionPeer() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := r.ParseForm(); err != nil || r.PostForm.Get("token") == "" {
			http.Error(w, "bad request", http.StatusBadRequest)
			return
		}
		tok := r.PostForm.Get("token")
		b, _ := json.Marshal(map[string]any{"active": true, "sub": tok, "aud": "idbridge", "scope": "openid travel",
			"client_id": "travel-app", "email": "alice@example.com", "email_verified": true,
			"exp": time.Now().Add(time.Hour).Unix(), "iat": time.Now().Unix()})
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(b)
	})
}

// jwtConfig is the jwt provider every JWT scenario uses; extra adds provider keys.
func jwtConfig(issuer, extra string) string {
	return fmt.Sprintf(jwtProvider, issuer, extra)
}

const jwtProvider = `
providers:
  - name: corp
    type: jwt
    issuer: %s
    audiences: [idbridge]
%s    required_scopes: [travel]
mapping:
  email:
    - path: email
      when: {path: email_verified, equals: true}
  allowed_domains: [example.com]
`

// startIdbridge writes cfg (with the listeners prepended) and runs `idbridge serve`.
func startIdbridge(e *env, name, cfg string, env ...string) (*server, error) {
	return startIdbridgeBin(e, name, e.bins["idbridge"], cfg, env...)
}

// startIdbridgeBin is startIdbridge with another build of idbridge (-compare).
func startIdbridgeBin(e *env, name, bin, cfg string, env ...string) (*server, error) {
	addr, admin := freeAddr(), freeAddr()
	if name == "idbridge-e" {
		addr = e.exchAddrFor()
	}
	full := fmt.Sprintf("server: {listen: %q, admin_listen: %q}\nlog: {level: info, format: json}\n", addr, admin) + cfg
	path := filepath.Join(e.tmp, name+".yaml")
	if err := os.WriteFile(path, []byte(full), 0o600); err != nil {
		return nil, err
	}
	s, err := startServer(name, e.tmp, bin, []string{"serve", "--config", path}, env, addr, "http://"+admin+"/readyz")
	if err != nil {
		return nil, err
	}
	s.admin = admin
	e.servers = append(e.servers, s)
	return s, nil
}

func (e *env) exchAddrFor() string { return e.exchAddr }

func startBaseline(e *env, name string, args ...string) (*server, error) {
	addr := freeAddr()
	s, err := startServer(name, e.tmp, e.bins[name], append([]string{"-listen", addr}, args...), nil, addr, "")
	if err != nil {
		return nil, err
	}
	e.servers = append(e.servers, s)
	return s, nil
}

func (sc *scenarios) start(e *env) error {
	var err error
	pprofEnv := []string{}
	if e.o.pprof {
		pprofEnv = append(pprofEnv, "IDBRIDGE_PPROF=1")
	}
	if sc.on("a") || sc.on("b") {
		cfg := "cache: {max_entries: 1000}\n" + jwtConfig(sc.issuer.URL(), "")
		if sc.srv["idbridge-ab"], err = startIdbridge(e, "idbridge-ab", cfg, pprofEnv...); err != nil {
			return err
		}
		if rev := e.o.compare; rev != "" {
			// The same config as idbridge-ab's, so that the two rows differ by the build only.
			if sc.srv["idbridge@"+rev], err = startIdbridgeBin(e, "idbridge-compare", e.bins["idbridge@"+rev], cfg, pprofEnv...); err != nil {
				return err
			}
		}
		args := []string{"-pem", sc.pem, "-issuer", sc.issuer.URL()}
		admin := ""
		if e.o.pprof {
			admin = freeAddr()
			args = append(args, "-admin", admin)
		}
		if sc.srv["jwtverify"], err = startBaseline(e, "jwtverify", args...); err != nil {
			return err
		}
		sc.srv["jwtverify"].admin = admin
	}
	if sc.on("a") {
		if sc.srv["gin"], err = startBaseline(e, "gin"); err != nil {
			return err
		}
	}
	if sc.on("c") {
		// A bound of 10,000 entries keeps the fresh tokens (10% of requests, never
		// reused) from growing the cache for the whole run: that growth is what the
		// per-identity measure prices, not the RSS of serving.
		cfg := fmt.Sprintf(`
cache: {max_entries: 10000}
providers:
  - name: corp-introspection
    type: introspection
    endpoint: http://%s/introspect
    client_id: idbridge
    client_secret: peer-secret
    audiences: [idbridge]
    required_scopes: [travel]
mapping:
  email:
    - path: email
      when: {path: email_verified, equals: true}
  allowed_domains: [example.com]
`, sc.introPeer)
		if sc.srv["idbridge-c"], err = startIdbridge(e, "idbridge-c", cfg); err != nil {
			return err
		}
	}
	if sc.on("d") {
		cfg := fmt.Sprintf(`
directories:
  corp:
    url: %s
    bind_dn: %s
    bind_password: %s
    base_dn: %s
    pool_size: 8
providers:
  - name: legacy
    type: ldap
    directory: corp
    filter: "(&(objectClass=person)(apiTokenHash={{token_sha256}}))"
    attributes: [mail, uid]
    cache_ttl: 0s
mapping:
  email:
    - path: mail
`, sc.slapd.URL(), ldaptest.BindDN, ldaptest.BindPassword, ldaptest.PeopleDN)
		if sc.srv["idbridge-d"], err = startIdbridge(e, "idbridge-d", cfg); err != nil {
			return err
		}
		if sc.srv["ldapdial"], err = startBaseline(e, "ldapdial", "-url", sc.slapd.URL(), "-bind-dn", ldaptest.BindDN,
			"-bind-password", ldaptest.BindPassword, "-base", ldaptest.PeopleDN); err != nil {
			return err
		}
	}
	if sc.on("e") {
		e.exchAddr = sc.exchAddr
		cfg := jwtConfig(sc.issuer.URL(), "") + fmt.Sprintf(`
spotnana:
  token_url: http://%s%s
  client_id: sandbox-client
  client_secret: sandbox-secret
  token_cache: false
`, sc.sandbox, spotnana.SandboxTokenPath)
		if sc.srv["idbridge-e"], err = startIdbridge(e, "idbridge-e", cfg); err != nil {
			return err
		}
	}
	return nil
}

// compared names the -compare build's row, if any.
func (sc *scenarios) compared(e *env) []string {
	if e.o.compare == "" {
		return nil
	}
	return []string{"idbridge@" + e.o.compare}
}

func (sc *scenarios) runs(e *env) []*target {
	c := e.o.conns
	var ts []*target
	fixed := func(req []byte) requestFunc { return func(uint64) []byte { return req } }
	if sc.on("a") {
		for _, name := range append([]string{"gin", "jwtverify", "idbridge"}, sc.compared(e)...) {
			s := sc.srv[name]
			if name == "idbridge" {
				s = sc.srv["idbridge-ab"]
			}
			ts = append(ts, &target{scenario: "a", server: name, srv: s, addr: s.addr, conns: c,
				gen: fixed(getRequest(s.addr, "/v1/user-detail", sc.hot))})
		}
	}
	if sc.on("b") {
		for _, name := range append([]string{"jwtverify", "idbridge"}, sc.compared(e)...) {
			s := sc.srv[name]
			if name == "idbridge" {
				s = sc.srv["idbridge-ab"]
			}
			reqs := make([][]byte, len(sc.distinct))
			for i, t := range sc.distinct {
				reqs[i] = getRequest(s.addr, "/v1/user-detail", t)
			}
			ts = append(ts, &target{scenario: "b", server: name, srv: s, addr: s.addr, conns: c,
				gen: func(n uint64) []byte { return reqs[n%uint64(len(reqs))] }})
		}
	}
	if sc.on("c") {
		s := sc.srv["idbridge-c"]
		hot := make([][]byte, 100)
		for i := range hot {
			hot[i] = getRequest(s.addr, "/v1/user-detail", fmt.Sprintf("hot-opaque-%03d", i))
		}
		var runNo atomic.Int64
		prefix := ""
		ts = append(ts, &target{scenario: "c", server: "idbridge", srv: s, addr: s.addr, conns: c,
			before: func() { prefix = fmt.Sprintf("fresh-%d-%d-", time.Now().UnixNano(), runNo.Add(1)) },
			gen: func(n uint64) []byte {
				// Every tenth request carries a token never seen before (a miss that
				// calls the peer); the other nine cycle through 100 hot tokens, cached
				// after their first use: a 90% hit ratio.
				if n%10 == 9 {
					return getRequest(s.addr, "/v1/user-detail", prefix+strconv.FormatUint(n, 10))
				}
				return hot[(n-n/10)%uint64(len(hot))]
			}})
		sc.notes = append(sc.notes, "c: cache.max_entries 10000; introspection peer in the benchmark process (core 1); every 10th request carries a fresh opaque token (miss: one introspection call), the other 9 cycle through 100 hot tokens cached on first use: 90% identity-cache hits")
	}
	if sc.on("d") {
		for _, name := range []string{"ldapdial", "idbridge"} {
			s := sc.srv[name]
			if name == "idbridge" {
				s = sc.srv["idbridge-d"]
			}
			ts = append(ts, &target{scenario: "d", server: name, srv: s, addr: s.addr, conns: c, gen: cycle(s.addr, "/v1/user-detail", sc.ldapTokens)})
		}
		sc.notes = append(sc.notes, "d: 256 users with API tokens added to slapd, cycled (distinct tokens, so idbridge's coalescing of concurrent identical lookups does not apply); idbridge `type: ldap` provider (token's SHA-256 searched in slapd, cache_ttl: 0s so every request searches) through its pool (pool_size 8), against bench/baseline/ldapdial doing the same search on a new connection per request (dial, bind, search, close); idbridge has no per-request-connection setting. slapd runs on core 1 and its CPU is not counted")
	}
	if sc.on("e") {
		s := sc.srv["idbridge-e"]
		direct := make([][]byte, len(sc.exchTokens))
		via := make([][]byte, len(sc.exchTokens))
		for i, t := range sc.exchTokens {
			form := url.Values{"grant_type": {"urn:ietf:params:oauth:grant-type:token-exchange"}, "subject_token": {t},
				"subject_token_type": {"urn:ietf:params:oauth:token-type:access_token"}, "scope": {"openid"},
				"client_id": {"sandbox-client"}, "client_secret": {"sandbox-secret"}}.Encode()
			direct[i] = postForm(sc.sandbox, spotnana.SandboxTokenPath, "", form)
			via[i] = postForm(s.addr, "/v1/token-exchange", t, "")
		}
		ts = append(ts,
			&target{scenario: "e", server: "sandbox-direct", addr: sc.sandbox, conns: c,
				gen: func(n uint64) []byte { return direct[n%uint64(len(direct))] }},
			&target{scenario: "e", server: "idbridge", srv: s, addr: s.addr, conns: c,
				gen: func(n uint64) []byte { return via[n%uint64(len(via))] }})
		sc.notes = append(sc.notes, "e: spotnana.NewSandbox in the benchmark process (core 1), callback mode, 256 users' tokens cycled (idbridge coalesces concurrent exchanges of one user): it calls idbridge's user-detail back and signs an RS256 access token per request; idbridge with token_cache: false, so every exchange reaches the sandbox. sandbox-direct posts the same exchange form straight to the sandbox (which still calls idbridge back)")
	}
	return ts
}

// cycle sends tokens in turn.
func cycle(host, path string, tokens []string) requestFunc {
	reqs := make([][]byte, len(tokens))
	for i, t := range tokens {
		reqs[i] = getRequest(host, path, t)
	}
	return func(n uint64) []byte { return reqs[n%uint64(len(reqs))] }
}

// The test directory's administrator (test/testdata/ldap, ldaptest's slapd.conf).
const (
	ldapRootDN = "cn=admin,dc=example,dc=com"
	ldapRootPW = "admin-secret"
)

// addLDAPUsers adds n people with API tokens to the test directory and returns the
// tokens; the directory stores only their SHA-256, as a `type: ldap` provider expects.
func addLDAPUsers(u string, n int) ([]string, error) {
	conn, err := ldap.DialURL(u)
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	if err := conn.Bind(ldapRootDN, ldapRootPW); err != nil {
		return nil, fmt.Errorf("ldap admin bind: %w", err)
	}
	tokens := make([]string, n)
	for i := range n {
		uid := fmt.Sprintf("bench%04d", i)
		tokens[i] = "bench-api-token-" + uid
		sum := sha256.Sum256([]byte(tokens[i]))
		req := ldap.NewAddRequest("uid="+uid+","+ldaptest.PeopleDN, nil)
		req.Attribute("objectClass", []string{"inetOrgPerson", "idbridgeTestUser"})
		req.Attribute("uid", []string{uid})
		req.Attribute("cn", []string{uid})
		req.Attribute("sn", []string{uid})
		req.Attribute("mail", []string{uid + "@example.com"})
		req.Attribute("apiTokenHash", []string{hex.EncodeToString(sum[:])})
		if err := conn.Add(req); err != nil {
			return nil, fmt.Errorf("ldap add %s: %w", uid, err)
		}
	}
	return tokens, nil
}
