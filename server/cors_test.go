package server

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/idbridge/idbridge/configs"
	"github.com/idbridge/idbridge/mapping"
	"github.com/idbridge/idbridge/providers"
	"github.com/idbridge/idbridge/spotnana"
	"github.com/idbridge/idbridge/web"
)

const (
	pageOrigin  = "https://app.example.com"
	otherOrigin = "https://evil.example.net"
)

// byToken answers by token: the token names the outcome under test.
type byToken struct{}

func (byToken) Authenticate(_ context.Context, token string) (providers.Identity, error) {
	switch token {
	case "expired":
		return providers.Identity{}, fmt.Errorf("test: %w: %w", providers.ErrInvalidToken, providers.ErrExpired)
	case "idp-down":
		return providers.Identity{}, fmt.Errorf("test: %w", providers.ErrUnavailable)
	case "no-email":
		return providers.Identity{Document: []byte(`{}`)}, nil
	}
	return providers.Identity{Document: []byte(`{"email":"` + token + `@example.com"}`)}, nil
}

// corsServer serves a runtime with server.cors listing pageOrigin, a rate limit, and an
// exchange whose outcome the user's email names.
func corsServer(t *testing.T, logs *bytes.Buffer) *Server {
	t.Helper()
	yaml := "server:\n  cors: {allowed_origins: [" + pageOrigin + "]}\n  rate_limit: {rps: 1000, burst: 1000}\n" +
		"providers:\n  - {name: any, type: fake}\nmapping:\n  email: [{path: email}]\n"
	cfg, errs := configs.Parse("test.yaml", []byte(yaml), func(string) (string, bool) { return "", false })
	if len(errs.Fatal()) > 0 {
		t.Fatal(errs.Fatal())
	}
	rules, merrs := mapping.Compile(mapping.Spec{Candidates: []mapping.Candidate{{Path: "email"}}})
	if len(merrs) > 0 {
		t.Fatal(merrs)
	}
	chain := providers.NewChain([]*providers.Instance{{Name: "any", Type: "fake", Provider: byToken{}}}, nil, nil, nil)
	rt := &Runtime{Config: cfg, Bridge: NewBridge(chain, rules, nil, "", nil)}
	rt.Exchange = func(_ context.Context, res *Resolution, _ string) ([]byte, error) {
		switch res.Email {
		case "bob@example.com":
			return nil, &spotnana.RefusedError{Status: 403, Code: spotnana.CodeUserNotFound}
		case "down@example.com":
			return nil, &spotnana.UnavailableError{Status: 503}
		}
		return []byte(`{"access_token":"a","token_type":"Bearer"}`), nil
	}
	s, err := New(rt, Options{Logger: slog.New(slog.NewJSONHandler(logs, nil))})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func send(s *Server, method, path string, headers ...string) *httptest.ResponseRecorder {
	req := httptest.NewRequest(method, path, nil)
	req.RemoteAddr = "192.0.2.1:1234"
	for _, h := range headers {
		k, v, _ := strings.Cut(h, ": ")
		req.Header.Add(k, v)
	}
	w := httptest.NewRecorder()
	s.ServeHTTP(w, req)
	return w
}

// TestCORSExchange: every answer of the exchange route to a listed origin carries the
// CORS headers, whatever its status, so that the page can read it; no answer ever
// carries Access-Control-Allow-Credentials.
func TestCORSExchange(t *testing.T) {
	var logs bytes.Buffer
	s := corsServer(t, &logs)
	for _, tc := range []struct {
		name   string
		token  string
		status int
	}{
		{"ok", "alice", 200},
		{"expired token", "expired", 401},
		{"no email", "no-email", 403},
		{"Spotnana has no profile", "bob", 502},
		{"Spotnana down", "down", 503},
		{"identity backend down", "idp-down", 503},
		{"no credentials", "", 401},
	} {
		t.Run(tc.name, func(t *testing.T) {
			hdrs := []string{"Origin: " + pageOrigin}
			if tc.token != "" {
				hdrs = append(hdrs, "Authorization: Bearer "+tc.token)
			}
			w := send(s, "POST", "/v1/token-exchange", hdrs...)
			if w.Code != tc.status {
				t.Fatalf("status %d, want %d: %s", w.Code, tc.status, w.Body)
			}
			wantCORS(t, w.Header(), pageOrigin)
			if got := w.Header().Get("Access-Control-Expose-Headers"); !strings.Contains(got, "Retry-After") || !strings.Contains(got, "WWW-Authenticate") {
				t.Errorf("Access-Control-Expose-Headers %q", got)
			}
		})
	}
	t.Run("malformed Authorization", func(t *testing.T) {
		w := send(s, "POST", "/v1/token-exchange", "Origin: "+pageOrigin, "Authorization: Basic YTpi")
		if w.Code != 400 {
			t.Fatalf("status %d, want 400", w.Code)
		}
		wantCORS(t, w.Header(), pageOrigin)
	})
	t.Run("rate limited", func(t *testing.T) {
		rt := s.Current()
		rt.limiter = newLimiter(0.001, 1, rt.limiter.now)
		send(s, "POST", "/v1/token-exchange", "Origin: "+pageOrigin, "Authorization: Bearer alice")
		w := send(s, "POST", "/v1/token-exchange", "Origin: "+pageOrigin, "Authorization: Bearer alice")
		if w.Code != 429 {
			t.Fatalf("status %d, want 429", w.Code)
		}
		wantCORS(t, w.Header(), pageOrigin)
	})
}

func wantCORS(t *testing.T, h http.Header, origin string) {
	t.Helper()
	if got := h.Values("Access-Control-Allow-Origin"); len(got) != 1 || got[0] != origin {
		t.Errorf("Access-Control-Allow-Origin %q, want %q", got, origin)
	}
	if !strings.Contains(h.Get("Vary"), "Origin") {
		t.Errorf("Vary %q lacks Origin", h.Get("Vary"))
	}
	if h.Get("Access-Control-Allow-Credentials") != "" {
		t.Errorf("Access-Control-Allow-Credentials sent")
	}
}

func noCORS(t *testing.T, h http.Header) {
	t.Helper()
	for k := range h {
		if strings.HasPrefix(k, "Access-Control-") {
			t.Errorf("CORS header %s: %q", k, h.Values(k))
		}
	}
}

func TestCORSPreflight(t *testing.T) {
	var logs bytes.Buffer
	s := corsServer(t, &logs)
	w := send(s, "OPTIONS", "/v1/token-exchange", "Origin: "+pageOrigin,
		"Access-Control-Request-Method: POST", "Access-Control-Request-Headers: authorization")
	if w.Code != 204 {
		t.Fatalf("preflight status %d", w.Code)
	}
	wantCORS(t, w.Header(), pageOrigin)
	h := w.Header()
	if h.Get("Access-Control-Allow-Methods") != "POST" {
		t.Errorf("Allow-Methods %q", h.Get("Access-Control-Allow-Methods"))
	}
	allowed := strings.ToLower(h.Get("Access-Control-Allow-Headers"))
	for _, want := range []string{"authorization", "content-type"} {
		if !strings.Contains(allowed, want) {
			t.Errorf("Allow-Headers %q lacks %s", allowed, want)
		}
	}
	if h.Get("Access-Control-Max-Age") == "" {
		t.Error("no Access-Control-Max-Age")
	}

	t.Run("unlisted origin", func(t *testing.T) {
		logs.Reset()
		w := send(s, "OPTIONS", "/v1/token-exchange", "Origin: "+otherOrigin, "Access-Control-Request-Method: POST")
		if w.Code != 204 {
			t.Fatalf("status %d", w.Code)
		}
		noCORS(t, w.Header())
		if !strings.Contains(w.Header().Get("Vary"), "Origin") {
			t.Errorf("Vary %q", w.Header().Get("Vary"))
		}
		w = send(s, "POST", "/v1/token-exchange", "Origin: "+otherOrigin, "Authorization: Bearer alice")
		noCORS(t, w.Header())
		if n := strings.Count(logs.String(), `"origin":"`+otherOrigin+`"`); n != 2 {
			t.Errorf("want both refusals logged with the origin, got %d:\n%s", n, logs.String())
		}
	})
	t.Run("origin differing only in case or slash", func(t *testing.T) {
		for _, o := range []string{strings.ToUpper(pageOrigin), pageOrigin + "/", pageOrigin + ":443", "null"} {
			w := send(s, "OPTIONS", "/v1/token-exchange", "Origin: "+o, "Access-Control-Request-Method: POST")
			noCORS(t, w.Header())
		}
	})
}

// TestCORSNeverOnUserDetail: Spotnana calls user-detail server to server; no page may.
func TestCORSNeverOnUserDetail(t *testing.T) {
	var logs bytes.Buffer
	s := corsServer(t, &logs)
	for _, method := range []string{"GET", "OPTIONS"} {
		w := send(s, method, "/v1/user-detail", "Origin: "+pageOrigin, "Authorization: Bearer alice", "Access-Control-Request-Method: GET")
		noCORS(t, w.Header())
		if method == "GET" && w.Code != 200 {
			t.Errorf("GET user-detail: %d", w.Code)
		}
	}
}

func TestEmbedScriptRoute(t *testing.T) {
	var logs bytes.Buffer
	s := corsServer(t, &logs)
	w := send(s, "GET", web.ScriptPath, "Origin: "+otherOrigin)
	if w.Code != 200 || !bytes.Equal(w.Body.Bytes(), web.Script()) {
		t.Fatalf("GET %s: %d", web.ScriptPath, w.Code)
	}
	h := w.Header()
	if h.Get("X-Content-Type-Options") != "nosniff" || h.Get("Access-Control-Allow-Origin") != "*" ||
		!strings.HasPrefix(h.Get("Content-Type"), "text/javascript") || h.Get("ETag") == "" {
		t.Errorf("headers %v", h)
	}
	w = send(s, "GET", web.ScriptPath, "If-None-Match: "+h.Get("ETag"))
	if w.Code != 304 || w.Body.Len() != 0 {
		t.Errorf("conditional GET: %d, %d bytes", w.Code, w.Body.Len())
	}
	w = send(s, "GET", web.DeclarationsPath)
	if w.Code != 200 || !strings.Contains(w.Body.String(), "export function mountSpotnana") {
		t.Errorf("GET %s: %d", web.DeclarationsPath, w.Code)
	}
}
