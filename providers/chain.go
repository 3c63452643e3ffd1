package providers

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"time"
	"unsafe"

	"golang.org/x/sync/singleflight"

	"github.com/idbridge/idbridge/cache"
)

// Outcomes reported to an Observer, one per provider consulted.
const (
	OutcomeAccepted    = "accepted"
	OutcomeNotMine     = "not_mine"
	OutcomeInvalid     = "invalid"
	OutcomeUnavailable = "unavailable"
	OutcomeDenied      = "denied"
	// OutcomeError: an error no sentinel explains (a bug).
	OutcomeError = "error"
)

// Observer receives what the chain does, for metrics. Implementations must be cheap and
// safe for concurrent use.
type Observer interface {
	ProviderOutcome(provider, outcome string, d time.Duration)
	CacheResult(kind cache.Kind, hit bool)
}

// Result is the chain's answer for an accepted token.
type Result struct {
	Identity
	// Instance is the provider that accepted the token.
	Instance *Instance
	// Cached reports an answer served from the identity cache.
	Cached bool
}

// Chain tries providers in order, as the contract's "The chain" says: the first
// acceptance wins; a final provider's invalid verdict ends the search; otherwise any
// unavailable provider makes the answer unavailable, and else the token is invalid.
type Chain struct {
	instances []*Instance
	groups    []string
	cache     cache.Cache
	now       func() time.Time
	observer  Observer
	flight    singleflight.Group
	// timeout bounds the upstream part of a Resolve (server.request_timeout); see
	// SetRequestTimeout.
	timeout time.Duration
}

// SetRequestTimeout bounds every Resolve that has to ask a provider. The deadline starts
// at the first upstream call rather than being set on the caller's context, because a
// cache hit, the common case, then costs no timer.
func (ch *Chain) SetRequestTimeout(d time.Duration) { ch.timeout = d }

// NewChain builds a chain over instances. c may be nil (no caching); now may be nil.
func NewChain(instances []*Instance, c cache.Cache, now func() time.Time, obs Observer) *Chain {
	if now == nil {
		now = time.Now
	}
	ch := &Chain{instances: instances, cache: c, now: now, observer: obs}
	for _, in := range instances {
		// The fingerprint is part of the group so that a reload that changes a provider
		// starts it with a fresh cache, while an unchanged provider keeps its entries.
		ch.groups = append(ch.groups, in.Name+"/"+in.Fingerprint)
	}
	return ch
}

// Instances returns the providers in chain order.
func (ch *Chain) Instances() []*Instance { return ch.instances }

// Fingerprint is the only form in which a token may appear in a log line or on a
// screen: the first 8 hex digits of its SHA-256.
func Fingerprint(sum [32]byte) string { return hex.EncodeToString(sum[:4]) }

// upstreamDeadline starts a Resolve's deadline at its first upstream call; its timer
// starts only if something waits on it (see lazyDeadline).
type upstreamDeadline struct {
	started bool
	lazy    *lazyDeadline
}

func (d *upstreamDeadline) apply(ctx context.Context, timeout time.Duration) context.Context {
	if timeout <= 0 || d.started {
		return ctx
	}
	d.started = true
	ctx, d.lazy = withLazyDeadline(ctx, time.Now().Add(timeout))
	return ctx
}

func (d *upstreamDeadline) release() { d.lazy.release() }

// TokenSum is the SHA-256 of a token: the only form in which a token is ever a key.
// The token's bytes are hashed in place: a JWT is near a kilobyte, and copying it to a
// []byte was the largest allocation of a cached request. Sum256 neither keeps nor
// modifies its input.
func TokenSum(token string) [32]byte {
	return sha256.Sum256(unsafe.Slice(unsafe.StringData(token), len(token)))
}

// Resolve runs the chain for token. sum must be TokenSum(token); callers compute it once
// per request because it also names the request in logs.
func (ch *Chain) Resolve(ctx context.Context, token string, sum [32]byte) (Result, error) {
	id := string(sum[:])
	var unavailable, invalid error
	var dl upstreamDeadline
	defer dl.release()
	for i, in := range ch.instances {
		group := ch.groups[i]
		if in.CacheTTL > 0 && ch.cache != nil {
			doc, ok := ch.cache.Get(ctx, cache.Key{Kind: cache.Identity, Group: group, ID: id})
			ch.observeCache(cache.Identity, ok)
			if ok {
				res, err := ch.accept(in, Identity{Provider: in.Name, Document: doc}, true)
				ch.observe(in.Name, outcomeOf(err), 0)
				return res, err
			}
		}
		if in.NegativeTTL > 0 && ch.cache != nil {
			_, ok := ch.cache.Get(ctx, cache.Key{Kind: cache.Negative, Group: group, ID: id})
			ch.observeCache(cache.Negative, ok)
			if ok {
				err := fmt.Errorf("%s: %w (remembered)", in.Name, ErrInvalidToken)
				ch.observe(in.Name, OutcomeInvalid, 0)
				if in.Final {
					return Result{}, err
				}
				invalid = err
				continue
			}
		}

		ctx = dl.apply(ctx, ch.timeout)
		start := ch.now()
		v, err, _ := ch.flight.Do(strconv.Itoa(i)+"\x00"+id, func() (any, error) {
			// The call is shared by every request for this token: one client going away
			// must not cancel it for the others, so it keeps the first caller's deadline
			// but not its cancellation.
			sctx := context.WithoutCancel(ctx)
			if dl, ok := ctx.Deadline(); ok {
				var lazy *lazyDeadline
				sctx, lazy = withLazyDeadline(sctx, dl)
				defer lazy.release()
			}
			return ch.authenticate(sctx, in, group, id, token)
		})
		if err == nil {
			res, err := ch.accept(in, v.(Identity), false)
			ch.observe(in.Name, outcomeOf(err), ch.now().Sub(start))
			return res, err
		}
		ch.observe(in.Name, outcomeOf(err), ch.now().Sub(start))
		switch Classify(err) {
		case NotMine:
		case Unavailable:
			unavailable = err
		case Denied, InsufficientScope:
			return Result{}, err
		case Invalid:
			if in.Final {
				return Result{}, err
			}
			invalid = err
		default:
			// An error that names no sentinel is a bug or an unforeseen failure; treating
			// it as unavailable keeps it from ever being read as acceptance or as the
			// user's fault.
			unavailable = fmt.Errorf("%s: %w: %w", in.Name, ErrUnavailable, err)
		}
	}
	if unavailable != nil {
		return Result{}, unavailable
	}
	if invalid != nil {
		return Result{}, invalid
	}
	return Result{}, fmt.Errorf("no provider accepted the token: %w", ErrInvalidToken)
}

// authenticate asks the provider, runs the enrichment steps and caches the outcome. The
// document is cached before any policy check, so that the check runs on every hit.
func (ch *Chain) authenticate(ctx context.Context, in *Instance, group, id, token string) (any, error) {
	ident, err := in.Provider.Authenticate(ctx, token)
	if err != nil {
		if in.NegativeTTL > 0 && ch.cache != nil && errors.Is(err, ErrInvalidToken) {
			ch.cache.Set(ctx, cache.Key{Kind: cache.Negative, Group: group, ID: id}, []byte{1}, in.NegativeTTL)
		}
		return nil, err
	}
	ident.Provider = in.Name
	ttl := in.CacheTTL
	for _, e := range in.Enrichers {
		doc, err := e.Enrich(ctx, token, ident.Document)
		if err != nil {
			return nil, err
		}
		ident.Document = doc
		if t := e.TTL(); t > 0 && t < ttl {
			ttl = t
		}
	}
	if !ident.Expires.IsZero() {
		if left := ident.Expires.Sub(ch.now()); left < ttl {
			ttl = left
		}
	}
	if ttl > 0 && ch.cache != nil {
		if cap(ident.Document) > len(ident.Document)+len(ident.Document)/4 {
			// A document read from an IdP's answer often sits in a buffer grown by
			// doubling; the cache would keep all of that capacity alive for the entry's
			// whole life.
			ident.Document = bytes.Clone(ident.Document)
		}
		ch.cache.Set(ctx, cache.Key{Kind: cache.Identity, Group: group, ID: id}, ident.Document, ttl)
	}
	return ident, nil
}

func (ch *Chain) accept(in *Instance, ident Identity, cached bool) (Result, error) {
	if p, ok := in.Provider.(Policy); ok {
		if err := p.CheckPolicy(ident.Document, ch.now()); err != nil {
			return Result{}, fmt.Errorf("%s: %w", in.Name, err)
		}
	}
	return Result{Identity: ident, Instance: in, Cached: cached}, nil
}

// Purge drops cached identities and failed lookups of one provider, or of all (""). It
// returns how many entries it dropped, or -1 when the backend cannot count them.
func (ch *Chain) Purge(ctx context.Context, provider string) int {
	if ch.cache == nil {
		return 0
	}
	prefix := ""
	if provider != "" {
		prefix = provider + "/"
	}
	n, counted := 0, true
	for _, k := range []cache.Kind{cache.Identity, cache.Negative, cache.Lookup} {
		if m := ch.cache.Purge(ctx, k, prefix); m >= 0 {
			n += m
		} else {
			counted = false
		}
	}
	if !counted {
		// Redis purges by generation and cannot tell how many entries that dropped.
		return -1
	}
	return n
}

func (ch *Chain) observe(provider, outcome string, d time.Duration) {
	if ch.observer != nil {
		ch.observer.ProviderOutcome(provider, outcome, d)
	}
}

func (ch *Chain) observeCache(k cache.Kind, hit bool) {
	if ch.observer != nil {
		ch.observer.CacheResult(k, hit)
	}
}

// outcomeOf is the metrics label of a provider's verdict (see Classify). An error no
// sentinel explains counts as unavailable: the provider could not decide.
func outcomeOf(err error) string {
	if c := Classify(err); c != Internal {
		return c.Outcome()
	}
	return OutcomeUnavailable
}
