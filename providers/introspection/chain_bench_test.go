package introspection_test

import (
	"context"
	"testing"

	"github.com/idbridge/idbridge/cache"
	"github.com/idbridge/idbridge/providers"
	"github.com/idbridge/idbridge/providers/introspection/idptest"
)

// chainBench builds a chain of one introspection provider in front of a local endpoint,
// with the memory cache the bridge uses by default. cacheTTL is the provider's cache_ttl.
func chainBench(b *testing.B, cacheTTL string) (*providers.Chain, *idptest.Server) {
	b.Helper()
	srv := idptest.New(b, idptest.Active(map[string]any{
		"sub": "u1", "aud": "idbridge", "client_id": "app", "scope": "openid email read",
		"email": "alice@example.com", "iss": "https://idp.example.com",
	}))
	inst := newProvider(b, srv.URL, "issuer: https://idp.example.com\nclient_ids: [app]\nrequired_scopes: [read]\ncache_ttl: "+cacheTTL, providers.Deps{})
	return providers.NewChain([]*providers.Instance{&inst}, cache.NewMemory(100000, nil), nil, nil), srv
}

// BenchmarkChainIntrospectionCached is a request for a token the chain has seen: a cache
// hit and CheckPolicy, no call to the endpoint.
func BenchmarkChainIntrospectionCached(b *testing.B) {
	ch, srv := chainBench(b, "1h")
	ctx := context.Background()
	sum := providers.TokenSum(testToken)
	if _, err := ch.Resolve(ctx, testToken, sum); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := ch.Resolve(ctx, testToken, sum); err != nil {
			b.Fatal(err)
		}
	}
	if n := srv.Hits(); n != 1 {
		b.Fatalf("%d calls reached the endpoint, want 1", n)
	}
}

// BenchmarkChainIntrospectionUncached is the same request with cache_ttl: 0 (instant
// revocation): one round trip to a loopback endpoint per request, so it is the floor of
// what that setting costs; a real IdP adds its network and its own work.
func BenchmarkChainIntrospectionUncached(b *testing.B) {
	ch, _ := chainBench(b, "0s")
	ctx := context.Background()
	sum := providers.TokenSum(testToken)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := ch.Resolve(ctx, testToken, sum); err != nil {
			b.Fatal(err)
		}
	}
}
