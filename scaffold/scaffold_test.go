package scaffold

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"
)

func TestRenderEveryKind(t *testing.T) {
	for _, name := range Names() {
		for _, o := range []Options{{}, {Issuer: "https://idp.example.com", Audience: "api://x", Discovery: &Discovery{Issuer: "https://idp.example.com", JWKSURI: "https://idp.example.com/keys"}}} {
			out, err := Render(name, o)
			if err != nil {
				t.Fatalf("%s: %v", name, err)
			}
			var v map[string]any
			if err := yaml.Unmarshal(out, &v); err != nil {
				t.Fatalf("%s: not YAML: %v\n%s", name, err, out)
			}
			for _, key := range []string{"providers", "mapping", "spotnana"} {
				if v[key] == nil {
					t.Errorf("%s: no %s", name, key)
				}
			}
			if o.Issuer != "" && !strings.Contains(string(out), `issuer: "https://idp.example.com"`) {
				t.Errorf("%s: the issuer is not used:\n%s", name, out)
			}
		}
	}
	if _, err := Render("ping", Options{}); err == nil || !strings.Contains(err.Error(), "okta, entra") {
		t.Errorf("unknown kind: %v", err)
	}
}

func TestDiscover(t *testing.T) {
	var issuer string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/.well-known/openid-configuration" {
			http.NotFound(w, r)
			return
		}
		fmt.Fprintf(w, `{"issuer":%q,"jwks_uri":"%s/keys"}`, issuer, issuer)
	}))
	defer srv.Close()
	issuer = srv.URL
	d, err := Discover(context.Background(), srv.Client(), srv.URL)
	if err != nil || d.JWKSURI != srv.URL+"/keys" {
		t.Fatalf("%+v %v", d, err)
	}
	issuer = "https://elsewhere.example.com"
	if _, err := Discover(context.Background(), srv.Client(), srv.URL); err == nil || !strings.Contains(err.Error(), "names issuer") {
		t.Errorf("a mismatched issuer: %v", err)
	}
	if _, err := Discover(context.Background(), srv.Client(), "ftp://x"); err == nil {
		t.Errorf("a non-http issuer was accepted")
	}
}

// TestRenderKeepsValuesInPlace: values from the command line and from a discovery
// document land where they belong, whatever they contain: a line break in a discovery
// value stays in its comment, and a placeholder-looking issuer is written as given.
func TestRenderKeepsValuesInPlace(t *testing.T) {
	issuer := `https://idp.example.com/"@AUDIENCE@` + "\n"
	audience := "api://x\n@ISSUER@"
	out, err := Render("okta", Options{Issuer: issuer, Audience: audience,
		Discovery: &Discovery{JWKSURI: "https://idp.example.com/keys\nproviders: []", UserinfoEndpoint: "https://idp.example.com/ui\r\nlog: x"}})
	if err != nil {
		t.Fatal(err)
	}
	var v struct {
		Providers []struct {
			Issuer    string
			Audiences []string
			Userinfo  map[string]any
		}
		Log map[string]any
	}
	if err := yaml.Unmarshal(out, &v); err != nil {
		t.Fatalf("not YAML: %v\n%s", err, out)
	}
	if len(v.Providers) != 1 || v.Providers[0].Issuer != issuer || len(v.Providers[0].Audiences) != 1 || v.Providers[0].Audiences[0] != audience {
		t.Errorf("values moved:\n%s", out)
	}
	if v.Providers[0].Userinfo == nil || v.Log["level"] != "info" {
		t.Errorf("a discovery value escaped its comment:\n%s", out)
	}
	// Discovery without userinfo_endpoint: no userinfo step and no userinfo mapping.
	out, _ = Render("okta", Options{Discovery: &Discovery{JWKSURI: "https://idp.example.com/keys"}})
	if strings.Contains(string(out), "userinfo") {
		t.Errorf("userinfo without an endpoint:\n%s", out)
	}
}
