// Package spotnana talks to Spotnana's OAuth 2.0 token endpoint on behalf of users and
// simulates it for development. It holds the token-exchange client (RFC 8693 grant,
// client_secret_post, retries with backoff), a per-user token cache with singleflight,
// assertion mode's signing keys and JWKS (Spotnana's JWKS variant), and Sandbox, a
// local stand-in for Spotnana's token endpoint. Errors are typed (RefusedError,
// ErrUnavailable); turning them into HTTP statuses is the server's job. Nothing here
// logs a secret or a token: at most a token's fingerprint (first 8 hex of its SHA-256).
package spotnana

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/idbridge/idbridge/configs"
	"github.com/idbridge/idbridge/jsonlimit"
	"github.com/idbridge/idbridge/outbound"
	"github.com/idbridge/idbridge/providers"
)

// Protocol constants.
const (
	// GrantTokenExchange is RFC 8693 §2.1's grant type.
	GrantTokenExchange = "urn:ietf:params:oauth:grant-type:token-exchange"
	// GrantClientCredentials is RFC 6749 §4.4's grant type.
	GrantClientCredentials = "client_credentials"
	// TokenTypeAccessToken is RFC 8693 §3's access-token type, the one Spotnana documents.
	TokenTypeAccessToken = "urn:ietf:params:oauth:token-type:access_token"
	// TokenTypeJWT is RFC 8693 §3's JWT type.
	TokenTypeJWT = "urn:ietf:params:oauth:token-type:jwt"
	// ScopeOpenID is the only scope Spotnana's token endpoint accepts.
	ScopeOpenID = "openid"
)

// Defaults of the `spotnana:` section (configs.Spotnana), applied to zero values.
const (
	DefaultTimeout    = 10 * time.Second
	DefaultMaxRetries = 3
	// DefaultRetryAfter is suggested to our caller when Spotnana gave no Retry-After.
	DefaultRetryAfter = 5 * time.Second
	// DefaultBackoffBase is the ceiling of the first retry's wait; it doubles per
	// retry up to DefaultBackoffMax (full jitter picks a wait below the ceiling).
	DefaultBackoffBase = 250 * time.Millisecond
	DefaultBackoffMax  = 5 * time.Second
	// DefaultMaxRetryAfter is the longest Retry-After we wait out inside one
	// exchange; a longer one ends the exchange with ErrUnavailable carrying it, since
	// holding a user's request for minutes helps nobody.
	DefaultMaxRetryAfter = 30 * time.Second
)

// maxBodyBytes bounds what we read of any answer: a token response is a few KiB.
const maxBodyBytes = 1 << 20

// TokenResponse is Spotnana's successful token answer (RFC 6749 §5.1, RFC 8693 §2.2.1).
type TokenResponse struct {
	AccessToken  string `json:"access_token"`
	RefreshToken string `json:"refresh_token,omitempty"`
	TokenType    string `json:"token_type"`
	// ExpiresIn is the lifetime in seconds; for a token served from the cache, the
	// seconds actually left. 0 when Spotnana did not say.
	ExpiresIn int64  `json:"expires_in,omitempty"`
	Scope     string `json:"scope,omitempty"`
	// IssuedTokenType is required by RFC 8693 §2.2.1 but Spotnana omits it: "" then.
	IssuedTokenType string `json:"issued_token_type,omitempty"`
	// Raw is the body as Spotnana sent it, so that fields we do not model survive.
	Raw json.RawMessage `json:"-"`
}

// MarshalJSON writes Spotnana's body with every field it sent, the modelled fields
// overriding (so that a cached token's expires_in is the time actually left).
func (t TokenResponse) MarshalJSON() ([]byte, error) {
	m := map[string]any{}
	if len(t.Raw) > 0 {
		var raw map[string]json.RawMessage
		if err := json.Unmarshal(t.Raw, &raw); err == nil {
			for k, v := range raw {
				m[k] = v
			}
		}
	}
	set := func(k, v string) {
		if v != "" {
			m[k] = v
		} else {
			delete(m, k)
		}
	}
	set("access_token", t.AccessToken)
	set("refresh_token", t.RefreshToken)
	set("token_type", t.TokenType)
	set("scope", t.Scope)
	set("issued_token_type", t.IssuedTokenType)
	if t.ExpiresIn > 0 {
		m["expires_in"] = t.ExpiresIn
	} else {
		delete(m, "expires_in")
	}
	return json.Marshal(m)
}

// parseTokenResponse validates a 200 body: access_token and token_type are required,
// expires_in may be a number or a numeric string, issued_token_type may be absent.
func parseTokenResponse(body []byte) (*TokenResponse, error) {
	var raw map[string]json.RawMessage
	if err := jsonlimit.Check(body); err != nil {
		return nil, fmt.Errorf("token response: %w", err)
	}
	if err := json.Unmarshal(body, &raw); err != nil {
		return nil, errors.New("token response is not a JSON object")
	}
	str := func(k string) (string, error) {
		v, ok := raw[k]
		if !ok || string(v) == "null" {
			return "", nil
		}
		var s string
		if err := json.Unmarshal(v, &s); err != nil {
			return "", fmt.Errorf("token response field %s is not a string", k)
		}
		return s, nil
	}
	t := &TokenResponse{Raw: append(json.RawMessage(nil), body...)}
	var err error
	for _, f := range []struct {
		k string
		p *string
	}{
		{"access_token", &t.AccessToken},
		{"refresh_token", &t.RefreshToken},
		{"token_type", &t.TokenType},
		{"scope", &t.Scope},
		{"issued_token_type", &t.IssuedTokenType},
	} {
		if *f.p, err = str(f.k); err != nil {
			return nil, err
		}
	}
	if t.AccessToken == "" {
		return nil, errors.New("token response lacks access_token")
	}
	if t.TokenType == "" {
		return nil, errors.New("token response lacks token_type")
	}
	if v, ok := raw["expires_in"]; ok && string(v) != "null" {
		s := strings.Trim(string(v), `"`)
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil || n < 0 {
			return nil, errors.New("token response expires_in is not a non-negative integer")
		}
		t.ExpiresIn = n
	}
	return t, nil
}

// ClientStats counts what a Client did since it was made; tests and metrics read it.
type ClientStats struct {
	Attempts  int64         // requests sent
	Retries   int64         // waits before a further attempt
	TotalWait time.Duration // sum of those waits
}

// Client performs Spotnana's token exchange. It is safe for concurrent use.
type Client struct {
	tokenURL     string
	clientID     string
	clientSecret string
	audience     string
	timeout      time.Duration
	maxRetries   int

	http *http.Client
	log  *slog.Logger

	backoffBase   time.Duration
	backoffMax    time.Duration
	maxRetryAfter time.Duration
	sleep         func(ctx context.Context, d time.Duration) error
	jitter        func(ceiling time.Duration) time.Duration
	now           func() time.Time

	attempts  atomic.Int64
	retries   atomic.Int64
	totalWait atomic.Int64
}

// ClientOption adjusts a Client; tests use them to make retries fast and observable.
type ClientOption func(*Client)

// WithBackoff sets the first retry's wait ceiling and the ceiling's cap.
func WithBackoff(base, max time.Duration) ClientOption {
	return func(c *Client) { c.backoffBase, c.backoffMax = base, max }
}

// WithSleep replaces the wait between attempts. sleep must return early with ctx's
// error when ctx ends.
func WithSleep(sleep func(ctx context.Context, d time.Duration) error) ClientOption {
	return func(c *Client) { c.sleep = sleep }
}

// WithJitter replaces the full-jitter draw, a wait in [0, ceiling].
func WithJitter(jitter func(ceiling time.Duration) time.Duration) ClientOption {
	return func(c *Client) { c.jitter = jitter }
}

// WithMaxRetryAfter sets the longest Retry-After waited out inside one exchange.
func WithMaxRetryAfter(d time.Duration) ClientOption {
	return func(c *Client) { c.maxRetryAfter = d }
}

// WithClock sets the clock used to read Retry-After dates.
func WithClock(now func() time.Time) ClientOption {
	return func(c *Client) { c.now = now }
}

// NewClient checks cfg and returns a client. Zero values in cfg mean the documented
// defaults (timeout 10s, max_retries 3). httpClient may be nil (a private client is
// made); it is copied so that redirects are never followed: a redirected POST would
// carry the client secret to wherever the redirect points. logger may be nil.
func NewClient(cfg *configs.Spotnana, httpClient *http.Client, logger *slog.Logger, opts ...ClientOption) (*Client, error) {
	if cfg == nil {
		return nil, errors.New("spotnana: no configuration")
	}
	var errs []error
	u, err := url.Parse(cfg.TokenURL)
	switch {
	case cfg.TokenURL == "":
		errs = append(errs, errors.New("spotnana.token_url: required"))
	case err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "":
		errs = append(errs, errors.New("spotnana.token_url: must be an absolute http(s) URL"))
	}
	if cfg.ClientID == "" {
		errs = append(errs, errors.New("spotnana.client_id: required"))
	}
	if cfg.ClientSecret == "" {
		errs = append(errs, errors.New("spotnana.client_secret: required"))
	}
	if cfg.Timeout < 0 {
		errs = append(errs, errors.New("spotnana.timeout: must not be negative"))
	}
	if cfg.MaxRetries != nil && *cfg.MaxRetries < 0 {
		errs = append(errs, errors.New("spotnana.max_retries: must not be negative"))
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}

	c := &Client{
		tokenURL:      cfg.TokenURL,
		clientID:      cfg.ClientID,
		clientSecret:  cfg.ClientSecret,
		audience:      cfg.Audience,
		timeout:       cfg.Timeout,
		maxRetries:    DefaultMaxRetries,
		log:           logger,
		backoffBase:   DefaultBackoffBase,
		backoffMax:    DefaultBackoffMax,
		maxRetryAfter: DefaultMaxRetryAfter,
		sleep:         sleepCtx,
		jitter:        fullJitter,
		now:           time.Now,
	}
	if c.timeout == 0 {
		c.timeout = DefaultTimeout
	}
	if cfg.MaxRetries != nil {
		c.maxRetries = *cfg.MaxRetries
	}
	if c.log == nil {
		c.log = slog.New(slog.DiscardHandler)
	}
	// A redirect would carry the client secret and the user's token elsewhere: it is an
	// outage of Spotnana's token endpoint, never followed, never retried.
	c.http = outbound.NoRedirects(httpClient)
	for _, o := range opts {
		o(c)
	}
	return c, nil
}

// Stats reports the client's counters.
func (c *Client) Stats() ClientStats {
	return ClientStats{
		Attempts:  c.attempts.Load(),
		Retries:   c.retries.Load(),
		TotalWait: time.Duration(c.totalWait.Load()),
	}
}

// Exchange trades the user's subjectToken for a Spotnana token (RFC 8693).
// subjectTokenType "" means urn:ietf:params:oauth:token-type:access_token.
//
// Each attempt has the configured timeout. 429, 5xx and network errors are retried up
// to max_retries times, waiting with exponential backoff and full jitter, or exactly
// Retry-After when Spotnana sends one; no wait runs past ctx's deadline. The error is a
// *RefusedError for a definite refusal (any other 4xx, an unusable 200) and an
// *UnavailableError (errors.Is ErrUnavailable) otherwise.
func (c *Client) Exchange(ctx context.Context, subjectToken, subjectTokenType string) (*TokenResponse, error) {
	if subjectToken == "" {
		return nil, errors.New("spotnana: empty subject token")
	}
	if subjectTokenType == "" {
		subjectTokenType = TokenTypeAccessToken
	}
	form := url.Values{
		"grant_type":         {GrantTokenExchange},
		"client_id":          {c.clientID},
		"client_secret":      {c.clientSecret},
		"subject_token":      {subjectToken},
		"subject_token_type": {subjectTokenType},
		"scope":              {ScopeOpenID},
	}
	if c.audience != "" {
		form.Set("audience", c.audience)
	}
	return c.do(ctx, form.Encode(), Fingerprint(subjectToken), subjectToken)
}

// attemptResult is what one request produced.
type attemptResult struct {
	status     int
	body       []byte
	retryAfter time.Duration // 0: none given
	err        error         // network or read error
}

func (c *Client) do(ctx context.Context, form, fp, subjectToken string) (*TokenResponse, error) {
	var last attemptResult
	for attempt := 1; ; attempt++ {
		start := time.Now()
		last = c.attempt(ctx, form)
		c.attempts.Add(1)
		log := c.log.With("subject_fp", fp, "attempt", attempt)

		switch {
		case last.err == nil && last.status == http.StatusOK:
			t, err := parseTokenResponse(last.body)
			if err != nil {
				log.Warn("spotnana token response unusable", "status", last.status, "reason", err.Error())
				return nil, &RefusedError{Status: last.status, Code: "INVALID_TOKEN_RESPONSE", Description: err.Error()}
			}
			log.Debug("spotnana token issued", "status", last.status,
				"duration", time.Since(start), "access_fp", Fingerprint(t.AccessToken))
			return t, nil
		case last.err == nil && !retryable(last.status):
			// An error answer may echo the request (a proxy's or a framework's debug
			// page): nothing of it is kept before the secrets sent are taken out.
			e := ParseErrorBody(last.status, last.body).redact(c.clientSecret, subjectToken)
			log.Warn("spotnana refused the exchange", "status", e.Status, "code", e.Code, "debug_id", e.DebugID)
			return nil, e
		}

		var redirect *outbound.RedirectError
		if errors.As(last.err, &redirect) {
			log.Warn("spotnana unavailable: the token endpoint redirects", "status", redirect.Status, "target_host", redirect.Host)
			return nil, c.unavailable(attempt, attemptResult{status: redirect.Status}, redirect)
		}
		// Retryable: 429, 5xx or a network error.
		if ctx.Err() != nil {
			// The caller gave up; its error says why.
			return nil, c.unavailable(attempt, last, context.Cause(ctx))
		}
		if attempt > c.maxRetries {
			log.Warn("spotnana unavailable, retries exhausted", "status", last.status, "error", c.failure(&last, subjectToken))
			return nil, c.unavailable(attempt, last, last.err)
		}
		wait := last.retryAfter
		if wait == 0 {
			wait = c.jitter(c.ceiling(attempt))
		} else if wait > c.maxRetryAfter {
			log.Warn("spotnana asks to wait longer than we hold a request", "status", last.status, "retry_after", wait)
			return nil, c.unavailable(attempt, last, last.err)
		}
		if dl, ok := ctx.Deadline(); ok && time.Until(dl) <= wait {
			// Sleeping would end past the caller's deadline: stop now and say so.
			log.Warn("spotnana unavailable, no time left to retry", "status", last.status, "wait_ms", wait.Milliseconds(), "error", c.failure(&last, subjectToken))
			u := c.unavailable(attempt, last, last.err)
			if u.Err == nil {
				u.Err = context.DeadlineExceeded
			}
			return nil, u
		}
		log.Info("spotnana request failed, retrying", "status", last.status, "wait_ms", wait.Milliseconds(), "error", c.failure(&last, subjectToken))
		c.retries.Add(1)
		c.totalWait.Add(int64(wait))
		if err := c.sleep(ctx, wait); err != nil {
			return nil, c.unavailable(attempt, last, err)
		}
	}
}

// unavailable builds the final error of a failed exchange.
func (c *Client) unavailable(attempts int, last attemptResult, cause error) *UnavailableError {
	ra := last.retryAfter
	if ra <= 0 {
		ra = DefaultRetryAfter
	}
	return &UnavailableError{Status: last.status, Attempts: attempts, RetryAfter: ra, Err: cause}
}

// attempt sends one request under its own timeout and reads the (bounded) answer.
func (c *Client) attempt(ctx context.Context, form string) attemptResult {
	actx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(actx, http.MethodPost, c.tokenURL, strings.NewReader(form))
	if err != nil {
		return attemptResult{err: err}
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Accept", "application/json")
	resp, err := c.http.Do(req)
	if err != nil {
		return attemptResult{err: err}
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxBodyBytes+1))
	r := attemptResult{status: resp.StatusCode, retryAfter: parseRetryAfter(resp.Header.Get("Retry-After"), c.now())}
	switch {
	case err != nil:
		// A connection cut mid-body is a network error whatever the status said.
		r.err = fmt.Errorf("reading answer: %w", err)
	case len(body) > maxBodyBytes:
		if resp.StatusCode == http.StatusOK {
			r.body = []byte("too large") // not JSON: refused as unusable
		}
	default:
		r.body = body
	}
	return r
}

// retryable says which statuses are worth another try: 429 and 5xx.
func retryable(status int) bool {
	return status == http.StatusTooManyRequests || status >= 500
}

// ceiling is the full-jitter ceiling before retry number attempt (1-based):
// base·2^(attempt-1), capped.
func (c *Client) ceiling(attempt int) time.Duration {
	d := c.backoffBase
	for i := 1; i < attempt && d < c.backoffMax; i++ {
		d *= 2
	}
	return min(d, c.backoffMax)
}

// fullJitter draws a wait uniformly in [0, ceiling] (AWS's "full jitter"), which
// spreads replicas that failed together.
func fullJitter(ceiling time.Duration) time.Duration {
	if ceiling <= 0 {
		return 0
	}
	return time.Duration(rand.Int64N(int64(ceiling) + 1))
}

// sleepCtx waits d or until ctx ends.
func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return context.Cause(ctx)
	}
}

// parseRetryAfter reads RFC 9110 §10.2.3's Retry-After: delay-seconds or an HTTP date.
// 0 means none or unusable.
func parseRetryAfter(v string, now time.Time) time.Duration {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0
	}
	if n, err := strconv.ParseInt(v, 10, 64); err == nil {
		if n <= 0 {
			return 0
		}
		if n > int64(24*time.Hour/time.Second) {
			n = int64(24 * time.Hour / time.Second)
		}
		return time.Duration(n) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil {
		if d := t.Sub(now); d > 0 {
			return d
		}
	}
	return 0
}

// Fingerprint names a token in logs without revealing it: the first 8 hex digits of
// its SHA-256.
func Fingerprint(token string) string {
	return providers.Fingerprint(providers.TokenSum(token))
}

// failure says why an attempt failed, for a retry line: the network error, or the HTTP
// status with Spotnana's error code (never its free-text message, which may echo input;
// see redact).
func (c *Client) failure(a *attemptResult, subjectToken string) string {
	if a.err != nil {
		return a.err.Error()
	}
	e := ParseErrorBody(a.status, a.body).redact(c.clientSecret, subjectToken)
	return fmt.Sprintf("HTTP %d %s", a.status, e.Code)
}
