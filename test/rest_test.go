package test

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/idbridge/idbridge/providers/rest/resttest"
)

// restConfig is a bridge whose jwt provider takes the email from a rest: step.
func restConfig(issuer, restYAML, mappingPath string) string {
	return fmt.Sprintf(`
server:
  listen: 127.0.0.1:0
  admin_listen: 127.0.0.1:0
log: {level: debug, format: json}
providers:
  - name: corp
    type: jwt
    issuer: %s
    audiences: [idbridge]
    rest:
%s
mapping:
  email:
    - path: %s
  allowed_domains: [example.com]
`, issuer, restYAML, mappingPath)
}

func restIndent(s string) string { return indent(s, "      ") }

// TestRESTStep runs the rest: step through the real binary against local servers shaped
// like Microsoft Graph (with a client-credentials token endpoint that counts its calls),
// Okta's Users API and a SCIM 2.0 service.
func TestRESTStep(t *testing.T) {
	is := newIssuer(t)
	tok := func(claims map[string]any) string {
		claims["email"], claims["email_verified"] = nil, nil // the token carries no email
		return mint(t, is, claims)
	}

	t.Run("graph", func(t *testing.T) {
		te := resttest.NewTokenEndpoint(t, "graph-app", "graph-secret-value")
		g := resttest.NewGraph(t, te)
		secretFile := writeConfig(t, "graph-secret-value\n") // a file holding the secret
		br := startBridge(t, restConfig(is.URL(), restIndent(fmt.Sprintf(`
url: "%s/v1.0/users/{{upn}}?$select=mail,otherMails"
auth:
  type: client_credentials
  token_url: %s/tenant/oauth2/v2.0/token
  client_id: graph-app
  client_secret: ${file:%s}
  scope: https://graph.microsoft.com/.default
into: graph
required: true`, g.URL, te.URL, secretFile)), "graph.mail"))

		alice := tok(map[string]any{"sub": "1", "upn": "alice@corp.onmicrosoft.com"})
		bob := tok(map[string]any{"sub": "2", "upn": "bob/ops@corp.onmicrosoft.com"})
		for range 3 {
			want(t, userDetail(t, br, alice), http.StatusOK, "alice@example.com")
			want(t, userDetail(t, br, bob), http.StatusOK, "bob@example.com")
		}
		if n := te.Calls.Load(); n != 1 {
			t.Errorf("token endpoint called %d times for 6 requests of 2 users, want 1", n)
		}
		if n := g.Calls.Load(); n != 2 {
			t.Errorf("Graph called %d times, want 2 (one per user; then the identity cache)", n)
		}
		// required: a user Graph does not know is refused.
		want(t, userDetail(t, br, tok(map[string]any{"sub": "3", "upn": "nobody@corp.onmicrosoft.com"})), http.StatusForbidden, "access_denied")
		// No upn claim: not found, without a call.
		before := g.Calls.Load()
		want(t, userDetail(t, br, tok(map[string]any{"sub": "4"})), http.StatusForbidden, "access_denied")
		if g.Calls.Load() != before {
			t.Error("Graph was called without a upn")
		}
		if logs := br.Logs(); strings.Contains(logs, "graph-secret-value") || strings.Contains(logs, "app-token-") {
			t.Errorf("a secret or the app token is logged:\n%s", logs)
		}
	})

	t.Run("graph refuses our credentials", func(t *testing.T) {
		te := resttest.NewTokenEndpoint(t, "graph-app", "the-right-secret")
		g := resttest.NewGraph(t, te)
		br := startBridge(t, restConfig(is.URL(), restIndent(fmt.Sprintf(`
url: "%s/v1.0/users/{{upn}}"
auth: {type: client_credentials, token_url: %s/token, client_id: graph-app, client_secret: wrong-secret-value}`, g.URL, te.URL)), "rest.mail"))
		r := userDetail(t, br, tok(map[string]any{"sub": "1", "upn": "alice@corp.onmicrosoft.com"}))
		want(t, r, http.StatusServiceUnavailable, "temporarily_unavailable")
		rz := do(t, "GET", br.Admin+"/readyz", nil)
		if !strings.Contains(rz.Body, "token endpoint refuses our credentials (401 invalid_client)") {
			t.Errorf("/readyz does not show the refused credentials: %d %s", rz.Status, rz.Body)
		}
		if strings.Contains(br.Logs(), "wrong-secret-value") {
			t.Error("the client secret is logged")
		}
	})

	t.Run("okta", func(t *testing.T) {
		okta := resttest.NewOkta(t, "okta-api-token")
		br := startBridge(t, restConfig(is.URL(), restIndent(fmt.Sprintf(`
url: %s/api/v1/users/{{preferred_username}}
auth: {type: header, name: Authorization, value: "SSWS ${env:OKTA_API_TOKEN}"}
into: okta`, okta.URL)), "okta.profile.email"), "OKTA_API_TOKEN=okta-api-token")
		want(t, userDetail(t, br, tok(map[string]any{"sub": "00u1", "preferred_username": "carol"})), http.StatusOK, "carol@example.com")
		// Not required: an unknown user goes on without the answer, and no rule matches.
		want(t, userDetail(t, br, tok(map[string]any{"sub": "00u2", "preferred_username": "nobody"})), http.StatusForbidden, "access_denied")
	})

	t.Run("scim", func(t *testing.T) {
		sc := resttest.NewSCIM(t)
		br := startBridge(t, restConfig(is.URL(), restIndent(fmt.Sprintf(`
url: '%s/scim/v2/Users?filter=userName eq "{{sub}}"'
auth: {type: basic, username: idbridge, password: scim-pw}
into: scim
required: true`, sc.URL)), "scim.emails.0.value"))
		want(t, userDetail(t, br, tok(map[string]any{"sub": "dave"})), http.StatusOK, "dave@example.com")
		// Two resources for one userName: ambiguous, refused.
		want(t, userDetail(t, br, tok(map[string]any{"sub": "twin"})), http.StatusForbidden, "access_denied")
		// A quote in the claim does not end the filter's string.
		userDetail(t, br, tok(map[string]any{"sub": `x" or userName eq "dave`}))
		deadline := time.After(5 * time.Second)
		for {
			select {
			case f := <-sc.Filters:
				if f == `userName eq "x\" or userName eq \"dave"` {
					return
				}
			case <-deadline:
				t.Fatal("the injected filter was not escaped")
			}
		}
	})
}
