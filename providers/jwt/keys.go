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
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"time"

	"github.com/lestrrat-go/jwx/v3/jwk"
	"github.com/tidwall/gjson"

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

// minRSABits follows RFC 7518 §3.3: RS*/PS* keys of 2048 bits or more.
const minRSABits = 2048

// maxFetchBytes bounds a discovery document or JWKS: no IdP publishes a megabyte of keys.
const maxFetchBytes = 1 << 20

// key is one verification key, exported from its JWK once at load.
type key struct {
	kid  string
	alg  string // the JWK's own alg; "" when it names none
	kind keyKind
	pub  any // *rsa.PublicKey, *ecdsa.PublicKey or ed25519.PublicKey
}

// fits reports whether k may verify a signature made with alg.
func (k *key) fits(alg string, kind keyKind) bool {
	return k.kind == kind && (k.alg == "" || k.alg == alg)
}

// keySet is an immutable snapshot; a refresh replaces it whole.
type keySet struct {
	byKid map[string][]*key
	all   []*key
}

// parseKeySet turns a JWKS document or PEM public key(s) into a keySet. Keys this
// provider cannot use (encryption keys, symmetric keys, weak RSA, unknown curves) are
// skipped: an IdP may publish them for other relying parties.
func parseKeySet(data []byte, pem bool) (*keySet, int, error) {
	var set jwk.Set
	var err error
	if pem {
		set, err = jwk.Parse(data, jwk.WithPEM(true))
	} else if err = jsonlimit.Check(data); err == nil {
		set, err = jwk.Parse(data)
	}
	if err != nil {
		return nil, 0, fmt.Errorf("parse keys: %w", err)
	}
	ks := &keySet{byKid: make(map[string][]*key, set.Len())}
	skipped := 0
	for i := range set.Len() {
		jk, _ := set.Key(i)
		k, err := exportKey(jk, pem)
		if err != nil {
			skipped++
			continue
		}
		ks.all = append(ks.all, k)
		if k.kid != "" {
			ks.byKid[k.kid] = append(ks.byKid[k.kid], k)
		}
	}
	if len(ks.all) == 0 {
		return nil, skipped, errors.New("no usable signature verification key")
	}
	return ks, skipped, nil
}

func exportKey(jk jwk.Key, pem bool) (*key, error) {
	if use, ok := jk.KeyUsage(); ok && use != "sig" {
		return nil, errors.New("not a signature key")
	}
	if ops, ok := jk.KeyOps(); ok {
		verify := false
		for _, op := range ops {
			if op == jwk.KeyOpVerify {
				verify = true
			}
		}
		if !verify {
			return nil, errors.New("key_ops lacks verify")
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
			return nil, fmt.Errorf("key alg %q not usable", k.alg)
		}
	}
	var raw any
	if err := jwk.Export(jk, &raw); err != nil {
		return nil, err
	}
	switch pk := raw.(type) {
	case *rsa.PublicKey:
		if pk.N.BitLen() < minRSABits {
			return nil, errors.New("RSA key shorter than 2048 bits")
		}
		k.kind, k.pub = kindRSA, pk
	case *ecdsa.PublicKey:
		switch pk.Curve {
		case elliptic.P256():
			k.kind = kindP256
		case elliptic.P384():
			k.kind = kindP384
		default:
			return nil, errors.New("unsupported curve")
		}
		k.pub = pk
	case ed25519.PublicKey:
		k.kind, k.pub = kindEd25519, pk
	default:
		// Private keys, symmetric keys, X25519: never verification keys here.
		return nil, fmt.Errorf("unsupported key type %T", raw)
	}
	if k.alg != "" && allowedAlgs[k.alg] != k.kind {
		return nil, fmt.Errorf("key alg %q does not fit its key type", k.alg)
	}
	if k.kid == "" && pem {
		// RFC 7638 thumbprint, so that tokens from a PEM-configured issuer can name it.
		tp, err := jk.Thumbprint(crypto.SHA256)
		if err != nil {
			return nil, err
		}
		k.kid = base64.RawURLEncoding.EncodeToString(tp)
	}
	return k, nil
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
		data, err = readFileLimited(p.s.cfg.JWKSFile)
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
	ks, skipped, err := parseKeySet(data, p.s.cfg.JWKSFile != "" && isPEM(data))
	if err != nil {
		p.count(ResultInvalid)
		return err
	}
	if skipped > 0 {
		p.log.Debug("jwt: skipped unusable keys", "provider", p.name, "skipped", skipped)
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

func readFileLimited(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxFetchBytes+1))
	if err != nil {
		return nil, err
	}
	if len(data) > maxFetchBytes {
		return nil, fmt.Errorf("%s: larger than %d bytes", path, maxFetchBytes)
	}
	return data, nil
}

// onDemandInterval limits refreshes caused by unknown kids (CONTRACT.md: at most every
// 10 s), so a flood of forged kids cannot turn into a flood of JWKS fetches.
const onDemandInterval = 10 * time.Second

// refreshForKid runs one rate-limited refresh for a token naming a kid we do not hold.
// It reports whether a fetch happened (successful or not). Callers queue on a
// one-slot semaphore rather than a mutex so that a cancelled request stops waiting.
func (p *Provider) refreshForKid(ctx context.Context, seen *keySet) bool {
	select {
	case p.fetchSem <- struct{}{}:
	case <-ctx.Done():
		return false
	}
	defer func() { <-p.fetchSem }()
	if p.keys.Load() != seen {
		// Someone refreshed while we waited: the caller retries with the new set.
		return true
	}
	now := p.now()
	if !p.lastOnDemand.IsZero() && now.Sub(p.lastOnDemand) < onDemandInterval {
		p.count(ResultRateLimited)
		return false
	}
	p.lastOnDemand = now
	// The fetch spends the budget of every caller, so it must not die with this one: a
	// client that disconnects would otherwise leave the new keys unloaded for 10 s (or,
	// doing so every 10 s, until the periodic refresh). get bounds it with timeout.
	if err := p.load(context.WithoutCancel(ctx)); err != nil {
		p.log.Warn("jwt: key refresh for unknown kid failed", "provider", p.name, "error", err)
	}
	return true
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
			p.log.Warn("jwt: key refresh failed; keeping the last good keys", "provider", p.name, "retry_in", backoff, "error", err)
			wait = backoff
			backoff = min(backoff*2, p.s.refresh)
			continue
		}
		backoff = p.retryMin
		wait = p.s.refresh
	}
}
