package server

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/idbridge/idbridge/cache"
	"github.com/idbridge/idbridge/configs"
	"github.com/idbridge/idbridge/demoissuer"
	"github.com/idbridge/idbridge/mapping"
	"github.com/idbridge/idbridge/providers"
	"github.com/idbridge/idbridge/providers/jwt"
)

// benchSetup builds what `idbridge serve` would for one jwt provider in front of a test
// issuer: keys are fetched once at start, so every benchmark runs on a cached key set.
func benchSetup(b *testing.B, cacheTTL bool) (*Server, *Bridge, string) {
	b.Helper()
	gin.SetMode(gin.ReleaseMode)
	is, err := demoissuer.NewIssuer()
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(is.Close)
	yaml := fmt.Sprintf(`
server: {listen: "127.0.0.1:0"}
providers:
  - name: corp
    type: jwt
    issuer: %s
    audiences: [idbridge]
    required_scopes: [travel]
mapping:
  email:
    - path: email
      when: {path: email_verified, equals: true}
  allowed_domains: [example.com]
`, is.URL())
	cfg, errs := configs.Parse("bench.yaml", []byte(yaml), func(string) (string, bool) { return "", false })
	if len(errs.Fatal()) > 0 {
		b.Fatal(errs.Fatal())
	}
	in, err := jwt.New(cfg.Providers[0], providers.Deps{HTTPClient: http.DefaultClient, Now: time.Now})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { in.Close() })
	if !cacheTTL {
		in.CacheTTL = 0
	}
	rules, cerrs := mapping.Compile(mapping.Spec{
		Candidates:     []mapping.Candidate{{Path: "email", When: &mapping.When{Path: "email_verified", Equals: true, HasEquals: true}}},
		AllowedDomains: []string{"example.com"},
	})
	if len(cerrs) > 0 {
		b.Fatal(cerrs)
	}
	chain := providers.NewChain([]*providers.Instance{&in}, cache.NewMemory(100000, nil), nil, nil)
	bridge := NewBridge(chain, rules, nil, "email", nil)
	logger := slog.New(slog.NewJSONHandler(io.Discard, nil))
	srv, err := New(&Runtime{Config: cfg, Bridge: bridge}, Options{Logger: logger, AccessLog: &AccessLog{W: io.Discard, JSON: true}})
	if err != nil {
		b.Fatal(err)
	}
	tok, err := is.Mint(map[string]any{"sub": "u1", "aud": "idbridge", "scope": "openid travel", "email": "alice@example.com", "email_verified": true})
	if err != nil {
		b.Fatal(err)
	}
	return srv, bridge, tok
}

// BenchmarkBaselineGinConstantJSON is the floor: Gin answering a constant JSON body.
func BenchmarkBaselineGinConstantJSON(b *testing.B) {
	gin.SetMode(gin.ReleaseMode)
	e := gin.New()
	body := []byte(`{"user":{"email":"alice@example.com"}}` + "\n")
	e.GET("/v1/user-detail", func(c *gin.Context) { c.Data(http.StatusOK, "application/json", body) })
	req := httptest.NewRequest("GET", "/v1/user-detail", nil)
	req.Header.Set("Authorization", "Bearer x")
	b.ReportAllocs()
	for b.Loop() {
		w := httptest.NewRecorder()
		e.ServeHTTP(w, req)
	}
}

// BenchmarkUserDetail is user-detail end to end through Gin, in process: bearer parse,
// identity cache hit, policy, mapping, response, one log line (as serve writes it).
func BenchmarkUserDetail(b *testing.B) {
	srv, _, tok := benchSetup(b, true)
	req := httptest.NewRequest("GET", "/v1/user-detail", nil)
	req.Header.Set("Authorization", "Bearer "+tok)
	b.ReportAllocs()
	for b.Loop() {
		w := httptest.NewRecorder()
		srv.ServeHTTP(w, req)
		if w.Code != 200 {
			b.Fatalf("status %d: %s", w.Code, w.Body)
		}
	}
}

// BenchmarkResolveCached is the chain plus mapping on an identity cache hit.
func BenchmarkResolveCached(b *testing.B) {
	_, bridge, tok := benchSetup(b, true)
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := bridge.Resolve(ctx, tok, providers.TokenSum(tok)); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkResolveVerify is the chain plus mapping with the identity cache off: every
// call verifies the RS256 signature against the cached key set.
func BenchmarkResolveVerify(b *testing.B) {
	_, bridge, tok := benchSetup(b, false)
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := bridge.Resolve(ctx, tok, providers.TokenSum(tok)); err != nil {
			b.Fatal(err)
		}
	}
}
