package providers

import (
	"encoding/json"
	"reflect"

	"github.com/tidwall/gjson"
)

// ClaimPolicy is the authorization policy the token providers (jwt, introspection) apply
// to the claims of an accepted token or introspection answer, on every request (cached
// answers included): audiences, client_ids read through client_id_claims,
// required_claims and required_scopes. The providers read the members and map a
// PolicyRefusal to their own errors; the rules live here only.
type ClaimPolicy struct {
	audiences map[string]struct{} // nil: aud is not checked
	clientIDs map[string]struct{} // nil: the client is not checked
	claims    []RequiredClaim
	scopes    []string
}

// RequiredClaim is one required_claims entry.
type RequiredClaim struct {
	// Name is a literal top-level member name, not a gjson path.
	Name string
	// Want is the required value as JSON decodes it: string, float64, bool, nil, or an
	// []any / map[string]any compared whole. Comparison is type-strict: "5" never equals 5.
	Want any
	// AnyElement also accepts an array claim that holds Want as one of its elements
	// (the introspection provider's rule; the jwt provider compares the whole value).
	AnyElement bool
}

// NewClaimPolicy returns the policy. An empty audiences or clientIDs turns that check
// off; claims are checked in the order given; scopes must all be granted.
func NewClaimPolicy(audiences, clientIDs []string, claims []RequiredClaim, scopes []string) *ClaimPolicy {
	return &ClaimPolicy{audiences: set(audiences), clientIDs: set(clientIDs), claims: claims, scopes: scopes}
}

func set(vs []string) map[string]struct{} {
	if len(vs) == 0 {
		return nil
	}
	m := make(map[string]struct{}, len(vs))
	for _, v := range vs {
		m[v] = struct{}{}
	}
	return m
}

// Claims returns the required claims, in check order.
func (p *ClaimPolicy) Claims() []RequiredClaim { return p.claims }

// PolicyFault says which check refused a token.
type PolicyFault int

const (
	// FaultAudience: aud names none of the configured audiences (or is absent).
	FaultAudience PolicyFault = iota + 1
	// FaultAudienceType: aud is neither a string nor an array of strings (RFC 7519
	// §4.1.3), even beside a good member.
	FaultAudienceType
	// FaultClient: the first client_id_claims member present is not a string naming one
	// of client_ids (or none is present).
	FaultClient
	// FaultClaim: a required claim is absent or does not equal its value.
	FaultClaim
)

// PolicyRefusal is a refused check: its fault and, for FaultClaim, the claim. It holds
// nothing of the token, so that the values checked stay on the caller's stack; the caller
// shows the value found (Found) in its log line.
type PolicyRefusal struct {
	Fault PolicyFault
	Claim int // FaultClaim only: the index in Claims() and ClaimValues.Claims
}

// Found is the value the refusal is about, from Check's arguments: aud, the client found
// (FirstPresent of clients) or the refused claim.
func (r *PolicyRefusal) Found(aud gjson.Result, clients, claims []gjson.Result) gjson.Result {
	switch r.Fault {
	case FaultClient:
		return FirstPresent(clients)
	case FaultClaim:
		return claims[r.Claim]
	}
	return aud
}

// Check runs the audience, client and required-claim checks in that order on one
// token's members: aud, the client_id_claims members in the configured order (clients)
// and the required claims parallel to Claims() (claims). Nil when they pass. The
// arguments are separate, not a struct, so that the callers' small arrays stay on the
// stack (the policy runs on every request). Scopes are separate (CheckScopes): a missing scope is a 403, not an invalid
// token, and an invalid token wins over it.
func (p *ClaimPolicy) Check(aud gjson.Result, clients, claims []gjson.Result) *PolicyRefusal {
	if r := p.CheckAudience(aud); r != nil {
		return r
	}
	if p.clientIDs != nil {
		c := FirstPresent(clients)
		if _, ok := p.clientIDs[c.Str]; !ok || c.Type != gjson.String {
			return &PolicyRefusal{Fault: FaultClient}
		}
	}
	for i := range p.claims {
		if c := &p.claims[i]; !c.matches(claims[i]) {
			return &PolicyRefusal{Fault: FaultClaim, Claim: i}
		}
	}
	return nil
}

// CheckAudience runs the audience check alone (see AudienceFault); nil when it passes or
// no audiences are configured.
func (p *ClaimPolicy) CheckAudience(aud gjson.Result) *PolicyRefusal {
	if p.audiences != nil {
		if f := AudienceFault(aud, p.audiences); f != 0 {
			return &PolicyRefusal{Fault: f}
		}
	}
	return nil
}

// CheckScopes returns a *ScopeError unless every required scope is granted by scope or
// scp (see HasScope).
func (p *ClaimPolicy) CheckScopes(scope, scp gjson.Result) error {
	for _, want := range p.scopes {
		if !HasScope(scope, scp, want) {
			return &ScopeError{Required: p.scopes}
		}
	}
	return nil
}

// AudienceFault checks aud against want: 0 when aud is a string in want or an array of
// strings holding one; FaultAudienceType when aud is present but neither a string nor
// an array of strings only (RFC 7519 §4.1.3); FaultAudience otherwise (absent included).
func AudienceFault(aud gjson.Result, want map[string]struct{}) PolicyFault {
	switch {
	case aud.Type == gjson.String:
		if _, ok := want[aud.Str]; ok {
			return 0
		}
		return FaultAudience
	case aud.IsArray():
		found, malformed := false, false
		aud.ForEach(func(_, v gjson.Result) bool {
			if v.Type != gjson.String {
				malformed = true
				return false
			}
			if _, ok := want[v.Str]; ok {
				found = true
			}
			return true
		})
		switch {
		case malformed:
			return FaultAudienceType
		case found:
			return 0
		}
		return FaultAudience
	case aud.Exists():
		return FaultAudienceType
	}
	return FaultAudience
}

// FirstPresent is the first value that exists (client_id_claims: the token's client is
// the first of them present); a zero Result when none does.
func FirstPresent(vs []gjson.Result) gjson.Result {
	for _, r := range vs {
		if r.Exists() {
			return r
		}
	}
	return gjson.Result{}
}

// HasScope looks for want in scope (a space-separated string, RFC 8693 §4.2 and RFC
// 7662 §2.2, or an array, as PingFederate issues it) or scp (a string or an array, as
// Entra ID and Okta issue it).
func HasScope(scope, scp gjson.Result, want string) bool {
	if scope.Type == gjson.String && inSpaceList(scope.Str, want) {
		return true
	}
	if scope.IsArray() && inArray(scope, want) {
		return true
	}
	switch {
	case scp.Type == gjson.String:
		return inSpaceList(scp.Str, want)
	case scp.IsArray():
		return inArray(scp, want)
	}
	return false
}

func inArray(arr gjson.Result, want string) bool {
	found := false
	arr.ForEach(func(_, v gjson.Result) bool {
		found = v.Type == gjson.String && v.Str == want
		return !found
	})
	return found
}

// inSpaceList reports whether want is one of the space-separated words of list, without
// allocating.
func inSpaceList(list, want string) bool {
	for len(list) > 0 {
		i := 0
		for i < len(list) && list[i] != ' ' {
			i++
		}
		if list[:i] == want {
			return true
		}
		if i == len(list) {
			break
		}
		list = list[i+1:]
	}
	return false
}

func (c *RequiredClaim) matches(v gjson.Result) bool {
	if c.AnyElement && v.IsArray() {
		found := false
		v.ForEach(func(_, e gjson.Result) bool {
			found = claimEquals(e, c.Want)
			return !found
		})
		return found
	}
	return claimEquals(v, c.Want)
}

// claimEquals compares v with want, type-strictly.
func claimEquals(v gjson.Result, want any) bool {
	if !v.Exists() {
		return false
	}
	switch w := want.(type) {
	case string:
		return v.Type == gjson.String && v.Str == w
	case float64:
		return v.Type == gjson.Number && v.Num == w
	case bool:
		return (v.Type == gjson.True && w) || (v.Type == gjson.False && !w)
	case nil:
		return v.Type == gjson.Null
	default:
		// Arrays and objects are rare in required_claims: decode and compare whole.
		var got any
		if err := json.Unmarshal([]byte(v.Raw), &got); err != nil {
			return false
		}
		return reflect.DeepEqual(got, w)
	}
}
