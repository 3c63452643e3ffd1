package introspection

import (
	"errors"
	"fmt"
	"math"
	"slices"
	"time"

	"github.com/tidwall/gjson"

	"github.com/idbridge/idbridge/jsonlimit"
	"github.com/idbridge/idbridge/providers"
)

// errMalformed marks an answer that is not a well-formed RFC 7662 response. It is never
// "active": the caller reports the endpoint as unavailable.
var errMalformed = errors.New("malformed introspection answer")

// errInactive is the endpoint's {"active": false}: an answer, not an error (RFC 7662 §2.2).
var errInactive = errors.New("token is not active")

// answer is what the checks need from an introspection response, read in one pass.
type answer struct {
	exp, nbf       float64 // 0: absent
	hasExp, hasNbf bool
	iss            gjson.Result
	aud            gjson.Result
	clientID       gjson.Result
	scope          gjson.Result
	scp            gjson.Result
	claims         []gjson.Result // parallel to policy.claims
}

// Bits of answer fields seen, to refuse an answer that repeats one: JSON parsers disagree
// on which duplicate wins, and the mapping must read what the checks read.
const (
	seenActive = 1 << iota
	seenExp
	seenNbf
	seenIat
	seenIss
	seenAud
	seenClientID
	seenScope
	seenScp
)

// parseAnswer reads an introspection response. It returns errMalformed unless body is a
// JSON object whose "active" is the JSON boolean true, with well-typed standard members;
// errInactive for "active": false. claimNames are the required claims to collect.
func parseAnswer(body []byte, claimNames []string) (answer, error) {
	var a answer
	// Depth first: gjson's validator recurses once per level (1 MiB of "[" costs it
	// about 128 MB of stack).
	if err := jsonlimit.Check(body); err != nil {
		return a, fmt.Errorf("%w: %w", errMalformed, err)
	}
	if !gjson.ValidBytes(body) {
		return a, fmt.Errorf("%w: not JSON", errMalformed)
	}
	root := gjson.ParseBytes(body)
	if !root.IsObject() {
		return a, fmt.Errorf("%w: not a JSON object", errMalformed)
	}
	if len(claimNames) > 0 {
		a.claims = make([]gjson.Result, len(claimNames))
	}
	var (
		seen      uint
		claimSeen uint64
		active    gjson.Result
		err       error
	)
	once := func(bit uint, key string) bool {
		if seen&bit != 0 {
			err = fmt.Errorf("%w: %q appears twice", errMalformed, key)
			return false
		}
		seen |= bit
		return true
	}
	root.ForEach(func(k, v gjson.Result) bool {
		key := k.Str
		switch key {
		case "active":
			if !once(seenActive, key) {
				return false
			}
			active = v
		case "exp", "nbf", "iat":
			if !once(bitOf(key), key) {
				return false
			}
			// RFC 7662 §2.2: integer timestamps. A string or a non-finite number is malformed.
			if v.Type != gjson.Number || math.IsNaN(v.Num) || math.IsInf(v.Num, 0) {
				err = fmt.Errorf("%w: %q is not a number", errMalformed, key)
				return false
			}
			switch key {
			case "exp":
				a.exp, a.hasExp = v.Num, true
			case "nbf":
				a.nbf, a.hasNbf = v.Num, true
			}
		case "iss", "client_id", "scope":
			if !once(bitOf(key), key) {
				return false
			}
			if v.Type != gjson.String {
				err = fmt.Errorf("%w: %q is not a string", errMalformed, key)
				return false
			}
			switch key {
			case "iss":
				a.iss = v
			case "client_id":
				a.clientID = v
			case "scope":
				a.scope = v
			}
		case "aud", "scp":
			if !once(bitOf(key), key) {
				return false
			}
			if !stringOrStrings(v) {
				err = fmt.Errorf("%w: %q is neither a string nor an array of strings", errMalformed, key)
				return false
			}
			if key == "aud" {
				a.aud = v
			} else {
				a.scp = v
			}
		}
		for i, name := range claimNames {
			if key == name {
				if claimSeen&(1<<i) != 0 {
					err = fmt.Errorf("%w: %q appears twice", errMalformed, key)
					return false
				}
				claimSeen |= 1 << i
				a.claims[i] = v
			}
		}
		return true
	})
	if err != nil {
		return answer{}, err
	}
	switch active.Type {
	case gjson.True:
		return a, nil
	case gjson.False:
		return answer{}, errInactive
	}
	// Missing, "true", 1, null: RFC 7662 §2.2 requires the boolean. Never guess.
	return answer{}, fmt.Errorf("%w: \"active\" is not a JSON boolean", errMalformed)
}

func bitOf(key string) uint {
	switch key {
	case "exp":
		return seenExp
	case "nbf":
		return seenNbf
	case "iat":
		return seenIat
	case "iss":
		return seenIss
	case "client_id":
		return seenClientID
	case "scope":
		return seenScope
	case "aud":
		return seenAud
	case "scp":
		return seenScp
	}
	return 0
}

func stringOrStrings(v gjson.Result) bool {
	switch {
	case v.Type == gjson.String:
		return true
	case v.IsArray():
		ok := true
		v.ForEach(func(_, e gjson.Result) bool {
			ok = e.Type == gjson.String
			return ok
		})
		return ok
	}
	return false
}

// expires is the answer's exp as a time; zero when absent.
func (a *answer) expires() time.Time {
	if !a.hasExp {
		return time.Time{}
	}
	sec, frac := math.Modf(a.exp)
	return time.Unix(int64(sec), int64(frac*1e9))
}

// policy holds the checks that run on every answer, fresh or cached: time and issuer
// here, the rest in the shared providers.ClaimPolicy.
type policy struct {
	issuer string
	// claimNames are the members parseAnswer collects: the required claims (parallel to
	// shared.Claims()) and then, from nRequired on, client_id_claims in order.
	claimNames []string
	nRequired  int
	shared     *providers.ClaimPolicy
}

// maxRequiredClaims bounds required_claims to the bits of answer's bookkeeping.
const maxRequiredClaims = 64

func newPolicy(cfg *Config) (*policy, []string) {
	p := &policy{issuer: cfg.Issuer}
	var errs []string
	if len(cfg.RequiredClaims)+len(cfg.ClientIDClaims) > maxRequiredClaims {
		errs = append(errs, fmt.Sprintf("at most %d claims, client_id_claims included", maxRequiredClaims))
		p.shared = providers.NewClaimPolicy(cfg.Audiences, cfg.ClientIDs, nil, cfg.RequiredScopes)
		return p, errs
	}
	names := make([]string, 0, len(cfg.RequiredClaims))
	for name := range cfg.RequiredClaims {
		names = append(names, name)
	}
	slices.Sort(names) // stable error order and check order
	var claims []providers.RequiredClaim
	for _, name := range names {
		want, ok := claimValue(cfg.RequiredClaims[name])
		if !ok || name == "" {
			errs = append(errs, fmt.Sprintf("%q: the value must be a string, a number or a boolean", name))
			continue
		}
		p.claimNames = append(p.claimNames, name)
		// RFC 7662 answers often carry groups or roles as arrays: one element is enough.
		claims = append(claims, providers.RequiredClaim{Name: name, Want: want, AnyElement: true})
	}
	p.nRequired = len(p.claimNames)
	clients := cfg.ClientIDClaims
	if clients == nil {
		clients = providers.DefaultClientIDClaims
	}
	p.claimNames = append(p.claimNames, clients...)
	p.shared = providers.NewClaimPolicy(cfg.Audiences, cfg.ClientIDs, claims, cfg.RequiredScopes)
	return p, errs
}

// client returns the answer's client: the first of client_id_claims present, when it is
// a string.
func (p *policy) client(a *answer) (string, bool) {
	c := providers.FirstPresent(a.claims[p.nRequired:])
	return c.Str, c.Type == gjson.String
}

func claimValue(v any) (any, bool) {
	switch x := v.(type) {
	case string, bool:
		return x, true
	case int:
		return float64(x), true
	case int64:
		return float64(x), true
	case uint64:
		return float64(x), true
	case float64:
		return x, true
	}
	return nil, false
}

// check runs the time and policy checks on a parsed active answer. withScopes is false
// in Authenticate: see there.
func (p *policy) check(a *answer, now time.Time, withScopes bool) error {
	unix := float64(now.UnixNano()) / 1e9
	if a.hasExp && unix >= a.exp {
		return fmt.Errorf("introspection: %w: %w", providers.ErrInvalidToken, providers.ErrExpired)
	}
	if a.hasNbf && unix < a.nbf {
		ahead := time.Duration((a.nbf - unix) * float64(time.Second)).Round(time.Second)
		return fmt.Errorf("introspection: %w: %w: nbf is %s ahead of this host's clock; check clock skew",
			providers.ErrInvalidToken, providers.ErrNotYetValid, ahead)
	}
	if p.issuer != "" && a.iss.Str != p.issuer {
		return fmt.Errorf("introspection: %w: issuer not accepted", providers.ErrInvalidToken)
	}
	r := p.shared.Check(a.aud, a.claims[p.nRequired:], a.claims[:p.nRequired])
	if r != nil {
		// parseAnswer already refused an aud of the wrong type, so both audience faults
		// mean "not accepted".
		switch r.Fault {
		case providers.FaultClient:
			return fmt.Errorf("introspection: %w: client not accepted", providers.ErrInvalidToken)
		case providers.FaultClaim:
			return fmt.Errorf("introspection: %w: required claim %q does not match", providers.ErrInvalidToken, p.claimNames[r.Claim])
		}
		return fmt.Errorf("introspection: %w: audience not accepted", providers.ErrInvalidToken)
	}
	if !withScopes {
		return nil
	}
	return p.shared.CheckScopes(a.scope, a.scp)
}
