package providers

import (
	"errors"
	"testing"

	"github.com/tidwall/gjson"
)

// TestClaimPolicy is the table of the rules both token providers share: aud as a string
// or an array of strings, client_id_claims (first present wins, must be a string),
// required_claims (type-strict; whole-value or any-element), required_scopes (403 with
// a ScopeError, from scope or scp, string or array).
func TestClaimPolicy(t *testing.T) {
	clients := []string{"client_id", "azp"}
	claims := []RequiredClaim{
		{Name: "tid", Want: "t1"},
		{Name: "groups", Want: "admins", AnyElement: true},
		{Name: "roles", Want: []any{"a", "b"}},
		{Name: "level", Want: float64(2)},
	}
	full := NewClaimPolicy([]string{"api", "api2"}, []string{"web"}, claims, []string{"read", "write"})
	open := NewClaimPolicy(nil, nil, nil, nil)
	const good = `{"aud":"api","client_id":"web","tid":"t1","groups":["x","admins"],"roles":["a","b"],"level":2,"scope":"read write"}`
	for _, tt := range []struct {
		name   string
		p      *ClaimPolicy
		doc    string
		fault  PolicyFault
		claim  string // the refused claim, for FaultClaim
		scopes bool   // want a *ScopeError from CheckScopes
	}{
		{name: "all good", p: full, doc: good},
		{name: "nothing configured", p: open, doc: `{}`},
		{name: "aud array holds one", p: full, doc: with(good, "aud", `["other","api2"]`)},
		{name: "aud absent", p: full, doc: with(good, "aud", ""), fault: FaultAudience},
		{name: "aud other string", p: full, doc: with(good, "aud", `"other"`), fault: FaultAudience},
		{name: "aud array without one", p: full, doc: with(good, "aud", `["other"]`), fault: FaultAudience},
		{name: "aud number", p: full, doc: with(good, "aud", `5`), fault: FaultAudienceType},
		{name: "aud array with a number beside a good member", p: full, doc: with(good, "aud", `["api",5]`), fault: FaultAudienceType},
		{name: "aud object", p: full, doc: with(good, "aud", `{"api":true}`), fault: FaultAudienceType},
		{name: "client from the second claim", p: full, doc: with(with(good, "client_id", ""), "azp", `"web"`)},
		{name: "first present claim wins", p: full, doc: with(good, "azp", `"web"`, "client_id", `"other"`), fault: FaultClient},
		{name: "client absent", p: full, doc: with(good, "client_id", ""), fault: FaultClient},
		{name: "client not a string", p: full, doc: with(good, "client_id", `["web"]`), fault: FaultClient},
		{name: "claim absent", p: full, doc: with(good, "tid", ""), fault: FaultClaim, claim: "tid"},
		{name: "claim type-strict", p: full, doc: with(good, "level", `"2"`), fault: FaultClaim, claim: "level"},
		{name: "claim in array when any element counts", p: full, doc: with(good, "groups", `"admins"`)},
		{name: "claim array without it", p: full, doc: with(good, "groups", `["x"]`), fault: FaultClaim, claim: "groups"},
		{name: "whole value: array must equal", p: full, doc: with(good, "roles", `["a"]`), fault: FaultClaim, claim: "roles"},
		{name: "whole value: scalar is not the array", p: full, doc: with(good, "tid", `["t1"]`), fault: FaultClaim, claim: "tid"},
		{name: "scopes in scp array", p: full, doc: with(good, "scope", "", "scp", `["write","read"]`)},
		{name: "scopes in scp string", p: full, doc: with(good, "scope", "", "scp", `"read write"`)},
		{name: "scopes in a scope array", p: full, doc: with(good, "scope", `["read","write"]`)},
		{name: "scopes split over scope and scp", p: full, doc: with(good, "scope", `"read"`, "scp", `"write"`)},
		{name: "scope missing", p: full, doc: with(good, "scope", `"read writer"`), scopes: true},
		{name: "no scope at all", p: full, doc: with(good, "scope", ""), scopes: true},
	} {
		doc := gjson.Parse(tt.doc)
		aud, scope, scp := doc.Get("aud"), doc.Get("scope"), doc.Get("scp")
		var cs, vs []gjson.Result
		for _, c := range clients {
			cs = append(cs, doc.Get(c))
		}
		for _, c := range tt.p.Claims() {
			vs = append(vs, doc.Get(c.Name))
		}
		r := tt.p.Check(aud, cs, vs)
		switch {
		case tt.fault == 0 && r != nil:
			t.Errorf("%s: refused %+v", tt.name, r)
		case tt.fault != 0 && (r == nil || r.Fault != tt.fault):
			t.Errorf("%s: got %+v, want fault %d", tt.name, r, tt.fault)
		case tt.claim != "" && tt.p.Claims()[r.Claim].Name != tt.claim:
			t.Errorf("%s: refused claim %d, want %s", tt.name, r.Claim, tt.claim)
		case tt.fault == FaultClaim && r.Found(aud, cs, vs).Raw != doc.Get(tt.claim).Raw,
			tt.fault == FaultClient && r.Found(aud, cs, vs).Raw != FirstPresent(cs).Raw,
			(tt.fault == FaultAudience || tt.fault == FaultAudienceType) && r.Found(aud, cs, vs).Raw != doc.Get("aud").Raw:
			t.Errorf("%s: found %q", tt.name, r.Found(aud, cs, vs).Raw)
		}
		err := tt.p.CheckScopes(scope, scp)
		var se *ScopeError
		if got := errors.As(err, &se); got != tt.scopes || (got && len(se.Required) != 2) {
			t.Errorf("%s: CheckScopes = %v, want scope error %v", tt.name, err, tt.scopes)
		}
		if Classify(err) != Classify(&ScopeError{}) && tt.scopes {
			t.Errorf("%s: a missing scope must classify as a scope error (403)", tt.name)
		}
	}
}

// with returns doc with members replaced ("" removes the member); pairs of name, value.
func with(doc string, kv ...string) string {
	m := map[string]string{}
	var order []string
	gjson.Parse(doc).ForEach(func(k, v gjson.Result) bool {
		m[k.Str] = v.Raw
		order = append(order, k.Str)
		return true
	})
	for i := 0; i < len(kv); i += 2 {
		if _, ok := m[kv[i]]; !ok {
			order = append(order, kv[i])
		}
		m[kv[i]] = kv[i+1]
	}
	out := "{"
	for _, k := range order {
		if m[k] == "" {
			continue
		}
		if len(out) > 1 {
			out += ","
		}
		out += `"` + k + `":` + m[k]
	}
	return out + "}"
}
