package userinfo_test

import (
	"gopkg.in/yaml.v3"

	"bytes"
	"context"
	"errors"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/tidwall/gjson"

	"github.com/idbridge/idbridge/configs"
	"github.com/idbridge/idbridge/providers"
	"github.com/idbridge/idbridge/providers/introspection/idptest"
	"github.com/idbridge/idbridge/providers/userinfo"
)

const testToken = "opaque-user-token-93be0c1d"

func newProvider(t testing.TB, endpoint, extra string, deps providers.Deps) providers.Instance {
	t.Helper()
	inst, err := userinfo.New(idptest.Section(t, "ui", userinfo.Type, "endpoint: "+endpoint+"\n"+extra), deps)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return inst
}

func TestAnswerIsTheDocument(t *testing.T) {
	srv := idptest.New(t, idptest.JSON(map[string]any{"sub": "u1", "email": "alice@example.com", "email_verified": true}))
	inst := newProvider(t, srv.URL, "", providers.Deps{})
	id, err := inst.Provider.Authenticate(context.Background(), testToken)
	if err != nil {
		t.Fatal(err)
	}
	if gjson.GetBytes(id.Document, "email").String() != "alice@example.com" || !id.Expires.IsZero() {
		t.Errorf("identity = %s, %v", id.Document, id.Expires)
	}
	if got := srv.LastHeader("Authorization"); got != "Bearer "+testToken {
		t.Errorf("Authorization = %q", got)
	}
	if inst.CacheTTL != 60*time.Second || inst.NegativeTTL != 10*time.Second || inst.Type != "userinfo" {
		t.Errorf("instance = %+v", inst)
	}
}

func TestConfig(t *testing.T) {
	inst := newProvider(t, "https://idp.example.com/userinfo", "cache_ttl: 0s", providers.Deps{})
	if inst.CacheTTL != 0 {
		t.Errorf("cache_ttl 0: CacheTTL = %v", inst.CacheTTL)
	}
	_, err := userinfo.New(idptest.Section(t, "ui", userinfo.Type, "accepts: jwe\ntimeout: -1s"), providers.Deps{})
	var errs configs.Errors
	if !errors.As(err, &errs) || len(errs) != 3 {
		t.Fatalf("err = %v, want 3 configs.Errors", err)
	}
	for _, want := range []string{"endpoint: is required", "accepts: must be", "timeout: must be positive"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("errors lack %q: %v", want, err)
		}
	}
}

func TestAccepts(t *testing.T) {
	srv := idptest.New(t, idptest.JSON(map[string]any{"sub": "u1"}))
	inst := newProvider(t, srv.URL, "", providers.Deps{})
	_, err := inst.Provider.Authenticate(context.Background(), "eyJhbGciOiJSUzI1NiJ9.eyJpc3MiOiJ4In0.c2ln")
	if !errors.Is(err, providers.ErrNotMine) || srv.Hits() != 0 {
		t.Errorf("JWT to an opaque userinfo provider: err %v, hits %d", err, srv.Hits())
	}
}

func TestRefusals(t *testing.T) {
	tests := []struct {
		name    string
		handler http.Handler
		want    error
	}{
		{"401", idptest.Raw(http.StatusUnauthorized, "application/json", []byte(`{"error":"invalid_token"}`)), providers.ErrInvalidToken},
		{"403 insufficient_scope", http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
			w.Header().Set("WWW-Authenticate", `Bearer realm="x", error="insufficient_scope", scope="openid"`)
			w.WriteHeader(http.StatusForbidden)
		}), providers.ErrInvalidToken},
		{"403 without a challenge", idptest.Raw(http.StatusForbidden, "text/plain", []byte("waf")), providers.ErrUnavailable},
		{"signed userinfo", idptest.Raw(http.StatusOK, "application/jwt", []byte("a.b.c")), providers.ErrUnavailable},
	}
	for _, f := range idptest.Faults() {
		if f.IntrospectionOnly {
			continue
		}
		tests = append(tests, struct {
			name    string
			handler http.Handler
			want    error
		}{f.Name, f.Handler, providers.ErrUnavailable})
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := idptest.New(t, tt.handler)
			var logs bytes.Buffer
			inst := newProvider(t, srv.URL, "timeout: 300ms", providers.Deps{Logger: slog.New(slog.NewTextHandler(&logs, nil))})
			id, err := inst.Provider.Authenticate(context.Background(), testToken)
			if !errors.Is(err, tt.want) || id.Document != nil {
				t.Errorf("err = %v, doc = %s; want %v", err, id.Document, tt.want)
			}
			if tt.want == providers.ErrUnavailable && errors.Is(err, providers.ErrInvalidToken) {
				t.Errorf("a fault reported as an invalid token: %v", err)
			}
			if err != nil && strings.Contains(err.Error(), testToken) || strings.Contains(logs.String(), testToken) {
				t.Errorf("token leaked: %v / %s", err, logs.String())
			}
		})
	}
}

func TestHealth(t *testing.T) {
	srv := idptest.New(t, idptest.Raw(http.StatusUnauthorized, "application/json", nil))
	inst := newProvider(t, srv.URL, "", providers.Deps{})
	if h := inst.Provider.(providers.HealthChecker).Health(context.Background()); !h.OK {
		t.Errorf("Health = %+v, want OK (401 without a token is alive)", h)
	}
	srv.Close()
	if h := inst.Provider.(providers.HealthChecker).Health(context.Background()); h.OK {
		t.Errorf("Health = %+v for a closed endpoint", h)
	}
}

// fakeSource is a provider that discovered a userinfo endpoint.
type fakeSource struct {
	endpoint string
	err      error
	calls    int
}

func (f *fakeSource) Authenticate(context.Context, string) (providers.Identity, error) {
	return providers.Identity{}, providers.ErrNotMine
}

func (f *fakeSource) UserinfoEndpoint(context.Context) (string, error) {
	f.calls++
	return f.endpoint, f.err
}

type plainProvider struct{}

func (plainProvider) Authenticate(context.Context, string) (providers.Identity, error) {
	return providers.Identity{}, providers.ErrNotMine
}

// owner is the provider section the steps under test belong to.
var owner = &configs.ProviderSection{Name: "corp", Type: "jwt", File: "test.yaml", Path: "providers[0]", Line: 3}

// stepSection builds a userinfo: step's section from its decoded form.
func stepSection(u userinfo.StepConfig) *configs.Section {
	out, err := yaml.Marshal(u)
	if err != nil {
		panic(err)
	}
	var n yaml.Node
	if err := yaml.Unmarshal(out, &n); err != nil {
		panic(err)
	}
	return &configs.Section{Name: "userinfo", File: "test.yaml", Path: "providers[0].userinfo", Line: 4, Node: n.Content[0]}
}

func strp(s string) *string { return &s }

func TestEnricher(t *testing.T) {
	answer := map[string]any{"sub": "u1", "email": "alice@example.com", "email_verified": true}
	tests := []struct {
		name     string
		u        userinfo.StepConfig
		doc      string
		wantCall bool
		check    func(t *testing.T, doc []byte)
	}{
		{
			name: "present: no call", doc: `{"sub":"u1","email":"a@b.c"}`,
			check: func(t *testing.T, doc []byte) {
				if string(doc) != `{"sub":"u1","email":"a@b.c"}` {
					t.Errorf("doc changed: %s", doc)
				}
			},
		},
		{
			name: "absent: call and merge", doc: `{"sub":"u1","aud":"x"}`, wantCall: true,
			check: func(t *testing.T, doc []byte) {
				if gjson.GetBytes(doc, "userinfo.email").String() != "alice@example.com" || gjson.GetBytes(doc, "aud").String() != "x" {
					t.Errorf("doc = %s", doc)
				}
			},
		},
		{
			name: "always, custom into", u: userinfo.StepConfig{Into: "ui", WhenMissing: strp("")}, doc: `{"sub":"u1","email":"a@b.c"}`, wantCall: true,
			check: func(t *testing.T, doc []byte) {
				if !gjson.GetBytes(doc, "ui.email_verified").Bool() || gjson.GetBytes(doc, "email").String() != "a@b.c" {
					t.Errorf("doc = %s", doc)
				}
			},
		},
		{
			name: "nested when_missing path", u: userinfo.StepConfig{WhenMissing: strp("directory.mail")}, doc: `{"sub":"u1","directory":{"mail":["a@b.c"]}}`,
			check: func(t *testing.T, doc []byte) {
				if gjson.GetBytes(doc, "userinfo").Exists() {
					t.Errorf("called although directory.mail is present: %s", doc)
				}
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := idptest.New(t, idptest.JSON(answer))
			u := tt.u
			u.Endpoint = srv.URL
			e, err := userinfo.NewEnricher(stepSection(u), owner, plainProvider{}, providers.Deps{})
			if err != nil {
				t.Fatal(err)
			}
			doc, err := e.Enrich(context.Background(), testToken, []byte(tt.doc))
			if err != nil {
				t.Fatal(err)
			}
			if got := srv.Hits() == 1; got != tt.wantCall {
				t.Errorf("called = %v, want %v", got, tt.wantCall)
			}
			tt.check(t, doc)
			if e.TTL() != 0 {
				t.Errorf("TTL = %v", e.TTL())
			}
		})
	}
}

func TestEnricherDiscoveredEndpoint(t *testing.T) {
	srv := idptest.New(t, idptest.JSON(map[string]any{"sub": "u1", "email": "alice@example.com"}))
	src := &fakeSource{endpoint: srv.URL}
	e, err := userinfo.NewEnricher(stepSection(userinfo.StepConfig{}), owner, src, providers.Deps{})
	if err != nil {
		t.Fatal(err)
	}
	if src.calls != 0 {
		t.Error("discovery asked at construction; it must be lazy")
	}
	doc, err := e.Enrich(context.Background(), testToken, []byte(`{"sub":"u1"}`))
	if err != nil {
		t.Fatal(err)
	}
	if gjson.GetBytes(doc, "userinfo.email").String() != "alice@example.com" || src.calls != 1 {
		t.Errorf("doc = %s, discovery calls %d", doc, src.calls)
	}

	down := &fakeSource{err: errors.New("discovery failed")}
	e, err = userinfo.NewEnricher(stepSection(userinfo.StepConfig{}), owner, down, providers.Deps{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.Enrich(context.Background(), testToken, []byte(`{"sub":"u1"}`)); !errors.Is(err, providers.ErrUnavailable) {
		t.Errorf("discovery failure: %v, want ErrUnavailable", err)
	}
}

func TestEnricherErrors(t *testing.T) {
	t.Run("no endpoint and no discovery", func(t *testing.T) {
		_, err := userinfo.NewEnricher(stepSection(userinfo.StepConfig{}), owner, plainProvider{}, providers.Deps{})
		var errs configs.Errors
		if !errors.As(err, &errs) || !strings.Contains(err.Error(), "providers[0].userinfo.endpoint: is required") {
			t.Errorf("err = %v", err)
		}
	})
	tests := []struct {
		name    string
		handler http.Handler
		want    error
	}{
		{"401", idptest.Raw(http.StatusUnauthorized, "application/json", nil), providers.ErrInvalidToken},
		{"500", idptest.Raw(http.StatusInternalServerError, "application/json", nil), providers.ErrUnavailable},
		{"other sub", idptest.JSON(map[string]any{"sub": "someone-else", "email": "mallory@example.com"}), providers.ErrAccessDenied},
		{"no sub", idptest.JSON(map[string]any{"email": "mallory@example.com"}), providers.ErrAccessDenied},
		{"sub of another type", idptest.JSON(map[string]any{"sub": 1, "email": "mallory@example.com"}), providers.ErrAccessDenied},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := idptest.New(t, tt.handler)
			e, err := userinfo.NewEnricher(stepSection(userinfo.StepConfig{Endpoint: srv.URL}), owner, plainProvider{}, providers.Deps{})
			if err != nil {
				t.Fatal(err)
			}
			doc, err := e.Enrich(context.Background(), testToken, []byte(`{"sub":"u1"}`))
			if !errors.Is(err, tt.want) || doc != nil {
				t.Errorf("err = %v, doc = %s; want %v", err, doc, tt.want)
			}
		})
	}
}

// BenchmarkUserinfo is one uncached userinfo round trip.
func BenchmarkUserinfo(b *testing.B) {
	srv := idptest.New(b, idptest.JSON(map[string]any{"sub": "u1", "email": "alice@example.com"}))
	inst := newProvider(b, srv.URL, "", providers.Deps{})
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := inst.Provider.Authenticate(ctx, testToken); err != nil {
			b.Fatal(err)
		}
	}
}
