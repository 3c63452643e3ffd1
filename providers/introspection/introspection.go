// Package introspection implements `type: introspection`: a bearer token is validated by
// asking the IdP's RFC 7662 token introspection endpoint, and the answer, when active, is
// the identity document.
//
// Only a JSON boolean "active": true accepts a token. Everything the endpoint does not
// answer cleanly (a timeout, a non-200 status, a wrong content type, malformed or
// oversized JSON) is ErrUnavailable, never acceptance and never the user's fault: a 401
// from the endpoint means idbridge's own client credentials were refused.
//
// The time and policy checks (exp, nbf, issuer, audiences, client_ids, required_claims)
// run in Authenticate and again in CheckPolicy, which the chain calls on every answer,
// cached ones included; required_scopes runs in CheckPolicy only, so that an answer
// lacking a scope is cached and refused from the cache. A caller outside the chain must
// call CheckPolicy after Authenticate.
package introspection

import (
	"context"
	"crypto/ecdsa"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/lestrrat-go/jwx/v3/jwa"
	"github.com/lestrrat-go/jwx/v3/jwt"

	"github.com/idbridge/idbridge/configs"
	"github.com/idbridge/idbridge/outbound"
	"github.com/idbridge/idbridge/providers"
)

// MaxAnswerBytes bounds an introspection answer: no IdP's answer is near it, and more is
// never read.
const MaxAnswerBytes = 1 << 20

// maxTokenBytes bounds the tokens sent to the IdP: no issuer's token is this long, and a
// huge junk header should not become a huge outbound request.
const maxTokenBytes = 16 << 10

// healthTimeout bounds a readiness probe, whatever the provider's timeout.
const healthTimeout = 2 * time.Second

// healthFresh is how long the outcome of a real call stands in for a probe.
const healthFresh = 15 * time.Second

// clientAssertionType is RFC 7523 §2.2's client_assertion_type.
const clientAssertionType = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"

// Provider asks an RFC 7662 endpoint about tokens.
type Provider struct {
	name   string
	s      *settings
	client *http.Client
	log    *slog.Logger
	now    func() time.Time
	// last is the outcome of the most recent exchange with the endpoint, for Health.
	last atomic.Pointer[outcome]
}

type outcome struct {
	at     time.Time
	ok     bool
	detail string
}

// Interface guards.
var (
	_ providers.Provider      = (*Provider)(nil)
	_ providers.Policy        = (*Provider)(nil)
	_ providers.HealthChecker = (*Provider)(nil)
	_ providers.ClientSource  = (*Provider)(nil)
	_ providers.Factory       = New
)

// Registration is the introspection provider type's entry in the registry.
func Registration() providers.Type {
	return providers.Type{New: New, Secrets: []string{"client_secret", "private_key_file"}, Warnings: Warnings}
}

// New builds a `type: introspection` provider from its section. Every configuration
// error is returned at once, as configs.Errors. Warnings (see Warnings) are logged.
func New(sec *configs.ProviderSection, deps providers.Deps) (providers.Instance, error) {
	cfg, s, errs := load(sec)
	if len(errs) > 0 {
		return providers.Instance{}, errs
	}
	p := &Provider{
		name:   sec.Name,
		s:      s,
		client: outbound.NoRedirects(deps.HTTPClient),
		log:    deps.Logger,
		now:    deps.Now,
	}
	if p.log == nil {
		p.log = slog.New(slog.DiscardHandler)
	}
	p.log = p.log.With("provider", sec.Name, "type", Type)
	if p.now == nil {
		p.now = time.Now
	}
	for _, w := range warnings(sec, cfg) {
		p.log.Warn("configuration", "warning", w.Error())
	}
	return providers.Instance{
		Name:        sec.Name,
		Type:        Type,
		Provider:    p,
		CacheTTL:    s.cacheTTL,
		NegativeTTL: s.negativeTTL,
		Fingerprint: sec.Fingerprint,
	}, nil
}

// Authenticate asks the endpoint about token and checks the answer.
func (p *Provider) Authenticate(ctx context.Context, token string) (providers.Identity, error) {
	if !p.considers(token) {
		return providers.Identity{}, fmt.Errorf("introspection: %w", providers.ErrNotMine)
	}
	if len(token) > maxTokenBytes {
		return providers.Identity{}, fmt.Errorf("introspection: %w: token too long", providers.ErrInvalidToken)
	}
	body, err := p.introspect(ctx, url.Values{"token": {token}})
	if err != nil {
		return providers.Identity{}, err
	}
	a, err := parseAnswer(body, p.s.policy.claimNames)
	switch {
	case errors.Is(err, errInactive):
		return providers.Identity{}, fmt.Errorf("introspection: %w: not active", providers.ErrInvalidToken)
	case err != nil:
		p.log.Error("introspection endpoint gave a malformed answer", "err", err)
		return providers.Identity{}, fmt.Errorf("introspection: %w: %w", providers.ErrUnavailable, err)
	}
	// required_scopes is left to CheckPolicy, which the chain runs on this answer right
	// after caching it. A missing scope is a 403, not an invalid token, so the chain
	// keeps no negative entry for it: checked here, it would send every retry of such a
	// token to the endpoint. The other failures are invalid tokens, which its negative
	// cache remembers.
	if err := p.s.policy.check(&a, p.now(), false); err != nil {
		return providers.Identity{}, err
	}
	return providers.Identity{Document: body, Expires: a.expires()}, nil
}

// CheckPolicy re-checks a document this provider accepted: time, issuer, audiences,
// client_ids, required_claims and required_scopes. The chain runs it on every answer.
func (p *Provider) CheckPolicy(doc []byte, now time.Time) error {
	a, err := parseAnswer(doc, p.s.policy.claimNames)
	if err != nil {
		// A cached document is one we accepted; failing here means it was altered.
		return fmt.Errorf("introspection: %w: %w", providers.ErrInvalidToken, err)
	}
	return p.s.policy.check(&a, now, true)
}

// TokenClient returns the client of an answer this provider accepted, read as client_ids
// reads it (client_id_claims).
func (p *Provider) TokenClient(doc []byte) (string, bool) {
	a, err := parseAnswer(doc, p.s.policy.claimNames)
	if err != nil {
		return "", false
	}
	return p.s.policy.client(&a)
}

func (p *Provider) considers(token string) bool { return p.s.accepts.Considers(token) }

// introspect POSTs form (token or nothing, for a probe) with the client's credentials and
// returns the 200 answer's body. Errors wrap ErrUnavailable and never carry the form.
func (p *Provider) introspect(ctx context.Context, form url.Values) ([]byte, error) {
	return p.post(ctx, p.s.timeout, form, true)
}

func (p *Provider) post(ctx context.Context, timeout time.Duration, form url.Values, record bool) (body []byte, err error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	if record {
		defer func() { p.record(err) }()
	}
	if p.s.tokenTypeHint != "" && form.Has("token") {
		form.Set("token_type_hint", p.s.tokenTypeHint)
	}
	var basic string
	switch p.s.authMethod {
	case AuthClientSecretBasic:
		// RFC 6749 §2.3.1: form-urlencode id and secret, then base64 (not what
		// http.Request.SetBasicAuth does).
		basic = "Basic " + base64.StdEncoding.EncodeToString(
			[]byte(url.QueryEscape(p.s.clientID)+":"+url.QueryEscape(p.s.clientSecret)))
	case AuthClientSecretPost:
		form.Set("client_id", p.s.clientID)
		form.Set("client_secret", p.s.clientSecret)
	case AuthPrivateKeyJWT:
		assertion, err := p.assertion()
		if err != nil {
			return nil, fmt.Errorf("introspection: %w: client assertion: %w", providers.ErrUnavailable, err)
		}
		form.Set("client_id", p.s.clientID)
		form.Set("client_assertion_type", clientAssertionType)
		form.Set("client_assertion", assertion)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, p.s.endpoint, strings.NewReader(form.Encode()))
	if err != nil {
		return nil, fmt.Errorf("introspection: %w: %w", providers.ErrUnavailable, err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Accept", "application/json")
	if basic != "" {
		req.Header.Set("Authorization", basic)
	}
	resp, err := p.client.Do(req)
	if err != nil {
		// url.Error names the endpoint (configuration, no credentials) and the cause.
		return nil, fmt.Errorf("introspection: %w: %w", providers.ErrUnavailable, err)
	}
	defer resp.Body.Close()

	switch {
	case resp.StatusCode == http.StatusUnauthorized || resp.StatusCode == http.StatusForbidden:
		// RFC 7662 §2.3: the endpoint refused *our* credentials. The user is not at fault;
		// an operator must fix the client configuration.
		p.log.Error("introspection endpoint refused idbridge's client credentials",
			"status", resp.StatusCode, "client_id", p.s.clientID, "auth_method", p.s.authMethod)
		drain(resp.Body)
		return nil, fmt.Errorf("introspection: %w: %w (%d)", providers.ErrUnavailable, errCredentials, resp.StatusCode)
	case resp.StatusCode != http.StatusOK:
		drain(resp.Body)
		return nil, fmt.Errorf("introspection: %w: %w", providers.ErrUnavailable, &statusError{resp.StatusCode})
	}
	if !isJSON(resp.Header.Get("Content-Type")) {
		drain(resp.Body)
		return nil, fmt.Errorf("introspection: %w: answer is not application/json", providers.ErrUnavailable)
	}
	body, err = io.ReadAll(io.LimitReader(resp.Body, MaxAnswerBytes+1))
	if err != nil {
		return nil, fmt.Errorf("introspection: %w: reading the answer: %w", providers.ErrUnavailable, err)
	}
	if len(body) > MaxAnswerBytes {
		return nil, fmt.Errorf("introspection: %w: answer larger than %d bytes", providers.ErrUnavailable, MaxAnswerBytes)
	}
	return body, nil
}

// drain reads a little of an unwanted body so that the connection can be reused, and no
// more: the server chose its size.
func drain(r io.Reader) { _, _ = io.CopyN(io.Discard, r, 4<<10) }

func isJSON(contentType string) bool {
	mt, _, err := mime.ParseMediaType(contentType)
	return err == nil && mt == "application/json"
}

// assertion builds the RFC 7523 §3 client assertion: iss = sub = client_id, aud = the
// endpoint, a fresh jti, a one-minute lifetime.
func (p *Provider) assertion() (string, error) {
	now := p.now()
	var jti [16]byte
	if _, err := rand.Read(jti[:]); err != nil {
		return "", err
	}
	tok, err := jwt.NewBuilder().
		Issuer(p.s.clientID).
		Subject(p.s.clientID).
		Audience([]string{p.s.endpoint}).
		JwtID(base64.RawURLEncoding.EncodeToString(jti[:])).
		IssuedAt(now).
		Expiration(now.Add(time.Minute)).
		Build()
	if err != nil {
		return "", err
	}
	alg := jwa.RS256()
	if _, ok := p.s.signer.(*ecdsa.PrivateKey); ok {
		alg = jwa.ES256()
	}
	signed, err := jwt.Sign(tok, jwt.WithKey(alg, p.s.signer))
	if err != nil {
		return "", err
	}
	return string(signed), nil
}

// errCredentials: the endpoint answered 401 or 403 to idbridge itself.
var errCredentials = errors.New("endpoint refused the client credentials")

// statusError is an unexpected HTTP status from the endpoint.
// statusError is a status other than 200. It names the status by its number and the
// standard text, never by the reason phrase the endpoint sent, which is upstream text.
type statusError struct{ code int }

func (e *statusError) Error() string {
	return "endpoint answered " + strconv.Itoa(e.code) + " " + http.StatusText(e.code)
}

func (p *Provider) record(err error) {
	o := &outcome{at: p.now(), ok: true}
	if errors.Is(err, errCredentials) {
		o.ok, o.detail = false, "introspection endpoint refused the client credentials"
	} else if errors.Is(err, providers.ErrUnavailable) {
		o.ok, o.detail = false, "introspection endpoint unavailable"
	}
	p.last.Store(o)
}

// Health reports whether the endpoint answers. A recent real call stands in for a probe;
// otherwise it POSTs the client's credentials without a token, which a live endpoint
// answers 200 or 400, and 401 when the credentials are wrong.
func (p *Provider) Health(ctx context.Context) providers.Health {
	if o := p.last.Load(); o != nil && p.now().Sub(o.at) < healthFresh {
		return providers.Health{Ready: true, OK: o.ok, Detail: o.detail}
	}
	timeout := min(p.s.timeout, healthTimeout)
	_, err := p.post(ctx, timeout, url.Values{}, false)
	h := providers.Health{Ready: true, OK: true}
	var se *statusError
	switch {
	case err == nil:
	case errors.Is(err, errCredentials):
		h.OK, h.Detail = false, "introspection endpoint refused the client credentials"
	case errors.As(err, &se) && se.code >= 400 && se.code < 500:
		// 400 invalid_request for the missing token: alive, and our client is known.
	default:
		h.OK, h.Detail = false, "introspection endpoint unreachable or failing"
	}
	return h
}
