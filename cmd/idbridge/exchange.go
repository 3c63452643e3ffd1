package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
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

// exchangeParts is what the spotnana section adds to a runtime.
type exchangeParts struct {
	exchange server.ExchangeFunc
	jwks     http.Handler
	close    func() error
}

// buildExchange wires the Spotnana client, its token cache and, in assertion mode, the
// signing keys. With validateOnly it checks that the keys can be loaded and stops there.
func buildExchange(cfg *configs.Config, httpClient *http.Client, c cache.Cache, logger *slog.Logger, validateOnly bool) (*exchangeParts, error) {
	sc := cfg.Spotnana
	client, err := spotnana.NewClient(sc, httpClient, logger)
	if err != nil {
		return nil, err
	}
	var asserter *spotnana.Asserter
	parts := &exchangeParts{close: func() error { return nil }}
	if sc.Mode == "assertion" {
		keys, err := spotnana.NewKeyStore(&sc.Assertion, time.Now, logger)
		if err != nil {
			return nil, fmt.Errorf("spotnana.assertion.keys_dir: %w", err)
		}
		if asserter, err = spotnana.NewAsserter(&sc.Assertion, keys, time.Now); err != nil {
			return nil, err
		}
		parts.jwks = keys.Handler()
		if !validateOnly {
			ctx, cancel := context.WithCancel(context.Background())
			go keys.Watch(ctx, keysWatchInterval)
			parts.close = func() error { cancel(); return nil }
		}
	}
	if validateOnly {
		return parts, nil
	}
	if c == nil {
		c = cache.NewMemory(cfg.Cache.MaxEntries, nil)
	}
	x, err := spotnana.NewExchanger(client, c, sc, time.Now, logger)
	if err != nil {
		parts.close()
		return nil, err
	}
	allowed := sc.AllowedTokenClients
	parts.exchange = func(ctx context.Context, res *server.Resolution, token string) ([]byte, error) {
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
		resp, err := x.Exchange(ctx, res.Email, subject, subjectType)
		if err != nil {
			return nil, err
		}
		return json.Marshal(resp)
	}
	return parts, nil
}

// clientListed reports whether the token's client is in allowed. The client is read as
// the accepting provider's client_ids check reads it (its client_id_claims); a provider
// without that notion (userinfo, ldap) is read with jwt's default claims.
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

func cmdExchange(args []string, stdout, stderr io.Writer) int {
	tc := loadTokenCommand("exchange", "subject-token", "`FILE` holding the user's token, or - for standard input", args, stderr)
	if tc.code != 0 {
		return tc.code
	}
	defer tc.b.rt.Close()
	cfg, token, b := tc.cfg, tc.token, tc.b
	if cfg.Spotnana == nil {
		fmt.Fprintf(stderr, "%s: spotnana: the section is required for an exchange\n", cfg.File)
		return exitUsage
	}
	ctx, cancel := context.WithTimeout(context.Background(), cfg.Server.RequestTimeout+cfg.Spotnana.Timeout*time.Duration(1+maxRetries(cfg.Spotnana)))
	defer cancel()
	// The token is validated and mapped locally first, as the route does: a bad token
	// never reaches Spotnana.
	res, err := b.rt.Bridge.Resolve(ctx, token, providers.TokenSum(token))
	if err != nil {
		fmt.Fprintf(stderr, "idbridge exchange: refused locally (%s): %v\n", verdict(err), err)
		return exitRuntime
	}
	body, err := b.rt.Exchange(ctx, res, token)
	if err != nil {
		var refused *spotnana.RefusedError
		if errors.As(err, &refused) {
			out, _ := json.MarshalIndent(refused, "", "  ")
			fmt.Fprintf(stdout, "%s\n", out)
		}
		fmt.Fprintf(stderr, "idbridge exchange: %v\n", err)
		return exitRuntime
	}
	var pretty any
	if json.Unmarshal(body, &pretty) == nil {
		body, _ = json.MarshalIndent(pretty, "", "  ")
	}
	fmt.Fprintf(stdout, "%s\n", body)
	return exitOK
}

func maxRetries(sc *configs.Spotnana) int {
	if sc.MaxRetries == nil {
		return 3
	}
	return *sc.MaxRetries
}
