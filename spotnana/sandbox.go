package spotnana

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	mrand "math/rand/v2"
	"mime"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/lestrrat-go/jwx/v3/jwa"
	"github.com/lestrrat-go/jwx/v3/jwk"
	"github.com/lestrrat-go/jwx/v3/jws"
	"github.com/lestrrat-go/jwx/v3/jwt"
	"github.com/tidwall/gjson"

	"github.com/idbridge/idbridge/configs"
	"github.com/idbridge/idbridge/jsonlimit"
)

// Sandbox routes.
const (
	SandboxTokenPath  = "/v2/auth/oauth2-token"
	SandboxWhoamiPath = "/v2/whoami"
	SandboxJWKSPath   = "/v2/auth/jwks.json"
	SandboxHealthPath = "/healthz"
)

// Sandbox verification modes.
const (
	SandboxModeCallback = "callback" // call the user-detail URL with the subject token
	SandboxModeJWKS     = "jwks"     // verify the subject token against a JWKS URL

	// DefaultSandboxUserDetailURL is where a callback-mode sandbox finds a bridge run
	// with the default listen address.
	DefaultSandboxUserDetailURL = "http://127.0.0.1:8080/v1/user-detail"
)

// Error codes the sandbox answers with. Spotnana documents the first three; the
// others are ours, for situations Spotnana leaves undocumented.
const (
	CodeValidationFailed    = "API_VALIDATION_FAILED"   // 400: a malformed request
	CodeNotAuthenticated    = "USER_NOT_AUTHENTICATED"  // 401: bad client, or the subject token did not verify
	CodeTooManyRequests     = "TOO_MANY_REQUESTS"       // 429
	CodeUserNotFound        = "USER_NOT_FOUND"          // 403: identity proven, but no profile for the email
	CodeUserDetailUnavail   = "USER_DETAIL_UNAVAILABLE" // 502: user-detail or JWKS could not be reached
	CodeInternalServerError = "INTERNAL_SERVER_ERROR"   // 500: injected failure
)

// SandboxIssuer is the iss of the sandbox's access tokens.
const SandboxIssuer = "idbridge-sandbox"

// SandboxConfig configures a Sandbox. Zero values mean the defaults given.
type SandboxConfig struct {
	// Listen is the address `idbridge sandbox` serves on; NewSandbox ignores it.
	Listen string
	// EmbedListen, when set, is where `idbridge sandbox` serves the stand-in for
	// Spotnana's iframe (Sandbox.Embed), on its own origin; NewSandbox ignores it.
	EmbedListen string
	// EmbedAllowedOrigins are the page origins the iframe accepts answers from; default
	// DefaultEmbedAllowedOrigin.
	EmbedAllowedOrigins []string
	// ClientID and ClientSecret are the credentials the sandbox accepts.
	ClientID, ClientSecret string
	// Users are the emails with a profile (case-insensitive). "*" admits every email.
	Users []string
	// Mode is callback or jwks; "" means jwks when only JWKSURL is set, else callback.
	Mode string
	// UserDetailURL is called in callback mode with Authorization: Bearer <subject_token>.
	UserDetailURL string
	// JWKSURL is fetched in jwks mode to verify assertions (cached 5m, refetched on an
	// unknown kid).
	JWKSURL string
	// Audience is the aud an assertion must carry; default "spotnana".
	Audience string
	// Issuer, when set, is the iss an assertion must carry.
	Issuer string
	// TokenTTL is the issued tokens' lifetime; default 1h.
	TokenTTL time.Duration
	// CallbackTimeout bounds the user-detail call and the JWKS fetch; default 5s.
	CallbackTimeout time.Duration
	// FailRate is the share of token requests answered 500, in [0,1].
	FailRate float64
	// Latency is added to every token request.
	Latency time.Duration
	// Burst429 answers the first N token requests 429 with Retry-After.
	Burst429 int
	// RetryAfter is the Retry-After sent with 429; default 1s.
	RetryAfter time.Duration
	// HTTPClient makes the callback and JWKS calls; nil: a private client.
	HTTPClient *http.Client
	// Logger may be nil.
	Logger *slog.Logger
	// Now is the clock; nil: time.Now.
	Now func() time.Time
}

// SandboxFlags registers every sandbox flag on fs and returns the config they fill.
func SandboxFlags(fs *flag.FlagSet) *SandboxConfig {
	c := &SandboxConfig{}
	fs.StringVar(&c.Listen, "listen", "127.0.0.1:8090", "address to serve the sandbox on")
	fs.StringVar(&c.EmbedListen, "embed-listen", "", "address to serve Spotnana's iframe stand-in on (GET /embed, GET /stats), its own origin; empty: off (e.g. 127.0.0.1:8091)")
	fs.Func("embed-allowed-origins", "comma-separated page origins the iframe accepts answers from and may be framed by (repeatable; default "+DefaultEmbedAllowedOrigin+")", func(v string) error {
		for _, o := range strings.Split(v, ",") {
			if o = strings.TrimSpace(o); o == "" {
				continue
			}
			if _, err := configs.CheckOrigin(o); err != nil {
				return err
			}
			c.EmbedAllowedOrigins = append(c.EmbedAllowedOrigins, o)
		}
		return nil
	})
	fs.StringVar(&c.ClientID, "client-id", "sandbox-client", "client_id the sandbox accepts")
	fs.StringVar(&c.ClientSecret, "client-secret", "sandbox-secret", "client_secret the sandbox accepts (development only)")
	fs.Func("users", "comma-separated emails with a Spotnana profile (repeatable; \"*\" admits any)", func(v string) error {
		for _, u := range strings.Split(v, ",") {
			if u = strings.TrimSpace(u); u != "" {
				c.Users = append(c.Users, u)
			}
		}
		return nil
	})
	fs.StringVar(&c.Mode, "mode", "", "callback | jwks (default: jwks when only -jwks-url is given, else callback)")
	fs.StringVar(&c.UserDetailURL, "user-detail-url", "", "user-detail URL called back in callback mode (default "+DefaultSandboxUserDetailURL+")")
	fs.StringVar(&c.JWKSURL, "jwks-url", "", "JWKS URL that verifies assertions in jwks mode")
	fs.StringVar(&c.Audience, "audience", DefaultAssertionAudience, "aud an assertion must carry (jwks mode)")
	fs.StringVar(&c.Issuer, "issuer", "", "iss an assertion must carry (jwks mode; empty: not checked)")
	fs.DurationVar(&c.TokenTTL, "ttl", time.Hour, "lifetime of issued tokens")
	fs.DurationVar(&c.CallbackTimeout, "callback-timeout", 5*time.Second, "timeout of the user-detail call and the JWKS fetch")
	fs.Float64Var(&c.FailRate, "fail-rate", 0, "share of token requests answered 500, 0..1")
	fs.DurationVar(&c.Latency, "latency", 0, "latency added to every token request")
	fs.IntVar(&c.Burst429, "burst-429", 0, "answer the first N token requests 429")
	fs.DurationVar(&c.RetryAfter, "retry-after", time.Second, "Retry-After sent with 429")
	return c
}

// Sandbox is a local stand-in for Spotnana's token endpoint. It validates requests as
// Spotnana documents them, verifies the subject token by calling back user-detail or
// against a JWKS, and issues RS256 JWT access tokens signed with its own key.
//
// Where Spotnana is silent the sandbox decides, and says so here: a subject token that
// does not verify (user-detail answers non-200 or no email; a bad assertion) is 401
// USER_NOT_AUTHENTICATED; a verified email without a profile is 403 USER_NOT_FOUND; an
// unreachable user-detail or JWKS is 502 USER_DETAIL_UNAVAILABLE.
type Sandbox struct {
	cfg     SandboxConfig
	users   map[string]bool
	anyUser bool    // "*" in Users
	key     jwk.Key // private, signs access tokens
	pub     jwk.Key
	jwks    []byte
	hc      *http.Client
	log     *slog.Logger
	mux     *http.ServeMux

	requests  atomic.Int64
	issued    atomic.Int64
	burstLeft atomic.Int64

	jwksMu      sync.Mutex
	jwksSet     jwk.Set
	jwksFetched time.Time
}

var _ http.Handler = (*Sandbox)(nil)

// NewSandbox applies cfg's defaults and makes the sandbox's signing key. It panics
// only if the system's random source fails.
func NewSandbox(cfg SandboxConfig) *Sandbox {
	if cfg.Mode == "" {
		cfg.Mode = SandboxModeCallback
		if cfg.JWKSURL != "" && cfg.UserDetailURL == "" {
			cfg.Mode = SandboxModeJWKS
		}
	}
	// The default is applied only after the mode is chosen, so that a lone JWKS URL
	// still means jwks mode.
	if cfg.Mode == SandboxModeCallback && cfg.UserDetailURL == "" {
		cfg.UserDetailURL = DefaultSandboxUserDetailURL
	}
	if cfg.Audience == "" {
		cfg.Audience = DefaultAssertionAudience
	}
	if cfg.TokenTTL <= 0 {
		cfg.TokenTTL = time.Hour
	}
	if cfg.CallbackTimeout <= 0 {
		cfg.CallbackTimeout = 5 * time.Second
	}
	if cfg.RetryAfter <= 0 {
		cfg.RetryAfter = time.Second
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	s := &Sandbox{cfg: cfg, users: map[string]bool{}, hc: cfg.HTTPClient, log: cfg.Logger}
	if s.hc == nil {
		s.hc = &http.Client{}
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	for _, u := range cfg.Users {
		if u == "*" {
			s.anyUser = true
		}
		s.users[strings.ToLower(strings.TrimSpace(u))] = true
	}
	s.burstLeft.Store(int64(cfg.Burst429))

	raw, err := rsa.GenerateKey(rand.Reader, MinKeyBits)
	if err != nil {
		panic(fmt.Sprintf("spotnana sandbox: generating key: %v", err))
	}
	kid, err := thumbprint(&raw.PublicKey)
	if err != nil {
		panic(err)
	}
	if s.key, err = jwk.Import(raw); err != nil {
		panic(err)
	}
	_ = s.key.Set(jwk.KeyIDKey, kid)
	_ = s.key.Set(jwk.AlgorithmKey, jwa.RS256())
	_ = s.key.Set(jwk.KeyUsageKey, "sig")
	if s.pub, err = s.key.PublicKey(); err != nil {
		panic(err)
	}
	set := jwk.NewSet()
	_ = set.AddKey(s.pub)
	s.jwks, _ = json.Marshal(set)

	s.mux = http.NewServeMux()
	s.mux.HandleFunc(SandboxTokenPath, s.token)
	s.mux.HandleFunc("GET "+SandboxWhoamiPath, s.whoami)
	s.mux.HandleFunc("GET "+SandboxJWKSPath, func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(s.jwks)
	})
	s.mux.HandleFunc("GET "+SandboxHealthPath, func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, `{"status":"ok"}`)
	})
	return s
}

// ServeHTTP routes the sandbox's endpoints.
func (s *Sandbox) ServeHTTP(w http.ResponseWriter, r *http.Request) { s.mux.ServeHTTP(w, r) }

// Requests is how many token requests arrived (whatever their outcome).
func (s *Sandbox) Requests() int64 { return s.requests.Load() }

// Issued is how many tokens were issued.
func (s *Sandbox) Issued() int64 { return s.issued.Load() }

// PublicJWKS is the JWKS that verifies the sandbox's access tokens.
func (s *Sandbox) PublicJWKS() []byte { return s.jwks }

// Mode is the effective verification mode.
func (s *Sandbox) Mode() string { return s.cfg.Mode }

// sandboxError is a failure with Spotnana's status and code.
type sandboxError struct {
	status int
	code   string
	msg    string
}

func (e *sandboxError) Error() string { return e.code + ": " + e.msg }

func newErr(status int, code, msg string) *sandboxError {
	return &sandboxError{status: status, code: code, msg: msg}
}

// writeError answers in Spotnana's error shape.
func (s *Sandbox) writeError(w http.ResponseWriter, e *sandboxError) {
	body, _ := json.Marshal(map[string]any{
		"debugIdentifier": rand.Text()[:16],
		"errorMessages":   []map[string]string{{"errorCode": e.code, "message": e.msg}},
	})
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Cache-Control", "no-store")
	if e.status == http.StatusTooManyRequests {
		h.Set("Retry-After", strconv.Itoa(int((s.cfg.RetryAfter+time.Second-1)/time.Second)))
	}
	w.WriteHeader(e.status)
	_, _ = w.Write(body)
}

// maxFormBytes bounds a token request body.
const maxFormBytes = 64 << 10

func (s *Sandbox) token(w http.ResponseWriter, r *http.Request) {
	n := s.requests.Add(1)
	if s.cfg.Latency > 0 {
		t := time.NewTimer(s.cfg.Latency)
		select {
		case <-t.C:
		case <-r.Context().Done():
			t.Stop()
			return
		}
	}
	if s.burstLeft.Load() > 0 && s.burstLeft.Add(-1) >= 0 {
		s.writeError(w, newErr(http.StatusTooManyRequests, CodeTooManyRequests, "token generation rate limit exceeded"))
		return
	}
	if s.cfg.FailRate > 0 && mrand.Float64() < s.cfg.FailRate {
		s.writeError(w, newErr(http.StatusInternalServerError, CodeInternalServerError, "injected failure"))
		return
	}
	resp, err := s.handleToken(r)
	if err != nil {
		var se *sandboxError
		if !errors.As(err, &se) {
			se = newErr(http.StatusInternalServerError, CodeInternalServerError, "internal error")
		}
		s.log.Info("sandbox token refused", "request", n, "status", se.status, "code", se.code, "reason", se.msg)
		s.writeError(w, se)
		return
	}
	s.issued.Add(1)
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Cache-Control", "no-store") // RFC 6749 §5.1
	h.Set("Pragma", "no-cache")
	_ = json.NewEncoder(w).Encode(resp)
}

func (s *Sandbox) handleToken(r *http.Request) (map[string]any, error) {
	if r.Method != http.MethodPost {
		return nil, newErr(http.StatusMethodNotAllowed, CodeValidationFailed, "the token endpoint accepts POST only")
	}
	mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err != nil || mt != "application/x-www-form-urlencoded" {
		return nil, newErr(http.StatusBadRequest, CodeValidationFailed, "content type must be application/x-www-form-urlencoded")
	}
	r.Body = http.MaxBytesReader(nil, r.Body, maxFormBytes)
	if err := r.ParseForm(); err != nil {
		return nil, newErr(http.StatusBadRequest, CodeValidationFailed, "malformed form body")
	}
	form := r.PostForm // never the query string: secrets do not belong in URLs
	for k, v := range form {
		if len(v) > 1 { // RFC 6749 §3.2
			return nil, newErr(http.StatusBadRequest, CodeValidationFailed, "parameter "+k+" repeated")
		}
	}
	grant := form.Get("grant_type")
	switch grant {
	case "":
		return nil, newErr(http.StatusBadRequest, CodeValidationFailed, "grant_type is required")
	case GrantTokenExchange, GrantClientCredentials:
	default:
		return nil, newErr(http.StatusBadRequest, CodeValidationFailed, "unsupported grant_type")
	}
	if !s.clientOK(form.Get("client_id"), form.Get("client_secret")) {
		return nil, newErr(http.StatusUnauthorized, CodeNotAuthenticated, "invalid client credentials")
	}
	scope := form.Get("scope")
	if grant == GrantClientCredentials {
		if scope != "" && scope != ScopeOpenID {
			return nil, newErr(http.StatusBadRequest, CodeValidationFailed, "scope must be openid")
		}
		return s.issue(form.Get("client_id"), "", form.Get("audience"), false)
	}

	stt := form.Get("subject_token_type")
	switch {
	case stt == "":
		return nil, newErr(http.StatusBadRequest, CodeValidationFailed, "subject_token_type is required")
	case stt == TokenTypeAccessToken:
	case stt == TokenTypeJWT && s.cfg.Mode == SandboxModeJWKS:
	default:
		return nil, newErr(http.StatusBadRequest, CodeValidationFailed, "unsupported subject_token_type")
	}
	subject := form.Get("subject_token")
	if subject == "" {
		return nil, newErr(http.StatusBadRequest, CodeValidationFailed, "subject_token is required")
	}
	if scope != ScopeOpenID {
		return nil, newErr(http.StatusBadRequest, CodeValidationFailed, "scope must be openid")
	}

	ctx, cancel := context.WithTimeout(r.Context(), s.cfg.CallbackTimeout)
	defer cancel()
	var email string
	if s.cfg.Mode == SandboxModeJWKS {
		email, err = s.verifyAssertion(ctx, subject)
	} else {
		email, err = s.callback(ctx, subject)
	}
	if err != nil {
		return nil, err
	}
	if !s.anyUser && !s.users[strings.ToLower(email)] {
		return nil, newErr(http.StatusForbidden, CodeUserNotFound, "no profile for this email")
	}
	return s.issue(form.Get("client_id"), email, form.Get("audience"), true)
}

// clientOK compares the credentials in constant time; hashing first keeps the
// comparison's duration independent of the lengths too.
func (s *Sandbox) clientOK(id, secret string) bool {
	h := func(v string) []byte { b := sha256.Sum256([]byte(v)); return b[:] }
	idOK := subtle.ConstantTimeCompare(h(id), h(s.cfg.ClientID))
	secOK := subtle.ConstantTimeCompare(h(secret), h(s.cfg.ClientSecret))
	return idOK&secOK == 1 && s.cfg.ClientSecret != ""
}

// callback asks the user-detail URL who the subject token belongs to.
func (s *Sandbox) callback(ctx context.Context, subject string) (string, error) {
	if s.cfg.UserDetailURL == "" {
		return "", newErr(http.StatusBadGateway, CodeUserDetailUnavail, "no user-detail URL configured")
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, s.cfg.UserDetailURL, nil)
	if err != nil {
		return "", newErr(http.StatusBadGateway, CodeUserDetailUnavail, "bad user-detail URL")
	}
	req.Header.Set("Authorization", "Bearer "+subject)
	req.Header.Set("Accept", "application/json")
	resp, err := s.hc.Do(req)
	if err != nil {
		s.log.Warn("sandbox user-detail call failed", "error", err.Error())
		return "", newErr(http.StatusBadGateway, CodeUserDetailUnavail, "user-detail endpoint unreachable")
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if err != nil {
		return "", newErr(http.StatusBadGateway, CodeUserDetailUnavail, "user-detail answer unreadable")
	}
	if resp.StatusCode != http.StatusOK {
		return "", newErr(http.StatusUnauthorized, CodeNotAuthenticated,
			fmt.Sprintf("user-detail endpoint answered %d", resp.StatusCode))
	}
	if err := jsonlimit.Check(body); err != nil {
		return "", err
	}
	email := gjson.GetBytes(body, "user.email")
	if email.Type != gjson.String || strings.TrimSpace(email.String()) == "" {
		return "", newErr(http.StatusUnauthorized, CodeNotAuthenticated, "user-detail answer has no user.email")
	}
	return strings.TrimSpace(email.String()), nil
}

// verifyAssertion checks an assertion as Spotnana's JWKS variant describes: RS256
// only, a kid naming a key of the JWKS, the expected aud (and iss if configured), a
// live exp, and an email.
func (s *Sandbox) verifyAssertion(ctx context.Context, assertion string) (string, error) {
	bad := func(msg string) error { return newErr(http.StatusUnauthorized, CodeNotAuthenticated, msg) }
	msg, err := jws.Parse([]byte(assertion))
	if err != nil || len(msg.Signatures()) != 1 {
		return "", bad("subject token is not a compact JWS")
	}
	hdr := msg.Signatures()[0].ProtectedHeaders()
	if alg, ok := hdr.Algorithm(); !ok || alg.String() != jwa.RS256().String() {
		return "", bad("subject token must be signed with RS256")
	}
	kid, ok := hdr.KeyID()
	if !ok || kid == "" {
		return "", bad("subject token has no kid")
	}
	key, err := s.jwksKey(ctx, kid)
	if err != nil {
		return "", err
	}
	opts := []jwt.ParseOption{
		jwt.WithKey(jwa.RS256(), key),
		jwt.WithValidate(true),
		jwt.WithClock(jwt.ClockFunc(s.cfg.Now)),
		jwt.WithAcceptableSkew(30 * time.Second),
		jwt.WithAudience(s.cfg.Audience),
		jwt.WithRequiredClaim("exp"),
		jwt.WithRequiredClaim("email"),
	}
	if s.cfg.Issuer != "" {
		opts = append(opts, jwt.WithIssuer(s.cfg.Issuer))
	}
	tok, err := jwt.Parse([]byte(assertion), opts...)
	if err != nil {
		return "", bad("subject token did not verify: " + err.Error())
	}
	var email string
	if err := tok.Get("email", &email); err != nil || strings.TrimSpace(email) == "" {
		return "", bad("subject token has no email")
	}
	return strings.TrimSpace(email), nil
}

// jwksCacheTTL matches the Cache-Control max-age idbridge serves its JWKS with.
const jwksCacheTTL = 5 * time.Minute

// jwksKey returns the RSA key named kid, fetching the JWKS when the cached copy is
// stale or lacks kid (a rotation). The lock is held across the fetch so that a burst
// of requests fetches once; the fetch is bounded by ctx.
func (s *Sandbox) jwksKey(ctx context.Context, kid string) (jwk.Key, error) {
	s.jwksMu.Lock()
	defer s.jwksMu.Unlock()
	fresh := s.jwksSet != nil && s.cfg.Now().Sub(s.jwksFetched) < jwksCacheTTL
	if fresh {
		if k, ok := s.jwksSet.LookupKeyID(kid); ok {
			return rsaOnly(k)
		}
	}
	set, err := s.fetchJWKS(ctx)
	if err != nil {
		return nil, err
	}
	s.jwksSet, s.jwksFetched = set, s.cfg.Now()
	k, ok := set.LookupKeyID(kid)
	if !ok {
		return nil, newErr(http.StatusUnauthorized, CodeNotAuthenticated, "subject token kid is not in the JWKS")
	}
	return rsaOnly(k)
}

func rsaOnly(k jwk.Key) (jwk.Key, error) {
	if k.KeyType() != jwa.RSA() {
		return nil, newErr(http.StatusUnauthorized, CodeNotAuthenticated, "JWKS key is not RSA")
	}
	if alg, ok := k.Algorithm(); ok && alg.String() != jwa.RS256().String() {
		return nil, newErr(http.StatusUnauthorized, CodeNotAuthenticated, "JWKS key is not for RS256")
	}
	return k, nil
}

func (s *Sandbox) fetchJWKS(ctx context.Context) (jwk.Set, error) {
	unavailable := newErr(http.StatusBadGateway, CodeUserDetailUnavail, "JWKS endpoint unreachable")
	if s.cfg.JWKSURL == "" {
		return nil, unavailable
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, s.cfg.JWKSURL, nil)
	if err != nil {
		return nil, unavailable
	}
	resp, err := s.hc.Do(req)
	if err != nil {
		s.log.Warn("sandbox JWKS fetch failed", "error", err.Error())
		return nil, unavailable
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil || resp.StatusCode != http.StatusOK {
		return nil, unavailable
	}
	if err := jsonlimit.Check(body); err != nil {
		return nil, err
	}
	set, err := jwk.Parse(body)
	if err != nil {
		return nil, newErr(http.StatusBadGateway, CodeUserDetailUnavail, "JWKS unparsable")
	}
	return set, nil
}

// issue mints an RFC 9068 access token for sub (an email, or the client for
// client_credentials) and, for users, an opaque refresh token.
func (s *Sandbox) issue(clientID, email, audience string, refresh bool) (map[string]any, error) {
	now := s.cfg.Now().Truncate(time.Second)
	sub := email
	if sub == "" {
		sub = clientID
	}
	if audience == "" {
		audience = "https://apis.spotnana.com/v2"
	}
	b := jwt.NewBuilder().
		Issuer(SandboxIssuer).
		Subject(sub).
		Audience([]string{audience}).
		IssuedAt(now).
		Expiration(now.Add(s.cfg.TokenTTL)).
		JwtID(rand.Text()).
		Claim("client_id", clientID).
		Claim("scope", ScopeOpenID)
	if email != "" {
		b = b.Claim("email", email)
	}
	tok, err := b.Build()
	if err != nil {
		return nil, err
	}
	hdr := jws.NewHeaders()
	_ = hdr.Set(jws.TypeKey, "at+jwt")
	signed, err := jwt.Sign(tok, jwt.WithKey(jwa.RS256(), s.key, jws.WithProtectedHeaders(hdr)))
	if err != nil {
		return nil, err
	}
	out := map[string]any{
		"access_token": string(signed),
		"token_type":   "Bearer",
		"expires_in":   int64(s.cfg.TokenTTL / time.Second),
		"scope":        ScopeOpenID,
	}
	if refresh {
		out["refresh_token"] = rand.Text() + rand.Text()
	}
	return out, nil
}

// whoami validates one of the sandbox's access tokens, as a Spotnana API would.
func (s *Sandbox) whoami(w http.ResponseWriter, r *http.Request) {
	const realm = `Bearer realm="spotnana-sandbox"`
	authz := r.Header.Get("Authorization")
	scheme, tok, ok := strings.Cut(authz, " ")
	if authz == "" {
		w.Header().Set("WWW-Authenticate", realm)
		s.writeError(w, newErr(http.StatusUnauthorized, CodeNotAuthenticated, "no bearer token"))
		return
	}
	if !ok || !strings.EqualFold(scheme, "Bearer") || strings.TrimSpace(tok) == "" {
		w.Header().Set("WWW-Authenticate", realm+`, error="invalid_request"`)
		s.writeError(w, newErr(http.StatusBadRequest, CodeValidationFailed, "malformed Authorization header"))
		return
	}
	t, err := jwt.Parse([]byte(strings.TrimSpace(tok)),
		jwt.WithKey(jwa.RS256(), s.pub),
		jwt.WithValidate(true),
		jwt.WithIssuer(SandboxIssuer),
		jwt.WithClock(jwt.ClockFunc(s.cfg.Now)))
	if err != nil {
		w.Header().Set("WWW-Authenticate", realm+`, error="invalid_token"`)
		s.writeError(w, newErr(http.StatusUnauthorized, CodeNotAuthenticated, "invalid or expired token"))
		return
	}
	out := map[string]any{}
	sub, _ := t.Subject()
	out["sub"] = sub
	var email, client string
	if t.Get("email", &email) == nil {
		out["email"] = email
	}
	if t.Get("client_id", &client) == nil {
		out["client_id"] = client
	}
	if exp, ok := t.Expiration(); ok {
		out["exp"] = exp.Unix()
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	_ = json.NewEncoder(w).Encode(out)
}
