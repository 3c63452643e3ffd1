package demoapp

import (
	"crypto/sha256"
	"encoding/base64"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"
)

func TestApp(t *testing.T) {
	a, err := New(Config{
		BridgeURL: "http://127.0.0.1:8080", ExchangePath: "/v1/token-exchange", ScriptPath: "/v1/embed/spotnana.js",
		ScriptSRI: "sha384-abc", EmbedURL: "http://127.0.0.1:8091/embed", OrgID: `o"<x>`,
		Mint: func(user string) (string, error) { return "token-of-" + user, nil },
	})
	if err != nil {
		t.Fatal(err)
	}
	w := httptest.NewRecorder()
	a.ServeHTTP(w, httptest.NewRequest("GET", "/", nil))
	page, csp := w.Body.String(), w.Header().Get("Content-Security-Policy")
	m := regexp.MustCompile(`<script type="importmap">(.*?)</script>`).FindStringSubmatch(page)
	if m == nil {
		t.Fatalf("no import map:\n%s", page)
	}
	sum := sha256.Sum256([]byte(m[1]))
	if !strings.Contains(csp, "'sha256-"+base64.StdEncoding.EncodeToString(sum[:])+"'") {
		t.Errorf("CSP %q does not allow the import map by its hash", csp)
	}
	for _, want := range []string{"frame-src http://127.0.0.1:8091", "connect-src 'self' http://127.0.0.1:8080", "frame-ancestors 'none'", "default-src 'none'"} {
		if !strings.Contains(csp, want) {
			t.Errorf("CSP %q lacks %q", csp, want)
		}
	}
	if strings.Contains(page, `o"<x>`) {
		t.Error("the org id reached the page unescaped")
	}

	for _, tc := range []struct {
		name, site, body string
		status           int
	}{
		{"alice", "same-origin", `{"user":"alice"}`, 200},
		{"from another site", "cross-site", `{"user":"alice"}`, 403},
		{"unknown user", "same-origin", `{"user":"mallory"}`, 400},
		{"not JSON", "same-origin", `user=alice`, 400},
	} {
		req := httptest.NewRequest("POST", "/demo/token", strings.NewReader(tc.body))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Sec-Fetch-Site", tc.site)
		w := httptest.NewRecorder()
		a.ServeHTTP(w, req)
		if w.Code != tc.status {
			t.Errorf("%s: %d %s", tc.name, w.Code, w.Body)
		}
	}
}
