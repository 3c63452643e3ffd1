package server

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/idbridge/idbridge/mapping"
	"github.com/idbridge/idbridge/providers"
	"github.com/idbridge/idbridge/web"
)

// Route names used in logs and metrics (the configured paths may differ).
const (
	routeUserDetail = "user_detail"
	routeExchange   = "token_exchange"
	routeJWKS       = "jwks"
)

// prepare builds rt's Gin engine and parses what it needs from the config.
func (s *Server) prepare(rt *Runtime) error {
	cfg := rt.Config.Server
	allowed, err := parseCIDRs(cfg.AllowedClients)
	if err != nil {
		return fmt.Errorf("server.allowed_clients: %w", err)
	}
	rt.allowed = allowed
	rt.cors = newCORS(cfg.CORS.AllowedOrigins)
	if cfg.RateLimit.RPS > 0 {
		rt.limiter = newLimiter(cfg.RateLimit.RPS, cfg.RateLimit.Burst, time.Now)
	}
	e := gin.New()
	e.HandleMethodNotAllowed = true
	// Routes match the path as sent: /v1%2Fuser-detail is not /v1/user-detail (a proxy
	// in front that filters on the raw path must not be walked around), and a trailing
	// slash gets a JSON 404 rather than Gin's HTML redirect.
	e.UseRawPath = true
	e.RedirectTrailingSlash = false
	// Gin trusts every proxy unless told otherwise; nil trusts none, so X-Forwarded-For
	// is ignored unless the peer is listed.
	proxies := cfg.TrustedProxies
	if len(proxies) == 0 {
		proxies = nil
	}
	if err := e.SetTrustedProxies(proxies); err != nil {
		return fmt.Errorf("server.trusted_proxies: %w", err)
	}
	// Only X-Forwarded-For: Gin also honours X-Real-IP by default, and a proxy that
	// appends to X-Forwarded-For but passes a client's own X-Real-IP through would let
	// that client choose its address (allowed_clients, rate_limit, logs).
	e.RemoteIPHeaders = []string{"X-Forwarded-For"}
	e.Use(s.recovery)
	e.GET(cfg.UserDetailPath, s.api(rt, routeUserDetail, s.userDetail))
	if rt.Exchange != nil && cfg.ExchangePath != nil && *cfg.ExchangePath != "" {
		e.POST(*cfg.ExchangePath, s.api(rt, routeExchange, s.exchange))
		e.OPTIONS(*cfg.ExchangePath, s.preflight(rt))
	}
	// The embed script for the company's page (Spotnana's iframe integration): public,
	// static, served on the main listener beside the exchange route it calls.
	script := gin.WrapH(web.Handler())
	for _, p := range []string{web.ScriptPath, web.DeclarationsPath} {
		e.GET(p, script)
		e.HEAD(p, script)
	}
	if rt.JWKS != nil && rt.Config.Spotnana != nil {
		e.GET(rt.Config.Spotnana.Assertion.JWKSPath, gin.WrapH(rt.JWKS))
	}
	e.NoRoute(func(c *gin.Context) {
		s.errorHeaders(c.Writer.Header(), c.Request, rt)
		writeJSONError(c, http.StatusNotFound, "not_found", "no such route")
	})
	e.NoMethod(func(c *gin.Context) {
		s.errorHeaders(c.Writer.Header(), c.Request, rt)
		writeJSONError(c, http.StatusMethodNotAllowed, "invalid_request", "method not allowed")
	})
	rt.engine = e
	return nil
}

// errorHeaders gives an answer made outside the API handlers (unknown route or method, a
// framing fault) what every API answer carries: X-Request-Id, and on the exchange route
// Vary: Origin and, for a listed origin, the CORS headers, so that a page's script can
// read the status instead of seeing a network failure.
func (s *Server) errorHeaders(h http.Header, r *http.Request, rt *Runtime) {
	h["X-Request-Id"] = []string{requestID(r)}
	cfg := rt.Config.Server
	if rt.Exchange != nil && cfg.ExchangePath != nil && r.URL.Path == *cfg.ExchangePath {
		rt.cors.exchangeHeaders(h, r.Header.Get("Origin"))
	}
}

// request carries what one API request's handlers and log line need.
type request struct {
	ctx      context.Context // the request's context with request_timeout applied
	id       string
	rt       *Runtime
	fp       string // token fingerprint: first 8 hex digits of its SHA-256
	provider string
	reason   error
	cached   bool
	// email is the address mapped (and refused by allowed_domains, or sent to
	// Spotnana), shown on 403 and 502 lines so that a refusal can be diagnosed.
	email string
}

// api wraps an API handler with what every API request gets: a request id, the
// deadline, the client checks, and one log line.
func (s *Server) api(rt *Runtime, route string, h func(*gin.Context, *request)) gin.HandlerFunc {
	return func(c *gin.Context) {
		start := time.Now()
		req := request{rt: rt, id: requestID(c.Request)}
		// Set directly with canonical keys: c.Header canonicalises and allocates a slice
		// per call, and this runs on every request.
		hdr := c.Writer.Header()
		hdr["X-Request-Id"] = []string{req.id}
		hdr["Cache-Control"] = noStore
		// The deadline travels in req.ctx rather than in a copy of the *http.Request, which
		// would cost an allocation of the whole request on every call. User-detail leaves
		// it to the chain, which starts it only when a provider must be asked (a cache hit
		// then needs no timer); the exchange always calls out, so it gets it here.
		ctx := c.Request.Context()
		if route != routeUserDetail {
			var cancel context.CancelFunc
			ctx, cancel = context.WithTimeout(ctx, rt.Config.Server.RequestTimeout)
			defer cancel()
		}
		req.ctx = ctx
		if route == routeExchange {
			s.corsAnswer(c, rt)
		}

		switch {
		case route == routeUserDetail && len(rt.allowed) > 0 && !clientAllowed(rt.allowed, c.ClientIP()):
			writeJSONError(c, http.StatusForbidden, "access_denied", "")
			req.reason = errors.New("client address not in allowed_clients")
		case rt.limiter != nil && !rt.limiter.allow(c.ClientIP()):
			c.Header("Retry-After", strconv.Itoa(rt.limiter.retryAfter()))
			writeJSONError(c, http.StatusTooManyRequests, "rate_limited", "too many requests")
		default:
			h(c, &req)
		}

		end := time.Now()
		d := end.Sub(start)
		status := c.Writer.Status()
		if s.opts.Observer != nil {
			s.opts.Observer.Request(route, status, d)
		}
		level := slog.LevelInfo
		if status >= 500 {
			level = slog.LevelWarn
		}
		if !s.log.Enabled(ctx, level) {
			return
		}
		client := c.ClientIP()
		if al := s.opts.AccessLog; al != nil && level == slog.LevelInfo && req.reason == nil {
			if al.write(&accessLine{t: end, id: req.id, route: route, status: status, latency: d,
				client: client, fp: req.fp, provider: req.provider, cached: req.cached}) {
				return
			}
		}
		ap := attrPool.Get().(*[]slog.Attr)
		attrs := append(*ap,
			slog.String("request_id", req.id),
			slog.String("route", route),
			slog.Int("status", status),
			slog.Float64("latency_ms", latencyMS(d)),
			slog.String("client", client),
		)
		if req.fp != "" {
			attrs = append(attrs, slog.String("token_fp", req.fp))
		}
		if req.provider != "" {
			attrs = append(attrs, slog.String("provider", req.provider), slog.Bool("cached", req.cached))
		}
		if req.reason != nil {
			attrs = append(attrs, slog.String("reason", req.reason.Error()))
		}
		if req.email != "" && (status == http.StatusForbidden || status == http.StatusBadGateway) {
			attrs = append(attrs, slog.String("email", shownEmail(req.email, rt.Config.Log.RedactEmails)))
		}
		s.log.LogAttrs(context.Background(), level, "request", attrs...)
		clear(attrs) // no request data kept alive in the pool
		*ap = attrs[:0]
		attrPool.Put(ap)
	}
}

// attrPool recycles the request log line's attribute slices: slog copies the attributes
// into its record, so the slice is free again once LogAttrs returns.
var attrPool = sync.Pool{New: func() any { s := make([]slog.Attr, 0, 9); return &s }}

func clientAllowed(allowed []*net.IPNet, addr string) bool {
	if len(allowed) == 0 {
		return true
	}
	ip := net.ParseIP(addr)
	if ip == nil {
		return false
	}
	for _, n := range allowed {
		if n.Contains(ip) {
			return true
		}
	}
	return false
}

// authenticate parses the bearer token and resolves it: from the exchange pin when one
// holds it, else through the chain and mapping.
func (s *Server) authenticate(c *gin.Context, req *request) (*Resolution, string, [32]byte, bool) {
	token, err := ParseBearer(c.Request.Header.Values("Authorization"))
	if err != nil {
		s.fail(c, req, err)
		return nil, "", [32]byte{}, false
	}
	sum := providers.TokenSum(token)
	req.fp = providers.Fingerprint(sum)
	res, ok := s.pins.Get(sum)
	if !ok {
		res, err = req.rt.Bridge.Resolve(req.ctx, token, sum)
		if err != nil {
			s.fail(c, req, err)
			return nil, "", sum, false
		}
	}
	req.provider = res.Provider
	req.cached = res.Cached
	return res, token, sum, true
}

func (s *Server) userDetail(c *gin.Context, req *request) {
	res, _, _, ok := s.authenticate(c, req)
	if !ok {
		return
	}
	writeBody(c, http.StatusOK, res.Body)
}

// Header values shared by every response; net/http and Gin only read them.
var (
	noStore         = []string{"no-store"}
	jsonContentType = []string{"application/json"}
)

// writeBody answers a JSON body. It is c.Data without the per-call allocation of
// the Content-Type value, on the hot path of user-detail.
func writeBody(c *gin.Context, status int, body []byte) {
	c.Writer.Header()["Content-Type"] = jsonContentType
	c.Status(status)
	_, _ = c.Writer.Write(body)
}

func (s *Server) exchange(c *gin.Context, req *request) {
	res, token, sum, ok := s.authenticate(c, req)
	if !ok {
		s.observeExchange(req.reason)
		return
	}
	// Spotnana calls user-detail back while this exchange is in flight; the pin answers
	// it from the identity validated here, whatever the cache settings.
	req.email = res.Email
	body, err := s.exchangePinned(req, res, token, sum)
	if err != nil {
		s.fail(c, req, err)
		s.observeExchange(err)
		return
	}
	s.observeExchange(nil)
	c.Data(http.StatusOK, "application/json", body)
}

// exchangePinned calls the exchange with res pinned for sum; the pin goes when the call
// returns or panics, so that no pin outlives its exchange (a stale one would answer for
// the token whatever its expiry or revocation).
func (s *Server) exchangePinned(req *request, res *Resolution, token string, sum [32]byte) ([]byte, error) {
	release := s.pins.Pin(sum, res)
	defer release()
	return req.rt.Exchange(req.ctx, res, token)
}

func (s *Server) observeExchange(err error) {
	if s.opts.Observer != nil {
		s.opts.Observer.Exchange(exchangeOutcome(err))
	}
}

// Fixed error descriptions: details go to the log with the request id, never to the
// caller.
const (
	descInvalid      = "the access token is invalid"
	descExpired      = "the access token has expired"
	descNotYetValid  = "the access token is not yet valid"
	descScope        = "the access token lacks a required scope"
	descNoEmail      = "no email address could be found for this user"
	descDomain       = "the user's email domain is not allowed"
	descDenied       = "the user is not allowed"
	descUnavailable  = "the identity backend is unavailable"
	descMalformed    = "malformed Authorization header"
	descNotForClient = "this token's client may not be exchanged"
)

// retryAfterSeconds is what 503 answers suggest; short, since most outages are blips.
const retryAfterSeconds = "5"

// ErrClientNotAllowed refuses an exchange for a token whose client is not listed in
// spotnana.allowed_token_clients.
var ErrClientNotAllowed = errors.New("token client not allowed to exchange")

// fail is the one place where errors become HTTP answers.
func (s *Server) fail(c *gin.Context, req *request, err error) {
	req.reason = err
	if de := (*mapping.DomainError)(nil); errors.As(err, &de) {
		req.email = de.Email
	}
	realm := req.rt.Config.Server.Realm
	switch {
	case errors.Is(err, errNoCredentials):
		c.Header("WWW-Authenticate", `Bearer realm="`+realm+`"`)
		writeJSONError(c, http.StatusUnauthorized, "unauthorized", "missing bearer token")
	case errors.Is(err, errMalformed):
		c.Header("WWW-Authenticate", `Bearer realm="`+realm+`", error="invalid_request", error_description="`+descMalformed+`"`)
		writeJSONError(c, http.StatusBadRequest, "invalid_request", descMalformed)
	case errors.Is(err, ErrClientNotAllowed):
		writeJSONError(c, http.StatusForbidden, "access_denied", descNotForClient)
	case s.failExchange(c, err):
		// Spotnana's own answers (refused 502, unavailable 503).
	default:
		s.failClass(c, realm, err)
	}
}

// failClass answers an error by its class (providers.Classify), the one classification
// the metrics, the chain and `idbridge resolve` share.
func (s *Server) failClass(c *gin.Context, realm string, err error) {
	switch providers.Classify(err) {
	case providers.InsufficientScope:
		scope := ""
		var scopeErr *providers.ScopeError
		if errors.As(err, &scopeErr) {
			scope = strings.Join(scopeErr.Required, " ")
		}
		c.Header("WWW-Authenticate", `Bearer realm="`+realm+`", error="insufficient_scope", scope="`+scope+`"`)
		writeJSONError(c, http.StatusForbidden, "insufficient_scope", descScope)
	case providers.Denied:
		desc := descDenied
		switch {
		case errors.Is(err, mapping.ErrDomainNotAllowed):
			desc = descDomain
		case errors.Is(err, mapping.ErrNoEmail):
			desc = descNoEmail
		}
		writeJSONError(c, http.StatusForbidden, "access_denied", desc)
	case providers.Invalid, providers.NotMine:
		desc := descInvalid
		switch {
		case errors.Is(err, providers.ErrExpired):
			desc = descExpired
		case errors.Is(err, providers.ErrNotYetValid):
			desc = descNotYetValid
		}
		c.Header("WWW-Authenticate", `Bearer realm="`+realm+`", error="invalid_token", error_description="`+desc+`"`)
		writeJSONError(c, http.StatusUnauthorized, "invalid_token", desc)
	case providers.Unavailable:
		c.Header("Retry-After", retryAfterSeconds)
		writeJSONError(c, http.StatusServiceUnavailable, "temporarily_unavailable", descUnavailable)
	default:
		// Reaching here is a bug, never the client's doing; the log has the detail.
		writeJSONError(c, http.StatusInternalServerError, "server_error", "internal error")
	}
}

type errorBody struct {
	Error       string `json:"error"`
	Description string `json:"error_description,omitempty"`
}

func writeJSONError(c *gin.Context, status int, code, desc string) {
	b, _ := json.Marshal(errorBody{Error: code, Description: desc})
	c.Header("Cache-Control", "no-store")
	c.Data(status, "application/json", append(b, '\n'))
}

// recovery turns a panic into a 500 without echoing the panic value, which could carry
// request data.
func (s *Server) recovery(c *gin.Context) {
	defer func() {
		if v := recover(); v != nil {
			if v == http.ErrAbortHandler {
				panic(v)
			}
			s.log.Error("panic serving request", "type", fmt.Sprintf("%T", v), "route", c.FullPath())
			if !c.Writer.Written() {
				writeJSONError(c, http.StatusInternalServerError, "server_error", "internal error")
			}
			c.Abort()
		}
	}()
	c.Next()
}

// shownEmail is an email as a log line shows it: whole, or with its local part masked
// when log.redact_emails is set.
func shownEmail(email string, redact bool) string {
	if !redact {
		return email
	}
	if at := strings.LastIndexByte(email, '@'); at >= 0 {
		return "***" + email[at:]
	}
	return "***"
}
