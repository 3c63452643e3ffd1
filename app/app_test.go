package app

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/idbridge/idbridge/configs"
	"github.com/idbridge/idbridge/providers"
)

// fakeType is a provider type whose Start and Close are counted, so that tests see
// what Load and Start do.
type fakeType struct {
	started, closed int
	failStart       bool
}

func (f *fakeType) registration() providers.Type {
	return providers.Type{
		Secrets: []string{"api_key"},
		New: func(sec *configs.ProviderSection, deps providers.Deps) (providers.Instance, error) {
			var cfg struct {
				Fail bool `yaml:"fail"`
			}
			if errs := sec.Decode(&cfg); len(errs) > 0 {
				return providers.Instance{}, errs
			}
			if cfg.Fail {
				return providers.Instance{}, configs.Errors{sec.Errorf("fail", "asked to fail")}
			}
			return providers.Instance{
				Name: sec.Name, Type: sec.Type,
				Provider: providers.ProviderFunc(func(context.Context, string) (providers.Identity, error) {
					return providers.Identity{Document: []byte(`{"email":"a@example.com"}`)}, nil
				}),
				Start: func(context.Context) error {
					f.started++
					if f.failStart {
						return errors.New("cannot start")
					}
					return nil
				},
				Close: func() error { f.closed++; return nil },
			}, nil
		},
	}
}

// fakeStep merges nothing; it checks its only key, into.
type fakeStep struct{ into string }

func (s fakeStep) Enrich(_ context.Context, _ string, doc []byte) ([]byte, error) { return doc, nil }
func (fakeStep) TTL() time.Duration                                               { return 0 }
func (s fakeStep) Into() string                                                   { return s.into }

func stepRegistration(key string) providers.Step {
	return providers.Step{Key: key, New: func(step *configs.Section, _ *configs.ProviderSection, _ providers.Provider, _ providers.Deps) (providers.Enricher, error) {
		var cfg struct {
			Into string `yaml:"into"`
		}
		if errs := step.Decode(&cfg); len(errs) > 0 {
			return nil, errs
		}
		return fakeStep{into: cfg.Into}, nil
	}}
}

func registry(f *fakeType) providers.Registry {
	return providers.Registry{
		Types: map[string]providers.Type{"fake": f.registration(), "other": f.registration()},
		Steps: []providers.Step{stepRegistration("first"), stepRegistration("second")},
	}
}

func load(t *testing.T, reg providers.Registry, src string) (*Plan, configs.Errors) {
	t.Helper()
	cfg, errs := configs.Parse("c.yaml", []byte(src), nil, reg.SecretKeys()...)
	if cfg == nil {
		t.Fatalf("parse: %v", errs)
	}
	p, perrs := Load(cfg, reg, nil)
	t.Cleanup(p.Close)
	return p, SortErrors(append(errs, perrs...))
}

func lines(errs configs.Errors) string {
	var b strings.Builder
	for _, e := range errs {
		b.WriteString(e.Error() + "\n")
	}
	return b.String()
}

func TestLoadHasNoSideEffects(t *testing.T) {
	f := &fakeType{}
	p, errs := load(t, registry(f), "providers:\n  - {name: a, type: fake}\n  - {name: b, type: other}\nmapping: {email: [{path: email}]}\n")
	if len(errs.Fatal()) > 0 {
		t.Fatal(errs)
	}
	if f.started != 0 || len(p.Instances) != 2 {
		t.Fatalf("after Load: started %d, instances %d", f.started, len(p.Instances))
	}
	if err := p.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	if f.started != 2 {
		t.Errorf("after Start: started %d, want 2", f.started)
	}
	p.Close()
	p.Close()
	if f.closed != 2 {
		t.Errorf("closed %d times, want 2 (once each)", f.closed)
	}
}

func TestStartFailureClosesWhatStarted(t *testing.T) {
	f := &fakeType{failStart: true}
	p, errs := load(t, registry(f), "providers:\n  - {name: a, type: fake}\nmapping: {email: [{path: email}]}\n")
	if len(errs.Fatal()) > 0 {
		t.Fatal(errs)
	}
	var none *Process
	if _, err := none.Runtime(t.Context(), p); err == nil || !strings.Contains(err.Error(), "provider a: cannot start") {
		t.Fatalf("Runtime = %v", err)
	}
	if f.closed != 1 {
		t.Errorf("closed %d, want 1", f.closed)
	}
}

// TestOneOwnerPerRule: each fault once, from its owner, in file order; the registry's
// names sorted; a refused section not judged again by the next owner.
func TestOneOwnerPerRule(t *testing.T) {
	f := &fakeType{}
	src := `providers:
  - name: a
    type: fake
    fail: true
    second: {into: x}
    first: {into: x}
  - name: b
    type: nosuch
  - name: c
    type: fake
    first: {intoo: y}
    mapping:
      email:
        - path: mail
          transforms: [trim, shout]
  - name: d
mapping:
  email:
    - path: email
      when: {path: v, equal: 1}
`
	_, errs := load(t, registry(f), src)
	want := `c.yaml:4: providers[0].fail: asked to fail
c.yaml:5: providers[0].second.into: is the same as first.into ("x"): one would overwrite the other
c.yaml:8: providers[1].type: unknown provider type "nosuch" (known: fake, other)
c.yaml:11: providers[2].first.intoo: unknown key (did you mean "into"?)
c.yaml:15: providers[2].mapping.email[0].transforms[1]: unknown transform "shout" (trim, lower, trim_prefix, trim_suffix, replace)
c.yaml:16: providers[3].type: required: one of fake, other
c.yaml:20: mapping.email[0].when.equal: unknown key (did you mean "equals"?)
`
	if got := lines(errs); got != want {
		t.Errorf("errors:\n%s\nwant:\n%s", got, want)
	}
}

func TestRegistrySecretKeys(t *testing.T) {
	reg := registry(&fakeType{})
	if got := strings.Join(reg.SecretKeys(), ","); got != "api_key" {
		t.Errorf("SecretKeys = %s", got)
	}
	// A key the registry declares secret takes ${file:} and is never shown.
	_, errs := load(t, reg, "providers:\n  - {name: a, type: fake, api_key: \"${file:/nonexistent/k}\"}\nmapping: {email: [{path: email}]}\n")
	if got := lines(errs); !strings.Contains(got, "cannot read ${file:/nonexistent/k}") {
		t.Errorf("errors: %s", got)
	}
}

func discard() *slog.Logger { return slog.New(slog.DiscardHandler) }
