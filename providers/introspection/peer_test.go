package introspection_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/tidwall/gjson"

	"github.com/idbridge/idbridge/providers"
	"github.com/idbridge/idbridge/providers/introspection"
	"github.com/idbridge/idbridge/providers/introspection/idptest"
	"github.com/idbridge/idbridge/test/oidcpeer"
)

// peerProvider builds a provider against the real oidc-provider.
func peerProvider(t *testing.T, p *oidcpeer.Peer, clientID, secret, extra string) providers.Instance {
	t.Helper()
	text := fmt.Sprintf("endpoint: %s\nclient_id: %s\nclient_secret: %s\nissuer: %s\n%s",
		p.IntrospectionURL(), clientID, secret, p.Issuer(), extra)
	inst, err := introspection.New(idptest.Section(t, "peer", introspection.Type, text), providers.Deps{})
	if err != nil {
		t.Fatal(err)
	}
	return inst
}

func TestPeer(t *testing.T) {
	p := oidcpeer.Start(t)
	ctx := context.Background()

	basic := peerProvider(t, p, p.ClientID(), p.Secret(), "client_ids: [idbridge]")
	post := peerProvider(t, p, p.ClientIDPost(), p.Secret(), "client_ids: [idbridge]\nauth_method: client_secret_post")

	t.Run("opaque user token", func(t *testing.T) {
		tok := p.MintOpaque(t, "alice@example.com")
		for name, inst := range map[string]providers.Instance{"basic": basic, "post": post} {
			id, err := inst.Provider.Authenticate(ctx, tok)
			if err != nil {
				t.Fatalf("%s: %v", name, err)
			}
			doc := gjson.ParseBytes(id.Document)
			// What oidc-provider puts in an answer: active, sub (the account id),
			// client_id, exp, iat, iss, scope, token_type. No email: that is userinfo's.
			if !doc.Get("active").Bool() || doc.Get("client_id").String() != "idbridge" ||
				doc.Get("iss").String() != p.Issuer() || doc.Get("scope").String() != "openid email" ||
				doc.Get("token_type").String() != "Bearer" || doc.Get("sub").String() == "" ||
				doc.Get("email").Exists() || doc.Get("aud").Exists() {
				t.Errorf("%s: document = %s", name, id.Document)
			}
			if id.Expires.Unix() != doc.Get("exp").Int() || id.Expires.IsZero() {
				t.Errorf("%s: Expires = %v", name, id.Expires)
			}
		}
	})

	t.Run("audience-bound opaque token", func(t *testing.T) {
		tok := p.Mint(t, oidcpeer.MintOptions{Email: "bob@example.com", Resource: oidcpeer.OpaqueResource, Scope: "api:read"})
		ok := peerProvider(t, p, p.ClientID(), p.Secret(), "audiences: [idbridge-opaque]\nrequired_scopes: [api:read]")
		id, err := ok.Provider.Authenticate(ctx, tok.AccessToken)
		if err != nil {
			t.Fatal(err)
		}
		if gjson.GetBytes(id.Document, "email").String() != "bob@example.com" || gjson.GetBytes(id.Document, "aud").String() != oidcpeer.OpaqueAudience {
			t.Errorf("document = %s", id.Document)
		}
		wrongAud := peerProvider(t, p, p.ClientID(), p.Secret(), "audiences: [somebody-else]")
		if _, err := wrongAud.Provider.Authenticate(ctx, tok.AccessToken); !errors.Is(err, providers.ErrInvalidToken) {
			t.Errorf("other audience: %v, want invalid", err)
		}
		moreScope := peerProvider(t, p, p.ClientID(), p.Secret(), "audiences: [idbridge-opaque]\nrequired_scopes: [api:write]")
		// Authenticate leaves required_scopes to CheckPolicy, which the chain runs on
		// every answer, so that the answer is cached and refused from the cache.
		id, err = moreScope.Provider.Authenticate(ctx, tok.AccessToken)
		if err != nil {
			t.Fatalf("missing scope, Authenticate: %v", err)
		}
		var se *providers.ScopeError
		if err := moreScope.Provider.(providers.Policy).CheckPolicy(id.Document, time.Now()); !errors.As(err, &se) {
			t.Errorf("missing scope, CheckPolicy: %v, want *ScopeError", err)
		}
	})

	t.Run("another application's token", func(t *testing.T) {
		tok := p.Mint(t, oidcpeer.MintOptions{Email: "carol@example.com", Client: oidcpeer.OtherClientID}).AccessToken
		if _, err := basic.Provider.Authenticate(ctx, tok); !errors.Is(err, providers.ErrInvalidToken) {
			t.Errorf("client_ids [idbridge], token of other-app: %v, want invalid", err)
		}
	})

	t.Run("revoked", func(t *testing.T) {
		tok := p.MintOpaque(t, "dave@example.com")
		if _, err := basic.Provider.Authenticate(ctx, tok); err != nil {
			t.Fatalf("before revocation: %v", err)
		}
		p.Revoke(t, tok)
		if _, err := basic.Provider.Authenticate(ctx, tok); !errors.Is(err, providers.ErrInvalidToken) || errors.Is(err, providers.ErrUnavailable) {
			t.Errorf("after revocation: %v, want invalid", err)
		}
	})

	t.Run("garbage", func(t *testing.T) {
		if _, err := basic.Provider.Authenticate(ctx, "not-a-token-the-peer-ever-issued"); !errors.Is(err, providers.ErrInvalidToken) || errors.Is(err, providers.ErrUnavailable) {
			t.Errorf("garbage: %v, want invalid", err)
		}
	})

	t.Run("wrong client secret", func(t *testing.T) {
		tok := p.MintOpaque(t, "erin@example.com")
		for _, method := range []string{"client_secret_basic", "client_secret_post"} {
			id := p.ClientID()
			if method == "client_secret_post" {
				id = p.ClientIDPost()
			}
			inst := peerProvider(t, p, id, "wrong-"+p.Secret(), "auth_method: "+method)
			_, err := inst.Provider.Authenticate(ctx, tok)
			if !errors.Is(err, providers.ErrUnavailable) || errors.Is(err, providers.ErrInvalidToken) {
				t.Errorf("%s: %v, want unavailable (our credentials, not the user's token)", method, err)
			}
			if h := inst.Provider.(providers.HealthChecker).Health(ctx); h.OK {
				t.Errorf("%s: Health = %+v with a wrong secret", method, h)
			}
		}
	})

	t.Run("health", func(t *testing.T) {
		fresh := peerProvider(t, p, p.ClientID(), p.Secret(), "")
		if h := fresh.Provider.(providers.HealthChecker).Health(ctx); !h.OK {
			t.Errorf("Health = %+v", h)
		}
	})

	t.Run("JWT access tokens are not introspectable", func(t *testing.T) {
		jwtTok := p.MintJWT(t, "frank@example.com")
		// With the default accepts: opaque, it is not ours and never leaves idbridge.
		if _, err := basic.Provider.Authenticate(ctx, jwtTok); !errors.Is(err, providers.ErrNotMine) {
			t.Errorf("accepts opaque: %v, want not mine", err)
		}
		// Sent anyway, oidc-provider refuses structured tokens with a 400: unavailable,
		// never accepted.
		anyShape := peerProvider(t, p, p.ClientID(), p.Secret(), "accepts: any")
		if _, err := anyShape.Provider.Authenticate(ctx, jwtTok); !errors.Is(err, providers.ErrUnavailable) {
			t.Errorf("accepts any: %v, want unavailable", err)
		}
	})
}
