package server

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/tidwall/gjson"

	"github.com/idbridge/idbridge/mapping"
	"github.com/idbridge/idbridge/providers"
)

// Bridge turns a bearer token into the user-detail answer: the provider chain, then the
// mapping rules of the provider that accepted it, then the response shape. It holds no
// Gin types, so the CLI's resolve command uses it too.
type Bridge struct {
	chain      *providers.Chain
	rules      map[*providers.Instance]*mapping.Rules
	def        *mapping.Rules
	emailField string
	extra      []extraField
}

type extraField struct {
	name string // already JSON-quoted
	path string
}

// Resolution is what the bridge proved about one token.
type Resolution struct {
	providers.Result
	Email string
	// Body is the user-detail answer, {"user":{"email":…}} plus response.extra.
	Body []byte
}

// NewBridge assembles a bridge. rules holds per-provider overrides; def applies to the
// others. extra maps response field names to gjson paths.
func NewBridge(chain *providers.Chain, def *mapping.Rules, rules map[*providers.Instance]*mapping.Rules, emailField string, extra map[string]string) *Bridge {
	if emailField == "" {
		emailField = "email"
	}
	b := &Bridge{chain: chain, rules: rules, def: def, emailField: emailField}
	// Sorted, so that the answer's bytes do not change with map iteration order.
	for _, name := range slices.Sorted(maps.Keys(extra)) {
		b.extra = append(b.extra, extraField{name: string(appendJSONString(nil, name)), path: extra[name]})
	}
	return b
}

// Chain returns the provider chain.
func (b *Bridge) Chain() *providers.Chain { return b.chain }

// RulesFor returns the mapping rules that apply to a provider's documents.
func (b *Bridge) RulesFor(in *providers.Instance) *mapping.Rules {
	if r, ok := b.rules[in]; ok {
		return r
	}
	return b.def
}

// Resolve validates the token and maps its identity to an email. Mapping runs on every
// call, cached document or not, so a rule change never waits for a cache to drain.
func (b *Bridge) Resolve(ctx context.Context, token string, sum [32]byte) (*Resolution, error) {
	res, err := b.chain.Resolve(ctx, token, sum)
	if err != nil {
		return nil, err
	}
	return b.Map(res)
}

// Map applies the mapping rules and renders the answer for an accepted identity.
func (b *Bridge) Map(res providers.Result) (*Resolution, error) {
	email, err := b.RulesFor(res.Instance).Email(res.Document)
	if err != nil {
		return nil, fmt.Errorf("%s: %w: %w", res.Provider, providers.ErrAccessDenied, err)
	}
	return &Resolution{Result: res, Email: email, Body: b.render(email, res.Document)}, nil
}

func (b *Bridge) render(email string, doc []byte) []byte {
	out := make([]byte, 0, 32+len(b.emailField)+len(email))
	out = append(out, `{"user":{`...)
	out = appendJSONString(out, b.emailField)
	out = append(out, ':')
	out = appendJSONString(out, email)
	for _, x := range b.extra {
		v := gjson.GetBytes(doc, x.path)
		if !v.Exists() {
			continue
		}
		out = append(out, ',')
		out = append(out, x.name...)
		out = append(out, ':')
		out = append(out, strings.TrimSpace(v.Raw)...)
	}
	return append(out, "}}\n"...)
}

// appendJSONString appends s as a JSON string. Written out because the hot path answers
// one fixed shape and encoding/json's reflection would dominate its cost.
func appendJSONString(dst []byte, s string) []byte {
	const hex = "0123456789abcdef"
	dst = append(dst, '"')
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '"' || c == '\\':
			dst = append(dst, '\\', c)
		case c < 0x20 || c == '<' || c == '>' || c == '&' || c == 0x7f:
			dst = append(dst, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xf])
		case c == 0xe2 && i+2 < len(s) && s[i+1] == 0x80 && (s[i+2] == 0xa8 || s[i+2] == 0xa9):
			// U+2028 and U+2029 break JavaScript string literals.
			dst = append(dst, '\\', 'u', '2', '0', '2', hex[s[i+2]&0xf])
			i += 2
		default:
			dst = append(dst, c)
		}
	}
	return append(dst, '"')
}

// Pins keep the identity validated for an in-flight exchange available to Spotnana's
// user-detail callback for the same token, whatever the cache settings. The mutex guards
// only the map: it is never held across an outbound call.
type Pins struct {
	mu sync.Mutex
	m  map[[32]byte]*pin
	// n mirrors len(m), so that Get skips the mutex while no exchange is in flight:
	// every user-detail request asks, and nearly all find nothing.
	n atomic.Int64
}

type pin struct {
	res  *Resolution
	refs int
}

// NewPins returns an empty pin set.
func NewPins() *Pins { return &Pins{m: make(map[[32]byte]*pin)} }

// Pin keeps res for sum until the returned release is called.
func (p *Pins) Pin(sum [32]byte, res *Resolution) (release func()) {
	p.mu.Lock()
	e, ok := p.m[sum]
	if !ok {
		e = &pin{res: res}
		p.m[sum] = e
		p.n.Add(1)
	}
	e.refs++
	p.mu.Unlock()
	var once sync.Once
	return func() {
		once.Do(func() {
			p.mu.Lock()
			if e.refs--; e.refs == 0 {
				delete(p.m, sum)
				p.n.Add(-1)
			}
			p.mu.Unlock()
		})
	}
}

// Get returns the pinned resolution for sum, if an exchange holds one.
func (p *Pins) Get(sum [32]byte) (*Resolution, bool) {
	// A pin made before this request arrived is visible here: n is raised under the
	// mutex before Pin returns, and the exchange that pins calls Spotnana only after.
	if p.n.Load() == 0 {
		return nil, false
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.m) == 0 {
		return nil, false
	}
	e, ok := p.m[sum]
	if !ok {
		return nil, false
	}
	return e.res, true
}

// Len reports how many tokens are pinned (for tests and metrics).
func (p *Pins) Len() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.m)
}
