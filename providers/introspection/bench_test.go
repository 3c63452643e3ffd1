package introspection_test

import (
	"context"
	"testing"
	"time"

	"github.com/idbridge/idbridge/providers"
	"github.com/idbridge/idbridge/providers/introspection/idptest"
)

// BenchmarkIntrospect is one uncached round trip to a local endpoint: request, answer,
// parse and checks.
func BenchmarkIntrospect(b *testing.B) {
	srv := idptest.New(b, idptest.Active(map[string]any{
		"sub": "u1", "aud": "idbridge", "client_id": "app", "scope": "openid email read",
		"email": "alice@example.com", "iss": "https://idp.example.com",
	}))
	inst := newProvider(b, srv.URL, "issuer: https://idp.example.com\nclient_ids: [app]\nrequired_scopes: [read]", providers.Deps{})
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := inst.Provider.Authenticate(ctx, testToken); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkCheckPolicy is the work done on every cache hit.
func BenchmarkCheckPolicy(b *testing.B) {
	doc := []byte(`{"active":true,"sub":"u1","aud":["other","idbridge"],"client_id":"app","scope":"openid email read",` +
		`"exp":4102444800,"iat":1700000000,"iss":"https://idp.example.com","tid":"t1","email":"alice@example.com",` +
		`"userinfo":{"sub":"u1","email":"alice@example.com","email_verified":true}}`)
	inst := newProvider(b, "https://idp.example.com/introspect",
		"issuer: https://idp.example.com\nclient_ids: [app]\nrequired_scopes: [read, email]\nrequired_claims: {tid: t1}", providers.Deps{})
	pol := inst.Provider.(providers.Policy)
	now := time.Now()
	b.ReportAllocs()
	for b.Loop() {
		if err := pol.CheckPolicy(doc, now); err != nil {
			b.Fatal(err)
		}
	}
}
