package userinfo_test

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/tidwall/gjson"

	"github.com/idbridge/idbridge/configs"
	"github.com/idbridge/idbridge/providers"
	"github.com/idbridge/idbridge/providers/introspection"
	"github.com/idbridge/idbridge/providers/introspection/idptest"
	"github.com/idbridge/idbridge/providers/userinfo"
	"github.com/idbridge/idbridge/test/oidcpeer"
)

func TestPeer(t *testing.T) {
	p := oidcpeer.Start(t)
	ctx := context.Background()
	inst := newProvider(t, p.UserinfoURL(), "accepts: any", providers.Deps{})

	t.Run("opaque user token", func(t *testing.T) {
		id, err := inst.Provider.Authenticate(ctx, p.MintOpaque(t, "alice@example.com"))
		if err != nil {
			t.Fatal(err)
		}
		doc := gjson.ParseBytes(id.Document)
		if doc.Get("email").String() != "alice@example.com" || !doc.Get("email_verified").Bool() || doc.Get("sub").String() == "" {
			t.Errorf("document = %s", id.Document)
		}
	})

	refused := map[string]func() string{
		"garbage":            func() string { return "garbage-token-never-issued" },
		"revoked":            func() string { tok := p.MintOpaque(t, "bob@example.com"); p.Revoke(t, tok); return tok },
		"JWT with audience":  func() string { return p.MintJWT(t, "carol@example.com") },
		"client credentials": func() string { return p.ClientCredentials(t, "") },
	}
	for name, token := range refused {
		t.Run(name, func(t *testing.T) {
			_, err := inst.Provider.Authenticate(ctx, token())
			if !errors.Is(err, providers.ErrInvalidToken) || errors.Is(err, providers.ErrUnavailable) {
				t.Errorf("err = %v, want invalid", err)
			}
		})
	}

	t.Run("health", func(t *testing.T) {
		if h := inst.Provider.(providers.HealthChecker).Health(ctx); !h.OK {
			t.Errorf("Health = %+v", h)
		}
	})

	// The enrichment step behind a real introspection answer, which has sub but no email.
	t.Run("enrich an introspection document", func(t *testing.T) {
		intro, err := introspection.New(idptest.Section(t, "corp", introspection.Type, fmt.Sprintf(
			"endpoint: %s\nclient_id: %s\nclient_secret: %s\nclient_ids: [idbridge]", p.IntrospectionURL(), p.ClientID(), p.Secret())), providers.Deps{})
		if err != nil {
			t.Fatal(err)
		}
		tok := p.MintOpaque(t, "dave@example.com")
		id, err := intro.Provider.Authenticate(ctx, tok)
		if err != nil {
			t.Fatal(err)
		}
		sec := &configs.ProviderSection{Name: "corp", Type: introspection.Type, File: "test.yaml", Path: "providers[0]"}
		e, err := userinfo.NewEnricher(stepSection(userinfo.StepConfig{Endpoint: p.UserinfoURL()}), sec, intro.Provider, providers.Deps{})
		if err != nil {
			t.Fatal(err)
		}
		doc, err := e.Enrich(ctx, tok, id.Document)
		if err != nil {
			t.Fatal(err)
		}
		if gjson.GetBytes(doc, "userinfo.email").String() != "dave@example.com" || gjson.GetBytes(doc, "client_id").String() != "idbridge" {
			t.Errorf("enriched = %s", doc)
		}
	})
}
