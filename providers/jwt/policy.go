package jwt

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
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
	if r := p.s.policy.Check(aud, clients, claims); r != nil {
		return p.refusal(r, r.Found(aud, clients, claims))
	}
	return p.s.policy.CheckScopes(scope, scp)
}

// refusal turns the shared policy's refusal into this provider's token error, which
// says what was found and what is expected (for the log line).
func (p *Provider) refusal(r *providers.PolicyRefusal, found gjson.Result) error {
	switch r.Fault {
	case providers.FaultAudienceType:
		return p.mismatch(errAudType, found, p.s.cfg.Audiences)
	case providers.FaultClient:
		return p.mismatch(errClientID, found, p.s.cfg.ClientIDs)
	case providers.FaultClaim:
		c := p.s.policy.Claims()[r.Claim]
		want, _ := json.Marshal(c.Want)
		return &mismatchError{tokenError: errRequiredClaim, found: shownClaim(found),
			expected: c.Name + " = " + string(want)}
	}
	return p.mismatch(errAudience, found, p.s.cfg.Audiences)
}

// TokenClient returns the client the token in doc was issued to: the first claim of
// client_id_claims present in doc, when it is a string.
func (p *Provider) TokenClient(doc []byte) (string, bool) {
	v := make([]gjson.Result, len(p.s.clientIDClaims))
	members(view(doc), p.s.clientIDClaims, v)
	c := providers.FirstPresent(v)
	return strings.Clone(c.Str), c.Type == gjson.String
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

// AdoptState takes the key set of from, the provider this one replaces on a reload with
// the same configuration, when this one could not load its own (its IdP did not answer
// at the reload). The failed load stays recorded: the keys are reported as stale in
// /readyz, an unknown kid is "try again" (503) rather than invalid, and the refresher
// keeps fetching until the IdP answers. It implements providers.StateAdopter.
func (p *Provider) AdoptState(from providers.Provider) bool {
	prev, ok := from.(*Provider)
	if !ok || prev == p || p.keys.Load() != nil {
		return false
	}
	ks := prev.keys.Load()
	if ks == nil {
		return false
	}
	// keySet is immutable once loaded: the two providers may share it. The CAS loses to
	// this provider's refresher if that has just loaded a set of its own.
	if !p.keys.CompareAndSwap(nil, ks) {
		return false
	}
	prev.stateMu.Lock()
	lastOK, skipped := prev.lastOK, prev.lastSkipped
	prev.stateMu.Unlock()
	p.stateMu.Lock()
	if p.lastOK.IsZero() {
		p.lastOK, p.lastSkipped = lastOK, skipped
	}
	p.stateMu.Unlock()
	p.log.Warn("jwt: keeping the running provider's keys; this reload could not load them", "provider", p.name)
	return true
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
