package spotnana

import (
	"embed"
	"encoding/json"
	"errors"
	"html"
	"io"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/lestrrat-go/jwx/v3/jwa"
	"github.com/lestrrat-go/jwx/v3/jwt"

	"github.com/idbridge/idbridge/jsonlimit"
)

// Routes of the sandbox's embed origin (SandboxConfig.EmbedListen).
const (
	SandboxEmbedPath  = "/embed"
	SandboxStatsPath  = "/stats"
	sandboxEmbedJS    = "/embed/embed.js"
	sandboxEmbedCSS   = "/embed/embed.css"
	sandboxSession    = "/embed/session"
	sandboxEmbedEvent = "/embed/event"

	// DefaultEmbedAllowedOrigin is the page origin Spotnana allows by default in
	// development.
	DefaultEmbedAllowedOrigin = "http://localhost:3000"
)

//go:embed sandboxweb
var sandboxWeb embed.FS

// embedPage is the iframe's page; its one placeholder sits inside a double-quoted
// attribute, where html.EscapeString is the right escaping. html/template is not used:
// it reaches methods by name through reflection, which makes the linker keep every
// exported method of every type in the binary (≈13 MB of text, ≈5 MB more RSS in serve).
//
//go:embed sandboxweb/embed.html
var embedPage string

// EmbedStats counts what the sandbox's iframe saw; GET /stats answers it as JSON.
type EmbedStats struct {
	Pages        int64 `json:"pages"`         // GET /embed answered
	Requests     int64 `json:"requests"`      // TOKEN_EXCHANGE_REQUEST posted to a parent
	Responses    int64 `json:"responses"`     // TOKEN_EXCHANGE_RESPONSE accepted and checked
	SignedIn     int64 `json:"signed_in"`     // responses whose access token verified
	InvalidToken int64 `json:"invalid_token"` // responses answered TOKEN_EXCHANGE_ERROR INVALID_TOKEN
	// Ignored messages, by reason: source (not the parent window), origin (not an
	// allowed origin), malformed (not a TOKEN_EXCHANGE_RESPONSE with an accessToken).
	Ignored   map[string]int64 `json:"ignored"`
	LastEmail string           `json:"last_email,omitempty"`
}

// embedCounters are EmbedStats, updated concurrently.
type embedCounters struct {
	pages, requests, responses, signedIn, invalid  atomic.Int64
	ignoredSource, ignoredOrigin, ignoredMalformed atomic.Int64
	mu                                             sync.Mutex
	lastEmail                                      string
}

// Embed is the sandbox's stand-in for Spotnana's iframe, served on its own origin: GET
// /embed behaves as Spotnana documents its iframe (see sandboxweb/embed.js), POST
// /embed/session checks an access token against the sandbox's own issuer, and GET /stats
// counts what the iframe received, for tests.
//
// Every page carries a Content-Security-Policy whose frame-ancestors lists the allowed
// origins, so no other page can even frame it.
type Embed struct {
	s       *Sandbox
	allowed []string
	csp     string
	page    []byte
	mux     *http.ServeMux
	n       embedCounters
}

// Embed returns the handler of the sandbox's embed origin; allowed are the page origins
// it accepts TOKEN_EXCHANGE_RESPONSE from (already checked with configs.CheckOrigin);
// none means DefaultEmbedAllowedOrigin.
func (s *Sandbox) Embed(allowed []string) *Embed {
	if len(allowed) == 0 {
		allowed = []string{DefaultEmbedAllowedOrigin}
	}
	e := &Embed{s: s, allowed: allowed}
	e.csp = "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self' data:; " +
		"base-uri 'none'; form-action 'none'; frame-ancestors " + strings.Join(allowed, " ")
	list, _ := json.Marshal(allowed)
	e.page = []byte(strings.Replace(embedPage, "{{.AllowedOrigins}}", html.EscapeString(string(list)), 1))
	e.mux = http.NewServeMux()
	e.mux.HandleFunc("GET "+SandboxEmbedPath, e.serveEmbed)
	e.mux.HandleFunc("GET "+sandboxEmbedJS, e.asset("sandboxweb/embed.js", "text/javascript; charset=utf-8"))
	e.mux.HandleFunc("GET "+sandboxEmbedCSS, e.asset("sandboxweb/embed.css", "text/css; charset=utf-8"))
	e.mux.HandleFunc("POST "+sandboxSession, e.session)
	e.mux.HandleFunc("POST "+sandboxEmbedEvent, e.event)
	e.mux.HandleFunc("GET "+SandboxStatsPath, e.stats)
	return e
}

// AllowedOrigins returns the page origins the iframe accepts answers from.
func (e *Embed) AllowedOrigins() []string { return append([]string(nil), e.allowed...) }

// ServeHTTP serves the embed origin.
func (e *Embed) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("Content-Security-Policy", e.csp)
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "no-referrer")
	e.mux.ServeHTTP(w, r)
}

// Stats returns the counters.
func (e *Embed) Stats() EmbedStats {
	e.n.mu.Lock()
	last := e.n.lastEmail
	e.n.mu.Unlock()
	return EmbedStats{
		Pages: e.n.pages.Load(), Requests: e.n.requests.Load(), Responses: e.n.responses.Load(),
		SignedIn: e.n.signedIn.Load(), InvalidToken: e.n.invalid.Load(),
		Ignored: map[string]int64{
			"source":    e.n.ignoredSource.Load(),
			"origin":    e.n.ignoredOrigin.Load(),
			"malformed": e.n.ignoredMalformed.Load(),
		},
		LastEmail: last,
	}
}

func (e *Embed) serveEmbed(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path != SandboxEmbedPath {
		http.NotFound(w, r)
		return
	}
	e.n.pages.Add(1)
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	_, _ = w.Write(e.page)
}

func (e *Embed) asset(name, contentType string) http.HandlerFunc {
	body, err := sandboxWeb.ReadFile(name)
	if err != nil {
		panic(err)
	}
	return func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", contentType)
		w.Header().Set("Cache-Control", "no-cache")
		_, _ = w.Write(body)
	}
}

// maxEmbedBody bounds the iframe's JSON posts (an access token is a few KiB at most).
const maxEmbedBody = 16 << 10

// readJSON decodes a small JSON body sent by the iframe's own script.
func readJSON(w http.ResponseWriter, r *http.Request, v any) bool {
	if ct := r.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		http.Error(w, "want application/json", http.StatusUnsupportedMediaType)
		return false
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxEmbedBody))
	if err != nil || jsonlimit.Check(body) != nil || json.Unmarshal(body, v) != nil {
		http.Error(w, "malformed body", http.StatusBadRequest)
		return false
	}
	return true
}

// session checks the access token the page handed to the iframe, as Spotnana does
// with its own tokens: signed by the sandbox's key, iss idbridge-sandbox, not expired,
// and carrying an email. The token is never logged.
func (e *Embed) session(w http.ResponseWriter, r *http.Request) {
	var in struct {
		AccessToken string `json:"accessToken"`
	}
	if !readJSON(w, r, &in) {
		return
	}
	e.n.responses.Add(1)
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	tok, err := jwt.Parse([]byte(in.AccessToken),
		jwt.WithKey(jwa.RS256(), e.s.pub),
		jwt.WithValidate(true),
		jwt.WithIssuer(SandboxIssuer),
		jwt.WithClock(jwt.ClockFunc(e.s.cfg.Now)))
	var email string
	if err == nil {
		if gerr := tok.Get("email", &email); gerr != nil || email == "" {
			err = gerr
			if err == nil {
				err = errNoEmailClaim
			}
		}
	}
	if err != nil {
		e.n.invalid.Add(1)
		e.s.log.Info("sandbox embed: access token refused", "reason", err.Error())
		w.WriteHeader(http.StatusUnauthorized)
		_ = json.NewEncoder(w).Encode(map[string]string{"errorCode": "INVALID_TOKEN", "errorMessage": "the access token is not valid for this Spotnana sandbox"})
		return
	}
	e.n.signedIn.Add(1)
	e.n.mu.Lock()
	e.n.lastEmail = email
	e.n.mu.Unlock()
	exp, _ := tok.Expiration()
	e.s.log.Info("sandbox embed: signed in", "email", email)
	_ = json.NewEncoder(w).Encode(map[string]any{"email": email, "exp": exp.Unix()})
}

var errNoEmailClaim = errors.New("the access token has no email claim")

// event counts what the iframe's script reports; only the fixed kinds are accepted.
func (e *Embed) event(w http.ResponseWriter, r *http.Request) {
	var in struct {
		Kind string `json:"kind"`
	}
	if !readJSON(w, r, &in) {
		return
	}
	var c *atomic.Int64
	switch in.Kind {
	case "request":
		c = &e.n.requests
	case "ignored_source":
		c = &e.n.ignoredSource
	case "ignored_origin":
		c = &e.n.ignoredOrigin
	case "ignored_malformed":
		c = &e.n.ignoredMalformed
	default:
		http.Error(w, "unknown kind", http.StatusBadRequest)
		return
	}
	c.Add(1)
	w.WriteHeader(http.StatusNoContent)
}

func (e *Embed) stats(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	_ = json.NewEncoder(w).Encode(e.Stats())
}
