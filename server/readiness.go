package server

import (
	"encoding/json"
	"strconv"

	"github.com/idbridge/idbridge/providers"
)

// Readiness is the body of the admin listener's GET /readyz (the contract's /readyz):
//
//	{"ready": true, "dependencies": {"provider:NAME": {...}, "directory:NAME": {...},
//	 "cache": {...}, "spotnana": {...}}}
//
// Ready is false only while the runtime cannot serve at all; an outage shows in a
// dependency's "ok" and "detail" and leaves the replica in its load balancer.
type Readiness struct {
	Ready        bool         `json:"ready"`
	Dependencies Dependencies `json:"dependencies"`
}

// Dependencies is /readyz's "dependencies" object. Its keys carry the dependency's kind
// and name ("provider:corp", "directory:ad") so one flat object lists every dependency;
// MarshalJSON writes that shape. Nil maps and pointers are left out.
type Dependencies struct {
	// Providers by provider name, written as "provider:NAME".
	Providers map[string]ProviderHealth
	// Directories (providers/ldap's directories:) by name, written as "directory:NAME".
	Directories map[string]providers.Health
	// Cache is the shared cache, written as "cache"; nil when there is none.
	Cache *CacheHealth
	// Spotnana is whether token_url's host resolves, written as "spotnana"; nil without
	// a token_url.
	Spotnana *providers.Health
}

// MarshalJSON writes the flat object described on Dependencies (keys sorted).
func (d Dependencies) MarshalJSON() ([]byte, error) {
	out := make(map[string]any, len(d.Providers)+len(d.Directories)+2)
	for name, h := range d.Providers {
		out["provider:"+name] = h
	}
	for name, h := range d.Directories {
		out["directory:"+name] = h
	}
	if d.Cache != nil {
		out["cache"] = d.Cache
	}
	if d.Spotnana != nil {
		out["spotnana"] = d.Spotnana
	}
	return json.Marshal(out)
}

// ProviderHealth is one provider's entry: its type, its own state when it can report
// one (providers.HealthChecker: "ready", "ok", "detail"), and each enrichment step that
// can report, written as "stepN" with N the step's position in the provider's chain.
type ProviderHealth struct {
	Type string `json:"type"`
	// Health is nil for a provider with nothing to report (it leaves out ready/ok/detail).
	*providers.Health
	// Steps by position in the chain; written as "step0", "step1", ….
	Steps map[int]providers.Health `json:"-"`
}

// MarshalJSON writes the entry with its steps as "stepN" keys beside the provider's own.
func (p ProviderHealth) MarshalJSON() ([]byte, error) {
	type plain ProviderHealth // no MarshalJSON: the struct's own encoding
	b, err := json.Marshal(plain(p))
	if err != nil || len(p.Steps) == 0 {
		return b, err
	}
	var out map[string]json.RawMessage
	if err := json.Unmarshal(b, &out); err != nil {
		return nil, err
	}
	for i, h := range p.Steps {
		if out["step"+strconv.Itoa(i)], err = json.Marshal(h); err != nil {
			return nil, err
		}
	}
	return json.Marshal(out)
}

// CacheHealth is the "cache" entry: backend "memory" (always ok) or "redis" with the
// Redis fields.
type CacheHealth struct {
	Backend string `json:"backend"`
	OK      bool   `json:"ok"`
	// Redis is nil for the memory backend (it leaves out the Redis fields).
	*RedisHealth
}

// RedisHealth is the Redis part of the cache entry (cache.RedisHealth's fields).
type RedisHealth struct {
	// Degraded: the in-memory fallback serves while Redis does not answer.
	Degraded bool `json:"degraded"`
	// Detail is a short reason, never a secret.
	Detail string `json:"detail"`
	// Topology is standalone, sentinel or cluster.
	Topology string `json:"topology"`
	// Primaries are the primaries last seen (host:port); one unless cluster.
	Primaries []string `json:"primaries"`
}
