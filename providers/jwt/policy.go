package jwt

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"time"

	"github.com/idbridge/idbridge/providers"
	"github.com/tidwall/gjson"
)

// CheckPolicy runs the authorization checks on an accepted document; the chain calls it
// on every request, cache hits included, so it reads doc in place with gjson. doc is
// not retained and must not be modified during the call. Order matters: an invalid token (401) wins over a missing scope
// (403).
func (p *Provider) CheckPolicy(doc []byte, now time.Time) error {
	d := view(doc)
	// The cache never keeps a document past exp, but a clock that moved on must not
	// let one through either.
	if exp, ok := numericDate(gjson.Get(d, "exp")); !ok {
		return errNoExp
	} else if !now.Before(exp.Add(p.s.leeway)) {
		return errExpired
	}
	if aud := gjson.Get(d, "aud"); !p.audienceOK(aud) {
		return p.mismatch(errAudience, aud, p.s.cfg.Audiences)
	}
	if p.s.clientIDs != nil {
		client := gjson.Get(d, "client_id")
		if !client.Exists() {
			client = gjson.Get(d, "azp")
		}
		if client.Type != gjson.String {
			return p.mismatch(errClientID, client, p.s.cfg.ClientIDs)
		}
		if _, ok := p.s.clientIDs[client.Str]; !ok {
			return p.mismatch(errClientID, client, p.s.cfg.ClientIDs)
		}
	}
	for i := range p.s.claims {
		if c := &p.s.claims[i]; !c.match(d) {
			want, _ := json.Marshal(c.want)
			return &mismatchError{tokenError: errRequiredClaim, found: shownClaim(gjson.Get(d, c.path)),
				expected: c.name + " = " + string(want)}
		}
	}
	if len(p.s.scopes) == 0 {
		return nil
	}
	scope, scp := gjson.Get(d, "scope"), gjson.Get(d, "scp")
	for _, want := range p.s.scopes {
		if !hasScope(scope, scp, want) {
			return &providers.ScopeError{Required: p.s.scopes}
		}
	}
	return nil
}

// hasScope looks for want in scope (a space-separated string, RFC 8693 §4.2) or scp (a
// string or an array, as Azure AD and Okta issue it).
func hasScope(scope, scp gjson.Result, want string) bool {
	if scope.Type == gjson.String && inSpaceList(scope.Str, want) {
		return true
	}
	switch {
	case scp.Type == gjson.String:
		return inSpaceList(scp.Str, want)
	case scp.IsArray():
		found := false
		scp.ForEach(func(_, v gjson.Result) bool {
			if v.Type == gjson.String && v.Str == want {
				found = true
				return false
			}
			return true
		})
		return found
	}
	return false
}

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

// match compares the claim with its required value, type-strictly.
func (m *claimMatcher) match(doc string) bool {
	v := gjson.Get(doc, m.path)
	if !v.Exists() {
		return false
	}
	switch w := m.want.(type) {
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

// Health reports whether keys were ever loaded (Ready) and whether the last attempt to
// refresh them succeeded (OK).
func (p *Provider) Health(ctx context.Context) providers.Health {
	ready := p.keys.Load() != nil
	p.stateMu.Lock()
	lastErr, lastOK := p.lastErr, p.lastOK
	p.stateMu.Unlock()
	h := providers.Health{Ready: ready, OK: ready && lastErr == nil}
	switch {
	case !ready:
		h.Detail = "keys never loaded"
	case lastErr != nil:
		h.Detail = fmt.Sprintf("key refresh failing; serving keys loaded %s", lastOK.UTC().Format(time.RFC3339))
	}
	return h
}

// UserinfoEndpoint returns the userinfo_endpoint of the discovery document, fetching the
// document if it was not fetched yet.
func (p *Provider) UserinfoEndpoint(ctx context.Context) (string, error) {
	if !p.s.discovery {
		return "", errors.New("jwt: no userinfo endpoint: discovery is off for this provider; set userinfo.endpoint")
	}
	d := p.disc.Load()
	if d == nil {
		var err error
		if d, err = p.discover(ctx); err != nil {
			return "", fmt.Errorf("jwt: %w: %w", providers.ErrUnavailable, err)
		}
	}
	if d.userinfo == "" {
		return "", errors.New("jwt: the discovery document has no userinfo_endpoint")
	}
	return d.userinfo, nil
}

// Stats counts key loads by result, for metrics.
type Stats struct {
	OK          int64 // a new key set was installed
	Error       int64 // the IdP or file could not be read
	Invalid     int64 // the answer did not parse or held no usable key
	RateLimited int64 // an unknown-kid refresh refused by the 10 s limit
}

// Counters implements providers.Counters: key loads by result, for the metrics
// (idbridge_jwks_refreshes_total).
func (p *Provider) Counters() []providers.Counter {
	st := p.Stats()
	const name, help = "jwks_refreshes", "JWKS loads of jwt providers by result: ok (new key set in use), error (IdP unreachable), invalid (unusable answer), rate_limited (unknown-kid refresh refused)."
	return []providers.Counter{
		{Name: name, Help: help, Result: ResultOK, Value: st.OK},
		{Name: name, Help: help, Result: ResultError, Value: st.Error},
		{Name: name, Help: help, Result: ResultInvalid, Value: st.Invalid},
		{Name: name, Help: help, Result: ResultRateLimited, Value: st.RateLimited},
	}
}

// Stats returns the counters since New.
func (p *Provider) Stats() Stats {
	return Stats{
		OK:          p.stats[0].Load(),
		Error:       p.stats[1].Load(),
		Invalid:     p.stats[2].Load(),
		RateLimited: p.stats[3].Load(),
	}
}

func (p *Provider) count(result string) {
	switch result {
	case ResultOK:
		p.stats[0].Add(1)
	case ResultError:
		p.stats[1].Add(1)
	case ResultInvalid:
		p.stats[2].Add(1)
	case ResultRateLimited:
		p.stats[3].Add(1)
	}
}

func shownClaim(r gjson.Result) string {
	if !r.Exists() {
		return "nothing"
	}
	if len(r.Raw) > maxShownClaim {
		return r.Raw[:maxShownClaim] + "…"
	}
	return r.Raw
}
