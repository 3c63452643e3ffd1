// Package demoissuer is a small OpenID Connect issuer for tests, benchmarks and the
// `idbridge demo` command, in the spirit of net/http/httptest: it generates signing keys
// in-process, serves a discovery document and a JWKS on loopback, mints tokens, and can
// mint the malicious tokens (alg none, HMAC keyed with the public key, a tampered
// payload) that a verifier must refuse. It can also rotate keys, go down, and count how
// often its keys were fetched.
//
// It is a development and test issuer, not an identity provider: it authenticates nobody
// and signs whatever it is asked to sign. It must never be configured as a real IdP (as a
// `jwt` provider's issuer in production). It lives outside providers/ so that `serve`'s
// code path (app, server, providers/...) cannot link it; only `demo`, the sandbox, tests
// and the benchmarks import it.
package demoissuer

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/lestrrat-go/jwx/v3/jwa"
	"github.com/lestrrat-go/jwx/v3/jwk"
	"github.com/lestrrat-go/jwx/v3/jws"
)

// Paths served by the issuer, relative to its URL.
const (
	DiscoveryPath = "/.well-known/openid-configuration"
	JWKSPath      = "/jwks"
	UserinfoPath  = "/userinfo"
)

// Key is one signing key of the issuer.
type Key struct {
	KID     string
	Alg     string // the algorithm it was generated for, published as the JWK's alg
	Private crypto.Signer
}

// Public returns the key's public half.
func (k *Key) Public() crypto.PublicKey { return k.Private.Public() }

// UserinfoFunc answers a userinfo request made with token: the claims, or false for 401.
type UserinfoFunc func(token string) (map[string]any, bool)

// Issuer is a running test issuer. Its methods are safe for concurrent use.
type Issuer struct {
	mu       sync.RWMutex
	url      string
	keys     []*Key          // published, oldest first
	signing  map[string]*Key // alg → the key Mint uses for it
	userinfo UserinfoFunc
	now      func() time.Time
	noAlg    bool // publish JWKs without alg

	down   atomic.Bool
	hangup atomic.Bool

	jwksFetches      atomic.Int64
	discoveryFetches atomic.Int64

	handler http.Handler
	srv     *http.Server
}

type options struct {
	algs     []string
	userinfo UserinfoFunc
	noServer bool
	addr     string
	now      func() time.Time
	noAlg    bool

	mint         bool
	mintDefaults map[string]any
}

// Option configures NewIssuer.
type Option func(*options)

// WithAlgorithms generates one key for each algorithm (RS256, RS384, RS512, PS256,
// PS384, PS512, ES256, ES384, EdDSA). The default is RS256 only.
func WithAlgorithms(algs ...string) Option { return func(o *options) { o.algs = algs } }

// WithUserinfo serves UserinfoPath and names it in the discovery document.
func WithUserinfo(fn UserinfoFunc) Option { return func(o *options) { o.userinfo = fn } }

// WithoutServer starts no listener: mount Handler elsewhere and call SetURL.
func WithoutServer() Option { return func(o *options) { o.noServer = true } }

// WithAddr listens on addr instead of 127.0.0.1:0 (a random loopback port).
func WithAddr(addr string) Option { return func(o *options) { o.addr = addr } }

// WithClock sets the clock Mint uses for default iat and exp.
func WithClock(now func() time.Time) Option { return func(o *options) { o.now = now } }

// WithoutKeyAlg publishes keys without their alg member, as some IdPs do.
func WithoutKeyAlg() Option { return func(o *options) { o.noAlg = true } }

// NewIssuer generates keys and, unless WithoutServer is given, starts serving on
// loopback. Close it when done.
func NewIssuer(opts ...Option) (*Issuer, error) {
	o := options{algs: []string{"RS256"}, addr: "127.0.0.1:0", now: time.Now}
	for _, opt := range opts {
		opt(&o)
	}
	is := &Issuer{signing: map[string]*Key{}, userinfo: o.userinfo, now: o.now, noAlg: o.noAlg}
	for _, alg := range o.algs {
		if _, err := is.addKey(alg); err != nil {
			return nil, err
		}
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET "+DiscoveryPath, is.serveDiscovery)
	mux.HandleFunc("GET "+JWKSPath, is.serveJWKS)
	if o.userinfo != nil {
		mux.HandleFunc(UserinfoPath, is.serveUserinfo)
	}
	if o.mint {
		mux.HandleFunc("POST "+MintPath, is.serveMint(o.mintDefaults))
	}
	is.handler = mux
	if o.noServer {
		return is, nil
	}
	ln, err := net.Listen("tcp", o.addr)
	if err != nil {
		return nil, fmt.Errorf("demoissuer: listen: %w", err)
	}
	is.url = "http://" + ln.Addr().String()
	is.srv = &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = is.srv.Serve(ln) }()
	return is, nil
}

// URL is the issuer identifier: the iss of minted tokens and the discovery base.
func (is *Issuer) URL() string {
	is.mu.RLock()
	defer is.mu.RUnlock()
	return is.url
}

// SetURL sets the issuer identifier when Handler is mounted elsewhere.
func (is *Issuer) SetURL(u string) {
	is.mu.Lock()
	is.url = strings.TrimSuffix(u, "/")
	is.mu.Unlock()
}

// Handler serves the discovery document, the JWKS and (if enabled) userinfo.
func (is *Issuer) Handler() http.Handler { return is.handler }

// Close stops the listener, if any.
func (is *Issuer) Close() {
	if is.srv != nil {
		_ = is.srv.Close()
	}
}

// SetDown makes discovery, JWKS and userinfo answer 503 while down is true.
func (is *Issuer) SetDown(down bool) { is.down.Store(down) }

// SetHangup makes discovery, JWKS and userinfo close the connection without answering
// while hangup is true: a network fault rather than an error status.
func (is *Issuer) SetHangup(hangup bool) { is.hangup.Store(hangup) }

// JWKSFetches counts requests to JWKSPath, including those refused while down.
func (is *Issuer) JWKSFetches() int64 { return is.jwksFetches.Load() }

// DiscoveryFetches counts requests to DiscoveryPath, including those refused while down.
func (is *Issuer) DiscoveryFetches() int64 { return is.discoveryFetches.Load() }

// Keys returns the published keys, oldest first.
func (is *Issuer) Keys() []*Key {
	is.mu.RLock()
	defer is.mu.RUnlock()
	return append([]*Key(nil), is.keys...)
}

// SigningKey returns the key Mint uses for alg (RS*/PS* share RSA keys).
func (is *Issuer) SigningKey(alg string) (*Key, error) {
	is.mu.RLock()
	defer is.mu.RUnlock()
	return is.signingKeyLocked(alg)
}

func (is *Issuer) signingKeyLocked(alg string) (*Key, error) {
	if k, ok := is.signing[alg]; ok {
		return k, nil
	}
	if isRSA(alg) {
		// Any RSA key can sign any RS*/PS* algorithm: that is exactly how a token for
		// PS256 made with a key published for RS256 is minted.
		for _, a := range []string{"RS256", "RS384", "RS512", "PS256", "PS384", "PS512"} {
			if k, ok := is.signing[a]; ok {
				return k, nil
			}
		}
	}
	return nil, fmt.Errorf("demoissuer: no key for %s; use WithAlgorithms or Rotate", alg)
}

func isRSA(alg string) bool { return strings.HasPrefix(alg, "RS") || strings.HasPrefix(alg, "PS") }

// Rotate generates a new key for alg, publishes it and makes Mint use it. With
// removeOld, the key it replaces is no longer published. It returns the new kid.
func (is *Issuer) Rotate(alg string, removeOld bool) (string, error) {
	is.mu.Lock()
	old := is.signing[alg]
	is.mu.Unlock()
	k, err := is.addKey(alg)
	if err != nil {
		return "", err
	}
	if removeOld && old != nil {
		is.RemoveKey(old.KID)
	}
	return k.KID, nil
}

// RemoveKey stops publishing kid (Mint still refuses to use a removed key).
func (is *Issuer) RemoveKey(kid string) {
	is.mu.Lock()
	defer is.mu.Unlock()
	kept := is.keys[:0]
	for _, k := range is.keys {
		if k.KID != kid {
			kept = append(kept, k)
		}
	}
	is.keys = kept
	for alg, k := range is.signing {
		if k.KID == kid {
			delete(is.signing, alg)
		}
	}
}

func (is *Issuer) addKey(alg string) (*Key, error) {
	var priv crypto.Signer
	var err error
	switch alg {
	case "RS256", "RS384", "RS512", "PS256", "PS384", "PS512":
		priv, err = rsa.GenerateKey(rand.Reader, 2048)
	case "ES256":
		priv, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	case "ES384":
		priv, err = ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	case "EdDSA":
		_, priv, err = ed25519.GenerateKey(rand.Reader)
	default:
		return nil, fmt.Errorf("demoissuer: unsupported algorithm %q", alg)
	}
	if err != nil {
		return nil, err
	}
	pub, err := jwk.Import(priv.Public())
	if err != nil {
		return nil, err
	}
	tp, err := pub.Thumbprint(crypto.SHA256)
	if err != nil {
		return nil, err
	}
	k := &Key{KID: base64.RawURLEncoding.EncodeToString(tp), Alg: alg, Private: priv}
	is.mu.Lock()
	is.keys = append(is.keys, k)
	is.signing[alg] = k
	is.mu.Unlock()
	return k, nil
}

// JWKS returns the public key set as served at JWKSPath (RFC 7517).
func (is *Issuer) JWKS() ([]byte, error) {
	is.mu.RLock()
	keys := append([]*Key(nil), is.keys...)
	noAlg := is.noAlg
	is.mu.RUnlock()
	set := jwk.NewSet()
	for _, k := range keys {
		pk, err := jwk.Import(k.Public())
		if err != nil {
			return nil, err
		}
		_ = pk.Set(jwk.KeyIDKey, k.KID)
		_ = pk.Set(jwk.KeyUsageKey, "sig")
		if !noAlg {
			a, ok := jwa.LookupSignatureAlgorithm(k.Alg)
			if !ok {
				return nil, fmt.Errorf("demoissuer: unknown algorithm %q", k.Alg)
			}
			_ = pk.Set(jwk.AlgorithmKey, a)
		}
		if err := set.AddKey(pk); err != nil {
			return nil, err
		}
	}
	return json.Marshal(set)
}

// PublicKeyPEM returns kid's public key as a PKIX "PUBLIC KEY" PEM block.
func (is *Issuer) PublicKeyPEM(kid string) ([]byte, error) {
	der, err := is.publicDER(kid)
	if err != nil {
		return nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}), nil
}

func (is *Issuer) publicDER(kid string) ([]byte, error) {
	is.mu.RLock()
	defer is.mu.RUnlock()
	for _, k := range is.keys {
		if k.KID == kid {
			return x509.MarshalPKIXPublicKey(k.Public())
		}
	}
	return nil, fmt.Errorf("demoissuer: no key %q", kid)
}

type mintOptions struct {
	alg        string
	kid        *string
	noKID      bool
	typ        string
	headers    map[string]any
	noDefaults bool
}

// MintOption adjusts one Mint call.
type MintOption func(*mintOptions)

// WithAlg signs with alg (default RS256). RS*/PS* use the issuer's RSA key when no
// key was generated for alg itself.
func WithAlg(alg string) MintOption { return func(o *mintOptions) { o.alg = alg } }

// WithKID puts kid in the header instead of the signing key's own.
func WithKID(kid string) MintOption { return func(o *mintOptions) { o.kid = &kid } }

// WithoutKID leaves kid out of the header.
func WithoutKID() MintOption { return func(o *mintOptions) { o.noKID = true } }

// WithTyp sets the typ header (default: none).
func WithTyp(typ string) MintOption { return func(o *mintOptions) { o.typ = typ } }

// WithHeader adds a protected header member (jku, x5u, crit, anything).
func WithHeader(name string, value any) MintOption {
	return func(o *mintOptions) {
		if o.headers == nil {
			o.headers = map[string]any{}
		}
		o.headers[name] = value
	}
}

// WithoutDefaults stops Mint from filling iss, iat and exp.
func WithoutDefaults() MintOption { return func(o *mintOptions) { o.noDefaults = true } }

// Mint signs claims. Unless WithoutDefaults is given, absent iss, iat and exp are filled
// with the issuer URL, now, and now plus one hour.
func (is *Issuer) Mint(claims map[string]any, opts ...MintOption) (string, error) {
	o := mintOptions{alg: "RS256"}
	for _, opt := range opts {
		opt(&o)
	}
	payload, err := is.payload(claims, o.noDefaults)
	if err != nil {
		return "", err
	}
	k, err := is.SigningKey(o.alg)
	if err != nil {
		return "", err
	}
	alg, ok := jwa.LookupSignatureAlgorithm(o.alg)
	if !ok {
		return "", fmt.Errorf("demoissuer: unknown algorithm %q", o.alg)
	}
	hdr, err := o.protected(k.KID)
	if err != nil {
		return "", err
	}
	out, err := jws.Sign(payload, jws.WithKey(alg, k.Private, jws.WithProtectedHeaders(hdr)))
	if err != nil {
		return "", fmt.Errorf("demoissuer: sign: %w", err)
	}
	return string(out), nil
}

func (o *mintOptions) protected(kid string) (jws.Headers, error) {
	h := jws.NewHeaders()
	switch {
	case o.noKID:
	case o.kid != nil:
		if err := h.Set(jws.KeyIDKey, *o.kid); err != nil {
			return nil, err
		}
	default:
		if err := h.Set(jws.KeyIDKey, kid); err != nil {
			return nil, err
		}
	}
	if o.typ != "" {
		if err := h.Set(jws.TypeKey, o.typ); err != nil {
			return nil, err
		}
	}
	for name, v := range o.headers {
		if err := h.Set(name, v); err != nil {
			return nil, fmt.Errorf("demoissuer: header %s: %w", name, err)
		}
	}
	return h, nil
}

func (is *Issuer) payload(claims map[string]any, noDefaults bool) ([]byte, error) {
	c := make(map[string]any, len(claims)+3)
	if !noDefaults {
		now := is.now()
		c["iss"] = is.URL()
		c["iat"] = now.Unix()
		c["exp"] = now.Add(time.Hour).Unix()
	}
	for k, v := range claims {
		c[k] = v
	}
	return json.Marshal(c)
}

// MintNone builds an unsigned token (alg "none", RFC 7519 §6) naming the RSA key's kid.
// A verifier must refuse it.
func (is *Issuer) MintNone(claims map[string]any) (string, error) {
	payload, err := is.payload(claims, false)
	if err != nil {
		return "", err
	}
	hdr := map[string]any{"alg": "none", "typ": "JWT"}
	if k, err := is.SigningKey("RS256"); err == nil {
		hdr["kid"] = k.KID
	}
	h, err := json.Marshal(hdr)
	if err != nil {
		return "", err
	}
	enc := base64.RawURLEncoding
	return enc.EncodeToString(h) + "." + enc.EncodeToString(payload) + ".", nil
}

// KeyForm selects how MintHMACWithPublicKey encodes the public key used as the secret.
type KeyForm int

const (
	FormPEM KeyForm = iota // the PKIX PEM text, as a JWKS-to-PEM converter would give
	FormDER                // the PKIX DER bytes
)

// MintHMACWithPublicKey builds the classic key-confusion token (RFC 8725 §2.1): HS256
// keyed with the bytes of the issuer's RSA public key, naming that key's kid. A verifier
// that lets the header pick the algorithm would accept it.
func (is *Issuer) MintHMACWithPublicKey(claims map[string]any, form KeyForm) (string, error) {
	k, err := is.SigningKey("RS256")
	if err != nil {
		return "", err
	}
	var secret []byte
	switch form {
	case FormDER:
		secret, err = is.publicDER(k.KID)
	default:
		secret, err = is.PublicKeyPEM(k.KID)
	}
	if err != nil {
		return "", err
	}
	payload, err := is.payload(claims, false)
	if err != nil {
		return "", err
	}
	h := jws.NewHeaders()
	_ = h.Set(jws.KeyIDKey, k.KID)
	_ = h.Set(jws.TypeKey, "JWT")
	out, err := jws.Sign(payload, jws.WithKey(jwa.HS256(), secret, jws.WithProtectedHeaders(h)))
	if err != nil {
		return "", fmt.Errorf("demoissuer: sign: %w", err)
	}
	return string(out), nil
}

// Tamper replaces token's payload with claims, keeping its header and signature. A
// verifier must refuse the result.
func (is *Issuer) Tamper(token string, claims map[string]any) (string, error) {
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		return "", errors.New("demoissuer: not a compact JWS")
	}
	payload, err := is.payload(claims, false)
	if err != nil {
		return "", err
	}
	parts[1] = base64.RawURLEncoding.EncodeToString(payload)
	return strings.Join(parts, "."), nil
}

// fault answers for a down or hung-up issuer; it reports whether it did.
func (is *Issuer) fault(w http.ResponseWriter) bool {
	if is.hangup.Load() {
		if hj, ok := w.(http.Hijacker); ok {
			if conn, _, err := hj.Hijack(); err == nil {
				_ = conn.Close()
				return true
			}
		}
		panic(http.ErrAbortHandler) // closes the connection where hijacking is impossible
	}
	if is.down.Load() {
		w.Header().Set("Retry-After", "1")
		http.Error(w, "issuer down", http.StatusServiceUnavailable)
		return true
	}
	return false
}

func (is *Issuer) serveDiscovery(w http.ResponseWriter, r *http.Request) {
	is.discoveryFetches.Add(1)
	if is.fault(w) {
		return
	}
	base := is.URL()
	is.mu.RLock()
	algs := make([]string, 0, len(is.signing))
	seen := map[string]bool{}
	for _, k := range is.keys {
		if !seen[k.Alg] {
			seen[k.Alg] = true
			algs = append(algs, k.Alg)
		}
	}
	is.mu.RUnlock()
	doc := map[string]any{
		"issuer":                                base,
		"jwks_uri":                              base + JWKSPath,
		"response_types_supported":              []string{"code"},
		"subject_types_supported":               []string{"public"},
		"id_token_signing_alg_values_supported": algs,
	}
	if is.userinfo != nil {
		doc["userinfo_endpoint"] = base + UserinfoPath
	}
	writeJSON(w, doc)
}

func (is *Issuer) serveJWKS(w http.ResponseWriter, r *http.Request) {
	is.jwksFetches.Add(1)
	if is.fault(w) {
		return
	}
	b, err := is.JWKS()
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/jwk-set+json")
	_, _ = w.Write(b)
}

func (is *Issuer) serveUserinfo(w http.ResponseWriter, r *http.Request) {
	if is.fault(w) {
		return
	}
	tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if !ok || tok == "" {
		w.Header().Set("WWW-Authenticate", `Bearer realm="demoissuer"`)
		w.WriteHeader(http.StatusUnauthorized)
		return
	}
	claims, ok := is.userinfo(tok)
	if !ok {
		w.Header().Set("WWW-Authenticate", `Bearer realm="demoissuer", error="invalid_token"`)
		w.WriteHeader(http.StatusUnauthorized)
		return
	}
	writeJSON(w, claims)
}

func writeJSON(w http.ResponseWriter, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write(b)
}
