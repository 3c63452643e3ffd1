package server

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/idbridge/idbridge/cache"
	"github.com/idbridge/idbridge/mapping"
	"github.com/idbridge/idbridge/providers"
	"github.com/idbridge/idbridge/spotnana"
)

// TestErrorTable pins, for every sentinel (bare and wrapped as providers wrap them), the
// one classification (providers.Classify) and what each of its users makes of it: the
// HTTP status and error code of user-detail, the provider outcome of the metrics, the
// exchange outcome of the metrics, and `idbridge resolve`'s verdict.
func TestErrorTable(t *testing.T) {
	tests := []struct {
		err      error
		class    providers.Class
		status   int
		code     string
		outcome  string // idbridge_provider_outcomes_total
		exchange string // idbridge_exchanges_total
		verdict  string
	}{
		{providers.ErrInvalidToken, providers.Invalid, 401, "invalid_token", "invalid", "denied", "invalid token"},
		{fmt.Errorf("jwt: %w: %w", providers.ErrInvalidToken, providers.ErrExpired), providers.Invalid, 401, "invalid_token", "invalid", "denied", "invalid token"},
		{providers.ErrNotMine, providers.NotMine, 401, "invalid_token", "not_mine", "denied", "not handled by any provider"},
		{providers.ErrUnavailable, providers.Unavailable, 503, "temporarily_unavailable", "unavailable", "unavailable", "unavailable"},
		{context.DeadlineExceeded, providers.Unavailable, 503, "temporarily_unavailable", "unavailable", "unavailable", "unavailable"},
		{context.Canceled, providers.Unavailable, 503, "temporarily_unavailable", "unavailable", "unavailable", "unavailable"},
		{providers.ErrAccessDenied, providers.Denied, 403, "access_denied", "denied", "denied", "access denied"},
		{fmt.Errorf("ldap: lookup: %w: no entry", providers.ErrAccessDenied), providers.Denied, 403, "access_denied", "denied", "denied", "access denied"},
		{mapping.ErrNoEmail, providers.Denied, 403, "access_denied", "denied", "denied", "access denied"},
		{mapping.ErrDomainNotAllowed, providers.Denied, 403, "access_denied", "denied", "denied", "access denied"},
		{providers.ErrInsufficientScope, providers.InsufficientScope, 403, "insufficient_scope", "denied", "denied", "insufficient scope"},
		{&providers.ScopeError{Required: []string{"travel"}}, providers.InsufficientScope, 403, "insufficient_scope", "denied", "denied", "insufficient scope"},
		// A valid token without a scope is not also invalid; a refusal beats an outage.
		{fmt.Errorf("%w: %w", providers.ErrInvalidToken, &providers.ScopeError{}), providers.InsufficientScope, 403, "insufficient_scope", "denied", "denied", "insufficient scope"},
		{fmt.Errorf("%w: %w", providers.ErrUnavailable, providers.ErrAccessDenied), providers.Denied, 403, "access_denied", "denied", "denied", "access denied"},
		// An error no sentinel explains is a bug; from a provider, the chain counts it
		// unavailable (503): never acceptance, never the user's fault.
		{errors.New("a bug"), providers.Internal, 503, "temporarily_unavailable", "unavailable", "error", "error"},
	}
	for _, tt := range tests {
		t.Run(tt.err.Error(), func(t *testing.T) {
			if got := providers.Classify(tt.err); got != tt.class {
				t.Errorf("Classify = %v, want %v", got, tt.class)
			}
			if got := exchangeOutcome(tt.err); got != tt.exchange {
				t.Errorf("exchange outcome = %q, want %q", got, tt.exchange)
			}
			if got := providers.Classify(tt.err).String(); got != tt.verdict {
				t.Errorf("verdict = %q, want %q", got, tt.verdict)
			}
			// The provider outcome, as the chain reports it to the metrics.
			obs := &outcomes{}
			err := tt.err
			p := providers.ProviderFunc(func(context.Context, string) (providers.Identity, error) { return providers.Identity{}, err })
			ch := providers.NewChain([]*providers.Instance{{Name: "p", Provider: p, Final: true}}, nil, nil, obs)
			ch.Resolve(context.Background(), "tok", providers.TokenSum("tok"))
			if len(obs.got) != 1 || obs.got[0] != tt.outcome {
				t.Errorf("provider outcome = %v, want %q", obs.got, tt.outcome)
			}
			// The HTTP answer, through the server's route.
			s, err2 := New(testRuntime(t, p, nil), Options{})
			if err2 != nil {
				t.Fatal(err2)
			}
			rec := httptest.NewRecorder()
			req := httptest.NewRequest(http.MethodGet, "/v1/user-detail", nil)
			req.Header.Set("Authorization", "Bearer tok")
			s.ServeHTTP(rec, req)
			if rec.Code != tt.status || !strings.Contains(rec.Body.String(), `"error":"`+tt.code+`"`) {
				t.Errorf("HTTP %d %s, want %d %s", rec.Code, rec.Body, tt.status, tt.code)
			}
		})
	}
	// The exchange's own errors come before the class.
	if got := exchangeOutcome(&spotnana.RefusedError{Code: "X"}); got != ExchangeRefused {
		t.Errorf("refused: %q", got)
	}
	if got := exchangeOutcome(fmt.Errorf("x: %w", spotnana.ErrUnavailable)); got != ExchangeUnavailable {
		t.Errorf("spotnana unavailable: %q", got)
	}
	if got := exchangeOutcome(ErrClientNotAllowed); got != ExchangeDenied {
		t.Errorf("client not allowed: %q", got)
	}
}

type outcomes struct{ got []string }

func (o *outcomes) ProviderOutcome(_, outcome string, _ time.Duration) {
	o.got = append(o.got, outcome)
}
func (o *outcomes) CacheResult(cache.Kind, bool) {}
