// Package userinfo calls an OpenID Connect userinfo endpoint (OIDC Core §5.3) with the
// user's own token. It serves twice: as `type: userinfo`, a provider whose identity
// document is the userinfo answer, and as the `userinfo:` enrichment step of another
// provider, which merges that answer into the document under a key.
//
// A 401 means the IdP refused the token (invalid); anything else that is not a clean JSON
// object (a timeout, another status, a wrong content type, malformed or oversized JSON)
// is ErrUnavailable.
package userinfo

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net/http"
	"strings"
	"time"

	"github.com/tidwall/gjson"

	"github.com/idbridge/idbridge/configs"
	"github.com/idbridge/idbridge/jsonlimit"
	"github.com/idbridge/idbridge/outbound"
	"github.com/idbridge/idbridge/providers"
)

// Type is the provider type this package implements (`type: userinfo`).
const Type = "userinfo"

// MaxAnswerBytes bounds a userinfo answer; more is never read.
const MaxAnswerBytes = 1 << 20

// maxTokenBytes bounds the tokens sent to the IdP.
const maxTokenBytes = 16 << 10

// healthTimeout bounds a readiness probe.
const healthTimeout = 2 * time.Second

// Defaults, applied to zero values.
const (
	DefaultCacheTTL         = 60 * time.Second
	DefaultNegativeCacheTTL = 10 * time.Second
	DefaultTimeout          = 5 * time.Second
	DefaultInto             = "userinfo"
	DefaultWhenMissing      = "email"
)

// Config is a `type: userinfo` provider section.
type Config struct {
	// Endpoint is the userinfo endpoint URL. Required.
	Endpoint string `yaml:"endpoint"`
	// Accepts: opaque (default), jwt or any; a token of another shape is not ours.
	Accepts string `yaml:"accepts"`
	// CacheTTL bounds how long an answer is reused; default 60s, 0 disables the cache.
	CacheTTL *time.Duration `yaml:"cache_ttl"`
	// NegativeCacheTTL keeps refused tokens apart; default 10s, 0 disables.
	NegativeCacheTTL *time.Duration `yaml:"negative_cache_ttl"`
	// Timeout bounds each call, body included; default 5s.
	Timeout time.Duration `yaml:"timeout"`
}

// Provider is `type: userinfo`.
type Provider struct {
	endpoint string
	accepts  providers.Accepts
	fetcher  *fetcher
}

// Interface guards.
var (
	_ providers.Provider      = (*Provider)(nil)
	_ providers.HealthChecker = (*Provider)(nil)
	_ providers.Factory       = New
	_ providers.StepFactory   = NewEnricher
)

// Registration is the userinfo provider type's entry in the registry.
func Registration() providers.Type { return providers.Type{New: New, Warnings: Warnings} }

// Warnings returns advice about a valid but risky section: a plain-http endpoint off
// loopback carries the user's token and their identity in clear.
func Warnings(sec *configs.ProviderSection) configs.Errors {
	var cfg Config
	if errs := sec.Decode(&cfg); len(errs) > 0 {
		return nil
	}
	if w := providers.PlainHTTPWarning(sec, "endpoint", cfg.Endpoint, "the user's token and identity"); w != nil {
		return configs.Errors{w}
	}
	return nil
}

// Step is the `userinfo:` enrichment step's entry in the registry.
func Step() providers.Step {
	return providers.Step{Key: "userinfo", New: NewEnricher, Warnings: stepWarnings}
}

// stepWarnings warns about a step endpoint in plain http off loopback. A section that
// does not decode is NewEnricher's to report.
func stepWarnings(step *configs.Section) configs.Errors {
	var u StepConfig
	if len(step.Decode(&u)) > 0 {
		return nil
	}
	if w := providers.PlainHTTPStepWarning(step, "endpoint", u.Endpoint, "the user's token and identity"); w != nil {
		return configs.Errors{w}
	}
	return nil
}

// New builds a `type: userinfo` provider; configuration errors come back all at once, as
// configs.Errors.
func New(sec *configs.ProviderSection, deps providers.Deps) (providers.Instance, error) {
	var cfg Config
	if errs := sec.Decode(&cfg); len(errs) > 0 {
		return providers.Instance{}, errs
	}
	var errs configs.Errors
	add := func(key, format string, args ...any) { errs = append(errs, sec.Errorf(key, format, args...)) }
	if cfg.Endpoint == "" {
		add("endpoint", "is required")
	} else if msg := providers.CheckEndpointURL(cfg.Endpoint); msg != "" {
		add("endpoint", "%s", msg)
	}
	accepts, err := providers.ParseAccepts(cfg.Accepts)
	if err != nil {
		add("accepts", "%v", err)
	}
	cacheTTL, negTTL := DefaultCacheTTL, DefaultNegativeCacheTTL
	if cfg.CacheTTL != nil {
		cacheTTL = *cfg.CacheTTL
	}
	if cfg.NegativeCacheTTL != nil {
		negTTL = *cfg.NegativeCacheTTL
	}
	if cacheTTL < 0 {
		add("cache_ttl", "must not be negative")
	}
	if negTTL < 0 {
		add("negative_cache_ttl", "must not be negative")
	}
	if cfg.Timeout < 0 {
		add("timeout", "must be positive")
	}
	if len(errs) > 0 {
		return providers.Instance{}, errs
	}
	timeout := cfg.Timeout
	if timeout == 0 {
		timeout = DefaultTimeout
	}
	p := &Provider{
		endpoint: cfg.Endpoint,
		accepts:  accepts,
		fetcher:  newFetcher(deps, timeout, sec.Name),
	}
	return providers.Instance{
		Name:        sec.Name,
		Type:        Type,
		Provider:    p,
		CacheTTL:    cacheTTL,
		NegativeTTL: negTTL,
		Fingerprint: sec.Fingerprint,
	}, nil
}

// Authenticate calls the userinfo endpoint with token; its JSON object answer is the
// document. Userinfo tells no expiry, so Expires is zero and cache_ttl alone bounds reuse.
func (p *Provider) Authenticate(ctx context.Context, token string) (providers.Identity, error) {
	if !p.accepts.Considers(token) {
		return providers.Identity{}, fmt.Errorf("userinfo: %w", providers.ErrNotMine)
	}
	doc, err := p.fetcher.fetch(ctx, p.endpoint, token)
	if err != nil {
		return providers.Identity{}, err
	}
	return providers.Identity{Document: doc}, nil
}

// Health GETs the endpoint without a token: a live endpoint answers 401 (or 400).
func (p *Provider) Health(ctx context.Context) providers.Health {
	return p.fetcher.health(ctx, p.endpoint)
}

// fetcher makes userinfo calls for the provider and the enrichment step.
type fetcher struct {
	client  *http.Client
	timeout time.Duration
	log     *slog.Logger
}

func newFetcher(deps providers.Deps, timeout time.Duration, name string) *fetcher {
	// Never follow a redirect with the user's token, whatever client we were given.
	c := outbound.NoRedirects(deps.HTTPClient)
	log := deps.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &fetcher{client: c, timeout: timeout, log: log.With("provider", name, "type", Type)}
}

// fetch GETs endpoint with the bearer token and returns the JSON object answer. Errors
// wrap ErrInvalidToken (401, or 403 insufficient_scope/invalid_token) or ErrUnavailable,
// and never carry the token.
func (f *fetcher) fetch(ctx context.Context, endpoint, token string) ([]byte, error) {
	if len(token) > maxTokenBytes {
		return nil, fmt.Errorf("userinfo: %w: token too long", providers.ErrInvalidToken)
	}
	ctx, cancel := context.WithTimeout(ctx, f.timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, endpoint, nil)
	if err != nil {
		return nil, fmt.Errorf("userinfo: %w: %w", providers.ErrUnavailable, err)
	}
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Accept", "application/json")
	resp, err := f.client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("userinfo: %w: %w", providers.ErrUnavailable, err)
	}
	defer resp.Body.Close()
	switch {
	case resp.StatusCode == http.StatusUnauthorized:
		drain(resp.Body)
		return nil, fmt.Errorf("userinfo: %w: refused by the endpoint", providers.ErrInvalidToken)
	case resp.StatusCode == http.StatusForbidden && tokenRefused(resp.Header.Values("WWW-Authenticate")):
		// RFC 6750 §3.1: the token lacks a scope userinfo needs (openid): the token's
		// fault, and asking again will not help.
		drain(resp.Body)
		return nil, fmt.Errorf("userinfo: %w: refused by the endpoint (insufficient scope)", providers.ErrInvalidToken)
	case resp.StatusCode != http.StatusOK:
		drain(resp.Body)
		// The number, not resp.Status: the reason phrase is upstream text.
		return nil, fmt.Errorf("userinfo: %w: endpoint answered %d", providers.ErrUnavailable, resp.StatusCode)
	}
	mt, _, err := mime.ParseMediaType(resp.Header.Get("Content-Type"))
	if err != nil || mt != "application/json" {
		// Signed or encrypted userinfo (application/jwt) is not supported: refuse rather
		// than trust unverified bytes.
		drain(resp.Body)
		return nil, fmt.Errorf("userinfo: %w: answer is not application/json", providers.ErrUnavailable)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, MaxAnswerBytes+1))
	if err != nil {
		return nil, fmt.Errorf("userinfo: %w: reading the answer: %w", providers.ErrUnavailable, err)
	}
	if len(body) > MaxAnswerBytes {
		return nil, fmt.Errorf("userinfo: %w: answer larger than %d bytes", providers.ErrUnavailable, MaxAnswerBytes)
	}
	if jsonlimit.Check(body) != nil || !gjson.ValidBytes(body) || !gjson.ParseBytes(body).IsObject() {
		f.log.Error("userinfo endpoint gave a malformed answer")
		return nil, fmt.Errorf("userinfo: %w: answer is not a JSON object", providers.ErrUnavailable)
	}
	return body, nil
}

func (f *fetcher) health(ctx context.Context, endpoint string) providers.Health {
	ctx, cancel := context.WithTimeout(ctx, min(f.timeout, healthTimeout))
	defer cancel()
	h := providers.Health{Ready: true}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, endpoint, nil)
	if err != nil {
		h.Detail = "userinfo endpoint is not a valid URL"
		return h
	}
	resp, err := f.client.Do(req)
	if err != nil {
		h.Detail = "userinfo endpoint unreachable"
		return h
	}
	drain(resp.Body)
	resp.Body.Close()
	if resp.StatusCode >= 500 {
		h.Detail = "userinfo endpoint failing"
		return h
	}
	h.OK = true
	return h
}

// tokenRefused reports a Bearer challenge naming the token as the problem.
func tokenRefused(challenges []string) bool {
	for _, c := range challenges {
		if strings.HasPrefix(strings.ToLower(c), "bearer") &&
			(strings.Contains(c, `error="insufficient_scope"`) || strings.Contains(c, `error="invalid_token"`)) {
			return true
		}
	}
	return false
}

func drain(r io.Reader) { _, _ = io.CopyN(io.Discard, r, 4<<10) }

// errNoEndpoint: discovery gave no userinfo endpoint.
var errNoEndpoint = errors.New("no userinfo endpoint")
