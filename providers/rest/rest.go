// Package rest is the `rest:` enrichment step: it looks the user up in a system that only
// speaks REST (Microsoft Graph, Okta's Users API, a SCIM 2.0 service, an HR system) and
// merges the answer into the identity document, beside `lookup:` and `userinfo:`.
//
//	rest:
//	  url: "https://graph.microsoft.com/v1.0/users/{{upn}}?$select=mail,otherMails"
//	  auth: {type: client_credentials, token_url: …, client_id: …, client_secret: …, scope: …}
//	  into: rest            # default
//	  when_missing: email   # default; "" = always call
//	  required: false       # default; true: no answer → 403
//	  cache_ttl: 5m         # default
//	  timeout: 5s           # default
//
// Each {{gjson path}} value is escaped for its place in the URL: a path segment
// (url.PathEscape, so "/" cannot add a segment), a query value (url.QueryEscape), or a
// string inside "…" in the query, such as a SCIM filter (RFC 7644 §3.4.2.2: JSON-escaped
// first, so a quote cannot end the string). A missing value means "not found": no call
// is made with an empty segment.
//
// Answers: 200 with a JSON object is the user (a SCIM ListResponse with exactly one
// resource yields that resource; none, or several, is "not found"); 404 is "not found";
// 401 and 403 are our credentials' fault (503, logged, shown in /readyz); 5xx, timeouts,
// redirects (never followed), answers that are not JSON or larger than 1 MiB are 503.
// The enriched document is cached with the identity, for at most cache_ttl.
package rest

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/tidwall/gjson"

	"github.com/idbridge/idbridge/configs"
	"github.com/idbridge/idbridge/jsonlimit"
	"github.com/idbridge/idbridge/outbound"
	"github.com/idbridge/idbridge/providers"
)

// Key is the provider key that holds the step.
const Key = "rest"

// Defaults, as documented on Config.
const (
	DefaultInto        = "rest"
	DefaultWhenMissing = "email"
	DefaultCacheTTL    = 5 * time.Minute
	DefaultTimeout     = 5 * time.Second
	// MaxAnswerBytes bounds an answer: a user object is a few KiB.
	MaxAnswerBytes = 1 << 20
)

// scimListResponse is the schema URN of a SCIM list answer (RFC 7644 §3.4.2).
const scimListResponse = "urn:ietf:params:scim:api:messages:2.0:ListResponse"

// Step is the `rest:` step's entry in the registry. Its secret keys: auth's
// client_secret, password, token and value.
func Step() providers.Step {
	return providers.Step{Key: Key, New: New, Secrets: []string{"client_secret", "password", "token", "value"}, Warnings: warnings}
}

// warnings warns about a url or token_url in plain http off loopback. A section that
// does not decode is New's to report.
func warnings(step *configs.Section) configs.Errors {
	var cfg Config
	if len(step.Decode(&cfg)) > 0 {
		return nil
	}
	var out configs.Errors
	if w := providers.PlainHTTPStepWarning(step, "url", cfg.URL, "the user's identifiers and our credentials"); w != nil {
		out = append(out, w)
	}
	if w := providers.PlainHTTPStepWarning(step, "auth.token_url", cfg.Auth.TokenURL, "our client credentials and the token they buy"); w != nil {
		out = append(out, w)
	}
	return out
}

// Config is a provider's `rest:` step.
type Config struct {
	// URL is the user's resource; required. {{gjson path}} placeholders (see the package
	// comment for their escaping).
	URL string `yaml:"url"`
	// Auth is how idbridge authenticates to the service; default none.
	Auth Auth `yaml:"auth"`
	// Into is the document key the answer is merged under; default rest.
	Into string `yaml:"into"`
	// WhenMissing: call only when this gjson path is absent from the document; default
	// email; "" = always.
	WhenMissing *string `yaml:"when_missing"`
	// Required refuses the user (403) when the service has no answer for them; default
	// false (the document goes on without it).
	Required bool `yaml:"required"`
	// CacheTTL bounds how long the enriched identity is cached; default 5m.
	CacheTTL time.Duration `yaml:"cache_ttl"`
	// Timeout bounds each call (the token fetch and the lookup); default 5s.
	Timeout time.Duration `yaml:"timeout"`
}

// Auth types.
const (
	AuthNone              = "none"
	AuthClientCredentials = "client_credentials" // RFC 6749 §4.4: an app-only token, fetched and reused
	AuthBearer            = "bearer"             // a static token: Authorization: Bearer <token>
	AuthBasic             = "basic"              // RFC 7617
	AuthHeader            = "header"             // one header, e.g. Authorization: SSWS <token> (Okta)
)

// Auth is the `auth:` section of a rest step.
type Auth struct {
	Type string `yaml:"type"` // default none; none | client_credentials | bearer | basic | header
	// client_credentials (RFC 6749 §4.4)
	TokenURL     string `yaml:"token_url"`     // required
	ClientID     string `yaml:"client_id"`     // required
	ClientSecret string `yaml:"client_secret"` // secret; required
	Scope        string `yaml:"scope"`         // e.g. https://graph.microsoft.com/.default
	// AuthMethod is how the client authenticates to token_url: client_secret_post
	// (default: the form body, as Microsoft's and Okta's docs show) or
	// client_secret_basic (RFC 6749 §2.3.1).
	AuthMethod string `yaml:"auth_method"`
	// bearer
	Token string `yaml:"token"` // secret
	// basic
	Username string `yaml:"username"`
	Password string `yaml:"password"` // secret
	// header
	Name  string `yaml:"name"`  // the header's name
	Value string `yaml:"value"` // secret; the header's value
}

// Step is one configured rest step.
type step struct {
	provider    string
	url         *urlTemplate
	host        string // for logs: never the URL, which carries the user's name
	auth        authorizer
	into        string
	whenMissing string
	required    bool
	ttl         time.Duration
	timeout     time.Duration
	client      *http.Client
	log         *slog.Logger

	mu     sync.Mutex
	health providers.Health
}

var (
	_ providers.Enricher      = (*step)(nil)
	_ providers.HealthChecker = (*step)(nil)
	_ providers.StepFactory   = New
)

// New builds a rest step from its section, without side effects: the token is fetched
// on the first call.
func New(sec *configs.Section, owner *configs.ProviderSection, _ providers.Provider, deps providers.Deps) (providers.Enricher, error) {
	var cfg Config
	if errs := sec.Decode(&cfg); len(errs) > 0 {
		return nil, errs
	}
	var errs configs.Errors
	bad := func(key, format string, args ...any) { errs = append(errs, sec.Errorf(key, format, args...)) }
	s := &step{
		provider:    owner.Name,
		into:        cmp.Or(cfg.Into, DefaultInto),
		whenMissing: DefaultWhenMissing,
		required:    cfg.Required,
		ttl:         cmp.Or(cfg.CacheTTL, DefaultCacheTTL),
		timeout:     cmp.Or(cfg.Timeout, DefaultTimeout),
		client:      outbound.NoRedirects(deps.HTTPClient),
		log:         deps.Logger,
		health:      providers.Health{Ready: true, OK: true, Detail: "not called yet"},
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	s.log = s.log.With("provider", owner.Name, "step", Key)
	if cfg.WhenMissing != nil {
		s.whenMissing = *cfg.WhenMissing
	}
	if cfg.URL == "" {
		bad("url", "required, e.g. \"https://graph.microsoft.com/v1.0/users/{{upn}}\"")
	} else if t, err := compileURL(cfg.URL); err != nil {
		bad("url", "%v", err)
	} else {
		s.url = t
		u, _ := url.Parse(t.parts[0].lit)
		s.host = u.Host
	}
	if strings.ContainsAny(s.into, ".*?#|@\\!=<>%") {
		bad("into", "must be a plain key, not a path")
	}
	if cfg.CacheTTL < 0 {
		bad("cache_ttl", "must not be negative")
	}
	if cfg.Timeout < 0 {
		bad("timeout", "must not be negative")
	}
	a, aerrs := newAuthorizer(sec, &cfg.Auth, s)
	errs = append(errs, aerrs...)
	s.auth = a
	if len(errs) > 0 {
		return nil, errs
	}
	return s, nil
}

// Into is the document key the step writes.
func (s *step) Into() string { return s.into }

// TTL bounds how long the enriched identity is cached.
func (s *step) TTL() time.Duration { return s.ttl }

// Health reports the last call's outcome: a service or token endpoint that refuses our
// credentials shows here (OK false), so an operator finds it in /readyz.
func (s *step) Health(context.Context) providers.Health {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.health
}

func (s *step) setHealth(ok bool, detail string) {
	s.mu.Lock()
	s.health = providers.Health{Ready: true, OK: ok, Detail: detail}
	s.mu.Unlock()
}

// errNotFound: the service has no (single) answer for this user.
var errNotFound = errors.New("no answer for this user")

// Enrich merges the service's answer under into, unless when_missing is already in doc.
func (s *step) Enrich(ctx context.Context, _ string, doc []byte) ([]byte, error) {
	if s.whenMissing != "" && gjson.GetBytes(doc, s.whenMissing).Exists() {
		return doc, nil
	}
	target, ok := s.url.render(doc)
	if !ok {
		return s.missing(doc, fmt.Errorf("a placeholder of the url has no value in the identity: %w", errNotFound))
	}
	answer, err := s.fetch(ctx, target, true)
	if errors.Is(err, errNotFound) {
		return s.missing(doc, err)
	}
	if err != nil {
		return nil, err
	}
	return merge(doc, s.into, answer)
}

func (s *step) missing(doc []byte, err error) ([]byte, error) {
	if s.required {
		return nil, fmt.Errorf("rest: %w: %w", providers.ErrAccessDenied, err)
	}
	return doc, nil
}

func (s *step) unavailable(format string, args ...any) error {
	msg := fmt.Sprintf(format, args...)
	s.setHealth(false, msg)
	s.log.Warn("rest: lookup failed", "host", s.host, "reason", msg)
	return fmt.Errorf("rest: %w: %s", providers.ErrUnavailable, msg)
}

// fetch GETs target and returns the user's JSON object. retry allows one more try with
// a fresh token after a 401 (a token revoked before its expiry).
func (s *step) fetch(ctx context.Context, target string, retry bool) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, target, nil)
	if err != nil {
		return nil, s.unavailable("building the request: %v", err)
	}
	req.Header.Set("Accept", "application/json, application/scim+json")
	if err := s.auth.authorize(ctx, req); err != nil {
		return nil, err
	}
	resp, err := s.client.Do(req)
	if err != nil {
		// The url.Error names the URL, which carries the user's name: keep the cause.
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return nil, s.unavailable("%v", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, MaxAnswerBytes+1))
	if err != nil {
		return nil, s.unavailable("reading the answer: %v", err)
	}
	switch {
	case resp.StatusCode == http.StatusOK:
	case resp.StatusCode == http.StatusNotFound:
		s.setHealth(true, "")
		return nil, errNotFound
	case resp.StatusCode == http.StatusUnauthorized || resp.StatusCode == http.StatusForbidden:
		// Our credentials' fault, not the user's.
		if s.auth.invalidate() && retry && resp.StatusCode == http.StatusUnauthorized {
			return s.fetch(ctx, target, false)
		}
		detail := fmt.Sprintf("the service refuses our credentials (%d)", resp.StatusCode)
		s.setHealth(false, detail)
		s.log.Error("rest: "+detail, "host", s.host)
		return nil, fmt.Errorf("rest: %w: %s", providers.ErrUnavailable, detail)
	default:
		return nil, s.unavailable("status %d", resp.StatusCode)
	}
	if len(body) > MaxAnswerBytes {
		return nil, s.unavailable("answer larger than %d bytes", MaxAnswerBytes)
	}
	if err := jsonlimit.CheckDepth(body, jsonlimit.MaxDepth); err != nil {
		return nil, s.unavailable("answer: %v", err)
	}
	if !gjson.ValidBytes(body) || !gjson.ParseBytes(body).IsObject() {
		return nil, s.unavailable("answer is not a JSON object")
	}
	s.setHealth(true, "")
	return resource(body)
}

// resource returns the user's object: the answer itself, or the only resource of a SCIM
// ListResponse (RFC 7644 §3.4.2); a list with none or several is "not found": guessing
// one of two users would hand someone else's email over.
func resource(body []byte) ([]byte, error) {
	doc := gjson.ParseBytes(body)
	isList := false
	doc.Get("schemas").ForEach(func(_, v gjson.Result) bool {
		isList = isList || v.Str == scimListResponse
		return !isList
	})
	if !isList {
		return body, nil
	}
	res := doc.Get("Resources")
	if !res.IsArray() || len(res.Array()) != 1 || !res.Array()[0].IsObject() {
		return nil, fmt.Errorf("SCIM list with %d resources: %w", len(res.Array()), errNotFound)
	}
	return []byte(res.Array()[0].Raw), nil
}

// merge sets doc[key] = value (providers.MergeInto).
func merge(doc []byte, key string, value []byte) ([]byte, error) {
	out, err := providers.MergeInto(doc, key, bytes.Clone(value))
	if err != nil {
		return nil, fmt.Errorf("rest: %w: %w", providers.ErrUnavailable, err)
	}
	return out, nil
}
