package test

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// TestKeySetRedirectsAreOutages: a JWKS or discovery answer that redirects is never
// followed (it could point the key set at another host, or at idbridge's own admin
// listener). The provider has no key set (503, /readyz unready), and the log names the
// redirect target's host, never its path or query.
func TestKeySetRedirectsAreOutages(t *testing.T) {
	is := newIssuer(t)
	const secretQuery = "code=REDIRECT-SECRET-42"
	redirector := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/.well-known/openid-configuration":
			// A discovery document that speaks for this server, as issuer.
			base := "http://" + r.Host
			json.NewEncoder(w).Encode(map[string]string{"issuer": base, "jwks_uri": base + "/jwks"})
		case "/jwks":
			http.Redirect(w, r, is.URL()+"/jwks?"+secretQuery, http.StatusFound)
		default:
			http.NotFound(w, r)
		}
	}))
	t.Cleanup(redirector.Close)

	for _, tc := range []struct {
		name, issuer, extra string
	}{
		{"jwks_uri", is.URL(), "    discovery: false\n    jwks_uri: " + redirector.URL + "/jwks\n"},
		{"discovery", redirector.URL, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			br := startBridge(t, jwtConfig(tc.issuer, tc.extra))
			tok := mint(t, is, map[string]any{"iss": tc.issuer})
			r := userDetail(t, br, tok)
			if r.Status != http.StatusServiceUnavailable {
				t.Fatalf("status %d, want 503 (the redirect was followed?); body %s", r.Status, r.Body)
			}
			if rz := do(t, "GET", br.Admin+"/readyz", nil); rz.Status == http.StatusOK {
				t.Errorf("/readyz = 200 with no key set loaded: %s", rz.Body)
			}
			eventually(t, "a log line naming the redirect's target host", func() bool {
				return strings.Contains(br.Logs(), "redirect (302) to 127.0.0.1 refused")
			})
			if strings.Contains(br.Logs(), secretQuery) {
				t.Errorf("the redirect's query is logged:\n%s", br.Logs())
			}
		})
	}
}
