package jwt

import (
	"context"
	"encoding/base64"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/idbridge/idbridge/configs"
	"github.com/idbridge/idbridge/demoissuer"
	"github.com/idbridge/idbridge/providers"
	"github.com/tidwall/gjson"
)

func TestAuthenticateAccepts(t *testing.T) {
	tests := []struct {
		name   string
		algs   []string // issuer keys
		extra  []string // config lines
		claims func(c *clock) map[string]any
		opts   []demoissuer.MintOption
	}{
		{name: "RS256", algs: []string{"RS256"}},
		{name: "ES256", algs: []string{"ES256"}, extra: []string{"algorithms: [ES256]"}, opts: []demoissuer.MintOption{demoissuer.WithAlg("ES256")}},
		{name: "EdDSA", algs: []string{"EdDSA"}, extra: []string{"algorithms: [EdDSA]"}, opts: []demoissuer.MintOption{demoissuer.WithAlg("EdDSA")}},
		{name: "ES384", algs: []string{"ES384"}, extra: []string{"algorithms: [ES384]"}, opts: []demoissuer.MintOption{demoissuer.WithAlg("ES384")}},
		{name: "PS256 with a PS256 key", algs: []string{"PS256"}, extra: []string{"algorithms: [PS256]"}, opts: []demoissuer.MintOption{demoissuer.WithAlg("PS256")}},
		{name: "mixed set picks by kid", algs: []string{"RS256", "ES256", "EdDSA"}, extra: []string{"algorithms: [RS256, ES256, EdDSA]"}, opts: []demoissuer.MintOption{demoissuer.WithAlg("ES256")}},
		{name: "no kid tries fitting keys", algs: []string{"RS256", "ES256"}, extra: []string{"algorithms: [RS256, ES256]"}, opts: []demoissuer.MintOption{demoissuer.WithoutKID()}},
		{name: "aud array", algs: []string{"RS256"}, claims: func(*clock) map[string]any { return claims("aud", []string{"other", "idbridge"}) }},
		{name: "typ at+jwt", algs: []string{"RS256"}, extra: []string{"types: [at+jwt]"}, opts: []demoissuer.MintOption{demoissuer.WithTyp("at+jwt")}},
		{name: "typ application/AT+JWT", algs: []string{"RS256"}, extra: []string{"types: [at+jwt]"}, opts: []demoissuer.MintOption{demoissuer.WithTyp("application/AT+JWT")}},
		{name: "exp within leeway", algs: []string{"RS256"}, claims: func(c *clock) map[string]any { return claims("exp", unix(c, -10*time.Second)) }},
		{name: "fractional exp", algs: []string{"RS256"}, claims: func(c *clock) map[string]any { return claims("exp", float64(unix(c, time.Hour))+0.5) }},
		{name: "jku in header is ignored", algs: []string{"RS256"}, opts: []demoissuer.MintOption{demoissuer.WithHeader("jku", "http://127.0.0.1:1/evil")}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := newClock()
			is := newIssuer(t, c, demoissuer.WithAlgorithms(tc.algs...))
			p := newTestProvider(t, c, baseYAML(is, tc.extra...))
			cl := claims()
			if tc.claims != nil {
				cl = tc.claims(c)
			}
			tok := mint(t, is, cl, tc.opts...)
			id, err := p.Authenticate(bg, tok)
			if err != nil {
				t.Fatalf("Authenticate: %v", err)
			}
			if got := gjson.GetBytes(id.Document, "email").Str; got != "u1@example.com" {
				t.Errorf("document email = %q; document %s", got, id.Document)
			}
			if exp := gjson.GetBytes(id.Document, "exp").Int(); id.Expires.Unix() != exp {
				t.Errorf("Expires = %v, want exp %d", id.Expires, exp)
			}
			if err := p.CheckPolicy(id.Document, c.Now()); err != nil {
				t.Errorf("CheckPolicy: %v", err)
			}
		})
	}
}

func TestAuthenticateRejects(t *testing.T) {
	type fixture struct {
		c  *clock
		is *demoissuer.Issuer
	}
	tests := []struct {
		name    string
		algs    []string
		extra   []string
		token   func(t *testing.T, f fixture) string
		want    error
		expired bool
		reason  string // expected in the error text, to prove the right check fired
	}{
		{name: "expired", want: providers.ErrInvalidToken, expired: true, token: func(t *testing.T, f fixture) string {
			return mint(t, f.is, claims("exp", unix(f.c, -time.Hour)))
		}},
		{name: "not yet valid", want: providers.ErrNotYetValid, reason: "nbf is 1h0m0s ahead", token: func(t *testing.T, f fixture) string {
			return mint(t, f.is, claims("nbf", unix(f.c, time.Hour)))
		}},
		{name: "iat in the future", want: providers.ErrNotYetValid, reason: "iat is", token: func(t *testing.T, f fixture) string {
			return mint(t, f.is, claims("iat", unix(f.c, time.Hour)))
		}},
		{name: "exp missing", want: providers.ErrInvalidToken, token: func(t *testing.T, f fixture) string {
			return mint(t, f.is, claims("iss", f.is.URL()), demoissuer.WithoutDefaults())
		}},
		{name: "exp a string", want: providers.ErrInvalidToken, token: func(t *testing.T, f fixture) string {
			return mint(t, f.is, claims("exp", "4102444800"))
		}},
		{name: "wrong iss", want: providers.ErrNotMine, token: func(t *testing.T, f fixture) string {
			return mint(t, f.is, claims("iss", "https://other.example.com"))
		}},
		{name: "iss differs by trailing slash", want: providers.ErrNotMine, token: func(t *testing.T, f fixture) string {
			return mint(t, f.is, claims("iss", f.is.URL()+"/"))
		}},
		{name: "opaque token", want: providers.ErrNotMine, token: func(*testing.T, fixture) string { return "2YotnFZFEjr1zCsicMWpAA" }},
		{name: "wrong aud", reason: "audience", want: providers.ErrInvalidToken, token: func(t *testing.T, f fixture) string {
			return mint(t, f.is, claims("aud", "someone-else"))
		}},
		{name: "aud missing", want: providers.ErrInvalidToken, token: func(t *testing.T, f fixture) string {
			return mint(t, f.is, claims("aud", nil))
		}},
		{name: "unknown kid", reason: "unknown key id", want: providers.ErrInvalidToken, token: func(t *testing.T, f fixture) string {
			return mint(t, f.is, claims(), demoissuer.WithKID("no-such-key"))
		}},
		{name: "alg none", reason: "algorithm not allowed", want: providers.ErrInvalidToken, token: func(t *testing.T, f fixture) string {
			return must(t)(f.is.MintNone(claims()))
		}},
		{name: "HS256 keyed with the RSA public key PEM", reason: "algorithm not allowed", want: providers.ErrInvalidToken, token: func(t *testing.T, f fixture) string {
			return must(t)(f.is.MintHMACWithPublicKey(claims(), demoissuer.FormPEM))
		}},
		{name: "HS256 keyed with the RSA public key DER", reason: "algorithm not allowed", want: providers.ErrInvalidToken, token: func(t *testing.T, f fixture) string {
			return must(t)(f.is.MintHMACWithPublicKey(claims(), demoissuer.FormDER))
		}},
		{name: "tampered payload", reason: "signature invalid", want: providers.ErrInvalidToken, token: func(t *testing.T, f fixture) string {
			return must(t)(f.is.Tamper(mint(t, f.is, claims()), claims("email", "admin@example.com")))
		}},
		{name: "signature stripped", want: providers.ErrInvalidToken, token: func(t *testing.T, f fixture) string {
			tok := mint(t, f.is, claims())
			return tok[:strings.LastIndexByte(tok, '.')+1]
		}},
		{name: "typ not allowed", reason: "typ not allowed", extra: []string{"types: [at+jwt]"}, want: providers.ErrInvalidToken, token: func(t *testing.T, f fixture) string {
			return mint(t, f.is, claims(), demoissuer.WithTyp("JWT"))
		}},
		{name: "typ missing when required", extra: []string{"types: [at+jwt]"}, want: providers.ErrInvalidToken, token: func(t *testing.T, f fixture) string {
			return mint(t, f.is, claims())
		}},
		{name: "key alg mismatch: RS256 key used for PS256", reason: "key does not fit", extra: []string{"algorithms: [RS256, PS256]"}, want: providers.ErrInvalidToken, token: func(t *testing.T, f fixture) string {
			return mint(t, f.is, claims(), demoissuer.WithAlg("PS256"))
		}},
		{name: "alg not in allowlist", algs: []string{"RS256", "ES256"}, want: providers.ErrInvalidToken, token: func(t *testing.T, f fixture) string {
			return mint(t, f.is, claims(), demoissuer.WithAlg("ES256"))
		}},
		{name: "key type does not fit alg", reason: "key does not fit", algs: []string{"RS256", "ES256"}, extra: []string{"algorithms: [RS256, ES256]"}, want: providers.ErrInvalidToken, token: func(t *testing.T, f fixture) string {
			rsaKey, _ := f.is.SigningKey("RS256")
			return mint(t, f.is, claims(), demoissuer.WithAlg("ES256"), demoissuer.WithKID(rsaKey.KID))
		}},
		{name: "crit header", reason: "critical", want: providers.ErrInvalidToken, token: func(t *testing.T, f fixture) string {
			return mint(t, f.is, claims(), demoissuer.WithHeader("crit", []string{"exp"}), demoissuer.WithHeader("exp", 1))
		}},
		{name: "kid with injection characters", want: providers.ErrInvalidToken, token: func(t *testing.T, f fixture) string {
			return mint(t, f.is, claims(), demoissuer.WithKID("../../etc/passwd' OR 1=1"))
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := newClock()
			algs := tc.algs
			if algs == nil {
				algs = []string{"RS256"}
			}
			is := newIssuer(t, c, demoissuer.WithAlgorithms(algs...))
			p := newTestProvider(t, c, baseYAML(is, tc.extra...))
			tok := tc.token(t, fixture{c, is})
			_, err := p.Authenticate(bg, tok)
			if !errors.Is(err, tc.want) {
				t.Fatalf("err = %v, want %v", err, tc.want)
			}
			if tc.want == providers.ErrNotYetValid && !errors.Is(err, providers.ErrInvalidToken) {
				t.Errorf("err %v: not yet valid must be an invalid token too", err)
			}
			if tc.want == providers.ErrInvalidToken && errors.Is(err, providers.ErrNotMine) {
				t.Errorf("err %v must not be ErrNotMine: a jwt verdict is final", err)
			}
			if tc.reason != "" && !strings.Contains(err.Error(), tc.reason) {
				t.Errorf("err = %v, want reason %q", err, tc.reason)
			}
			if got := errors.Is(err, providers.ErrExpired); got != tc.expired {
				t.Errorf("errors.Is(ErrExpired) = %v, want %v", got, tc.expired)
			}
			if strings.Contains(err.Error(), tok) || strings.Contains(err.Error(), strings.Split(tok, ".")[0]) {
				t.Errorf("error message carries the token: %v", err)
			}
		})
	}
}

// A token naming jku must never make the provider fetch from that URL.
func TestHeaderURLsNeverFollowed(t *testing.T) {
	c := newClock()
	is := newIssuer(t, c)
	evil := newIssuer(t, c)
	p := newTestProvider(t, c, baseYAML(is))
	k, _ := evil.SigningKey("RS256")
	tok := mint(t, evil, claims("iss", is.URL()),
		demoissuer.WithHeader("jku", evil.URL()+demoissuer.JWKSPath), demoissuer.WithHeader("x5u", evil.URL()+"/x5u"), demoissuer.WithKID(k.KID))
	if _, err := p.Authenticate(bg, tok); !errors.Is(err, providers.ErrInvalidToken) {
		t.Fatalf("err = %v, want invalid", err)
	}
	if n := evil.JWKSFetches(); n != 0 {
		t.Errorf("attacker's JWKS fetched %d times", n)
	}
}

func TestDuplicateMembersRejected(t *testing.T) {
	c := newClock()
	is := newIssuer(t, c)
	p := newTestProvider(t, c, baseYAML(is))
	tok := mint(t, is, claims())
	parts := strings.Split(tok, ".")
	payload, _ := base64.RawURLEncoding.DecodeString(parts[1])
	// A second aud after the first: readers disagree on which one counts.
	dup := strings.TrimSuffix(string(payload), "}") + `,"aud":"evil"}`
	parts[1] = base64.RawURLEncoding.EncodeToString([]byte(dup))
	if _, err := p.Authenticate(bg, strings.Join(parts, ".")); !errors.Is(err, providers.ErrInvalidToken) {
		t.Fatalf("err = %v, want invalid", err)
	}
}

func TestCheckPolicy(t *testing.T) {
	c := newClock()
	exp := unix(c, time.Hour)
	doc := func(extra string) []byte {
		return []byte(`{"iss":"https://idp.example.com","aud":"idbridge","exp":` + itoa(exp) + extra + `}`)
	}
	tests := []struct {
		name  string
		extra []string
		doc   []byte
		now   time.Time
		want  error // nil: pass
		scope bool
	}{
		{name: "no policy", doc: doc("")},
		{name: "expired on a cache hit", doc: doc(""), now: c.Now().Add(2 * time.Hour), want: providers.ErrExpired},
		{name: "aud not accepted", doc: []byte(`{"aud":["x"],"exp":` + itoa(exp) + `}`), want: providers.ErrInvalidToken},
		{name: "client_id accepted", extra: []string{"client_ids: [app1]"}, doc: doc(`,"client_id":"app1"`)},
		{name: "azp accepted", extra: []string{"client_ids: [app1]"}, doc: doc(`,"azp":"app1"`)},
		{name: "client_id refused", extra: []string{"client_ids: [app1]"}, doc: doc(`,"client_id":"app2"`), want: providers.ErrInvalidToken},
		{name: "client_id missing", extra: []string{"client_ids: [app1]"}, doc: doc(""), want: providers.ErrInvalidToken},
		{name: "required string claim", extra: []string{"required_claims: {tid: t-1}"}, doc: doc(`,"tid":"t-1"`)},
		{name: "required string claim differs", extra: []string{"required_claims: {tid: t-1}"}, doc: doc(`,"tid":"t-2"`), want: providers.ErrInvalidToken},
		{name: "required claim missing", extra: []string{"required_claims: {tid: t-1}"}, doc: doc(""), want: providers.ErrInvalidToken},
		{name: "required number is type-strict", extra: []string{"required_claims: {level: 5}"}, doc: doc(`,"level":"5"`), want: providers.ErrInvalidToken},
		{name: "required number", extra: []string{"required_claims: {level: 5}"}, doc: doc(`,"level":5.0`)},
		{name: "required bool", extra: []string{"required_claims: {email_verified: true}"}, doc: doc(`,"email_verified":true`)},
		{name: "required bool is type-strict", extra: []string{"required_claims: {email_verified: true}"}, doc: doc(`,"email_verified":"true"`), want: providers.ErrInvalidToken},
		{name: "required claim with a URL name", extra: []string{`required_claims: {"https://example.com/tenant": acme}`}, doc: doc(`,"https://example.com/tenant":"acme"`)},
		{name: "required array claim", extra: []string{"required_claims: {groups: [a, b]}"}, doc: doc(`,"groups":["a","b"]`)},
		{name: "scope string has it", extra: []string{"required_scopes: [travel.book]"}, doc: doc(`,"scope":"openid travel.book"`)},
		{name: "scope string lacks it", extra: []string{"required_scopes: [travel.book]"}, doc: doc(`,"scope":"openid travel.bookx"`), want: providers.ErrInsufficientScope, scope: true},
		{name: "scp string", extra: []string{"required_scopes: [travel.book]"}, doc: doc(`,"scp":"travel.book"`)},
		{name: "scp array", extra: []string{"required_scopes: [a, travel.book]"}, doc: doc(`,"scp":["a","travel.book"]`)},
		{name: "scp array lacks one", extra: []string{"required_scopes: [a, travel.book]"}, doc: doc(`,"scp":["a"]`), want: providers.ErrInsufficientScope, scope: true},
		{name: "no scope claim", extra: []string{"required_scopes: [a]"}, doc: doc(""), want: providers.ErrInsufficientScope, scope: true},
		{name: "invalid wins over scope", extra: []string{"required_scopes: [a]", "client_ids: [app1]"}, doc: doc(""), want: providers.ErrInvalidToken},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			text := strings.Join(append([]string{"issuer: https://idp.example.com", "jwks_file: /nonexistent", "audiences: [idbridge]"}, tc.extra...), "\n")
			p := newTestProvider(t, c, text)
			now := tc.now
			if now.IsZero() {
				now = c.Now()
			}
			err := p.CheckPolicy(tc.doc, now)
			if tc.want == nil {
				if err != nil {
					t.Fatalf("CheckPolicy: %v", err)
				}
				return
			}
			if !errors.Is(err, tc.want) {
				t.Fatalf("err = %v, want %v", err, tc.want)
			}
			var se *providers.ScopeError
			if errors.As(err, &se) != tc.scope {
				t.Fatalf("ScopeError = %v, want %v", errors.As(err, &se), tc.scope)
			}
			if tc.scope && len(se.Required) == 0 {
				t.Error("ScopeError.Required empty")
			}
		})
	}
}

func itoa(v int64) string { return strconv.FormatInt(v, 10) }

func TestKeyRotation(t *testing.T) {
	c := newClock()
	is := newIssuer(t, c)
	p := newTestProvider(t, c, baseYAML(is))
	if _, err := p.Authenticate(bg, mint(t, is, claims())); err != nil {
		t.Fatal(err)
	}
	before := is.JWKSFetches()
	if _, err := is.Rotate("RS256", true); err != nil {
		t.Fatal(err)
	}
	tok := mint(t, is, claims())
	if _, err := p.Authenticate(bg, tok); err != nil {
		t.Fatalf("token under the new key: %v", err)
	}
	if _, err := p.Authenticate(bg, tok); err != nil {
		t.Fatalf("second use: %v", err)
	}
	if got := is.JWKSFetches() - before; got != 1 {
		t.Errorf("JWKS fetches for the rotation = %d, want 1", got)
	}
}

func TestUnknownKidFloodIsRateLimited(t *testing.T) {
	c := newClock()
	is := newIssuer(t, c)
	p := newTestProvider(t, c, baseYAML(is))
	// The clock only moves when the test says so: a caller that would wait for the next
	// slot is told "later" at once by its short deadline instead.
	short := func() (context.Context, context.CancelFunc) { return context.WithTimeout(bg, 2*time.Second) }
	before := is.JWKSFetches()
	// The signature is never checked for an unknown kid, so the forgeries only swap
	// the header of one signed token (signing 1000 tokens would dominate the test).
	good := strings.SplitN(mint(t, is, claims()), ".", 2)[1]
	toks := make([]string, 1000)
	for i := range toks {
		hdr := `{"alg":"RS256","kid":"forged-` + itoa(int64(i)) + `"}`
		toks[i] = base64.RawURLEncoding.EncodeToString([]byte(hdr)) + "." + good
	}
	var wg sync.WaitGroup
	for _, tok := range toks {
		wg.Go(func() {
			ctx, cancel := short()
			defer cancel()
			// Invalid when a fetch made after it arrived did not have the kid; unavailable
			// when it arrived after that fetch and its deadline is before the next slot.
			if _, err := p.Authenticate(ctx, tok); !errors.Is(err, providers.ErrInvalidToken) && !errors.Is(err, providers.ErrUnavailable) {
				t.Errorf("err = %v, want invalid or unavailable", err)
			}
		})
	}
	wg.Wait()
	if got := is.JWKSFetches() - before; got > 1 {
		t.Fatalf("1000 unknown kids caused %d JWKS fetches, want at most 1", got)
	}
	c.Advance(9 * time.Second)
	ctx, cancel := short()
	defer cancel()
	if _, err := p.Authenticate(ctx, toks[0]); !errors.Is(err, providers.ErrUnavailable) {
		t.Fatalf("unknown kid 9 s after a refresh, deadline before the next slot: %v, want unavailable", err)
	}
	if got := is.JWKSFetches() - before; got > 1 {
		t.Fatalf("fetch allowed after 9s: %d fetches", got)
	}
	c.Advance(time.Second)
	if _, err := p.Authenticate(ctx, toks[1]); !errors.Is(err, providers.ErrInvalidToken) {
		t.Fatalf("after 10s: %v, want invalid", err)
	}
	if got := is.JWKSFetches() - before; got != 2 {
		t.Fatalf("after 10s: %d fetches, want 2", got)
	}
	if p.Stats().RateLimited == 0 {
		t.Error("Stats().RateLimited = 0")
	}
}

// An emergency rotation (new kid, old key dropped at once) right after a junk kid spent
// the refresh budget: a token under the new key waits for the next permitted refresh
// and passes, instead of a 401 for a key the IdP publishes. Waiters join one fetch.
func TestRotationAfterJunkKidWaitsForNextRefresh(t *testing.T) {
	c := newClock()
	is := newIssuer(t, c)
	p := newTestProvider(t, c, baseYAML(is))
	var slept atomic.Int64
	p.sleep = func(ctx context.Context, until time.Time) error {
		slept.Add(1)
		time.Sleep(10 * time.Millisecond) // let the other waiters queue
		c.AdvanceTo(until)
		return nil
	}
	junk := mint(t, is, claims(), demoissuer.WithKID("junk"))
	if _, err := p.Authenticate(bg, junk); !errors.Is(err, providers.ErrInvalidToken) {
		t.Fatalf("junk kid: %v", err)
	}
	before, start := is.JWKSFetches(), c.Now()
	if _, err := is.Rotate("RS256", true); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for range 20 {
		tok := mint(t, is, claims())
		wg.Go(func() {
			if _, err := p.Authenticate(bg, tok); err != nil {
				t.Errorf("token under the rotated key: %v", err)
			}
		})
	}
	wg.Wait()
	if slept.Load() == 0 {
		t.Error("no caller waited for the next slot")
	}
	// One fetch per interval: a caller that looked while a fetch was under way cannot
	// count on it and waits for the next slot, so a second fetch may come one interval on.
	if got, slots := is.JWKSFetches()-before, int64(c.Now().Sub(start)/onDemandInterval); got < 1 || got > slots {
		t.Fatalf("%d JWKS fetches for 20 waiters over %d intervals, want 1 to %d", got, slots, slots)
	}
	// A deadline before the next slot: unavailable at once, not invalid.
	if _, err := is.Rotate("RS256", true); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(bg, time.Second)
	defer cancel()
	if _, err := p.Authenticate(ctx, mint(t, is, claims())); !errors.Is(err, providers.ErrUnavailable) {
		t.Fatalf("deadline before the next slot: %v, want unavailable", err)
	}
}

// A caller that gives up (a client that disconnects) must not abort the rate-limited
// refresh its unknown kid started: otherwise the fetch fails, the 10 s budget is spent,
// and tokens under a freshly rotated key are refused although the IdP publishes it. A
// client that disconnects on purpose every 10 s would keep the new key out until the
// next periodic refresh.
func TestCancelledCallerDoesNotAbortKidRefresh(t *testing.T) {
	c := newClock()
	is := newIssuer(t, c)
	var block atomic.Bool
	arrived := make(chan struct{}, 1)
	release := make(chan struct{})
	front := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if block.Load() {
			arrived <- struct{}{}
			select {
			case <-release:
			case <-r.Context().Done():
				return
			}
		}
		is.Handler().ServeHTTP(w, r)
	}))
	t.Cleanup(front.Close)
	p := newTestProvider(t, c, baseYAML(is, "jwks_uri: "+front.URL+demoissuer.JWKSPath))
	if _, err := is.Rotate("RS256", false); err != nil {
		t.Fatal(err)
	}
	tok := mint(t, is, claims()) // under the new kid, unknown to p

	block.Store(true)
	ctx, cancel := context.WithCancel(bg)
	first := make(chan error, 1)
	go func() {
		_, err := p.Authenticate(ctx, tok)
		first <- err
	}()
	<-arrived // the refresh for the unknown kid is under way
	block.Store(false)
	cancel()
	select {
	case <-first: // the fetch was abandoned with the caller
		close(release)
	case <-time.After(200 * time.Millisecond): // the fetch goes on without it
		close(release)
		<-first
	}

	if _, err := p.Authenticate(bg, tok); err != nil {
		t.Fatalf("token under the rotated key after a cancelled refresh: %v", err)
	}
}

func TestBadSignatureFloodCausesNoFetch(t *testing.T) {
	c := newClock()
	is := newIssuer(t, c)
	p := newTestProvider(t, c, baseYAML(is))
	good := mint(t, is, claims())
	before := is.JWKSFetches()
	for i := range 1000 {
		tok := must(t)(is.Tamper(good, claims("n", i)))
		if _, err := p.Authenticate(bg, tok); !errors.Is(err, providers.ErrInvalidToken) {
			t.Fatalf("err = %v, want invalid", err)
		}
	}
	if got := is.JWKSFetches() - before; got != 0 {
		t.Fatalf("bad signatures under a known kid caused %d fetches", got)
	}
}

func TestIdPDownAfterStart(t *testing.T) {
	for _, mode := range []string{"503", "hangup"} {
		t.Run(mode, func(t *testing.T) {
			c := newClock()
			is := newIssuer(t, c)
			p := newTestProvider(t, c, baseYAML(is, "timeout: 2s"))
			tok := mint(t, is, claims())
			if mode == "503" {
				is.SetDown(true)
			} else {
				is.SetHangup(true)
			}
			if err := p.Refresh(bg); err == nil {
				t.Fatal("Refresh succeeded against a down IdP")
			}
			if _, err := p.Authenticate(bg, tok); err != nil {
				t.Fatalf("cached keys must keep serving: %v", err)
			}
			// A key rotated in while the IdP is unreachable cannot be told from a forged
			// kid: "try again" (unavailable), not "invalid".
			if _, err := is.Rotate("RS256", false); err != nil {
				t.Fatal(err)
			}
			rotated := mint(t, is, claims())
			if _, err := p.Authenticate(bg, rotated); !errors.Is(err, providers.ErrUnavailable) || errors.Is(err, providers.ErrInvalidToken) {
				t.Fatalf("new kid while the IdP is down: err = %v, want ErrUnavailable only", err)
			}
			h := p.Health(bg)
			if !h.Ready || h.OK {
				t.Errorf("Health = %+v, want ready and not OK", h)
			}
			is.SetDown(false)
			is.SetHangup(false)
			if err := p.Refresh(bg); err != nil {
				t.Fatal(err)
			}
			if h := p.Health(bg); !h.Ready || !h.OK {
				t.Errorf("Health after recovery = %+v", h)
			}
			if _, err := p.Authenticate(bg, rotated); err != nil {
				t.Fatalf("the rotated key after recovery: %v", err)
			}
			c.Advance(onDemandInterval) // the next unknown-kid refresh is permitted
			if _, err := p.Authenticate(bg, mint(t, is, claims(), demoissuer.WithKID("forged"))); !errors.Is(err, providers.ErrInvalidToken) {
				t.Fatalf("unknown kid with the IdP up: err = %v, want invalid", err)
			}
		})
	}
}

func TestIdPDownAtStart(t *testing.T) {
	c := newClock()
	is := newIssuer(t, c)
	is.SetDown(true)
	p := newTestProvider(t, c, baseYAML(is, "timeout: 1s"))
	if h := p.Health(bg); h.Ready {
		t.Fatalf("Health = %+v, want not ready", h)
	}
	tok := mint(t, is, claims())
	_, err := p.Authenticate(bg, tok)
	if !errors.Is(err, providers.ErrUnavailable) || errors.Is(err, providers.ErrInvalidToken) {
		t.Fatalf("err = %v, want ErrUnavailable only", err)
	}
	is.SetDown(false)
	// The refresher retries on its own, after about a second.
	waitFor(t, "the refresher to load keys", func() bool { return p.Health(bg).Ready })
	if _, err := p.Authenticate(bg, tok); err != nil {
		t.Fatalf("after recovery: %v", err)
	}
}

func TestDiscovery(t *testing.T) {
	t.Run("issuer with trailing slash", func(t *testing.T) {
		c := newClock()
		is := newIssuer(t, c)
		is.SetURL(is.URL() + "/")
		p := newTestProvider(t, c, baseYAML(is))
		if !p.Health(bg).Ready {
			t.Fatal("keys not loaded")
		}
	})
	t.Run("document for another issuer", func(t *testing.T) {
		c := newClock()
		is := newIssuer(t, c)
		real := is.URL()
		is.SetURL("https://impostor.example.com")
		p := newTestProvider(t, c, "issuer: "+real+"\naudiences: [idbridge]")
		if h := p.Health(bg); h.Ready {
			t.Fatalf("keys loaded from a document naming another issuer: %+v", h)
		}
	})
	t.Run("userinfo endpoint", func(t *testing.T) {
		c := newClock()
		is := newIssuer(t, c, demoissuer.WithUserinfo(func(string) (map[string]any, bool) { return nil, false }))
		p := newTestProvider(t, c, baseYAML(is))
		got, err := p.UserinfoEndpoint(bg)
		if err != nil || got != is.URL()+demoissuer.UserinfoPath {
			t.Fatalf("UserinfoEndpoint = %q, %v", got, err)
		}
	})
	t.Run("jwks_uri directly", func(t *testing.T) {
		c := newClock()
		is := newIssuer(t, c)
		p := newTestProvider(t, c, baseYAML(is, "jwks_uri: "+is.URL()+demoissuer.JWKSPath))
		if _, err := p.Authenticate(bg, mint(t, is, claims())); err != nil {
			t.Fatal(err)
		}
		if is.DiscoveryFetches() != 0 {
			t.Error("discovery fetched although jwks_uri was given")
		}
		if _, err := p.UserinfoEndpoint(bg); err == nil {
			t.Error("UserinfoEndpoint without discovery should fail")
		}
	})
}

func TestJWKSFile(t *testing.T) {
	c := newClock()
	is := newIssuer(t, c, demoissuer.WithAlgorithms("RS256", "ES256"))
	dir := t.TempDir()
	jwks, err := is.JWKS()
	if err != nil {
		t.Fatal(err)
	}
	rsaKey, _ := is.SigningKey("RS256")
	ecKey, _ := is.SigningKey("ES256")
	rsaPEM, _ := is.PublicKeyPEM(rsaKey.KID)
	ecPEM, _ := is.PublicKeyPEM(ecKey.KID)
	files := map[string][]byte{
		"keys.json": jwks,
		"keys.pem":  append(rsaPEM, ecPEM...),
	}
	for name, data := range files {
		t.Run(name, func(t *testing.T) {
			path := filepath.Join(dir, name)
			if err := os.WriteFile(path, data, 0o600); err != nil {
				t.Fatal(err)
			}
			p := newTestProvider(t, c, baseYAML(is, "jwks_file: "+path, "algorithms: [RS256, ES256]"))
			// demoissuer's kids are RFC 7638 thumbprints, so a PEM key's derived kid matches.
			for _, tc := range []struct {
				name string
				opts []demoissuer.MintOption
			}{
				{"RS256 with kid", nil},
				{"ES256 with kid", []demoissuer.MintOption{demoissuer.WithAlg("ES256")}},
				{"RS256 without kid", []demoissuer.MintOption{demoissuer.WithoutKID()}},
			} {
				if _, err := p.Authenticate(bg, mint(t, is, claims(), tc.opts...)); err != nil {
					t.Errorf("%s: %v", tc.name, err)
				}
			}
			if _, err := p.Authenticate(bg, mint(t, is, claims(), demoissuer.WithKID("nope"))); !errors.Is(err, providers.ErrInvalidToken) {
				t.Errorf("unknown kid: %v", err)
			}
			if is.JWKSFetches()+is.DiscoveryFetches() != 0 {
				t.Error("a jwks_file provider called the network")
			}
		})
	}
	t.Run("unusable file keeps the previous set", func(t *testing.T) {
		path := filepath.Join(dir, "changing.json")
		if err := os.WriteFile(path, jwks, 0o600); err != nil {
			t.Fatal(err)
		}
		p := newTestProvider(t, c, baseYAML(is, "jwks_file: "+path))
		for _, bad := range []string{`{"keys":[]}`, `not json`, `{"keys":[{"kty":"oct","k":"c2VjcmV0"}]}`} {
			if err := os.WriteFile(path, []byte(bad), 0o600); err != nil {
				t.Fatal(err)
			}
			if err := p.Refresh(bg); err == nil {
				t.Errorf("Refresh accepted %s", bad)
			}
			if _, err := p.Authenticate(bg, mint(t, is, claims())); err != nil {
				t.Errorf("after bad file %s: %v", bad, err)
			}
		}
		if s := p.Stats(); s.Invalid != 3 {
			t.Errorf("Stats = %+v, want 3 invalid", s)
		}
	})
}

func TestConfigErrors(t *testing.T) {
	tests := []struct {
		name string
		text string
		want []string // key paths that must be reported
	}{
		{"no issuer", "audiences: [a]", []string{"providers[0].issuer"}},
		{"empty audiences", "issuer: https://idp.example.com\naudiences: []", []string{"providers[0].audiences"}},
		{"no audiences", "issuer: https://idp.example.com", []string{"providers[0].audiences"}},
		{"HS256", "issuer: https://idp.example.com\naudiences: [a]\nalgorithms: [RS256, HS256]", []string{"providers[0].algorithms"}},
		{"none", "issuer: https://idp.example.com\naudiences: [a]\nalgorithms: [none]", []string{"providers[0].algorithms"}},
		{"two key sources", "issuer: https://idp.example.com\naudiences: [a]\njwks_uri: https://idp.example.com/jwks\njwks_file: /k.json", []string{"providers[0].jwks_file"}},
		{"discovery plus jwks_uri", "issuer: https://idp.example.com\naudiences: [a]\ndiscovery: true\njwks_uri: https://idp.example.com/jwks", []string{"providers[0].discovery"}},
		{"no key source", "issuer: https://idp.example.com\naudiences: [a]\ndiscovery: false", []string{"providers[0].discovery"}},
		{"all at once", "algorithms: [HS512]\nleeway: -1s", []string{"providers[0].issuer", "providers[0].audiences", "providers[0].algorithms", "providers[0].leeway"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := New(section(t, tc.text), providers.Deps{})
			var errs configs.Errors
			if !errors.As(err, &errs) {
				t.Fatalf("err = %v (%T), want configs.Errors", err, err)
			}
			for _, want := range tc.want {
				found := false
				for _, e := range errs {
					if e.Path == want && e.File == "test.yaml" && e.Line > 0 {
						found = true
					}
				}
				if !found {
					t.Errorf("no error at %s in:\n%v", want, errs)
				}
			}
		})
	}
}

func TestInstance(t *testing.T) {
	c := newClock()
	is := newIssuer(t, c)
	sec := section(t, baseYAML(is, "jwks_refresh: 10m"))
	inst, err := New(sec, providers.Deps{Now: c.Now})
	if err != nil {
		t.Fatal(err)
	}
	if inst.Name != "corp-jwt" || inst.Type != "jwt" || !inst.Final || inst.CacheTTL != 10*time.Minute ||
		inst.NegativeTTL != 0 || inst.Fingerprint != "fp" || inst.Close == nil {
		t.Errorf("Instance = %+v", inst)
	}
	if err := inst.Close(); err != nil {
		t.Fatal(err)
	}
	if err := inst.Close(); err != nil {
		t.Fatal("second Close:", err)
	}
}
