package jwt

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"math/bits"
	"net/http"
	"strings"
	"time"

	"github.com/lestrrat-go/jwx/v3/jwk"
	"github.com/lestrrat-go/jwx/v3/jws/jwsbb"
	"github.com/tidwall/gjson"

	"github.com/idbridge/idbridge/configs"
	"github.com/idbridge/idbridge/jsonlimit"
)

// keyKind is the key family an algorithm needs (RFC 8725 §3.1: one algorithm per key,
// and the key's type must fit it).
type keyKind uint8

const (
	kindNone keyKind = iota
	kindRSA
	kindP256
	kindP384
	kindEd25519
)

// Bounds on what one key set may cost. A forged token pays for every key it makes the
// verifier try, and an IdP's key set is outside input like any other: these keep a hostile
// or broken set from turning each request into seconds of CPU.
const (
	// minRSABits follows RFC 7518 §3.3 (RS*/PS* keys of 2048 bits or more); maxRSABits
	// bounds the cost of one verification (a 16384-bit modulus costs about 4× an 8192-bit
	// one, a 1-Mbit one seconds).
	minRSABits = 2048
	maxRSABits = 8192
	// maxSetEntries is how many entries of a JWKS (or PEM blocks) are looked at; the
	// rest are skipped. Real IdPs publish 2 to 10.
	maxSetEntries = 100
	// maxUsableKeys caps the usable keys kept per set: a token without kid is tried
	// against each one that fits its alg.
	maxUsableKeys = 32
	// maxKeysPerKid caps the keys kept under one kid (an RSA and an EC key may share one
	// during an algorithm migration; hundreds never make sense).
	maxKeysPerKid = 4
	// maxKeyBytes bounds one JWK's JSON text (an x5c chain of a few certificates fits).
	maxKeyBytes = 16 << 10
	// maxReportedSkips bounds the skipped keys listed in /readyz's detail.
	maxReportedSkips = 5
)

// maxFetchBytes bounds a discovery document or JWKS: no IdP publishes a megabyte of keys.
const maxFetchBytes = 1 << 20

// key is one verification key, exported from its JWK once at load.
type key struct {
	kid  string
	alg  string // the JWK's own alg; "" when it names none
	kind keyKind
	pub  any     // *rsa.PublicKey, *ecdsa.PublicKey or ed25519.PublicKey
	rsa  *rsaKey // pub prepared for RS256/RS384/RS512; nil for other kinds
}

// verify checks sig over input under alg, which must fit k.
func (k *key) verify(alg string, input, sig []byte) error {
	if k.rsa != nil {
		if ok, err := k.rsa.verifyPKCS1v15(alg, input, sig); ok {
			return err
		}
	}
	return jwsbb.Verify(k.pub, alg, input, sig)
}

// fits reports whether k may verify a signature made with alg.
func (k *key) fits(alg string, kind keyKind) bool {
	return k.kind == kind && (k.alg == "" || k.alg == alg)
}

// SkippedKey is a key of the published set that this provider cannot use, and why.
type SkippedKey struct {
	Index  int    // position in the JWKS "keys" array (or PEM block), from 0
	KID    string // "" when the entry names none
	Reason string // a fixed phrase plus the offending parameter, never key material
}

// String names the key by kid (quoted and bounded, since it comes from outside) or by
// position.
func (s SkippedKey) String() string {
	name := fmt.Sprintf("key #%d", s.Index)
	if s.KID != "" {
		kid := s.KID
		if len(kid) > 64 {
			kid = kid[:64] + "…"
		}
		name = fmt.Sprintf("kid %q", kid)
	}
	return name + ": " + s.Reason
}

// keySet is an immutable snapshot; a refresh replaces it whole.
type keySet struct {
	byKid   map[string][]*key
	all     []*key
	skipped []SkippedKey
}

// parseKeySet turns a JWKS document or PEM public key(s) into a keySet. Each key is
// parsed on its own: RFC 7517 §5 says to ignore keys one does not understand, so a key
// this provider cannot use (a post-quantum or secp256k1 key, an encryption or symmetric
// key, an RSA key given only as x5c, weak or oversized RSA, a malformed entry) is skipped
// with its reason, for another relying party may need it. Only a set with no usable key
// is an error.
func parseKeySet(data []byte, pemData bool) (*keySet, error) {
	ks := &keySet{byKid: map[string][]*key{}}
	var err error
	if pemData {
		err = ks.addPEM(data)
	} else if err = jsonlimit.Check(data); err == nil {
		err = ks.addJWKS(data)
	}
	if err != nil {
		return nil, fmt.Errorf("parse keys: %w", err)
	}
	if len(ks.all) == 0 {
		if len(ks.skipped) > 0 {
			return ks, fmt.Errorf("no usable signature verification key (%s)", ks.skipSummary(maxReportedSkips))
		}
		return ks, errors.New("no usable signature verification key")
	}
	return ks, nil
}

func (ks *keySet) addJWKS(data []byte) error {
	if !gjson.ValidBytes(data) {
		return errors.New("not JSON")
	}
	root := gjson.ParseBytes(data)
	if !root.IsObject() {
		return errors.New("not a JSON object")
	}
	if hasDuplicate(view(data)) {
		return errors.New("duplicate member")
	}
	keys := root.Get("keys")
	if !keys.IsArray() {
		return errors.New(`no "keys" array (RFC 7517 §5)`)
	}
	i := 0
	keys.ForEach(func(_, v gjson.Result) bool {
		if i >= maxSetEntries {
			ks.skip(i, "", fmt.Sprintf("beyond the first %d entries of the set", maxSetEntries))
			i++
			return true
		}
		kid := ""
		if r := v.Get("kid"); r.Type == gjson.String {
			kid = r.Str
		}
		if k, reason := parseJWK(v); reason != "" {
			ks.skip(i, kid, reason)
		} else {
			ks.add(i, k)
		}
		i++
		return true
	})
	return nil
}

func (ks *keySet) addPEM(data []byte) error {
	i := 0
	for {
		var b *pem.Block
		b, data = pem.Decode(data)
		if b == nil {
			break
		}
		if i >= maxSetEntries {
			ks.skip(i, "", fmt.Sprintf("beyond the first %d PEM blocks", maxSetEntries))
			i++
			continue
		}
		jk, err := jwk.ParseKey(pem.EncodeToMemory(b), jwk.WithPEM(true))
		if err != nil {
			ks.skip(i, "", fmt.Sprintf("PEM block %q is not a public key jwx can read", b.Type))
			i++
			continue
		}
		k, reason := exportKey(jk)
		if reason == "" && k.kid == "" {
			// RFC 7638 thumbprint, so that tokens from a PEM-configured issuer can name it.
			tp, err := jk.Thumbprint(crypto.SHA256)
			if err != nil {
				reason = "no thumbprint: " + err.Error()
			}
			k.kid = base64.RawURLEncoding.EncodeToString(tp)
		}
		if reason != "" {
			ks.skip(i, "", reason)
		} else {
			ks.add(i, k)
		}
		i++
	}
	if i == 0 {
		return errors.New("no PEM block")
	}
	return nil
}

func (ks *keySet) skip(i int, kid, reason string) {
	ks.skipped = append(ks.skipped, SkippedKey{Index: i, KID: kid, Reason: reason})
}

// add keeps k unless a bound says otherwise.
func (ks *keySet) add(i int, k *key) {
	switch {
	case len(ks.all) >= maxUsableKeys:
		ks.skip(i, k.kid, fmt.Sprintf("over the cap of %d usable keys per set", maxUsableKeys))
	case k.kid != "" && len(ks.byKid[k.kid]) >= maxKeysPerKid:
		ks.skip(i, k.kid, fmt.Sprintf("more than %d keys under one kid", maxKeysPerKid))
	default:
		ks.all = append(ks.all, k)
		if k.kid != "" {
			ks.byKid[k.kid] = append(ks.byKid[k.kid], k)
		}
	}
}

// skipSummary lists the first n skipped keys.
func (ks *keySet) skipSummary(n int) string {
	var b strings.Builder
	for i, s := range ks.skipped {
		if i == n {
			fmt.Fprintf(&b, "; and %d more", len(ks.skipped)-n)
			break
		}
		if i > 0 {
			b.WriteString("; ")
		}
		b.WriteString(s.String())
	}
	return b.String()
}

// parseJWK checks one JWK's shape before jwx sees it, so that the reason for skipping it
// is specific, and the cost of what follows is bounded (an oversized RSA modulus is
// refused by its length, before any arithmetic on it).
func parseJWK(v gjson.Result) (*key, string) {
	if !v.IsObject() {
		return nil, "not a JSON object"
	}
	if len(v.Raw) > maxKeyBytes {
		return nil, fmt.Sprintf("larger than %d bytes", maxKeyBytes)
	}
	if hasDuplicate(v.Raw) {
		return nil, "duplicate member"
	}
	kty := v.Get("kty")
	if kty.Type != gjson.String {
		return nil, "kty missing or not a string"
	}
	str := func(name string) (string, bool) {
		r := v.Get(name)
		return r.Str, r.Type == gjson.String && r.Str != ""
	}
	switch kty.Str {
	case "RSA":
		n, okN := str("n")
		_, okE := str("e")
		if !okN || !okE {
			if v.Get("x5c").Exists() {
				return nil, "RSA key given only as an x5c certificate (n and e are required)"
			}
			return nil, "RSA key without n or e"
		}
		bits, ok := modulusBits(n)
		if !ok {
			return nil, "RSA n is not base64url"
		}
		if bits < minRSABits || bits > maxRSABits {
			return nil, fmt.Sprintf("RSA modulus of %d bits is outside %d–%d", bits, minRSABits, maxRSABits)
		}
	case "EC":
		crv, _ := str("crv")
		if crv != "P-256" && crv != "P-384" {
			return nil, fmt.Sprintf("EC curve %q is not supported (P-256, P-384)", bounded(crv))
		}
		if _, ok := str("x"); !ok {
			return nil, "EC key without x"
		}
		if _, ok := str("y"); !ok {
			return nil, "EC key without y"
		}
	case "OKP":
		if crv, _ := str("crv"); crv != "Ed25519" {
			return nil, fmt.Sprintf("OKP curve %q is not a signature curve supported here (Ed25519)", bounded(crv))
		}
		if _, ok := str("x"); !ok {
			return nil, "OKP key without x"
		}
	default:
		return nil, fmt.Sprintf("key type %q is not supported (RSA, EC, OKP)", bounded(kty.Str))
	}
	jk, err := jwk.ParseKey([]byte(v.Raw))
	if err != nil {
		return nil, "malformed: " + bounded(err.Error())
	}
	return exportKey(jk)
}

// bounded shortens an outside string placed in a reason.
func bounded(s string) string {
	if len(s) > 80 {
		return s[:80] + "…"
	}
	return s
}

// modulusBits is the bit length of a base64url big-endian modulus, without decoding it
// into a number.
func modulusBits(n string) (int, bool) {
	b, err := base64.RawURLEncoding.DecodeString(strings.TrimRight(n, "="))
	if err != nil {
		return 0, false
	}
	for len(b) > 0 && b[0] == 0 {
		b = b[1:]
	}
	if len(b) == 0 {
		return 0, true
	}
	return (len(b)-1)*8 + bits.Len8(b[0]), true
}

// exportKey turns a parsed JWK into a verification key, or says why it is not one.
func exportKey(jk jwk.Key) (*key, string) {
	if use, ok := jk.KeyUsage(); ok && use != "sig" {
		return nil, fmt.Sprintf("use %q is not sig", bounded(use))
	}
	if ops, ok := jk.KeyOps(); ok {
		verify := false
		for _, op := range ops {
			if op == jwk.KeyOpVerify {
				verify = true
			}
		}
		if !verify {
			return nil, "key_ops lacks verify"
		}
	}
	k := &key{}
	if kid, ok := jk.KeyID(); ok {
		k.kid = kid
	}
	if alg, ok := jk.Algorithm(); ok {
		k.alg = alg.String()
		if _, known := allowedAlgs[k.alg]; !known {
			// A key bound to HS256, RSA-OAEP or anything else must not verify our
			// signatures under another name.
			return nil, fmt.Sprintf("alg %q is not a supported signature algorithm", bounded(k.alg))
		}
	}
	var raw any
	if err := jwk.Export(jk, &raw); err != nil {
		return nil, "cannot export: " + bounded(err.Error())
	}
	switch pk := raw.(type) {
	case *rsa.PublicKey:
		if b := pk.N.BitLen(); b < minRSABits || b > maxRSABits {
			return nil, fmt.Sprintf("RSA modulus of %d bits is outside %d–%d", b, minRSABits, maxRSABits)
		}
		rk, err := newRSAKey(pk)
		if err != nil {
			return nil, err.Error()
		}
		k.kind, k.pub, k.rsa = kindRSA, pk, rk
	case *ecdsa.PublicKey:
		switch pk.Curve {
		case elliptic.P256():
			k.kind = kindP256
		case elliptic.P384():
			k.kind = kindP384
		default:
			return nil, "EC curve not supported (P-256, P-384)"
		}
		k.pub = pk
	case ed25519.PublicKey:
		k.kind, k.pub = kindEd25519, pk
	default:
		// Private keys, symmetric keys, X25519: never verification keys here.
		return nil, fmt.Sprintf("%T is not a public signature key", raw)
	}
	if k.alg != "" && allowedAlgs[k.alg] != k.kind {
		return nil, fmt.Sprintf("alg %q does not fit the key type", k.alg)
	}
	return k, ""
}

// isPEM tells a PEM file from a JWKS by its first non-blank byte.
func isPEM(data []byte) bool {
	return bytes.HasPrefix(bytes.TrimSpace(data), []byte("-----BEGIN"))
}

// Fetch results, as counted by Stats.
const (
	ResultOK          = "ok"           // a new key set is in use
	ResultError       = "error"        // the IdP or file could not be read
	ResultInvalid     = "invalid"      // the answer did not parse, or held no usable key
	ResultRateLimited = "rate_limited" // an unknown-kid refresh was refused by the 10 s limit
)

// discovered holds what the OpenID discovery document told us.
type discovered struct {
	jwksURI  string
	userinfo string
}

// load fetches the key set once from the configured source and installs it. A failed
// or empty fetch leaves the previous set in place.
// keysStale reports whether the last attempt to load the key set failed.
func (p *Provider) keysStale() bool {
	p.stateMu.Lock()
	defer p.stateMu.Unlock()
	return p.lastErr != nil
}

func (p *Provider) load(ctx context.Context) error {
	p.fetchSeq.Add(1)
	err := p.fetchAndInstall(ctx)
	now := p.now()
	p.stateMu.Lock()
	p.lastAttempt = now
	if err != nil {
		p.lastErr = err
	} else {
		p.lastErr = nil
		p.lastOK = now
	}
	p.stateMu.Unlock()
	return err
}

func (p *Provider) fetchAndInstall(ctx context.Context) error {
	var data []byte
	var err error
	switch {
	case p.s.cfg.JWKSFile != "":
		data, err = configs.ReadFileLimited(p.s.cfg.JWKSFile, maxFetchBytes)
	case p.s.cfg.JWKSURI != "":
		data, err = p.get(ctx, p.s.cfg.JWKSURI)
	default:
		var d *discovered
		d, err = p.discover(ctx)
		if err == nil {
			data, err = p.get(ctx, d.jwksURI)
		}
	}
	if err != nil {
		p.count(ResultError)
		return err
	}
	ks, err := parseKeySet(data, p.s.cfg.JWKSFile != "" && isPEM(data))
	if ks != nil {
		// Reported once per load: a log line per key, and (through skippedKeys) the
		// metrics and /readyz.
		for _, sk := range ks.skipped {
			p.log.Warn("jwt: key skipped", "provider", p.name, "kid", bounded(sk.KID), "index", sk.Index, "reason", sk.Reason)
		}
		p.stats[4].Add(int64(len(ks.skipped)))
		p.stateMu.Lock()
		p.lastSkipped = ks.skipped
		p.stateMu.Unlock()
	}
	if err != nil {
		p.count(ResultInvalid)
		return err
	}
	p.keys.Store(ks)
	p.count(ResultOK)
	return nil
}

// discover fetches the OpenID Provider metadata (OpenID Connect Discovery 1.0 §4) and
// checks that it speaks for our issuer (§4.3), so a misrouted document cannot swap keys.
func (p *Provider) discover(ctx context.Context) (*discovered, error) {
	data, err := p.get(ctx, p.s.wellKnown)
	if err != nil {
		return nil, fmt.Errorf("discovery: %w", err)
	}
	if !gjson.ValidBytes(data) {
		return nil, errors.New("discovery: document is not JSON")
	}
	doc := gjson.ParseBytes(data)
	if iss := doc.Get("issuer"); iss.Type != gjson.String || iss.Str != p.s.cfg.Issuer {
		return nil, errors.New("discovery: document issuer does not match the configured issuer")
	}
	jwks := doc.Get("jwks_uri")
	if jwks.Type != gjson.String || jwks.Str == "" {
		return nil, errors.New("discovery: document has no jwks_uri")
	}
	d := &discovered{jwksURI: jwks.Str}
	if ui := doc.Get("userinfo_endpoint"); ui.Type == gjson.String {
		d.userinfo = ui.Str
	}
	p.disc.Store(d)
	return d, nil
}

// get performs one bounded GET: a deadline of timeout, at most maxFetchBytes, 200 only.
func (p *Provider) get(ctx context.Context, url string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, p.s.timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Accept", "application/json")
	resp, err := p.client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, maxFetchBytes))
		return nil, fmt.Errorf("GET %s: status %d", url, resp.StatusCode)
	}
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxFetchBytes+1))
	if err != nil {
		return nil, err
	}
	if len(data) > maxFetchBytes {
		return nil, fmt.Errorf("GET %s: answer larger than %d bytes", url, maxFetchBytes)
	}
	// Discovery documents and key sets are JSON: bound their depth before a parser
	// that recurses reads them.
	if err := jsonlimit.Check(data); err != nil {
		return nil, fmt.Errorf("GET %s: %w", url, err)
	}
	return data, nil
}

// onDemandInterval limits refreshes caused by unknown kids (CONTRACT.md: at most every
// 10 s), so a flood of forged kids cannot turn into a flood of JWKS fetches.
const onDemandInterval = 10 * time.Second

// errKidWait answers a token whose unknown kid could not be looked up before its
// request's deadline: the next permitted refresh comes too late, so "try again" is the
// honest answer, not "invalid".
var errKidWait = &tokenError{reason: "unknown key id; the next permitted key refresh is after the request's deadline", unavailable: true}

// refreshForKid makes sure that a key set fetched after the caller first looked (seq is
// fetchSeq as it was then) is in place, so that a kid the IdP publishes is found even
// when an emergency rotation follows a burst of junk kids. It joins a fetch that started
// since seq; otherwise it fetches at once if the 10 s budget allows, or waits for the
// next permitted slot, bounded by ctx. However many callers wait, at most one fetch runs
// per interval: the first caller of a slot fetches, the others see its sequence number.
// It returns nil when such a fetch happened (successful or not), errKidWait when ctx's
// deadline comes before the next slot, or ctx's error.
//
// With wait false (no keys yet, or the last load failed: the IdP is likely down), a
// caller that finds the slot taken gets errKidWait at once rather than waiting for a
// fetch that would most likely fail too.
func (p *Provider) refreshForKid(ctx context.Context, seq uint64, wait bool) error {
	for {
		select {
		case p.fetchSem <- struct{}{}:
		case <-ctx.Done():
			return ctx.Err()
		}
		if p.fetchSeq.Load() != seq {
			// A load started after the caller looked, and (holding the semaphore) it is
			// done: the caller looks again in what it installed.
			<-p.fetchSem
			return nil
		}
		now := p.now()
		next := p.lastOnDemand.Add(onDemandInterval)
		if p.lastOnDemand.IsZero() || !now.Before(next) {
			p.lastOnDemand = now
			// The fetch spends the budget of every caller, so it must not die with this
			// one: a client that disconnects would otherwise leave the new keys unloaded
			// for 10 s. get bounds it with timeout.
			if err := p.load(context.WithoutCancel(ctx)); err != nil {
				p.log.Warn("jwt: key refresh for unknown kid failed", "provider", p.name, "error", err)
			}
			<-p.fetchSem
			return nil
		}
		<-p.fetchSem
		p.count(ResultRateLimited)
		d := next.Sub(now)
		if dl, ok := ctx.Deadline(); !wait || (ok && time.Until(dl) < d) {
			return errKidWait
		}
		if err := p.sleep(ctx, next); err != nil {
			return err
		}
	}
}

// sleepUntil waits until p's clock reaches t, or ctx is done.
func (p *Provider) sleepUntil(ctx context.Context, t time.Time) error {
	return sleepCtx(ctx, t.Sub(p.now()))
}

// sleepCtx waits d or until ctx is done.
func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// Refresh loads the key set now, outside the unknown-kid rate limit. The background
// refresher uses it; operators and tests may too.
func (p *Provider) Refresh(ctx context.Context) error {
	select {
	case p.fetchSem <- struct{}{}:
	case <-ctx.Done():
		return ctx.Err()
	}
	defer func() { <-p.fetchSem }()
	return p.load(ctx)
}

// refresher reloads keys every jwks_refresh; after a failure it retries with
// exponential backoff (retryMin doubling, capped at jwks_refresh) until it succeeds.
func (p *Provider) refresher(ctx context.Context) {
	defer close(p.done)
	backoff := p.retryMin
	wait := p.s.refresh
	if p.keys.Load() == nil {
		wait = backoff
	}
	for {
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
		if err := p.Refresh(ctx); err != nil {
			if ctx.Err() != nil {
				return
			}
			p.log.Warn("jwt: key refresh failed; keeping the last good keys", "provider", p.name, "retry_in_ms", backoff.Milliseconds(), "error", err)
			wait = backoff
			backoff = min(backoff*2, p.s.refresh)
			continue
		}
		backoff = p.retryMin
		wait = p.s.refresh
	}
}
