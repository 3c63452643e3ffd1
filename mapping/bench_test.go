package mapping

import "testing"

// benchDoc is a typical set of verified JWT claims (Entra ID-like).
const benchDoc = `{"aud":"api://idbridge","iss":"https://login.microsoftonline.com/9188040d-6c67-4c5b-b112-36a304b66dad/v2.0","iat":1735689600,"nbf":1735689600,"exp":1735693500,"aio":"AXQAi/8TAAAA","azp":"4f1e0c4a-0000-4000-8000-000000000000","azpacr":"1","name":"Alice Smith","oid":"00000000-0000-0000-66f3-3332eca7ea81","preferred_username":"Alice.Smith@Contoso.com","rh":"0.AXoA","roles":["Traveler"],"scp":"access_as_user","sub":"AAAAAAAAAAAAAAAAAAAAAIkzqFVrSaSaFHy782bbtaQ","tid":"9188040d-6c67-4c5b-b112-36a304b66dad","upn":"alice.smith@contoso.com","email":"alice.smith@contoso.com","email_verified":true,"uti":"fqiBqXLPj0eQa82S-IYFAA","ver":"2.0"}`

func BenchmarkEmail(b *testing.B) {
	benches := []struct {
		name string
		spec Spec
	}{
		{
			name: "first wins",
			spec: Spec{
				Candidates: []Candidate{
					{Path: "email", When: &When{Path: "email_verified", Equals: true, HasEquals: true}},
					{Path: "upn", Transforms: []Transform{{Name: "trim"}, {Name: "lower"}}},
					{Path: "preferred_username", Transforms: []Transform{{Name: "lower"}}},
				},
				AllowedDomains: []string{"contoso.com", "*.contoso.com"},
			},
		},
		{
			name: "third wins",
			spec: Spec{
				Candidates: []Candidate{
					{Path: "email", When: &When{Path: "iss", Equals: "https://corp.okta.com"}},
					{Path: "directory.mail"},
					{Path: "preferred_username", Transforms: []Transform{{Name: "trim"}, {Name: "lower"}}},
				},
				RewriteDomains: map[string]string{"contoso.local": "contoso.com"},
				AllowedDomains: []string{"contoso.com", "*.contoso.com"},
			},
		},
	}
	doc := []byte(benchDoc)
	for _, bb := range benches {
		b.Run(bb.name, func(b *testing.B) {
			r := compile(b, bb.spec)
			b.ReportAllocs()
			for b.Loop() {
				if _, err := r.Email(doc); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
