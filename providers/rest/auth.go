package rest

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/tidwall/gjson"
	"golang.org/x/sync/singleflight"

	"github.com/idbridge/idbridge/configs"
	"github.com/idbridge/idbridge/jsonlimit"
	"github.com/idbridge/idbridge/providers"
)

// authorizer sets a request's credentials.
type authorizer interface {
	authorize(ctx context.Context, req *http.Request) error
	// invalidate drops a cached token after the service refused it; it reports whether
	// there was one (a retry with a fresh token may then help).
	invalidate() bool
}

func newAuthorizer(sec *configs.Section, a *Auth, s *step) (authorizer, configs.Errors) {
	var errs configs.Errors
	bad := func(key, format string, args ...any) { errs = append(errs, sec.Errorf("auth."+key, format, args...)) }
	need := func(key, v string) {
		if v == "" {
			bad(key, "required with type %s", a.Type)
		}
	}
	switch a.Type {
	case "", AuthNone:
		return header{}, nil
	case AuthClientCredentials:
		need("token_url", a.TokenURL)
		need("client_id", a.ClientID)
		need("client_secret", a.ClientSecret)
		if a.TokenURL != "" {
			if msg := providers.CheckEndpointURL(a.TokenURL); msg != "" {
				bad("token_url", "%s", msg)
			}
		}
		switch a.AuthMethod {
		case "", "client_secret_post", "client_secret_basic":
		default:
			bad("auth_method", "must be client_secret_post or client_secret_basic")
		}
		return &clientCredentials{cfg: *a, step: s}, errs
	case AuthBearer:
		need("token", a.Token)
		return header{name: "Authorization", value: "Bearer " + a.Token}, errs
	case AuthBasic:
		need("username", a.Username)
		need("password", a.Password)
		return header{name: "Authorization", value: "Basic " + base64.StdEncoding.EncodeToString([]byte(a.Username+":"+a.Password))}, errs
	case AuthHeader:
		need("name", a.Name)
		need("value", a.Value)
		if a.Name != "" && !validHeaderName(a.Name) {
			bad("name", "is not a header name")
		}
		if strings.ContainsAny(a.Value, "\r\n") {
			bad("value", "must be one line")
		}
		return header{name: a.Name, value: a.Value}, errs
	}
	bad("type", "must be none, client_credentials, bearer, basic or header")
	return nil, errs
}

func validHeaderName(n string) bool {
	for i := 0; i < len(n); i++ {
		c := n[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0) {
			return false
		}
	}
	return n != ""
}

// header sets one fixed header (none: no header at all).
type header struct{ name, value string }

func (h header) authorize(_ context.Context, req *http.Request) error {
	if h.name != "" {
		req.Header.Set(h.name, h.value)
	}
	return nil
}

func (header) invalidate() bool { return false }

// Token reuse: a token is used until refreshBefore its expiry, so that a request never
// carries one that expires on the way; without expires_in, defaultTokenTTL is assumed.
const (
	refreshBefore   = time.Minute
	defaultTokenTTL = 5 * time.Minute
	maxTokenBytes   = 64 << 10
)

// clientCredentials fetches an app-only token (RFC 6749 §4.4) once and reuses it until
// shortly before it expires. Concurrent requests that find no valid token share one
// fetch; it is never made per request.
type clientCredentials struct {
	cfg  Auth
	step *step

	mu      sync.Mutex
	token   string
	expires time.Time
	flight  singleflight.Group
}

func (c *clientCredentials) authorize(ctx context.Context, req *http.Request) error {
	tok, err := c.current(ctx)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+tok)
	return nil
}

func (c *clientCredentials) invalidate() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	had := c.token != ""
	c.token = ""
	return had
}

func (c *clientCredentials) current(ctx context.Context) (string, error) {
	c.mu.Lock()
	if c.token != "" && time.Now().Before(c.expires) {
		t := c.token
		c.mu.Unlock()
		return t, nil
	}
	c.mu.Unlock()
	ch := c.flight.DoChan("token", func() (any, error) {
		// The fetch serves every waiting caller: it must not die with the first one.
		fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), c.step.timeout)
		defer cancel()
		return c.fetch(fctx)
	})
	select {
	case r := <-ch:
		if r.Err != nil {
			return "", r.Err
		}
		return r.Val.(string), nil
	case <-ctx.Done():
		return "", fmt.Errorf("rest: %w: waiting for a token: %w", providers.ErrUnavailable, ctx.Err())
	}
}

// fetch asks token_url for a token and keeps it.
func (c *clientCredentials) fetch(ctx context.Context) (string, error) {
	form := url.Values{"grant_type": {"client_credentials"}}
	if c.cfg.Scope != "" {
		form.Set("scope", c.cfg.Scope)
	}
	basic := c.cfg.AuthMethod == "client_secret_basic"
	if !basic {
		form.Set("client_id", c.cfg.ClientID)
		form.Set("client_secret", c.cfg.ClientSecret)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.cfg.TokenURL, strings.NewReader(form.Encode()))
	if err != nil {
		return "", c.fail("building the token request: %v", err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Accept", "application/json")
	if basic {
		// RFC 6749 §2.3.1: both parts form-urlencoded before Basic.
		req.SetBasicAuth(url.QueryEscape(c.cfg.ClientID), url.QueryEscape(c.cfg.ClientSecret))
	}
	resp, err := c.step.client.Do(req)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return "", c.fail("token endpoint: %v", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxTokenBytes+1))
	if err != nil {
		return "", c.fail("token endpoint: reading the answer: %v", err)
	}
	switch {
	case resp.StatusCode == http.StatusOK:
	case resp.StatusCode == http.StatusBadRequest || resp.StatusCode == http.StatusUnauthorized:
		// RFC 6749 §5.2: invalid_client, unauthorized_client, invalid_scope: ours to fix.
		code := gjson.GetBytes(body, "error")
		detail := fmt.Sprintf("the token endpoint refuses our credentials (%d %s)", resp.StatusCode, oauthCode(code.Str))
		c.step.setHealth(false, detail)
		c.step.log.Error("rest: "+detail, "token_host", req.URL.Host)
		return "", fmt.Errorf("rest: %w: %s", providers.ErrUnavailable, detail)
	default:
		return "", c.fail("token endpoint: status %d", resp.StatusCode)
	}
	if len(body) > maxTokenBytes || jsonlimit.CheckDepth(body, jsonlimit.MaxDepth) != nil || !gjson.ValidBytes(body) {
		return "", c.fail("token endpoint: the answer is not a small JSON object")
	}
	tok := gjson.GetBytes(body, "access_token")
	if tok.Type != gjson.String || tok.Str == "" {
		return "", c.fail("token endpoint: the answer has no access_token")
	}
	if tt := gjson.GetBytes(body, "token_type"); tt.Exists() && !strings.EqualFold(tt.Str, "bearer") {
		return "", c.fail("token endpoint: token_type %q is not Bearer", oauthCode(tt.Str))
	}
	ttl := defaultTokenTTL
	if e := gjson.GetBytes(body, "expires_in"); e.Type == gjson.Number && e.Int() > 0 {
		ttl = time.Duration(e.Int()) * time.Second
	}
	// Reuse until refreshBefore the expiry, or until half the lifetime for short ones.
	ttl -= min(refreshBefore, ttl/2)
	c.mu.Lock()
	c.token, c.expires = tok.Str, time.Now().Add(ttl)
	c.mu.Unlock()
	return tok.Str, nil
}

func (c *clientCredentials) fail(format string, args ...any) error {
	return c.step.unavailable(format, args...)
}

// oauthCode keeps an error code printable and short: it comes from outside.
func oauthCode(s string) string {
	if len(s) > 40 {
		s = s[:40]
	}
	return strings.Map(func(r rune) rune {
		if r < 0x21 || r > 0x7e {
			return -1
		}
		return r
	}, s)
}
