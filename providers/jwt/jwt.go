// Package jwt is the `type: jwt` provider: it verifies JWT access and ID tokens locally
// against an issuer's published keys (OIDC discovery, a jwks_uri, or a static file),
// following RFC 8725: an algorithm allowlist, one algorithm per key, no none and no HMAC,
// exact iss, aud checked, and no key material ever taken from the token itself.
//
// Its verdict is final for every token whose unverified iss names its issuer. Keys are
// refreshed in the background; a kid it does not know triggers at most one refresh every
// ten seconds, and a bad signature under a known kid never triggers one.
package jwt

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"math"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/idbridge/idbridge/configs"
	"github.com/idbridge/idbridge/jsonlimit"
	"github.com/idbridge/idbridge/outbound"
	"github.com/idbridge/idbridge/providers"
	"github.com/tidwall/gjson"
)

// Type is the provider type name in the config file.
const Type = "jwt"

// maxTokenBytes matches providers.PeekIssuer's bound: a larger token is not ours.
const maxTokenBytes = 16 << 10

var (
	_ providers.Provider       = (*Provider)(nil)
	_ providers.Policy         = (*Provider)(nil)
	_ providers.HealthChecker  = (*Provider)(nil)
	_ providers.UserinfoSource = (*Provider)(nil)
	_ providers.ClientSource   = (*Provider)(nil)
)

// Provider verifies JWTs of one issuer. Build it with New.
type Provider struct {
	name   string
	s      *settings
	client *http.Client
	log    *slog.Logger
	now    func() time.Time
	sleep  func(context.Context, time.Time) error // waits for the next refresh slot; tests stub it

	keys atomic.Pointer[keySet]     // nil until the first successful load
	disc atomic.Pointer[discovered] // nil until discovery succeeded once

	// fetchSem serialises key loads (a one-slot semaphore so waiters can give up on
	// their context); lastOnDemand is guarded by it. fetchSeq counts loads started, so
	// that a caller can tell a fetch that began after it looked.
	fetchSem     chan struct{}
	lastOnDemand time.Time
	fetchSeq     atomic.Uint64

	stateMu     sync.Mutex
	lastAttempt time.Time
	lastOK      time.Time
	lastErr     error
	lastSkipped []SkippedKey // of the last set parsed, installed or not

	stats    [5]atomic.Int64 // indexed by resultIndex
	retryMin time.Duration   // first retry delay after a failed refresh

	stop      context.CancelFunc
	done      chan struct{}
	closeOnce sync.Once
}

// Registration is the jwt provider type's entry in the registry.
func Registration() providers.Type { return providers.Type{New: New, Warnings: Warnings} }

// New builds a jwt provider from its config section, without touching the network.
// Its Instance.Start loads the keys once within timeout and starts the refresher; a
// failed first load does not fail Start (the IdP may be down while we start): Health
// reports not ready, Authenticate answers ErrUnavailable, and the refresher retries with
// backoff.
func New(sec *configs.ProviderSection, deps providers.Deps) (providers.Instance, error) {
	s, err := parseConfig(sec)
	if err != nil {
		return providers.Instance{}, err
	}
	// A jwks_file is local: a set it could never use is a configuration error, which
	// `idbridge check` reports too (reading a file touches no network). A file that is
	// not there yet, or not readable by this user (mounted later, say, or checked as
	// another user), is left to Start and the refresher; one that can never be a key set
	// (a directory, a device, a file over 1 MiB) is an error now.
	if data, err := configs.ReadFileLimited(s.cfg.JWKSFile, maxFetchBytes); err == nil {
		if _, err := parseKeySet(data, isPEM(data)); err != nil {
			return providers.Instance{}, configs.Errors{sec.Errorf("jwks_file", "%v", err)}
		}
	} else if s.cfg.JWKSFile != "" && !errors.Is(err, fs.ErrNotExist) && !errors.Is(err, fs.ErrPermission) {
		return providers.Instance{}, configs.Errors{sec.Errorf("jwks_file", "%v", err)}
	}
	p := newProvider(sec.Name, s, deps)
	return providers.Instance{
		Start:       p.start,
		Name:        sec.Name,
		Type:        Type,
		Provider:    p,
		CacheTTL:    s.refresh,
		NegativeTTL: 0,
		Final:       true,
		Fingerprint: sec.Fingerprint,
		Close:       p.Close,
	}, nil
}

// Warnings tells `idbridge check` which keys of a jwks_file would be skipped, and why.
// Errors are New's to report.
//
// It also warns about a plain-http issuer (its discovery document names the keys) or
// jwks_uri off loopback: anyone on the path could substitute the keys that decide which
// tokens are genuine.
func Warnings(sec *configs.ProviderSection) configs.Errors {
	s, err := parseConfig(sec)
	if err != nil {
		return nil
	}
	var ws configs.Errors
	if w := providers.PlainHTTPWarning(sec, "issuer", s.cfg.Issuer, "the discovery document and the keys it names"); w != nil && s.discovery && s.cfg.JWKSURI == "" && s.cfg.JWKSFile == "" {
		ws = append(ws, w)
	}
	if w := providers.PlainHTTPWarning(sec, "jwks_uri", s.cfg.JWKSURI, "the signing keys"); w != nil {
		ws = append(ws, w)
	}
	if s.cfg.JWKSFile == "" {
		return ws
	}
	data, err := configs.ReadFileLimited(s.cfg.JWKSFile, maxFetchBytes)
	if err != nil {
		return ws
	}
	ks, err := parseKeySet(data, isPEM(data))
	if err != nil {
		return ws
	}
	out := ws
	for _, sk := range ks.skipped {
		w := sec.Errorf("jwks_file", "key skipped: %s", sk)
		w.Warning = true
		out = append(out, w)
	}
	return out
}

func newProvider(name string, s *settings, deps providers.Deps) *Provider {
	p := &Provider{
		name: name,
		s:    s,
		// Discovery and JWKS fetches never follow a redirect: one could point the key
		// set at another host, or at our own admin listener.
		client:   outbound.NoRedirects(deps.HTTPClient),
		log:      deps.Logger,
		now:      deps.Now,
		fetchSem: make(chan struct{}, 1),
		retryMin: time.Second,
		done:     make(chan struct{}),
	}
	if p.log == nil {
		p.log = slog.New(slog.DiscardHandler)
	}
	if p.now == nil {
		p.now = time.Now
	}
	p.sleep = p.sleepUntil
	return p
}

// start performs the initial load, bounded by ctx and timeout, and starts the
// refresher, which lives until Close (not until ctx: ctx bounds the start only).
func (p *Provider) start(ctx context.Context) error {
	if err := p.Refresh(ctx); err != nil {
		p.log.Error("jwt: initial key load failed; provider not ready until the refresher succeeds",
			"provider", p.name, "error", err)
	}
	rctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	p.stop = cancel
	go p.refresher(rctx)
	return nil
}

// Close stops the refresher and waits for it. It is safe to call more than once.
func (p *Provider) Close() error {
	p.closeOnce.Do(func() {
		if p.stop != nil {
			p.stop()
			<-p.done
		}
	})
	return nil
}

// tokenError is a refusal with a short fixed reason; it never carries the token.
type tokenError struct {
	reason      string
	notMine     bool
	expired     bool
	notYetValid bool
	unavailable bool
}

func (e *tokenError) Error() string {
	switch {
	case e.notMine:
		return "jwt: " + providers.ErrNotMine.Error() + ": " + e.reason
	case e.unavailable:
		return "jwt: " + providers.ErrUnavailable.Error() + ": " + e.reason
	case e.expired:
		return "jwt: " + providers.ErrExpired.Error() + ": " + e.reason
	case e.notYetValid:
		return "jwt: " + providers.ErrNotYetValid.Error() + ": " + e.reason
	}
	return "jwt: " + providers.ErrInvalidToken.Error() + ": " + e.reason
}

// Is makes errors.Is match the sentinel the chain steers by; a time fault matches both
// ErrExpired (or ErrNotYetValid) and ErrInvalidToken.
func (e *tokenError) Is(target error) bool {
	switch target {
	case providers.ErrNotMine:
		return e.notMine
	case providers.ErrUnavailable:
		return e.unavailable
	case providers.ErrExpired:
		return e.expired
	case providers.ErrNotYetValid:
		return e.notYetValid
	case providers.ErrInvalidToken:
		return !e.notMine && !e.unavailable
	}
	return false
}

// The refusals, allocated once; they are never modified.
var (
	errNotJWT        = &tokenError{reason: "not a JWT", notMine: true}
	errOtherIssuer   = &tokenError{reason: "issued by another issuer", notMine: true}
	errNoKeys        = &tokenError{reason: "no key set loaded yet", unavailable: true}
	errDuplicate     = &tokenError{reason: "duplicate member in header or claims"}
	errAlg           = &tokenError{reason: "algorithm not allowed"}
	errCrit          = &tokenError{reason: "unsupported critical header"}
	errHeaderType    = &tokenError{reason: "malformed header parameter"}
	errType          = &tokenError{reason: "typ not allowed"}
	errSigEncoding   = &tokenError{reason: "malformed signature"}
	errUnknownKid    = &tokenError{reason: "unknown key id"}
	errKidStale      = &tokenError{reason: "unknown key id while the key set cannot be refreshed", unavailable: true}
	errKeyMismatch   = &tokenError{reason: "key does not fit the algorithm"}
	errNoKey         = &tokenError{reason: "no key fits the algorithm"}
	errSignature     = &tokenError{reason: "signature invalid"}
	errNoExp         = &tokenError{reason: "exp missing or not a number"}
	errClaimType     = &tokenError{reason: "nbf or iat not a number"}
	errAudience      = &tokenError{reason: "audience not accepted"}
	errAudType       = &tokenError{reason: "aud is neither a string nor an array of strings"}
	errClientID      = &tokenError{reason: "client not accepted"}
	errRequiredClaim = &tokenError{reason: "required claim missing or different"}
)

// token is a compact JWS split and decoded once.
type token struct {
	header       []byte // decoded JSON
	payload      []byte // decoded JSON: the claims, returned as the identity document
	signingInput []byte // ASCII(BASE64URL(header) || '.' || BASE64URL(payload)), RFC 7515 §5.2
	sig          []byte // decoded; nil when the segment is not strict base64url
	// hdr and claims view header and payload as strings for gjson without copying.
	hdr, claims string
}

// split decodes a compact JWS the way providers.PeekIssuer reads it, so the two agree on
// what is JWT-shaped. It makes two allocations: the payload gets its own, because it
// outlives the call as the cached identity document; the header, the signature and the
// signing input share a scratch buffer.
func split(s string) (token, bool) {
	if len(s) > maxTokenBytes {
		return token{}, false
	}
	h, rest, ok := strings.Cut(s, ".")
	if !ok {
		return token{}, false
	}
	p, sig, ok := strings.Cut(rest, ".")
	if !ok || h == "" || p == "" || strings.IndexByte(sig, '.') >= 0 {
		return token{}, false
	}
	enc := base64.RawURLEncoding
	payload := make([]byte, enc.DecodedLen(len(p)))
	pn, err := enc.Decode(payload, []byte(p))
	if err != nil {
		return token{}, false
	}
	inputLen := len(h) + 1 + len(p)
	scratch := make([]byte, inputLen+enc.DecodedLen(len(h))+enc.DecodedLen(len(sig)))
	copy(scratch, s[:inputLen])
	hn, err := enc.Decode(scratch[inputLen:], scratch[:len(h)])
	if err != nil {
		return token{}, false
	}
	t := token{
		header:       scratch[inputLen : inputLen+hn : inputLen+hn],
		payload:      payload[:pn:pn],
		signingInput: scratch[:inputLen:inputLen],
	}
	t.hdr, t.claims = view(t.header), view(t.payload)
	if !isObject(t.hdr) || !isObject(t.claims) {
		return token{}, false
	}
	if sn, err := enc.Strict().Decode(scratch[inputLen+hn:], []byte(sig)); err == nil && sn > 0 {
		t.sig = scratch[inputLen+hn : inputLen+hn+sn]
	}
	return t, true
}

func isObject(s string) bool {
	return jsonlimit.CheckString(s) == nil && gjson.Valid(s) && gjson.Parse(s).IsObject()
}

// view returns b as a string without copying it, so that gjson's string API can read it
// without the copy its []byte API makes on every call. Safe here because the bytes are
// never modified once decoded, and no string taken from the view outlives the call
// that made it.
func view(b []byte) string {
	if len(b) == 0 {
		return ""
	}
	return unsafe.String(&b[0], len(b))
}

// hasDuplicate reports a repeated top-level member. RFC 7515 §4 and RFC 7519 §4 let a
// parser reject them; we must, because gjson (used here and by mapping) reads the first
// occurrence where other JOSE libraries read the last.
func hasDuplicate(obj string) bool { return members(obj, nil, nil) }

// members reads obj's top-level members in one pass: it reports whether a member is
// repeated (see hasDuplicate) and sets out[i] to the first value of names[i]. One pass
// instead of one per claim keeps the verification path cheap.
func members(obj string, names []string, out []gjson.Result) (dup bool) {
	var small [32]string
	seen := small[:0]
	var big map[string]struct{}
	gjson.Parse(obj).ForEach(func(k, v gjson.Result) bool {
		name := k.Str
		for i, n := range names {
			if n == name && !out[i].Exists() {
				out[i] = v
			}
		}
		if big != nil {
			if _, ok := big[name]; ok {
				dup = true
				return false
			}
			big[name] = struct{}{}
			return true
		}
		for _, n := range seen {
			if n == name {
				dup = true
				return false
			}
		}
		if len(seen) == cap(seen) {
			big = make(map[string]struct{}, 2*len(seen))
			for _, n := range seen {
				big[n] = struct{}{}
			}
			big[name] = struct{}{}
			return true
		}
		seen = append(seen, name)
		return true
	})
	return dup
}

// The members Authenticate reads, in the order of their slots.
var (
	headerNames = []string{"alg", "kid", "typ", "crit"}
	claimNames  = []string{"iss", "exp", "nbf", "iat", "aud"}
)

// Authenticate verifies token. A token that is not JWT-shaped, or whose unverified iss
// is not our issuer, is ErrNotMine; every other refusal is final.
func (p *Provider) Authenticate(ctx context.Context, raw string) (providers.Identity, error) {
	t, ok := split(raw)
	if !ok {
		return providers.Identity{}, errNotJWT
	}
	var cv [5]gjson.Result // claimNames
	claimsDup := members(t.claims, claimNames, cv[:])
	if iss := cv[0]; iss.Type != gjson.String || iss.Str != p.s.cfg.Issuer {
		return providers.Identity{}, errOtherIssuer
	}
	// From here on the verdict is final.
	var hv [4]gjson.Result // headerNames
	if members(t.hdr, headerNames, hv[:]) || claimsDup {
		return providers.Identity{}, errDuplicate
	}
	algR, kidR, typR, critR := hv[0], hv[1], hv[2], hv[3]
	if algR.Type != gjson.String {
		return providers.Identity{}, errAlg
	}
	alg := algR.Str
	kind, ok := p.s.algs[alg]
	if !ok {
		// none, HS*, and anything not configured (RFC 8725 §3.1).
		return providers.Identity{}, errAlg
	}
	if critR.Exists() {
		// We implement no JWS extension, so any crit must be refused (RFC 7515 §4.1.11).
		return providers.Identity{}, errCrit
	}
	if (kidR.Exists() && kidR.Type != gjson.String) || (typR.Exists() && typR.Type != gjson.String) {
		return providers.Identity{}, errHeaderType
	}
	if len(p.s.types) > 0 && !p.typeAllowed(typR) {
		return providers.Identity{}, p.mismatch(errType, typR, p.s.cfg.Types)
	}
	if t.sig == nil {
		return providers.Identity{}, errSigEncoding
	}

	seq := p.fetchSeq.Load() // before the keys: see refreshForKid
	ks := p.keys.Load()
	if ks == nil {
		// Never loaded: try once (rate-limited, without waiting) before answering 503.
		_ = p.refreshForKid(ctx, seq, false)
		if ks = p.keys.Load(); ks == nil {
			return providers.Identity{}, errNoKeys
		}
	}
	if err := p.verify(ctx, ks, seq, t.signingInput, t.sig, alg, kidR.Str, kidR.Exists(), kind); err != nil {
		return providers.Identity{}, err
	}

	exp, err := p.checkTime(cv[1], cv[2], cv[3], p.now())
	if err != nil {
		return providers.Identity{}, err
	}
	if err := p.checkAudience(cv[4]); err != nil {
		return providers.Identity{}, err
	}
	return providers.Identity{Document: t.payload, Expires: exp}, nil
}

func (p *Provider) typeAllowed(typ gjson.Result) bool {
	if typ.Type != gjson.String {
		return false
	}
	for _, want := range p.s.types {
		if len(typ.Str) == len(want) && equalFoldASCII(typ.Str, want) {
			return true
		}
		if len(typ.Str) == len("application/")+len(want) &&
			equalFoldASCII(typ.Str[:len("application/")], "application/") &&
			equalFoldASCII(typ.Str[len("application/"):], want) {
			return true
		}
	}
	return false
}

// equalFoldASCII compares without allocating; want is already lower case.
func equalFoldASCII(s, want string) bool {
	if len(s) != len(want) {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		if c != want[i] {
			return false
		}
	}
	return true
}

// verify selects the key and checks the signature. A kid is only a map key: it is never
// a path, a URL or a query. jku, x5u, x5c and jwk headers are never read.
//
// A token without kid is tried against every usable key that fits its alg: the set holds
// at most maxUsableKeys, so that is the bound on what a forged one costs.
func (p *Provider) verify(ctx context.Context, ks *keySet, seq uint64, input, sig []byte, alg, kid string, hasKid bool, kind keyKind) error {
	if !hasKid {
		tried := false
		for _, k := range ks.all {
			if !k.fits(alg, kind) {
				continue
			}
			tried = true
			if k.verify(alg, input, sig) == nil {
				return nil
			}
		}
		if !tried {
			return errNoKey
		}
		return errSignature
	}
	cands := ks.byKid[kid]
	if len(cands) == 0 {
		// Perhaps the IdP rotated: make sure a set fetched after this token arrived is
		// in place (waiting for the next permitted refresh if need be), then look again.
		if err := p.refreshForKid(ctx, seq, !p.keysStale()); err != nil {
			if errors.Is(err, errKidWait) && !p.keysStale() {
				return errKidWait
			}
			if ctx.Err() != nil {
				return err
			}
		}
		cands = p.keys.Load().byKid[kid]
		if len(cands) == 0 {
			if p.keysStale() {
				// The IdP may have rotated while it is unreachable: we cannot tell a new
				// key from a forged kid, so the answer is "try again", not "invalid".
				return errKidStale
			}
			return errUnknownKid
		}
	}
	fit := false
	for _, k := range cands {
		if !k.fits(alg, kind) {
			continue
		}
		fit = true
		if k.verify(alg, input, sig) == nil {
			return nil
		}
	}
	if !fit {
		return errKeyMismatch
	}
	// A bad signature under a known kid is forged or corrupt, never a reason to refresh.
	return errSignature
}

// numericDate reads a NumericDate (RFC 7519 §2): seconds, possibly fractional. Values
// beyond year 9999 are clamped so the conversion cannot overflow.
func numericDate(r gjson.Result) (time.Time, bool) {
	if r.Type != gjson.Number || math.IsNaN(r.Num) {
		return time.Time{}, false
	}
	const maxSec = 253402300799 // 9999-12-31T23:59:59Z
	v := r.Num
	if v > maxSec {
		v = maxSec
	}
	if v < -maxSec {
		v = -maxSec
	}
	sec, frac := math.Modf(v)
	return time.Unix(int64(sec), int64(frac*1e9)), true
}

// checkTime validates exp (required), nbf and iat with leeway, and returns exp.
func (p *Provider) checkTime(expR, nbfR, iatR gjson.Result, now time.Time) (time.Time, error) {
	exp, ok := numericDate(expR)
	if !ok {
		return time.Time{}, errNoExp
	}
	if !now.Before(exp.Add(p.s.leeway)) {
		return time.Time{}, expired(exp, now, p.s.leeway)
	}
	if r := nbfR; r.Exists() {
		nbf, ok := numericDate(r)
		if !ok {
			return time.Time{}, errClaimType
		}
		if now.Add(p.s.leeway).Before(nbf) {
			return time.Time{}, notYetValid("nbf", nbf.Sub(now), p.s.leeway)
		}
	}
	if r := iatR; r.Exists() {
		iat, ok := numericDate(r)
		if !ok {
			return time.Time{}, errClaimType
		}
		if now.Add(p.s.leeway).Before(iat) {
			return time.Time{}, notYetValid("iat", iat.Sub(now), p.s.leeway)
		}
	}
	return exp, nil
}

// expired refuses a token past exp + leeway. The log line says when it expired and how
// long ago, so that an operator can tell a stale session (hours) from clock skew
// (seconds past the leeway).
func expired(exp, now time.Time, leeway time.Duration) error {
	return &tokenError{expired: true, reason: fmt.Sprintf(
		"exp passed: expired at %s, %s ago (leeway %s)",
		exp.UTC().Format(time.RFC3339), now.Sub(exp).Round(time.Second), leeway)}
}

// notYetValid refuses a token dated in the future. The usual cause is a clock that is
// behind the IdP's (or the IdP's ahead), so the log line says by how much.
func notYetValid(claim string, ahead, leeway time.Duration) error {
	return &tokenError{notYetValid: true, reason: fmt.Sprintf(
		"%s is %s ahead of this host's clock (leeway %s); check clock skew",
		claim, ahead.Round(time.Second), leeway)}
}

// checkAudience: aud must be a string or an array of strings (RFC 7519 §4.1.3; anything
// else is malformed, even beside a good member) and name one of the configured audiences.
// The refusal says what was found, for the log.
func (p *Provider) checkAudience(aud gjson.Result) error {
	if r := p.s.policy.CheckAudience(aud); r != nil {
		return p.refusal(r, aud)
	}
	return nil
}

// mismatchError is a refusal that says what the token carried and what the provider
// expects, for the operator's log line (never the client's answer). The values are
// claims such as aud or typ, never the token or a secret.
type mismatchError struct {
	*tokenError
	found, expected string
}

func (e *mismatchError) Error() string {
	return e.tokenError.Error() + " (found " + e.found + "; expected " + e.expected + ")"
}

func (e *mismatchError) Unwrap() error { return e.tokenError }

// maxShownClaim bounds a claim value quoted in a refusal reason.
const maxShownClaim = 120

// mismatch wraps base with the value found (its JSON text, shortened) and the
// configured values.
func (p *Provider) mismatch(base *tokenError, found gjson.Result, expected []string) error {
	return &mismatchError{tokenError: base, found: shownClaim(found), expected: "one of " + strings.Join(expected, ", ")}
}
