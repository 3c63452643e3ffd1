package server

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/idbridge/idbridge/configs"
	"github.com/idbridge/idbridge/mapping"
	"github.com/idbridge/idbridge/providers"
)

// acceptAll is a provider that accepts every token as alice.
type acceptAll struct{}

func (acceptAll) Authenticate(context.Context, string) (providers.Identity, error) {
	return providers.Identity{Document: []byte(`{"email":"alice@example.com"}`)}, nil
}

// limitServer serves a runtime built from serverYAML (the server: section's keys) with
// a provider that accepts everything and an exchange that always succeeds.
func limitServer(t *testing.T, serverYAML string) *Server {
	t.Helper()
	cfg, errs := configs.Parse("test.yaml", []byte("server:\n"+serverYAML+`
providers:
  - {name: any, type: fake}
mapping:
  email: [{path: email}]
`), func(string) (string, bool) { return "", false })
	if len(errs.Fatal()) > 0 {
		t.Fatal(errs.Fatal())
	}
	rules, merrs := mapping.Compile(mapping.Spec{Candidates: []mapping.Candidate{{Path: "email"}}})
	if len(merrs) > 0 {
		t.Fatal(merrs)
	}
	chain := providers.NewChain([]*providers.Instance{{Name: "any", Type: "fake", Provider: acceptAll{}}}, nil, nil, nil)
	rt := &Runtime{
		Config: cfg,
		Bridge: NewBridge(chain, rules, nil, "", nil),
		Exchange: func(context.Context, *Resolution, string) ([]byte, error) {
			return []byte(`{"access_token":"x"}`), nil
		},
	}
	s, err := New(rt, Options{})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func call(h http.Handler, method, path, remote string, headers ...string) *httptest.ResponseRecorder {
	r := httptest.NewRequest(method, path, nil)
	r.RemoteAddr = remote
	r.Header.Set("Authorization", "Bearer tok")
	for _, kv := range headers {
		k, v, _ := strings.Cut(kv, ": ")
		r.Header.Set(k, v)
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	return w
}

func TestAllowedClientsAndProxies(t *testing.T) {
	s := limitServer(t, "  allowed_clients: [10.0.0.0/8]\n  trusted_proxies: [192.0.2.1]\n")
	tests := []struct {
		name, method, path, remote, xff string
		want                            int
	}{
		{"inside the list", "GET", "/v1/user-detail", "10.1.2.3:5000", "", 200},
		{"outside the list", "GET", "/v1/user-detail", "198.51.100.7:5000", "", 403},
		{"exchange is not restricted", "POST", "/v1/token-exchange", "198.51.100.7:5000", "", 200},
		{"trusted proxy forwards an allowed client", "GET", "/v1/user-detail", "192.0.2.1:5000", "10.9.9.9", 200},
		{"trusted proxy forwards an outsider", "GET", "/v1/user-detail", "192.0.2.1:5000", "198.51.100.7", 403},
		{"untrusted peer cannot claim an allowed address", "GET", "/v1/user-detail", "198.51.100.7:5000", "10.9.9.9", 403},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var h []string
			if tc.xff != "" {
				h = append(h, "X-Forwarded-For: "+tc.xff)
			}
			w := call(s, tc.method, tc.path, tc.remote, h...)
			if w.Code != tc.want {
				t.Fatalf("status %d, want %d: %s", w.Code, tc.want, w.Body)
			}
			if tc.want == 403 && strings.TrimSpace(w.Body.String()) != `{"error":"access_denied"}` {
				t.Fatalf("body %q", w.Body)
			}
		})
	}
}

func TestRateLimitBothRoutesNotAdmin(t *testing.T) {
	// One token every 1000 s: the third request within a test is always over the limit.
	s := limitServer(t, "  rate_limit: {rps: 0.001, burst: 2}\n")
	for _, route := range []struct{ method, path string }{{"GET", "/v1/user-detail"}, {"POST", "/v1/token-exchange"}} {
		t.Run(route.path, func(t *testing.T) {
			remote := "10.0.0.1:1"
			if route.method == "POST" {
				remote = "10.0.0.2:1" // its own bucket
			}
			for i := 0; i < 2; i++ {
				if w := call(s, route.method, route.path, remote); w.Code != 200 {
					t.Fatalf("request %d: %d %s", i, w.Code, w.Body)
				}
			}
			w := call(s, route.method, route.path, remote)
			if w.Code != http.StatusTooManyRequests || w.Header().Get("Retry-After") != "1000" {
				t.Fatalf("third request: %d Retry-After=%q", w.Code, w.Header().Get("Retry-After"))
			}
			if w := call(s, route.method, route.path, "10.0.0.3:1"); w.Code != 200 {
				t.Fatalf("another client: %d", w.Code)
			}
		})
	}
	admin := s.AdminHandler()
	for i := 0; i < 20; i++ {
		if w := call(admin, "GET", "/healthz", "10.0.0.1:1"); w.Code != 200 {
			t.Fatalf("admin request %d limited: %d", i, w.Code)
		}
	}
}

// TestRateLimitBucketsBounded: a caller with many addresses cannot grow the limiter
// without bound between two sweeps.
func TestRateLimitBucketsBounded(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	l := newLimiter(0.001, 2, func() time.Time { return now })
	l.max = 100
	for i := range 1000 {
		if !l.allow(fmt.Sprintf("2001:db8::%x", i)) {
			t.Fatalf("client %d refused on its first request", i)
		}
	}
	if n := len(l.buckets); n > l.max {
		t.Fatalf("%d buckets held, max %d", n, l.max)
	}
}
