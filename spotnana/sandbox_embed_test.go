package spotnana

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

func embedPost(t *testing.T, h http.Handler, path, body string) *httptest.ResponseRecorder {
	t.Helper()
	req := httptest.NewRequest("POST", path, strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	w := httptest.NewRecorder()
	h.ServeHTTP(w, req)
	return w
}

func TestSandboxEmbed(t *testing.T) {
	sb := NewSandbox(SandboxConfig{ClientID: "c", ClientSecret: "s", Users: []string{"alice@example.com"}})
	e := sb.Embed([]string{"https://travel.example.com", "http://localhost:3000"})

	w := httptest.NewRecorder()
	e.ServeHTTP(w, httptest.NewRequest("GET", SandboxEmbedPath+"?idp=token-exchange-auth&orgId=o", nil))
	csp := w.Header().Get("Content-Security-Policy")
	if w.Code != 200 || !strings.Contains(csp, "frame-ancestors https://travel.example.com http://localhost:3000") ||
		!strings.Contains(csp, "script-src 'self'") {
		t.Fatalf("GET /embed: %d, CSP %q", w.Code, csp)
	}
	// The allowed origins reach the page's script as an HTML-escaped JSON attribute.
	if !strings.Contains(w.Body.String(), `data-allowed-origins="[&#34;https://travel.example.com&#34;,&#34;http://localhost:3000&#34;]"`) {
		t.Errorf("page lacks the allowed origins:\n%s", w.Body.String())
	}

	issued, err := sb.issue("c", "alice@example.com", "", true)
	if err != nil {
		t.Fatal(err)
	}
	good := issued["access_token"].(string)
	other := NewSandbox(SandboxConfig{ClientID: "c", ClientSecret: "s"})
	foreign, _ := other.issue("c", "alice@example.com", "", true)
	expiredSB := NewSandbox(SandboxConfig{ClientID: "c", ClientSecret: "s", Now: func() time.Time { return time.Now().Add(-2 * time.Hour) }})
	expiredSB.key, expiredSB.pub = sb.key, sb.pub
	expired, _ := expiredSB.issue("c", "alice@example.com", "", true)

	for _, tc := range []struct {
		name, token string
		status      int
	}{
		{"the sandbox's token", good, 200},
		{"another issuer's key", foreign["access_token"].(string), 401},
		{"expired", expired["access_token"].(string), 401},
		{"not a JWT", "forged", 401},
	} {
		b, _ := json.Marshal(map[string]string{"accessToken": tc.token})
		w := embedPost(t, e, "/embed/session", string(b))
		if w.Code != tc.status {
			t.Errorf("%s: %d %s", tc.name, w.Code, w.Body)
		}
		if tc.status == 401 && !strings.Contains(w.Body.String(), `"errorCode":"INVALID_TOKEN"`) {
			t.Errorf("%s: body %s", tc.name, w.Body)
		}
	}
	for _, kind := range []string{"request", "ignored_source", "ignored_origin", "ignored_origin", "ignored_malformed"} {
		if w := embedPost(t, e, "/embed/event", `{"kind":"`+kind+`"}`); w.Code != 204 {
			t.Errorf("event %s: %d", kind, w.Code)
		}
	}
	if w := embedPost(t, e, "/embed/event", `{"kind":"signed_in"}`); w.Code != 400 {
		t.Errorf("an unknown kind: %d", w.Code)
	}
	if w := embedPost(t, e, "/embed/event", strings.Repeat("[", 20000)); w.Code != 400 && w.Code != 413 {
		t.Errorf("an oversized body: %d", w.Code)
	}
	got := e.Stats()
	want := EmbedStats{Pages: 1, Requests: 1, Responses: 4, SignedIn: 1, InvalidToken: 3,
		Ignored: map[string]int64{"source": 1, "origin": 2, "malformed": 1}, LastEmail: "alice@example.com"}
	gb, _ := json.Marshal(got)
	wb, _ := json.Marshal(want)
	if string(gb) != string(wb) {
		t.Errorf("stats %s, want %s", gb, wb)
	}
	if e := sb.Embed(nil); strings.Join(e.AllowedOrigins(), ",") != DefaultEmbedAllowedOrigin {
		t.Errorf("default allowed origins %v", e.AllowedOrigins())
	}
}
