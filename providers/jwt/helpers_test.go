package jwt

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/idbridge/idbridge/configs"
	"github.com/idbridge/idbridge/demoissuer"
	"github.com/idbridge/idbridge/providers"
	"gopkg.in/yaml.v3"
)

// clock is an injectable clock shared by a provider and its issuer.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *clock { return &clock{t: time.Unix(1_800_000_000, 0)} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

// AdvanceTo moves the clock to t unless it is already past it.
func (c *clock) AdvanceTo(t time.Time) {
	c.mu.Lock()
	if t.After(c.t) {
		c.t = t
	}
	c.mu.Unlock()
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

func newIssuer(t testing.TB, c *clock, opts ...demoissuer.Option) *demoissuer.Issuer {
	t.Helper()
	opts = append([]demoissuer.Option{demoissuer.WithClock(c.Now)}, opts...)
	is, err := demoissuer.NewIssuer(opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(is.Close)
	return is
}

// section builds a provider section from YAML text, as configs would hand it over.
func section(t testing.TB, text string) *configs.ProviderSection {
	t.Helper()
	var doc yaml.Node
	if err := yaml.Unmarshal([]byte(text), &doc); err != nil {
		t.Fatal(err)
	}
	return &configs.ProviderSection{
		Name: "corp-jwt", Type: Type, File: "test.yaml", Path: "providers[0]", Line: 1,
		Node: doc.Content[0], Fingerprint: "fp",
	}
}

// baseYAML is a minimal config for issuer is; extra lines are appended.
func baseYAML(is *demoissuer.Issuer, extra ...string) string {
	lines := append([]string{
		"issuer: " + is.URL(),
		"audiences: [idbridge]",
	}, extra...)
	return strings.Join(lines, "\n")
}

func newTestProvider(t testing.TB, c *clock, text string) *Provider {
	t.Helper()
	inst, err := New(section(t, text), providers.Deps{Now: c.Now})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() { _ = inst.Close() })
	if err := inst.Start(t.Context()); err != nil {
		t.Fatalf("Start: %v", err)
	}
	return inst.Provider.(*Provider)
}

func mint(t testing.TB, is *demoissuer.Issuer, claims map[string]any, opts ...demoissuer.MintOption) string {
	t.Helper()
	tok, err := is.Mint(claims, opts...)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

func claims(kv ...any) map[string]any {
	m := map[string]any{"sub": "u1", "aud": "idbridge", "email": "u1@example.com"}
	for i := 0; i+1 < len(kv); i += 2 {
		k := kv[i].(string)
		if kv[i+1] == nil {
			delete(m, k)
			continue
		}
		m[k] = kv[i+1]
	}
	return m
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

var bg = context.Background()

func unix(c *clock, d time.Duration) int64 { return c.Now().Add(d).Unix() }

// must unwraps a (token, error) result: must(t)(is.MintNone(c)).
func must(t testing.TB) func(string, error) string {
	return func(s string, err error) string {
		t.Helper()
		if err != nil {
			t.Fatal(fmt.Errorf("mint: %w", err))
		}
		return s
	}
}
