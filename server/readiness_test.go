package server

import (
	"encoding/json"
	"testing"

	"github.com/idbridge/idbridge/providers"
)

// TestReadinessShape pins /readyz's JSON: flat "kind:name" keys, a provider without a
// health check has only its type, steps appear as "stepN", and the memory cache has no
// Redis fields.
func TestReadinessShape(t *testing.T) {
	for _, tt := range []struct {
		name string
		r    Readiness
		want string
	}{
		{"nothing", Readiness{Ready: true}, `{"ready":true,"dependencies":{}}`},
		{"everything", Readiness{Ready: false, Dependencies: Dependencies{
			Providers: map[string]ProviderHealth{
				"corp":  {Type: "jwt", Health: &providers.Health{Ready: false, OK: false, Detail: "no keys yet"}},
				"plain": {Type: "static"},
				"intro": {Type: "introspection", Health: &providers.Health{Ready: true, OK: true},
					Steps: map[int]providers.Health{1: {Ready: true, OK: false, Detail: "token endpoint refuses"}}},
			},
			Directories: map[string]providers.Health{"ad": {Ready: true, OK: true}},
			Cache:       &CacheHealth{Backend: "redis", OK: false, RedisHealth: &RedisHealth{Degraded: true, Detail: "down", Topology: "sentinel", Primaries: []string{"127.0.0.1:1"}}},
			Spotnana:    &providers.Health{Ready: true, OK: true, Detail: "token_url host is an address"},
		}}, `{"ready":false,"dependencies":{` +
			`"cache":{"backend":"redis","ok":false,"degraded":true,"detail":"down","topology":"sentinel","primaries":["127.0.0.1:1"]},` +
			`"directory:ad":{"ready":true,"ok":true},` +
			`"provider:corp":{"type":"jwt","ready":false,"ok":false,"detail":"no keys yet"},` +
			`"provider:intro":{"ok":true,"ready":true,"step1":{"ready":true,"ok":false,"detail":"token endpoint refuses"},"type":"introspection"},` +
			`"provider:plain":{"type":"static"},` +
			`"spotnana":{"ready":true,"ok":true,"detail":"token_url host is an address"}}}`},
		{"memory cache", Readiness{Ready: true, Dependencies: Dependencies{Cache: &CacheHealth{Backend: "memory", OK: true}}},
			`{"ready":true,"dependencies":{"cache":{"backend":"memory","ok":true}}}`},
	} {
		b, err := json.Marshal(tt.r)
		if err != nil || string(b) != tt.want {
			t.Errorf("%s:\n got %s (%v)\nwant %s", tt.name, b, err, tt.want)
		}
	}
}
