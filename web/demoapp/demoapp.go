// Package demoapp is the "company app" page of `idbridge demo`: a user signs in (as
// alice or bob, who have Spotnana profiles, carol, who has none, or with an expired
// token, all minted by the demo issuer), and the page mounts
// Spotnana's iframe (the sandbox's) with idbridge's embed script, showing the whole
// browser half of the integration and its failures.
//
// It serves with a strict Content-Security-Policy: scripts only from itself and the
// bridge, the import map pinned by its hash and the embed script by its SRI hash,
// frames only from the embed origin.
package demoapp

import (
	"crypto/sha256"
	"embed"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"html"
	"io"
	"net/http"
	"net/url"
	"strings"

	"github.com/idbridge/idbridge/jsonlimit"
)

// Users the page offers: the key is what the page posts, the value its button's label.
var Users = []struct{ ID, Label, Note string }{
	{"alice", "alice@example.com", "has a Spotnana profile"},
	{"bob", "bob@example.com", "has a Spotnana profile"},
	{"carol", "carol@example.com", "unknown to Spotnana"},
	{"expired", "an expired token", "alice's, one hour old"},
}

// Config wires the page to the demo's other parts.
type Config struct {
	// BridgeURL is idbridge's main listener, e.g. http://127.0.0.1:8080.
	BridgeURL string
	// ExchangePath and ScriptPath are idbridge's routes.
	ExchangePath, ScriptPath string
	// ScriptSRI is the embed script's integrity value (web.SRI()).
	ScriptSRI string
	// EmbedURL is Spotnana's iframe page (the sandbox's /embed).
	EmbedURL string
	// OrgID is passed to the iframe as orgId.
	OrgID string
	// Mint returns the access token of a user of Users, as the company's login would.
	Mint func(user string) (string, error)
}

//go:embed static
var static embed.FS

// App is the page's handler.
type App struct {
	cfg   Config
	page  []byte
	csp   string
	files map[string][]byte
}

// New renders the page for cfg.
func New(cfg Config) (*App, error) {
	bridge, err := url.Parse(cfg.BridgeURL)
	if err != nil || bridge.Host == "" {
		return nil, fmt.Errorf("demoapp: bad bridge URL %q", cfg.BridgeURL)
	}
	embedURL, err := url.Parse(cfg.EmbedURL)
	if err != nil || embedURL.Host == "" {
		return nil, fmt.Errorf("demoapp: bad embed URL %q", cfg.EmbedURL)
	}
	bridgeOrigin := bridge.Scheme + "://" + bridge.Host
	embedOrigin := embedURL.Scheme + "://" + embedURL.Host
	script := bridgeOrigin + cfg.ScriptPath
	// json.Marshal escapes <, > and &, so nothing in these values can end the script
	// element.
	importMap, _ := json.Marshal(map[string]any{
		"imports":   map[string]string{"idbridge/spotnana": script},
		"integrity": map[string]string{script: cfg.ScriptSRI},
	})
	sum := sha256.Sum256(importMap)
	conf, _ := json.Marshal(map[string]string{
		"embedUrl":    cfg.EmbedURL,
		"exchangeUrl": bridgeOrigin + cfg.ExchangePath,
		"orgId":       cfg.OrgID,
	})
	a := &App{cfg: cfg, files: map[string][]byte{}}
	a.csp = strings.Join([]string{
		"default-src 'none'",
		"script-src 'self' " + bridgeOrigin + " 'sha256-" + base64.StdEncoding.EncodeToString(sum[:]) + "'",
		"connect-src 'self' " + bridgeOrigin,
		"frame-src " + embedOrigin,
		"style-src 'self'",
		"img-src 'self' data:",
		"base-uri 'none'",
		"form-action 'none'",
		"frame-ancestors 'none'",
	}, "; ")
	var buttons strings.Builder
	for _, u := range Users {
		fmt.Fprintf(&buttons, `<button type="button" data-user="%s" data-label="%s">Sign in as %s<small>%s</small></button>`+"\n",
			html.EscapeString(u.ID), html.EscapeString(u.Label), html.EscapeString(u.Label), html.EscapeString(u.Note))
	}
	a.page = []byte(`<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>Example Corp · Travel (idbridge demo)</title>
<meta name="demo-config" content="` + html.EscapeString(string(conf)) + `">
<link rel="icon" href="data:,">
<link rel="stylesheet" href="/app.css">
<script type="importmap">` + string(importMap) + `</script>
<script type="module" src="/app.js"></script>
</head>
<body>
<header><b>Example Corp</b><span>Travel · the company's page, embedding Spotnana through idbridge</span></header>
<div class="layout">
<aside>
<h2>Sign in to Example Corp</h2>
` + buttons.String() + `<div id="status">Choose a user. The page then mounts Spotnana's iframe, which asks for tokens; the page gets them from idbridge (` + html.EscapeString(bridgeOrigin+cfg.ExchangePath) + `).</div>
</aside>
<div class="frame" id="spotnana"><p class="empty">Spotnana appears here once a user signs in.</p></div>
</div>
<footer>Embed script: ` + html.EscapeString(script) + ` (` + html.EscapeString(cfg.ScriptSRI) + `) · Spotnana iframe: ` + html.EscapeString(cfg.EmbedURL) + `</footer>
</body>
</html>
`)
	for _, name := range []string{"app.js", "app.css"} {
		b, err := static.ReadFile("static/" + name)
		if err != nil {
			return nil, err
		}
		a.files["/"+name] = b
	}
	return a, nil
}

// maxTokenRequest bounds the sign-in request body.
const maxTokenRequest = 1 << 10

// ServeHTTP serves the page, its script and style, and POST /demo/token.
func (a *App) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("Content-Security-Policy", a.csp)
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "no-referrer")
	switch {
	case r.URL.Path == "/" && r.Method == http.MethodGet:
		h.Set("Content-Type", "text/html; charset=utf-8")
		h.Set("Cache-Control", "no-store")
		_, _ = w.Write(a.page)
	case a.files[r.URL.Path] != nil && r.Method == http.MethodGet:
		ct := "text/css; charset=utf-8"
		if strings.HasSuffix(r.URL.Path, ".js") {
			ct = "text/javascript; charset=utf-8"
		}
		h.Set("Content-Type", ct)
		h.Set("Cache-Control", "no-cache")
		_, _ = w.Write(a.files[r.URL.Path])
	case r.URL.Path == "/demo/token" && r.Method == http.MethodPost:
		a.token(w, r)
	default:
		http.NotFound(w, r)
	}
}

// token is the demo's stand-in for the company's login: it returns a user's access
// token in the body (never a URL). It answers only the page itself: a JSON body needs a
// CORS preflight from any other origin, and this route answers none.
func (a *App) token(w http.ResponseWriter, r *http.Request) {
	if !strings.HasPrefix(r.Header.Get("Content-Type"), "application/json") {
		http.Error(w, "want application/json", http.StatusUnsupportedMediaType)
		return
	}
	if site := r.Header.Get("Sec-Fetch-Site"); site != "" && site != "same-origin" {
		http.Error(w, "same-origin only", http.StatusForbidden)
		return
	}
	var in struct {
		User string `json:"user"`
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxTokenRequest))
	if err != nil || jsonlimit.Check(body) != nil || json.Unmarshal(body, &in) != nil {
		http.Error(w, "malformed body", http.StatusBadRequest)
		return
	}
	known := false
	for _, u := range Users {
		known = known || u.ID == in.User
	}
	if !known {
		http.Error(w, "unknown user", http.StatusBadRequest)
		return
	}
	tok, err := a.cfg.Mint(in.User)
	if err != nil {
		http.Error(w, "minting failed", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	_ = json.NewEncoder(w).Encode(map[string]string{"access_token": tok})
}
