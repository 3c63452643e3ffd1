// Package resttest runs local servers shaped like the REST services the rest: step is
// for, after their public docs: a client-credentials token endpoint that counts its
// calls (Microsoft identity platform), Microsoft Graph's users endpoint, Okta's Users API
// and a SCIM 2.0 service. They answer only requests that carry the credentials they
// expect. Unit tests of providers/rest and end-to-end tests of the binary use them.
package resttest

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// TokenEndpoint is a client-credentials token endpoint (RFC 6749 §4.4, as Microsoft
// identity platform's /oauth2/v2.0/token) that counts its calls.
type TokenEndpoint struct {
	*httptest.Server
	Calls     atomic.Int64  // every request
	ExpiresIn int           // expires_in of the tokens it issues; default 3600
	Delay     time.Duration // before each answer
	issued    atomic.Int64
}

func NewTokenEndpoint(t *testing.T, clientID, secret string) *TokenEndpoint {
	te := &TokenEndpoint{ExpiresIn: 3600}
	te.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		te.Calls.Add(1)
		time.Sleep(te.Delay)
		if r.Method != http.MethodPost || r.ParseForm() != nil || r.PostForm.Get("grant_type") != "client_credentials" {
			w.WriteHeader(http.StatusBadRequest)
			json.NewEncoder(w).Encode(map[string]string{"error": "unsupported_grant_type"})
			return
		}
		id, sec, basic := r.BasicAuth()
		if !basic {
			id, sec = r.PostForm.Get("client_id"), r.PostForm.Get("client_secret")
		}
		if id != clientID || sec != secret {
			w.WriteHeader(http.StatusUnauthorized)
			json.NewEncoder(w).Encode(map[string]string{"error": "invalid_client"})
			return
		}
		n := te.issued.Add(1)
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(map[string]any{"token_type": "Bearer", "expires_in": te.ExpiresIn,
			"access_token": "app-token-" + string(rune('0'+n%10))})
	}))
	t.Cleanup(te.Close)
	return te
}

// Valid reports whether the Authorization header carries a token te issued.
func (te *TokenEndpoint) Valid(r *http.Request) bool {
	return strings.HasPrefix(r.Header.Get("Authorization"), "Bearer app-token-")
}

// Graph is shaped like Microsoft Graph's GET /v1.0/users/{id | userPrincipalName}
// ($select honoured for mail, otherMails, userPrincipalName; 404 with Graph's error body).
type Graph struct {
	*httptest.Server
	Calls atomic.Int64
	users map[string]map[string]any // by userPrincipalName
	Paths chan string               // receives the escaped paths asked for, when not nil
}

func NewGraph(t *testing.T, te *TokenEndpoint) *Graph {
	g := &Graph{users: map[string]map[string]any{
		"alice@corp.onmicrosoft.com":   {"id": "1", "userPrincipalName": "alice@corp.onmicrosoft.com", "mail": "alice@example.com", "otherMails": []string{"a@example.org"}},
		"bob/ops@corp.onmicrosoft.com": {"id": "2", "userPrincipalName": "bob/ops@corp.onmicrosoft.com", "mail": "bob@example.com"},
	}}
	g.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		g.Calls.Add(1)
		if g.Paths != nil {
			g.Paths <- r.URL.EscapedPath()
		}
		if te != nil && !te.Valid(r) {
			w.WriteHeader(http.StatusUnauthorized)
			json.NewEncoder(w).Encode(map[string]any{"error": map[string]string{"code": "InvalidAuthenticationToken"}})
			return
		}
		upn, ok := strings.CutPrefix(r.URL.Path, "/v1.0/users/")
		u := g.users[upn]
		if !ok || u == nil {
			w.WriteHeader(http.StatusNotFound)
			json.NewEncoder(w).Encode(map[string]any{"error": map[string]string{"code": "Request_ResourceNotFound"}})
			return
		}
		out := map[string]any{"@odata.context": "https://graph.microsoft.com/v1.0/$metadata#users/$entity"}
		sel := r.URL.Query().Get("$select")
		for k, v := range u {
			if sel == "" || strings.Contains(","+sel+",", ","+k+",") {
				out[k] = v
			}
		}
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(out)
	}))
	t.Cleanup(g.Close)
	return g
}

// NewOkta starts a server shaped like Okta's Users API, GET /api/v1/users/{id | login}, authenticated
// with an API token: Authorization: SSWS {token}.
func NewOkta(t *testing.T, apiToken string) *httptest.Server {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "SSWS "+apiToken {
			w.WriteHeader(http.StatusUnauthorized)
			json.NewEncoder(w).Encode(map[string]string{"errorCode": "E0000011", "errorSummary": "Invalid token provided"})
			return
		}
		login, _ := strings.CutPrefix(r.URL.Path, "/api/v1/users/")
		if login != "carol" {
			w.WriteHeader(http.StatusNotFound)
			json.NewEncoder(w).Encode(map[string]string{"errorCode": "E0000007", "errorSummary": "Not found: Resource not found: " + login + " (User)"})
			return
		}
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(map[string]any{"id": "00u1", "status": "ACTIVE",
			"profile": map[string]string{"login": "carol@example.com", "email": "carol@example.com", "firstName": "Carol"}})
	}))
	t.Cleanup(srv.Close)
	return srv
}

// SCIM is shaped like a SCIM 2.0 service: GET /scim/v2/Users?filter=userName eq "…"
// (RFC 7644 §3.4.2) answers a ListResponse; basic auth.
type SCIM struct {
	*httptest.Server
	Filters chan string // receives each filter asked for
}

func NewSCIM(t *testing.T) *SCIM {
	s := &SCIM{Filters: make(chan string, 100)}
	users := map[string][]map[string]any{
		"dave": {{"userName": "dave", "emails": []map[string]any{{"value": "dave@example.com", "primary": true}}}},
		"twin": {{"userName": "twin", "emails": []map[string]any{{"value": "t1@example.com"}}}, {"userName": "twin", "emails": []map[string]any{{"value": "t2@example.com"}}}},
	}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if u, p, ok := r.BasicAuth(); !ok || u != "idbridge" || p != "scim-pw" {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		f := r.URL.Query().Get("filter")
		s.Filters <- f
		var name string
		var found []map[string]any
		if v, ok := strings.CutPrefix(f, `userName eq "`); ok && strings.HasSuffix(v, `"`) {
			if err := json.Unmarshal([]byte(`"`+strings.TrimSuffix(v, `"`)+`"`), &name); err == nil {
				found = users[name]
			}
		}
		w.Header().Set("Content-Type", "application/scim+json")
		json.NewEncoder(w).Encode(map[string]any{"schemas": []string{"urn:ietf:params:scim:api:messages:2.0:ListResponse"},
			"totalResults": len(found), "Resources": found})
	}))
	t.Cleanup(s.Close)
	return s
}
