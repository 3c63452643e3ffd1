package jwt

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"time"

	"github.com/idbridge/idbridge/providers"
	"github.com/tidwall/gjson"
)

// CheckPolicy runs the authorization checks on an accepted document; the chain calls it
// on every request, cache hits included, so it reads doc in place, in one pass over its
// members. doc is not retained and must not be modified during the call. Order matters:
// an invalid token (401) wins over a missing scope (403).
func (p *Provider) CheckPolicy(doc []byte, now time.Time) error {
	var small [16]gjson.Result
	v := small[:0]
	if n := len(p.s.policyNames); n <= len(small) {
		v = small[:n]
	} else {
		v = make([]gjson.Result, n)
	}
	members(view(doc), p.s.policyNames, v)
	exp, aud, scope, scp := v[0], v[1], v[2], v[3]
	clients, claims := v[4:4+len(p.s.clientIDClaims)], v[4+len(p.s.clientIDClaims):]
	// The cache never keeps a document past exp, but a clock that moved on must not
	// let one through either.
	if exp, ok := numericDate(exp); !ok {
		return errNoExp
	} else if !now.Before(exp.Add(p.s.leeway)) {
		return expired(exp, now, p.s.leeway)
	}
	if err := p.checkAudience(aud); err != nil {
		return err
	}
	if p.s.clientIDs != nil {
		client := firstPresentResult(clients)
		if client.Type != gjson.String {
			return p.mismatch(errClientID, client, p.s.cfg.ClientIDs)
		}
		if _, ok := p.s.clientIDs[client.Str]; !ok {
			return p.mismatch(errClientID, client, p.s.cfg.ClientIDs)
		}
	}
	for i := range p.s.claims {
		if c := &p.s.claims[i]; !c.match(claims[i]) {
			want, _ := json.Marshal(c.want)
			return &mismatchError{tokenError: errRequiredClaim, found: shownClaim(claims[i]),
				expected: c.name + " = " + string(want)}
		}
	}
	for _, want := range p.s.scopes {
		if !hasScope(scope, scp, want) {
			return &providers.ScopeError{Required: p.s.scopes}
		}
	}
	return nil
}

// TokenClient returns the client the token in doc was issued to: the first claim of
// client_id_claims present in doc, when it is a string.
func (p *Provider) TokenClient(doc []byte) (string, bool) {
	v := make([]gjson.Result, len(p.s.clientIDClaims))
	members(view(doc), p.s.clientIDClaims, v)
	c, ok := firstPresent(v)
	return strings.Clone(c), ok
}

// firstPresent is the first value that exists, when it is a string.
func firstPresent(vs []gjson.Result) (string, bool) {
	r := firstPresentResult(vs)
	return r.Str, r.Type == gjson.String
}

// firstPresentResult is the first value that exists; a zero Result when none does.
func firstPresentResult(vs []gjson.Result) gjson.Result {
	for _, r := range vs {
		if r.Exists() {
			return r
		}
	}
	return gjson.Result{}
}

// hasScope looks for want in scope (a space-separated string, RFC 8693 §4.2, or an array,
// as PingFederate issues it) or scp (a string or an array, as Entra ID and Okta issue it).
func hasScope(scope, scp gjson.Result, want string) bool {
	if scope.Type == gjson.String && inSpaceList(scope.Str, want) {
		return true
	}
	if scope.IsArray() && inArray(scope, want) {
		// PingFederate's JWT access tokens write scope as an array.
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
		if v.Type == gjson.String && v.Str == want {
			found = true
			return false
		}
		return true
	})
	return found
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

// match compares the claim's value v with its required value, type-strictly.
func (m *claimMatcher) match(v gjson.Result) bool {
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
	lastErr, lastOK, skipped := p.lastErr, p.lastOK, p.lastSkipped
	p.stateMu.Unlock()
	h := providers.Health{Ready: ready, OK: ready && lastErr == nil}
	switch {
	case !ready && lastErr != nil:
		h.Detail = "keys never loaded: " + lastErr.Error()
	case !ready:
		h.Detail = "keys never loaded"
	case lastErr != nil:
		h.Detail = fmt.Sprintf("key refresh failing (%v); serving keys loaded %s", lastErr, lastOK.UTC().Format(time.RFC3339))
	case len(skipped) > 0:
		ks := keySet{skipped: skipped}
		h.Detail = fmt.Sprintf("%d unusable keys skipped: %s", len(skipped), ks.skipSummary(maxReportedSkips))
	}
	return h
}

// SkippedKeys returns the keys of the last key set loaded that this provider cannot use,
// with their reasons (also logged once per load and shown in /readyz).
func (p *Provider) SkippedKeys() []SkippedKey {
	p.stateMu.Lock()
	defer p.stateMu.Unlock()
	return append([]SkippedKey(nil), p.lastSkipped...)
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

// Stats counts key loads by result, for metrics, and describes the last set loaded.
type Stats struct {
	OK          int64 // a new key set was installed
	Error       int64 // the IdP or file could not be read
	Invalid     int64 // the answer did not parse or held no usable key
	RateLimited int64 // an unknown-kid refresh deferred by the 10 s limit
	Skipped     int64 // unusable keys skipped, summed over every load
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
		{Name: "jwks_keys_skipped", Help: "Keys of a loaded JWKS that a jwt provider cannot use and skipped, counted once per load (each is logged with its kid and reason).",
			Result: "skipped", Value: st.Skipped},
	}
}

// Stats returns the counters since New.
func (p *Provider) Stats() Stats {
	return Stats{
		OK:          p.stats[0].Load(),
		Error:       p.stats[1].Load(),
		Invalid:     p.stats[2].Load(),
		RateLimited: p.stats[3].Load(),
		Skipped:     p.stats[4].Load(),
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
