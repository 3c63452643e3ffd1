// Package scaffold writes starter configurations for `idbridge init`: one template per
// kind of identity system (okta, entra, adfs, google, auth0, keycloak, oidc, ldap, ad),
// filled from the issuer's OpenID Connect discovery document when it can be read, and
// usable offline otherwise. Every secret is an ${env:} or ${file:} reference, never a
// value, so the file can be committed; the result passes `idbridge check` as written.
package scaffold

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"sort"
	"strings"
	"time"
	"unicode"
)

// Kind is one kind of identity system a template is written for.
type Kind struct {
	Name    string
	Title   string // e.g. "Okta"
	Issuer  string // the offline issuer, with ${env:} placeholders
	Summary string
	// audience is the YAML written in audiences: [...] when Options.Audience is "".
	audience string
	tmpl     string // with the placeholders of templates.go
	// userinfoSubject, when set, is the userinfo step's subject_claim, with the reason
	// as a comment line: the token claim that equals userinfo's sub where that is not sub.
	userinfoSubject, userinfoSubjectWhy string
}

// Options fill a template.
type Options struct {
	// Issuer replaces the kind's placeholder issuer; "" keeps the placeholder.
	Issuer string
	// Audience is what the IdP puts in the tokens' aud; "" keeps the kind's default.
	Audience string
	// Discovery is the issuer's discovery document, when it could be read.
	Discovery *Discovery
	// DiscoveryError says why it could not be read ("" when not tried).
	DiscoveryError string
}

// Discovery is the part of an OpenID Provider Metadata document (OpenID Connect
// Discovery 1.0 §3) a starter config uses.
type Discovery struct {
	Issuer           string   `json:"issuer"`
	JWKSURI          string   `json:"jwks_uri"`
	UserinfoEndpoint string   `json:"userinfo_endpoint"`
	Introspection    string   `json:"introspection_endpoint"`
	Algorithms       []string `json:"id_token_signing_alg_values_supported"`
}

// Kinds lists the kinds, in the order `idbridge init --help` shows them.
func Kinds() []Kind {
	out := make([]Kind, 0, len(kinds))
	for _, k := range kinds {
		out = append(out, k)
	}
	sort.Slice(out, func(i, j int) bool { return order(out[i].Name) < order(out[j].Name) })
	return out
}

func order(name string) int {
	for i, n := range []string{"okta", "entra", "adfs", "google", "auth0", "keycloak", "oidc", "ldap", "ad"} {
		if n == name {
			return i
		}
	}
	return 99
}

// Names returns the kinds' names.
func Names() []string {
	var out []string
	for _, k := range Kinds() {
		out = append(out, k.Name)
	}
	return out
}

// maxDiscovery bounds a discovery document (a real one is a few kilobytes).
const maxDiscovery = 256 << 10

// Discover reads {issuer}/.well-known/openid-configuration within ctx's deadline. The
// document's issuer must equal the one asked for (OpenID Connect Discovery 1.0 §4.3).
func Discover(ctx context.Context, client *http.Client, issuer string) (*Discovery, error) {
	u, err := url.Parse(issuer)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		return nil, fmt.Errorf("issuer %q is not an http(s) URL", issuer)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, strings.TrimSuffix(issuer, "/")+"/.well-known/openid-configuration", nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Accept", "application/json")
	resp, err := client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("the discovery document answered HTTP %d", resp.StatusCode)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxDiscovery+1))
	if err != nil {
		return nil, err
	}
	if len(body) > maxDiscovery {
		return nil, errors.New("the discovery document is too large")
	}
	var d Discovery
	if err := json.Unmarshal(body, &d); err != nil {
		return nil, fmt.Errorf("the discovery document is not JSON: %w", err)
	}
	if d.Issuer != issuer {
		return nil, fmt.Errorf("the discovery document names issuer %q, not %q", d.Issuer, issuer)
	}
	return &d, nil
}

// Render writes the starter config of kind.
func Render(kind string, o Options) ([]byte, error) {
	k, ok := kinds[kind]
	if !ok {
		return nil, fmt.Errorf("unknown kind %q (known: %s)", kind, strings.Join(Names(), ", "))
	}
	var b strings.Builder
	fmt.Fprintf(&b, "# idbridge starter configuration for %s, written by `idbridge init` on %s.\n# %s\n", k.Title, time.Now().UTC().Format("2006-01-02"), k.Summary)
	b.WriteString("#\n# Check it with: idbridge check --config FILE   (then --strict where it will run)\n" +
		"# Every secret is a reference, ${env:NAME} or ${file:PATH} (relative to this file's\n" +
		"# folder), never a value: this file can be committed.\n")
	switch d := o.Discovery; {
	case d != nil:
		fmt.Fprintf(&b, "# Read from the issuer's discovery document: jwks_uri %s", commentSafe(d.JWKSURI))
		if d.UserinfoEndpoint != "" {
			fmt.Fprintf(&b, ", userinfo_endpoint %s", commentSafe(d.UserinfoEndpoint))
		}
		b.WriteString(".\n")
	case o.DiscoveryError != "":
		fmt.Fprintf(&b, "# The issuer's discovery document could not be read from here (%s);\n"+
			"# this is the offline template: the bridge reads the document when it starts.\n", commentSafe(o.DiscoveryError))
	}
	issuer, audience := k.Issuer, k.audience
	if o.Issuer != "" {
		issuer = o.Issuer
	}
	if o.Audience != "" {
		audience = yamlQuote(o.Audience)
	}
	step, mapping := userinfoStep, userinfoMapping
	if o.Discovery != nil && o.Discovery.UserinfoEndpoint == "" {
		step, mapping = "", ""
	} else if k.userinfoSubject != "" {
		step += "      # " + k.userinfoSubjectWhy + "\n      subject_claim: " + k.userinfoSubject + "\n"
	}
	strings.NewReplacer(
		issuerPlaceholder, yamlQuote(issuer),
		audiencePlaceholder, audience,
		userinfoPlaceholder, step,
		userinfoMappingPlaceholder, mapping,
	).WriteString(&b, common+k.tmpl+footer)
	return []byte(b.String()), nil
}

// commentSafe keeps a value from outside (a discovery document, an error naming one) on
// its YAML comment line: a line break in it would start a line of configuration.
func commentSafe(s string) string {
	return strings.Map(func(r rune) rune {
		if unicode.IsControl(r) || r == '\u2028' || r == '\u2029' {
			return '?'
		}
		return r
	}, s)
}

// yamlQuote writes s as a double-quoted YAML scalar.
func yamlQuote(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}
