package jwt

import (
	"testing"
)

func BenchmarkAuthenticateRS256(b *testing.B) {
	c := newClock()
	is := newIssuer(b, c)
	p := newTestProvider(b, c, baseYAML(is))
	tok := mint(b, is, claims("scope", "openid travel.book", "client_id", "app1"))
	if _, err := p.Authenticate(bg, tok); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := p.Authenticate(bg, tok); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkCheckPolicy(b *testing.B) {
	c := newClock()
	is := newIssuer(b, c)
	p := newTestProvider(b, c, baseYAML(is, "client_ids: [app1]", "required_scopes: [travel.book]", "required_claims: {email_verified: true}"))
	tok := mint(b, is, claims("scope", "openid travel.book", "client_id", "app1", "email_verified", true))
	id, err := p.Authenticate(bg, tok)
	if err != nil {
		b.Fatal(err)
	}
	now := c.Now()
	b.ReportAllocs()
	for b.Loop() {
		if err := p.CheckPolicy(id.Document, now); err != nil {
			b.Fatal(err)
		}
	}
}
