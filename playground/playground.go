// Package playground serves the mapping playground: a web page on the admin listener
// where an integrator pastes an identity document or a token, edits the mapping rules
// in YAML, and sees the email and the trace of each rule update as they type, with the
// traps of `idbridge map --suggest` flagged. A "resolve" button runs a token through the
// running bridge's chain and shows each provider's verdict and the document it produced.
//
// The page is built for a place where tokens are pasted: every asset is embedded (no
// CDN, no font, no external request), the Content-Security-Policy allows only the
// page's own script, style and API (script-src 'self', no inline script, no eval),
// framing is refused, and nothing is stored: no cookie, no localStorage, no log line
// with the input. The API answers only same-origin JSON POSTs, so another site open in
// the same browser cannot drive it.
package playground

import (
	"context"
	"embed"
	"encoding/json"
	"io"
	"io/fs"
	"net/http"
	"net/url"
	"strings"

	"github.com/idbridge/idbridge/mapping"
)

//go:embed assets
var assets embed.FS

// Path is where the page is served; its API lives below it.
const Path = "/playground"

// CSP is the Content-Security-Policy of every playground answer.
const CSP = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; " +
	"connect-src 'self'; form-action 'none'; frame-ancestors 'none'; base-uri 'none'"

// Compiled is a mapping section compiled by the host: the rules, or the errors and
// warnings, each one line ("mapping.email[0].path: …").
type Compiled struct {
	Rules    *mapping.Rules
	Errors   []string
	Warnings []string
}

// Verdict is one provider's answer to a token, in chain order.
type Verdict struct {
	Provider string `json:"provider"`
	Outcome  string `json:"outcome"` // accepted, not_mine, invalid, unavailable, denied
}

// Resolution is the running chain's answer to a token.
type Resolution struct {
	Verdicts []Verdict `json:"verdicts"`
	Provider string    `json:"provider,omitempty"` // the provider that accepted it
	// Document is the accepted identity document, enrichment steps (lookup, userinfo)
	// merged in under their into keys.
	Document json.RawMessage `json:"document,omitempty"`
	Email    string          `json:"email,omitempty"`
	Trace    string          `json:"trace,omitempty"`
	Refusal  string          `json:"refusal,omitempty"` // the chain's or the mapping's refusal
}

// Options connect the page to the running bridge.
type Options struct {
	// Compile compiles the mapping section written in the page (YAML: email,
	// allowed_domains, rewrite_domains), exactly as the config loader would. Required.
	Compile func(yamlText []byte) Compiled
	// Rules is the mapping the page starts with: the running config's top-level mapping.
	Rules func() string
	// Resolve runs a token through the running chain; nil hides the resolve button.
	Resolve func(ctx context.Context, token string) (Resolution, error)
}

// maxBody bounds an API request: a document or token and the rules.
const maxBody = mapping.MaxInput + 64<<10

// New returns the handler for Path and everything below it.
func New(o Options) http.Handler {
	static, _ := fs.Sub(assets, "assets")
	files := http.FileServer(http.FS(static))
	mux := http.NewServeMux()
	mux.HandleFunc("GET "+Path, func(w http.ResponseWriter, r *http.Request) {
		secure(w)
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		page, _ := assets.ReadFile("assets/index.html")
		_, _ = w.Write(page)
	})
	mux.Handle("GET "+Path+"/static/", http.StripPrefix(Path+"/static/", securing(files)))
	mux.HandleFunc("GET "+Path+"/api/config", func(w http.ResponseWriter, r *http.Request) {
		secure(w)
		rules := ""
		if o.Rules != nil {
			rules = o.Rules()
		}
		writeJSON(w, http.StatusOK, map[string]any{"rules": rules, "resolve": o.Resolve != nil})
	})
	mux.HandleFunc("POST "+Path+"/api/map", func(w http.ResponseWriter, r *http.Request) {
		var req struct{ Input, Rules string }
		if !readJSON(w, r, &req) {
			return
		}
		writeJSON(w, http.StatusOK, evaluate(o.Compile, req.Input, req.Rules))
	})
	mux.HandleFunc("POST "+Path+"/api/resolve", func(w http.ResponseWriter, r *http.Request) {
		var req struct{ Token string }
		if !readJSON(w, r, &req) {
			return
		}
		if o.Resolve == nil {
			writeJSON(w, http.StatusNotFound, map[string]string{"error": "resolve is not available here"})
			return
		}
		tok := strings.TrimSpace(req.Token)
		if len(tok) > 7 && strings.EqualFold(tok[:7], "bearer ") {
			tok = strings.TrimSpace(tok[7:])
		}
		if tok == "" {
			writeJSON(w, http.StatusBadRequest, map[string]string{"error": "paste a token first"})
			return
		}
		res, err := o.Resolve(r.Context(), tok)
		if err != nil {
			writeJSON(w, http.StatusBadGateway, map[string]string{"error": err.Error()})
			return
		}
		writeJSON(w, http.StatusOK, res)
	})
	return mux
}

// Result is the answer of the map API.
type Result struct {
	FromJWT     bool                 `json:"from_jwt"` // the document is an UNVERIFIED token payload
	Header      json.RawMessage      `json:"header,omitempty"`
	Document    json.RawMessage      `json:"document,omitempty"`
	InputError  string               `json:"input_error,omitempty"`
	RuleErrors  []string             `json:"rule_errors,omitempty"`
	Warnings    []string             `json:"warnings,omitempty"`
	Email       string               `json:"email,omitempty"`
	Refusal     string               `json:"refusal,omitempty"`
	Trace       string               `json:"trace,omitempty"`
	Suggestions []mapping.Suggestion `json:"suggestions,omitempty"`
}

func evaluate(compile func([]byte) Compiled, input, rules string) Result {
	var res Result
	c := compile([]byte(rules))
	res.RuleErrors, res.Warnings = c.Errors, c.Warnings
	if strings.TrimSpace(input) == "" {
		return res
	}
	in, err := mapping.ParseInput([]byte(input))
	if err != nil {
		res.InputError = err.Error()
		return res
	}
	res.FromJWT, res.Document = in.FromJWT, in.Document
	if in.FromJWT {
		res.Header = in.Header
	}
	res.Suggestions = mapping.Suggest(in.Document)
	if c.Rules == nil {
		return res
	}
	email, tr, err := c.Rules.Trace(in.Document)
	res.Trace = tr.String()
	if err != nil {
		res.Refusal = err.Error()
	} else {
		res.Email = email
	}
	return res
}

// secure sets the headers every playground answer carries.
func secure(w http.ResponseWriter) {
	h := w.Header()
	h.Set("Content-Security-Policy", CSP)
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("X-Frame-Options", "DENY")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("Cache-Control", "no-store")
	h.Set("Cross-Origin-Opener-Policy", "same-origin")
	h.Set("Cross-Origin-Resource-Policy", "same-origin")
}

func securing(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		secure(w)
		h.ServeHTTP(w, r)
	})
}

// readJSON reads a same-origin JSON request. Requiring application/json makes a
// cross-site request need a CORS preflight, which this handler never grants; an Origin
// header, when sent, must be this host.
func readJSON(w http.ResponseWriter, r *http.Request, out any) bool {
	secure(w)
	if ct := r.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		writeJSON(w, http.StatusUnsupportedMediaType, map[string]string{"error": "send application/json"})
		return false
	}
	if o := r.Header.Get("Origin"); o != "" {
		if u, err := url.Parse(o); err != nil || u.Host != r.Host {
			writeJSON(w, http.StatusForbidden, map[string]string{"error": "cross-origin requests are refused"})
			return false
		}
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, maxBody+1))
	if err != nil {
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": "cannot read the request"})
		return false
	}
	if len(body) > maxBody {
		writeJSON(w, http.StatusRequestEntityTooLarge, map[string]string{"error": "input too large"})
		return false
	}
	if err := json.Unmarshal(body, out); err != nil {
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": "not a JSON request"})
		return false
	}
	return true
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(true)
	_ = enc.Encode(v) // the client went away: nothing to do
}
