package rest_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/tidwall/gjson"
	"gopkg.in/yaml.v3"

	"github.com/idbridge/idbridge/configs"
	"github.com/idbridge/idbridge/internal/testhttp"
	"github.com/idbridge/idbridge/providers"
	"github.com/idbridge/idbridge/providers/rest"
	"github.com/idbridge/idbridge/providers/rest/resttest"
)

var owner = &configs.ProviderSection{Name: "corp", Type: "jwt", File: "test.yaml", Path: "providers[0]", Line: 1}

// newStep builds a rest step from its YAML text, as the wiring would.
func newStep(t *testing.T, text string) (providers.Enricher, error) {
	t.Helper()
	return rest.New(stepSection(t, text), owner, nil, providers.Deps{})
}

// stepSection is the rest section of a provider, from its YAML text.
func stepSection(t *testing.T, text string) *configs.Section {
	t.Helper()
	var n yaml.Node
	if err := yaml.Unmarshal([]byte(text), &n); err != nil {
		t.Fatal(err)
	}
	return &configs.Section{Name: "rest", File: "test.yaml", Path: "providers[0].rest", Line: 2, Node: n.Content[0]}
}

func mustStep(t *testing.T, text string) providers.Enricher {
	t.Helper()
	s, err := newStep(t, text)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func graphStep(g *resttest.Graph, te *resttest.TokenEndpoint, extra string) string {
	return fmt.Sprintf(`url: "%s/v1.0/users/{{upn}}?$select=mail,otherMails"
auth:
  type: client_credentials
  token_url: %s/tenant/oauth2/v2.0/token
  client_id: graph-app
  client_secret: graph-secret
  scope: https://graph.microsoft.com/.default
%s`, g.URL, te.URL, extra)
}

func TestGraph(t *testing.T) {
	te := resttest.NewTokenEndpoint(t, "graph-app", "graph-secret")
	g := resttest.NewGraph(t, te)
	s := mustStep(t, graphStep(g, te, ""))
	ctx := context.Background()

	doc, err := s.Enrich(ctx, "user-token", []byte(`{"sub":"1","upn":"alice@corp.onmicrosoft.com"}`))
	if err != nil {
		t.Fatal(err)
	}
	if got := gjson.GetBytes(doc, "rest.mail").Str; got != "alice@example.com" {
		t.Errorf("rest.mail = %q in %s", got, doc)
	}
	if gjson.GetBytes(doc, "rest.id").Exists() {
		t.Errorf("$select not sent: %s", doc)
	}
	// A present email: no call (when_missing: email).
	before := g.Calls.Load()
	if _, err := s.Enrich(ctx, "", []byte(`{"upn":"alice@corp.onmicrosoft.com","email":"x@example.com"}`)); err != nil || g.Calls.Load() != before {
		t.Errorf("called although email is present (%v)", err)
	}
	// Unknown user: 404 is "not found"; not required: the document goes on unchanged.
	in := []byte(`{"upn":"nobody@corp.onmicrosoft.com"}`)
	if out, err := s.Enrich(ctx, "", in); err != nil || string(out) != string(in) {
		t.Errorf("404: %s, %v", out, err)
	}
	// A value with "/" stays one path segment.
	g.Paths = make(chan string, 1)
	doc, err = s.Enrich(ctx, "", []byte(`{"upn":"bob/ops@corp.onmicrosoft.com"}`))
	if p := <-g.Paths; p != "/v1.0/users/bob%2Fops@corp.onmicrosoft.com" {
		t.Errorf("path = %s", p)
	}
	if err != nil || gjson.GetBytes(doc, "rest.mail").Str != "bob@example.com" {
		t.Errorf("bob: %s, %v", doc, err)
	}
	g.Paths = nil
	if n := te.Calls.Load(); n != 1 {
		t.Errorf("token endpoint called %d times, want 1 (reused)", n)
	}
}

// TestTokenSharedAndReused: concurrent requests share one token fetch; the token is
// reused until shortly before it expires, then fetched again.
func TestTokenSharedAndReused(t *testing.T) {
	te := resttest.NewTokenEndpoint(t, "graph-app", "graph-secret")
	te.Delay = 100 * time.Millisecond
	g := resttest.NewGraph(t, te)
	s := mustStep(t, graphStep(g, te, ""))
	var wg sync.WaitGroup
	errs := make(chan error, 20)
	for range 20 {
		wg.Go(func() {
			_, err := s.Enrich(context.Background(), "", []byte(`{"upn":"alice@corp.onmicrosoft.com"}`))
			errs <- err
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	if n := te.Calls.Load(); n != 1 {
		t.Errorf("20 concurrent requests made %d token fetches, want 1", n)
	}

	// A token that lives 2 s is reused for half its life (1 s), then fetched again. The
	// bubble's clock moves only when every goroutine in it waits, so the servers are
	// reached without sockets.
	te2 := resttest.NewTokenEndpoint(t, "graph-app", "graph-secret")
	te2.ExpiresIn = 2
	g2 := resttest.NewGraph(t, te2)
	synctest.Test(t, func(t *testing.T) {
		s2, err := rest.New(stepSection(t, graphStep(g2, te2, "")), owner, nil, providers.Deps{HTTPClient: testhttp.Client(te2.Server, g2.Server)})
		if err != nil {
			t.Fatal(err)
		}
		enrich := func() {
			if _, err := s2.Enrich(context.Background(), "", []byte(`{"upn":"alice@corp.onmicrosoft.com"}`)); err != nil {
				t.Fatal(err)
			}
		}
		enrich()
		time.Sleep(900 * time.Millisecond) // bubble time: just short of half its life
		enrich()
		if n := te2.Calls.Load(); n != 1 {
			t.Fatalf("token fetched %d times within half its life, want 1", n)
		}
		time.Sleep(200 * time.Millisecond) // bubble time: past half its life
		enrich()
		if n := te2.Calls.Load(); n != 2 {
			t.Errorf("token fetched %d times after half its life, want 2", n)
		}
	})
}

func TestOkta(t *testing.T) {
	okta := resttest.NewOkta(t, "okta-api-token")
	s := mustStep(t, fmt.Sprintf(`url: %s/api/v1/users/{{preferred_username}}
auth: {type: header, name: Authorization, value: "SSWS okta-api-token"}
into: okta
required: true
`, okta.URL))
	doc, err := s.Enrich(context.Background(), "", []byte(`{"preferred_username":"carol"}`))
	if err != nil || gjson.GetBytes(doc, "okta.profile.email").Str != "carol@example.com" {
		t.Fatalf("carol: %s, %v", doc, err)
	}
	// required: an unknown user is refused (403), not passed on.
	if _, err := s.Enrich(context.Background(), "", []byte(`{"preferred_username":"nobody"}`)); !errors.Is(err, providers.ErrAccessDenied) {
		t.Errorf("unknown user = %v, want ErrAccessDenied", err)
	}
	// A missing placeholder value: not found, and no call.
	if _, err := s.Enrich(context.Background(), "", []byte(`{"sub":"x"}`)); !errors.Is(err, providers.ErrAccessDenied) {
		t.Errorf("no preferred_username = %v, want ErrAccessDenied", err)
	}
}

func TestSCIM(t *testing.T) {
	sc := resttest.NewSCIM(t)
	s := mustStep(t, fmt.Sprintf(`url: '%s/scim/v2/Users?filter=userName eq "{{sub}}"'
auth: {type: basic, username: idbridge, password: scim-pw}
into: scim
when_missing: ""
required: true
`, sc.URL))
	ctx := context.Background()
	doc, err := s.Enrich(ctx, "", []byte(`{"sub":"dave","email":"old@example.com"}`))
	if err != nil || gjson.GetBytes(doc, "scim.emails.0.value").Str != "dave@example.com" {
		t.Fatalf("dave: %s, %v", doc, err)
	}
	if f := <-sc.Filters; f != `userName eq "dave"` {
		t.Errorf("filter = %s", f)
	}
	// Two resources: ambiguous, refused.
	if _, err := s.Enrich(ctx, "", []byte(`{"sub":"twin"}`)); !errors.Is(err, providers.ErrAccessDenied) {
		t.Errorf("two resources = %v, want ErrAccessDenied", err)
	}
	<-sc.Filters
	// None: refused.
	if _, err := s.Enrich(ctx, "", []byte(`{"sub":"nobody"}`)); !errors.Is(err, providers.ErrAccessDenied) {
		t.Errorf("no resource = %v, want ErrAccessDenied", err)
	}
	<-sc.Filters
	// A quote in the value cannot end the filter's string (RFC 7644 §3.4.2.2).
	s.Enrich(ctx, "", []byte(`{"sub":"x\" or userName pr or userName eq \"dave"}`))
	if f := <-sc.Filters; f != `userName eq "x\" or userName pr or userName eq \"dave"` {
		t.Errorf("filter = %s", f)
	}
}

// TestFailures: every way the service can fail is ErrUnavailable (503), never a refusal
// of the user; credentials the service refuses show in Health.
func TestFailures(t *testing.T) {
	ctx := context.Background()
	doc := []byte(`{"upn":"alice@corp.onmicrosoft.com"}`)
	t.Run("wrong client secret", func(t *testing.T) {
		te := resttest.NewTokenEndpoint(t, "graph-app", "other-secret")
		g := resttest.NewGraph(t, te)
		s := mustStep(t, graphStep(g, te, ""))
		if _, err := s.Enrich(ctx, "", doc); !errors.Is(err, providers.ErrUnavailable) {
			t.Fatalf("err = %v", err)
		}
		h := s.(providers.HealthChecker).Health(ctx)
		if h.OK || !h.Ready || !strings.Contains(h.Detail, "token endpoint refuses our credentials (401 invalid_client)") {
			t.Errorf("health = %+v", h)
		}
		if g.Calls.Load() != 0 {
			t.Error("the service was called without a token")
		}
	})
	t.Run("service refuses the token", func(t *testing.T) {
		te := resttest.NewTokenEndpoint(t, "graph-app", "graph-secret")
		okta := resttest.NewOkta(t, "right")
		s := mustStep(t, fmt.Sprintf("url: %s/api/v1/users/{{upn}}\nauth: {type: header, name: Authorization, value: SSWS wrong}\n", okta.URL))
		_ = te
		if _, err := s.Enrich(ctx, "", doc); !errors.Is(err, providers.ErrUnavailable) || errors.Is(err, providers.ErrAccessDenied) {
			t.Fatalf("err = %v", err)
		}
		if h := s.(providers.HealthChecker).Health(ctx); h.OK || !strings.Contains(h.Detail, "refuses our credentials (401)") {
			t.Errorf("health = %+v", h)
		}
	})
	for _, tc := range []struct {
		name    string
		handler http.HandlerFunc
		want    string
	}{
		{"5xx", func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusBadGateway) }, "status 502"},
		{"not JSON", func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("<html>")) }, "not a JSON object"},
		{"a JSON array", func(w http.ResponseWriter, r *http.Request) { w.Write([]byte(`[{"mail":"a@b.c"}]`)) }, "not a JSON object"},
		{"too large", func(w http.ResponseWriter, r *http.Request) {
			w.Write([]byte(`{"x":"` + strings.Repeat("a", rest.MaxAnswerBytes) + `"}`))
		}, "larger than"},
		{"too deep", func(w http.ResponseWriter, r *http.Request) { w.Write([]byte(strings.Repeat(`{"a":`, 100))) }, "nested"},
		{"redirect", func(w http.ResponseWriter, r *http.Request) {
			http.Redirect(w, r, "http://127.0.0.2:1/elsewhere?secret=1", http.StatusFound)
		}, "redirect (302) to 127.0.0.2 refused"},
		{"timeout", func(w http.ResponseWriter, r *http.Request) {
			select {
			case <-r.Context().Done():
			case <-time.After(5 * time.Second):
			}
		}, "deadline exceeded"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := httptest.NewServer(tc.handler)
			t.Cleanup(srv.Close)
			s := mustStep(t, fmt.Sprintf("url: %s/users/{{upn}}\ntimeout: 200ms\n", srv.URL))
			_, err := s.Enrich(ctx, "", doc)
			if !errors.Is(err, providers.ErrUnavailable) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want ErrUnavailable with %q", err, tc.want)
			}
			if strings.Contains(err.Error(), "alice") || strings.Contains(err.Error(), "secret=1") {
				t.Errorf("the error carries the user's name or the redirect's query: %v", err)
			}
		})
	}
}

func TestConfigErrors(t *testing.T) {
	for _, tc := range []struct{ text, want string }{
		{`{}`, "test.yaml:2: providers[0].rest.url: required"},
		{`url: "https://{{tenant}}.example.com/users/{{upn}}"`, "whose host is written out"},
		{`url: "https://user:pw@example.com/users/{{upn}}"`, "must not carry credentials"},
		{`url: "https://example.com/users/{{upn}#x"`, "unbalanced braces"},
		{`url: "https://example.com/users/{{upn}}#frag"`, "must not have a fragment"},
		{"url: https://example.com/u/{{upn}}\nauth: {type: oauth}", "auth.type: must be none, client_credentials"},
		{"url: https://example.com/u/{{upn}}\nauth: {type: client_credentials}", "auth.token_url: required with type client_credentials"},
		{"url: https://example.com/u/{{upn}}\nauth: {type: header, name: \"X Key\", value: v}", "auth.name: is not a header name"},
		{"url: https://example.com/u/{{upn}}\ninto: a.b", "into: must be a plain key"},
		{"url: https://example.com/u/{{upn}}\ntimeout: -1s", "timeout: must not be negative"},
		{"url: https://example.com/u/{{upn}}\nauth: {type: basic, username: u, pasword: p}", `rest.auth.pasword: unknown key (did you mean "password"?)`},
	} {
		_, err := newStep(t, tc.text)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s:\n  got %v\n  want %q", tc.text, err, tc.want)
		}
	}
}
