package app

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"time"

	"github.com/tidwall/gjson"

	"github.com/idbridge/idbridge/cache"
	"github.com/idbridge/idbridge/configs"
	"github.com/idbridge/idbridge/providers"
	"github.com/idbridge/idbridge/server"
	"github.com/idbridge/idbridge/spotnana"
)

// keysWatchInterval is how often assertion mode looks for a new key in keys_dir, so that
// a rotation needs neither a restart nor a SIGHUP.
const keysWatchInterval = 10 * time.Second

// exchangePlan is what the spotnana section adds: the client and, in assertion mode,
// the signing keys, built without side effects.
type exchangePlan struct {
	cfg      *configs.Spotnana
	client   *spotnana.Client
	keys     *spotnana.KeyStore // nil in callback mode
	asserter *spotnana.Asserter
	logger   *slog.Logger
	stop     context.CancelFunc
}

// planExchange builds the Spotnana client and, in assertion mode, loads the signing keys
// from keys_dir (a read, no network).
func planExchange(cfg *configs.Config, httpClient *http.Client, logger *slog.Logger) (*exchangePlan, error) {
	sc := cfg.Spotnana
	client, err := spotnana.NewClient(sc, httpClient, logger)
	if err != nil {
		return nil, err
	}
	x := &exchangePlan{cfg: sc, client: client, logger: logger}
	if sc.Mode == "assertion" {
		keys, err := spotnana.NewKeyStore(&sc.Assertion, time.Now, logger)
		if err != nil {
			return nil, fmt.Errorf("spotnana.assertion.keys_dir: %w", err)
		}
		if x.asserter, err = spotnana.NewAsserter(&sc.Assertion, keys, time.Now); err != nil {
			return nil, err
		}
		x.keys = keys
	}
	return x, nil
}

// start watches keys_dir for a new key until close.
func (x *exchangePlan) start(ctx context.Context) error {
	if x.keys != nil {
		wctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
		x.stop = cancel
		go x.keys.Watch(wctx, keysWatchInterval)
	}
	return nil
}

func (x *exchangePlan) close() error {
	if x.stop != nil {
		x.stop()
	}
	return nil
}

// jwks serves the public signing keys; nil outside assertion mode.
func (x *exchangePlan) jwks() http.Handler {
	if x.keys == nil {
		return nil
	}
	return x.keys.Handler()
}

// exchangeFunc is the exchange orchestration: the token client policy
// (allowed_token_clients), the subject (the user's token, or in assertion mode a JWT
// minted for the mapped email), and the exchange through the token cache c.
func (x *exchangePlan) exchangeFunc(c cache.Cache) (server.ExchangeFunc, error) {
	ex, err := spotnana.NewExchanger(x.client, c, x.cfg, time.Now, x.logger)
	if err != nil {
		return nil, err
	}
	allowed := x.cfg.AllowedTokenClients
	asserter := x.asserter
	return func(ctx context.Context, res *server.Resolution, token string) ([]byte, error) {
		if len(allowed) > 0 && !clientListed(res, allowed) {
			return nil, server.ErrClientNotAllowed
		}
		subject, subjectType := token, spotnana.TokenTypeAccessToken
		if asserter != nil {
			var err error
			if subject, subjectType, err = asserter.Assert(res.Document, res.Email); err != nil {
				return nil, fmt.Errorf("assertion: %w", err)
			}
		}
		resp, err := ex.Exchange(ctx, res.Email, subject, subjectType)
		if err != nil {
			return nil, err
		}
		return json.Marshal(resp)
	}, nil
}

// clientListed reports whether the token's client is in allowed. The client is read as
// the accepting provider's client_ids check reads it (its client_id_claims); a provider
// without that notion (userinfo, ldap) is read with the default claims.
func clientListed(res *server.Resolution, allowed []string) bool {
	if cs, ok := res.Instance.Provider.(providers.ClientSource); ok {
		c, ok := cs.TokenClient(res.Document)
		return ok && slices.Contains(allowed, c)
	}
	for _, p := range providers.DefaultClientIDClaims {
		if v := gjson.GetBytes(res.Document, p); v.Exists() {
			return v.Type == gjson.String && slices.Contains(allowed, v.Str)
		}
	}
	return false
}
