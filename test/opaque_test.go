package test

import (
	"fmt"
	"net/http"
	"net/http/httptrace"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/idbridge/idbridge/providers/introspection/idptest"
	"github.com/idbridge/idbridge/test/oidcpeer"
)

// Issue 4: opaque tokens through the real binary. The provider packages have their own
// unit and peer tests; these check what a user of `idbridge serve` sees: statuses, the
// number of calls that reach the IdP, and logs free of secrets.

// opaqueConfig is a bridge config around providers (YAML list items, indented by two).
// The default mapping trusts email only when the IdP verified it.
func opaqueConfig(providersYAML string) string {
	return `
server:
  listen: 127.0.0.1:0
  admin_listen: 127.0.0.1:0
  realm: corp
log: {level: debug, format: json}
providers:
` + providersYAML + `
mapping:
  email:
    - path: email
      when: {path: email_verified, equals: true}
`
}

// fakeIntrospection is one introspection provider in front of an idptest server, with
// extra keys (indented by four) appended.
func fakeIntrospection(endpoint, secret, extra string) string {
	return fmt.Sprintf(`  - name: fake
    type: introspection
    endpoint: %s/introspect
    client_id: idbridge
    client_secret: %s
    client_ids: [idbridge]
%s`, endpoint, secret, extra)
}

// leakGuard checks, once every bridge it watches has stopped, that no secret or token
// given to it appears in their logs. It must be created before the bridges: cleanups
// run last-in first-out, so its check then runs after their shutdown lines are written.
type leakGuard struct {
	mu      sync.Mutex
	bridges []*bridge
	secrets []string
}

func newLeakGuard(t *testing.T) *leakGuard {
	t.Helper()
	g := &leakGuard{}
	t.Cleanup(func() {
		g.mu.Lock()
		defer g.mu.Unlock()
		for i, br := range g.bridges {
			logs := br.Logs()
			// Proof that the check looks at real request lines, not at an empty buffer.
			if !strings.Contains(logs, `"token_fp"`) {
				t.Errorf("bridge %d: no request line with a token fingerprint in the logs", i)
			}
			for j, s := range g.secrets {
				if strings.Contains(logs, s) {
					// Never print the value itself: the test output is a log too.
					t.Errorf("bridge %d: the logs contain secret #%d (%d bytes)", i, j, len(s))
				}
			}
		}
	})
	return g
}

// start runs a bridge on yaml and watches its logs.
func (g *leakGuard) start(t *testing.T, yaml string, env ...string) *bridge {
	t.Helper()
	br := startBridge(t, yaml, env...)
	g.mu.Lock()
	g.bridges = append(g.bridges, br)
	g.mu.Unlock()
	return br
}

// token registers tok as a secret and returns it.
func (g *leakGuard) token(tok string) string {
	g.mu.Lock()
	g.secrets = append(g.secrets, tok)
	g.mu.Unlock()
	return tok
}

// userDetail calls GET /v1/user-detail with tok.
func userDetail(t *testing.T, br *bridge, tok string) response {
	t.Helper()
	return do(t, "GET", br.URL+"/v1/user-detail", nil, bearer(tok))
}

// purge drops the bridge's cached identities and failed lookups, as an operator would
// after a mass revocation.
func purge(t *testing.T, br *bridge) {
	t.Helper()
	if r := do(t, "POST", br.Admin+"/admin/cache/purge", nil); r.Status != http.StatusOK {
		t.Fatalf("purge: %d %s", r.Status, r.Body)
	}
}

// want checks a user-detail answer: status, and for 200 the exact body, else the error
// code (and Retry-After for 503).
func want(t *testing.T, r response, status int, emailOrCode string) {
	t.Helper()
	if r.Status != status {
		t.Fatalf("status %d, want %d; body %s", r.Status, status, r.Body)
	}
	switch status {
	case http.StatusOK:
		if body := `{"user":{"email":"` + emailOrCode + `"}}`; strings.TrimSpace(r.Body) != body {
			t.Fatalf("body %s, want %s", r.Body, body)
		}
	default:
		if emailOrCode != "" {
			if got := r.JSON(t)["error"]; got != emailOrCode {
				t.Fatalf("error %v, want %s; body %s", got, emailOrCode, r.Body)
			}
		}
		if status == http.StatusServiceUnavailable && r.Header.Get("Retry-After") == "" {
			t.Fatal("503 without Retry-After")
		}
		if status == http.StatusUnauthorized && !strings.Contains(r.Header.Get("WWW-Authenticate"), `error="invalid_token"`) {
			t.Fatalf("401 WWW-Authenticate %q", r.Header.Get("WWW-Authenticate"))
		}
	}
}

// TestOpaquePeer runs the bridge against a real OAuth server (oidc-provider): opaque
// tokens by introspection with a userinfo step, by userinfo alone, and RFC 9068 JWT
// access tokens by the jwt provider, in one chain.
func TestOpaquePeer(t *testing.T) {
	g := newLeakGuard(t)
	p := oidcpeer.Start(t) // skips without node, fails with IDBRIDGE_REQUIRE_SERVERS=1
	g.secrets = append(g.secrets, p.Secret())

	// The introspection answer of oidc-provider carries no email: the userinfo step asks
	// /me for it, and the provider's own mapping reads it there. Short TTLs so that the
	// revocation case can wait them out.
	const ttl = time.Second
	chain := fmt.Sprintf(`  - name: peer-jwt
    type: jwt
    issuer: %[1]s
    discovery: true
    audiences: [idbridge]
    types: [at+jwt]
  - name: peer-introspection
    type: introspection
    endpoint: %[2]s
    client_id: idbridge
    client_secret: ${env:PEER_SECRET}
    issuer: %[1]s
    client_ids: [idbridge]
    cache_ttl: %[4]s
    negative_cache_ttl: %[4]s
    userinfo:
      endpoint: %[3]s
      when_missing: email
    mapping:
      email:
        - path: userinfo.email
          when: {path: userinfo.email_verified, equals: true}
`, p.Issuer(), p.IntrospectionURL(), p.UserinfoURL(), ttl)
	main := g.start(t, opaqueConfig(chain), "PEER_SECRET="+p.Secret())

	onlyUserinfo := g.start(t, opaqueConfig(fmt.Sprintf(`  - name: peer-userinfo
    type: userinfo
    endpoint: %s
`, p.UserinfoURL())))

	// A wrong secret is idbridge's misconfiguration, not the user's fault: 503, so that
	// Spotnana retries and an operator is alerted, never 401.
	const wrongSecret = "wrong-secret-b3f1c9e0"
	g.secrets = append(g.secrets, wrongSecret)
	wrongClient := g.start(t, opaqueConfig(fmt.Sprintf(`  - name: peer-introspection
    type: introspection
    endpoint: %s
    client_id: idbridge
    client_secret: %s
    client_ids: [idbridge]
`, p.IntrospectionURL(), wrongSecret)))

	cases := []struct {
		name   string
		br     *bridge
		token  func(t *testing.T) string
		status int
		want   string // the email for 200, else the error code
	}{
		{"introspection with userinfo step", main, func(t *testing.T) string { return p.MintOpaque(t, "alice@example.com") }, 200, "alice@example.com"},
		{"introspection, unverified email", main, func(t *testing.T) string {
			return p.Mint(t, oidcpeer.MintOptions{Email: "mallory@example.com", Unverified: true}).AccessToken
		}, 403, "access_denied"},
		{"introspection, another application's token", main, func(t *testing.T) string {
			return p.Mint(t, oidcpeer.MintOptions{Email: "carol@example.com", Client: oidcpeer.OtherClientID}).AccessToken
		}, 401, "invalid_token"},
		{"garbage", main, func(*testing.T) string { return "garbage-never-issued-6f0a2d" }, 401, "invalid_token"},
		{"RFC 9068 JWT access token", main, func(t *testing.T) string { return p.MintJWT(t, "dave@example.com") }, 200, "dave@example.com"},
		{"type userinfo", onlyUserinfo, func(t *testing.T) string { return p.MintOpaque(t, "erin@example.com") }, 200, "erin@example.com"},
		{"type userinfo, garbage", onlyUserinfo, func(*testing.T) string { return "garbage-never-issued-91c3e7" }, 401, "invalid_token"},
		{"wrong introspection client secret", wrongClient, func(t *testing.T) string { return p.MintOpaque(t, "frank@example.com") }, 503, "temporarily_unavailable"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			tok := g.token(c.token(t))
			want(t, userDetail(t, c.br, tok), c.status, c.want)
		})
	}

	t.Run("revoked token refused once the caches run out", func(t *testing.T) {
		tok := g.token(p.MintOpaque(t, "grace@example.com"))
		want(t, userDetail(t, main, tok), 200, "grace@example.com")
		p.Revoke(t, tok)
		// Within cache_ttl the bridge may still answer from its cache: that is the
		// documented trade-off, so the answer in between is not asserted.
		_ = userDetail(t, main, tok)
		// A clock, not an event: the bridge's cache entry must age past cache_ttl.
		time.Sleep(ttl + 500*time.Millisecond)
		want(t, userDetail(t, main, tok), 401, "invalid_token")
		// Remembered as invalid (negative cache) or asked again: refused either way.
		want(t, userDetail(t, main, tok), 401, "invalid_token")
	})
}

// TestOpaqueFaults: an introspection endpoint that answers badly makes the bridge answer
// 503 with Retry-After, never 200 and never 401; and a fault is not remembered, so the
// same token passes once the endpoint recovers.
func TestOpaqueFaults(t *testing.T) {
	g := newLeakGuard(t)
	const secret = "fault-secret-5d2e8a71"
	g.secrets = append(g.secrets, secret)
	srv := idptest.New(t, idptest.Inactive())
	// A short timeout keeps the hanging endpoint's case short.
	br := g.start(t, opaqueConfig(fakeIntrospection(srv.URL, secret, "    timeout: 500ms\n")))

	for i, f := range idptest.Faults() {
		t.Run(f.Name, func(t *testing.T) {
			tok := g.token(fmt.Sprintf("fault-token-%02d-7c4b19", i))
			srv.SetHandler(f.Handler)
			before := srv.Hits()
			want(t, userDetail(t, br, tok), 503, "temporarily_unavailable")
			if srv.Hits() == before {
				t.Fatal("the fault server was never asked")
			}
			srv.SetHandler(idptest.Active(map[string]any{"client_id": "idbridge", "email": "alice@example.com", "email_verified": true}))
			want(t, userDetail(t, br, tok), 200, "alice@example.com")
		})
	}
}

// activeAnswer is a fake endpoint's answer for alice, with overrides.
func activeAnswer(over map[string]any) http.Handler {
	claims := map[string]any{
		"sub": "u-alice", "client_id": "idbridge", "aud": "idbridge", "scope": "openid travel",
		"email": "alice@example.com", "email_verified": true,
	}
	for k, v := range over {
		claims[k] = v
	}
	return idptest.Active(claims)
}

// env is one fake introspection endpoint and the bridge in front of it.
type env struct {
	srv *idptest.Server
	br  *bridge
}

// gated holds every answer of h until gate is closed (or the caller gives up).
func gated(gate <-chan struct{}, h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-gate:
			h.ServeHTTP(w, r)
		case <-r.Context().Done():
		}
	})
}

// TestOpaqueCaching counts the calls that reach the introspection endpoint.
func TestOpaqueCaching(t *testing.T) {
	g := newLeakGuard(t)
	const secret = "cache-secret-0a93f4c2"
	g.secrets = append(g.secrets, secret)

	setup := func(t *testing.T, h http.Handler, extra string) env {
		srv := idptest.New(t, h)
		return env{srv, g.start(t, opaqueConfig(fakeIntrospection(srv.URL, secret, extra)))}
	}
	hits := func(t *testing.T, e env, n int64) {
		t.Helper()
		if got := e.srv.Hits(); got != n {
			t.Fatalf("%d calls reached the endpoint, want %d", got, n)
		}
	}

	gate := make(chan struct{})
	cases := []struct {
		name  string
		h     http.Handler
		extra string
		run   func(t *testing.T, e env, tok string)
	}{
		{"repeated requests, one call", activeAnswer(nil), "    cache_ttl: 1m\n", func(t *testing.T, e env, tok string) {
			for range 5 {
				want(t, userDetail(t, e.br, tok), 200, "alice@example.com")
			}
			hits(t, e, 1)
		}},
		{"100 concurrent requests for a new token, one call", gated(gate, activeAnswer(nil)), "    cache_ttl: 1m\n", func(t *testing.T, e env, tok string) {
			statuses := sendConcurrently(e.br, tok, 100, func() {
				// Every request is on the wire and the first has reached the endpoint,
				// which holds its answer. The gate opens once the bridge has read all
				// 100 and each has missed the cache (the answer is held, so none can
				// hit): every one of them is then on its way into the shared call.
				eventually(t, "100 cache misses", func() bool {
					n, _ := sample(scrape(t, e.br), "idbridge_cache_requests_total", "kind", "identity", "result", "miss")
					return n >= 100 && e.srv.Hits() > 0
				})
				close(gate)
			})
			for i, s := range statuses {
				if s != 200 {
					t.Fatalf("request %d: status %d", i, s)
				}
			}
			hits(t, e, 1)
		}},
		{"exp 2s away refused after 3s despite a longer cache_ttl", idptest.Inactive(), "    cache_ttl: 1h\n", func(t *testing.T, e env, tok string) {
			// exp is set only now, since the bridges of the parallel cases start in
			// between; whole seconds (RFC 7662), rounded up so that it is 2 to 3 s away.
			exp := time.Now().Add(2*time.Second).Unix() + 1
			e.srv.SetHandler(activeAnswer(map[string]any{"exp": exp}))
			want(t, userDetail(t, e.br, tok), 200, "alice@example.com")
			// Wait until a second past exp (about 3 s): cache_ttl alone would keep it an hour.
			// A clock, not an event: the bridge compares exp with its own time.
			time.Sleep(time.Until(time.Unix(exp, 0)) + time.Second)
			r := userDetail(t, e.br, tok)
			want(t, r, 401, "invalid_token")
			if !strings.Contains(r.Header.Get("WWW-Authenticate"), "expired") {
				t.Errorf("WWW-Authenticate %q does not say expired", r.Header.Get("WWW-Authenticate"))
			}
		}},
		{"revoked refused once cache_ttl has run out", activeAnswer(nil), "    cache_ttl: 1s\n", func(t *testing.T, e env, tok string) {
			want(t, userDetail(t, e.br, tok), 200, "alice@example.com")
			e.srv.SetHandler(idptest.Inactive())
			time.Sleep(1500 * time.Millisecond) // a clock, not an event: the entry must age past cache_ttl (1s)
			want(t, userDetail(t, e.br, tok), 401, "invalid_token")
			hits(t, e, 2)
		}},
		{"revoked served from the cache until purged", activeAnswer(nil), "    cache_ttl: 1h\n", func(t *testing.T, e env, tok string) {
			want(t, userDetail(t, e.br, tok), 200, "alice@example.com")
			e.srv.SetHandler(idptest.Inactive())
			// The trade-off of cache_ttl: the IdP is not asked again, so the revocation
			// is not seen...
			want(t, userDetail(t, e.br, tok), 200, "alice@example.com")
			hits(t, e, 1)
			// ...until an operator purges the cache.
			purge(t, e.br)
			want(t, userDetail(t, e.br, tok), 401, "invalid_token")
			hits(t, e, 2)
		}},
		{"negative answers kept for negative_cache_ttl", idptest.Inactive(), "    negative_cache_ttl: 1h\n", func(t *testing.T, e env, tok string) {
			for range 5 {
				want(t, userDetail(t, e.br, tok), 401, "invalid_token")
			}
			hits(t, e, 1)
			purge(t, e.br)
			want(t, userDetail(t, e.br, tok), 401, "invalid_token")
			hits(t, e, 2)
		}},
		{"negative answers forgotten after negative_cache_ttl", idptest.Inactive(), "    negative_cache_ttl: 1s\n", func(t *testing.T, e env, tok string) {
			want(t, userDetail(t, e.br, tok), 401, "invalid_token")
			hits(t, e, 1)
			time.Sleep(1500 * time.Millisecond) // a clock, not an event: the entry must age past negative_cache_ttl (1s)
			want(t, userDetail(t, e.br, tok), 401, "invalid_token")
			hits(t, e, 2)
		}},
		{"negative_cache_ttl 0 asks every time", idptest.Inactive(), "    negative_cache_ttl: 0s\n", func(t *testing.T, e env, tok string) {
			for range 3 {
				want(t, userDetail(t, e.br, tok), 401, "invalid_token")
			}
			hits(t, e, 3)
		}},
		{"cache_ttl 0 asks every time", activeAnswer(nil), "    cache_ttl: 0s\n", func(t *testing.T, e env, tok string) {
			for range 3 {
				want(t, userDetail(t, e.br, tok), 200, "alice@example.com")
			}
			hits(t, e, 3)
		}},
	}
	for i, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel() // most cases wait for a TTL; let them wait together
			tok := g.token(fmt.Sprintf("opaque-cache-%02d-3e8d0b", i))
			c.run(t, setup(t, c.h, c.extra), tok)
		})
	}
}

// sendConcurrently sends n requests for tok at once; it returns their statuses once all
// are answered, after calling written when every request has been written out.
func sendConcurrently(br *bridge, tok string, n int, written func()) []int {
	statuses := make([]int, n)
	var sent, done sync.WaitGroup
	sent.Add(n)
	done.Add(n)
	for i := range n {
		go func() {
			defer done.Done()
			var once sync.Once
			trace := &httptrace.ClientTrace{WroteRequest: func(httptrace.WroteRequestInfo) { once.Do(sent.Done) }}
			req, err := http.NewRequest("GET", br.URL+"/v1/user-detail", nil)
			if err != nil {
				once.Do(sent.Done)
				return
			}
			req = req.WithContext(httptrace.WithClientTrace(req.Context(), trace))
			req.Header.Set("Authorization", "Bearer "+tok)
			resp, err := httpClient.Do(req)
			once.Do(sent.Done) // a request that failed before being written
			if err != nil {
				return // status stays 0
			}
			resp.Body.Close()
			statuses[i] = resp.StatusCode
		}()
	}
	sent.Wait()
	written()
	done.Wait()
	return statuses
}

// TestOpaquePolicyOnCacheHit: a token the endpoint calls active but that fails the
// provider's policy is refused on the first request and again on the second, which is
// answered without asking the endpoint again: the policy runs on cached answers too.
func TestOpaquePolicyOnCacheHit(t *testing.T) {
	g := newLeakGuard(t)
	const secret = "policy-secret-77c1e0d4"
	g.secrets = append(g.secrets, secret)
	// The answer is for another application, for another audience, without the travel
	// scope; each case checks one of these.
	answer := activeAnswer(map[string]any{"client_id": "other-app", "aud": "other-api", "scope": "openid"})
	cases := []struct {
		name    string
		policy  string // keys of the introspection provider
		status  int
		code    string
		wwwAuth string
	}{
		{"required_scopes", "    client_ids: [other-app]\n    required_scopes: [travel]\n", 403, "insufficient_scope", `error="insufficient_scope", scope="travel"`},
		{"audiences", "    client_ids: [other-app]\n    audiences: [idbridge]\n", 401, "invalid_token", `error="invalid_token"`},
		{"client_ids", "    client_ids: [idbridge]\n", 401, "invalid_token", `error="invalid_token"`},
	}
	for i, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			srv := idptest.New(t, answer)
			// fakeIntrospection's own client_ids is replaced by the case's policy.
			yaml := strings.Replace(fakeIntrospection(srv.URL, secret, "    cache_ttl: 1h\n    negative_cache_ttl: 1h\n"+c.policy), "    client_ids: [idbridge]\n", "", 1)
			br := g.start(t, opaqueConfig(yaml))
			tok := g.token(fmt.Sprintf("opaque-policy-%02d-a41f6e", i))
			for n := range 2 {
				r := userDetail(t, br, tok)
				want(t, r, c.status, c.code)
				if www := r.Header.Get("WWW-Authenticate"); !strings.Contains(www, c.wwwAuth) {
					t.Errorf("request %d: WWW-Authenticate %q, want %s", n+1, www, c.wwwAuth)
				}
			}
			if got := srv.Hits(); got != 1 {
				t.Errorf("%d calls reached the endpoint, want 1 (the second answer from the cache)", got)
			}
		})
	}
}

// TestCacheBoundedInBytes: the identity cache is bounded in bytes (cache.max_bytes), not
// only in entries. An upstream answer near its 1 MiB limit would otherwise make each of
// max_entries identities a megabyte: here, with a 1 MiB budget (64 KiB per shard), a
// 100 KB answer is not cached, so every request asks the endpoint, while small answers
// are cached and later ones evict earlier ones instead of growing the cache.
func TestCacheBoundedInBytes(t *testing.T) {
	g := newLeakGuard(t)
	const secret = "bytes-secret-7c1e52d9"
	g.secrets = append(g.secrets, secret)
	srv := idptest.New(t, activeAnswer(map[string]any{"profile": strings.Repeat("x", 100_000)}))
	br := g.start(t, "cache: {max_bytes: 1048576}\n"+opaqueConfig(fakeIntrospection(srv.URL, secret, "    cache_ttl: 1m\n")))
	big := g.token("opaque-big-document-token")
	for i := range 3 {
		want(t, userDetail(t, br, big), 200, "alice@example.com")
		if got := srv.Hits(); got != int64(i+1) {
			t.Fatalf("request %d: %d calls reached the endpoint; a 100 KB document was cached under a 1 MiB budget", i+1, got)
		}
	}
	srv.SetHandler(activeAnswer(map[string]any{"profile": strings.Repeat("y", 2_000)}))
	small := g.token("opaque-small-document-token")
	for range 3 {
		want(t, userDetail(t, br, small), 200, "alice@example.com")
	}
	if got := srv.Hits(); got != 4 {
		t.Fatalf("%d calls reached the endpoint, want 4: a small document is cached", got)
	}
	// 600 small documents (≈1.3 MB with keys and bookkeeping) do not fit 1 MiB: the
	// earliest were evicted, so asking for the first again reaches the endpoint.
	var toks []string
	for i := range 600 {
		toks = append(toks, g.token(fmt.Sprintf("opaque-fill-%04d", i)))
		want(t, userDetail(t, br, toks[i]), 200, "alice@example.com")
	}
	before := srv.Hits()
	for _, tok := range toks[:50] {
		want(t, userDetail(t, br, tok), 200, "alice@example.com")
	}
	if srv.Hits() == before {
		t.Fatal("600 documents of 2 KB all stayed cached under a 1 MiB budget")
	}
}
