package spotnana

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"log/slog"
	"strings"
	"time"

	"golang.org/x/sync/singleflight"

	"github.com/idbridge/idbridge/cache"
	"github.com/idbridge/idbridge/configs"
)

// ExpiryMargin is how long before its expiry a cached Spotnana token stops being
// handed out, so that the app still has time to use it.
const ExpiryMargin = 60 * time.Second

// TokenSource is what an Exchanger wraps: *Client, or a fake in tests.
type TokenSource interface {
	Exchange(ctx context.Context, subjectToken, subjectTokenType string) (*TokenResponse, error)
}

var _ TokenSource = (*Client)(nil)

// Exchanger adds a per-user token cache and singleflight to a TokenSource.
//
// Tokens are cached per user (the validated email, byte for byte as it is mapped) until
// ExpiryMargin before they expire; a reused token reports the expires_in actually left.
// A response without expires_in is not cached, since its lifetime is unknown.
//
// Concurrent exchanges for one user collapse into one Spotnana call whatever
// token_cache says: Spotnana rate-limits token generation, and the callers of one
// flight all receive a token minted at that moment, so nothing is reused past its
// call. token_cache: false only stops reuse between calls (nothing is stored).
//
// Sharing is by user, not by subject token: two sessions of one user get the same
// Spotnana token (and refresh token). That is sound because the user key is the email
// idbridge has already validated, and Spotnana's token is for that email.
type Exchanger struct {
	src     TokenSource
	cache   cache.Cache
	enabled bool
	group   string // cache group: a fingerprint of the Spotnana identity we speak as
	now     func() time.Time
	log     *slog.Logger
	flight  singleflight.Group
}

// NewExchanger wraps src. cfg gives token_cache (nil means true) and the values the
// cache group is derived from, so that a config change never serves a token minted
// for another client. c may be nil only when caching is off. now and logger may be nil.
func NewExchanger(src TokenSource, c cache.Cache, cfg *configs.Spotnana, now func() time.Time, logger *slog.Logger) (*Exchanger, error) {
	if src == nil {
		return nil, errors.New("spotnana: exchanger needs a token source")
	}
	if cfg == nil {
		return nil, errors.New("spotnana: no configuration")
	}
	enabled := cfg.TokenCache == nil || *cfg.TokenCache
	if enabled && c == nil {
		return nil, errors.New("spotnana: token_cache is on but no cache was given")
	}
	if now == nil {
		now = time.Now
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	h := sha256.Sum256([]byte(strings.Join([]string{cfg.TokenURL, cfg.ClientID, cfg.Audience, cfg.Mode}, "\x00")))
	return &Exchanger{
		src:     src,
		cache:   c,
		enabled: enabled,
		group:   "spotnana:" + hex.EncodeToString(h[:8]),
		now:     now,
		log:     logger,
	}, nil
}

// cachedToken is what the cache holds for a user.
type cachedToken struct {
	Response  json.RawMessage `json:"response"`   // Spotnana's body
	ExpiresAt int64           `json:"expires_at"` // unix seconds
}

// Exchange returns userKey's Spotnana token: from the cache when one is still good,
// else from one (shared) call to Spotnana with subjectToken. The returned value is the
// caller's own copy.
func (x *Exchanger) Exchange(ctx context.Context, userKey, subjectToken, subjectTokenType string) (*TokenResponse, error) {
	if userKey == "" {
		return nil, errors.New("spotnana: empty user key")
	}
	id := userID(userKey)
	key := cache.Key{Kind: cache.Token, Group: x.group, ID: id}
	if t := x.lookup(ctx, key); t != nil {
		return t, nil
	}

	// The flight must not die with its first caller: it runs without that caller's
	// cancellation but keeps its deadline, and every caller waits on its own context.
	ch := x.flight.DoChan(id, func() (any, error) {
		fctx := context.WithoutCancel(ctx)
		if dl, ok := ctx.Deadline(); ok {
			var cancel context.CancelFunc
			fctx, cancel = context.WithDeadline(fctx, dl)
			defer cancel()
		}
		return x.fetch(fctx, key, subjectToken, subjectTokenType)
	})
	return x.wait(ctx, ch)
}

func (x *Exchanger) wait(ctx context.Context, ch <-chan singleflight.Result) (*TokenResponse, error) {
	select {
	case r := <-ch:
		if r.Err != nil {
			return nil, r.Err
		}
		t := *r.Val.(*TokenResponse)
		return &t, nil
	case <-ctx.Done():
		return nil, &UnavailableError{RetryAfter: DefaultRetryAfter, Err: context.Cause(ctx)}
	}
}

// fetch runs inside the flight: one Spotnana call, and the cache fill.
func (x *Exchanger) fetch(ctx context.Context, key cache.Key, subjectToken, subjectTokenType string) (*TokenResponse, error) {
	// A flight that started just after another one filled the cache finds it there.
	if t := x.lookup(ctx, key); t != nil {
		return t, nil
	}
	t, err := x.src.Exchange(ctx, subjectToken, subjectTokenType)
	if err != nil {
		return nil, err
	}
	if x.enabled && t.ExpiresIn > 0 {
		exp := x.now().Add(time.Duration(t.ExpiresIn) * time.Second)
		if ttl := exp.Add(-ExpiryMargin).Sub(x.now()); ttl > 0 {
			v, err := json.Marshal(cachedToken{Response: t.Raw, ExpiresAt: exp.Unix()})
			if err == nil {
				x.cache.Set(ctx, key, v, ttl)
			}
		}
	}
	return t, nil
}

// lookup returns a cached token with expires_in set to the seconds left, or nil.
func (x *Exchanger) lookup(ctx context.Context, key cache.Key) *TokenResponse {
	if !x.enabled {
		return nil
	}
	v, ok := x.cache.Get(ctx, key)
	if !ok {
		return nil
	}
	var ct cachedToken
	if json.Unmarshal(v, &ct) != nil {
		return nil
	}
	// The cache's own TTL should have dropped it already; the check here keeps a
	// backend with a coarser clock from serving a token inside the margin.
	left := time.Unix(ct.ExpiresAt, 0).Sub(x.now())
	if left <= ExpiryMargin {
		return nil
	}
	t, err := parseTokenResponse(ct.Response)
	if err != nil {
		return nil
	}
	t.ExpiresIn = int64(left / time.Second)
	return t
}

// userID is the cache ID of a user: the SHA-256 of the email exactly as mapping returned
// it, which is the identity Spotnana is told about, so that the cache never holds an
// email in clear. No folding here: the mapping rules alone decide which inputs are one
// user, and a Unicode fold (U+212A KELVIN SIGN to k) handed one user another's tokens.
func userID(email string) string {
	sum := sha256.Sum256([]byte(email))
	return hex.EncodeToString(sum[:])
}
