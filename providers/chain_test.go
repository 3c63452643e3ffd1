package providers

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/idbridge/idbridge/cache"
)

// fake is a provider whose verdict is set per token; it counts its calls.
type fake struct {
	verdicts map[string]error
	doc      string
	expires  time.Time
	calls    atomic.Int64
	delay    time.Duration
	policy   func(doc []byte) error
}

func (f *fake) Authenticate(ctx context.Context, token string) (Identity, error) {
	f.calls.Add(1)
	if f.delay > 0 {
		time.Sleep(f.delay)
	}
	if err, ok := f.verdicts[token]; ok && err != nil {
		return Identity{}, err
	}
	if _, ok := f.verdicts[token]; !ok {
		return Identity{}, ErrNotMine
	}
	return Identity{Document: []byte(f.doc), Expires: f.expires}, nil
}

type policyFake struct{ *fake }

func (p policyFake) CheckPolicy(doc []byte, _ time.Time) error { return p.policy(doc) }

type clock struct{ t atomic.Int64 }

func (c *clock) now() time.Time      { return time.Unix(0, c.t.Load()) }
func (c *clock) add(d time.Duration) { c.t.Add(int64(d)) }
func newClock() *clock               { c := &clock{}; c.t.Store(time.Unix(1_700_000_000, 0).UnixNano()); return c }
func inst(name string, p Provider) *Instance {
	return &Instance{Name: name, Provider: p, Fingerprint: "f"}
}

func TestChainVerdicts(t *testing.T) {
	ok := func(name string) *fake {
		return &fake{verdicts: map[string]error{"tok": nil}, doc: `{"p":"` + name + `"}`}
	}
	with := func(err error) *fake { return &fake{verdicts: map[string]error{"tok": err}} }
	notMine := &fake{verdicts: map[string]error{}}
	tests := []struct {
		name      string
		chain     []*Instance
		wantErr   error
		wantDoc   string
		wantCalls []int64
	}{
		{"first acceptance wins", []*Instance{inst("a", notMine), inst("b", ok("b")), inst("c", ok("c"))}, nil, `{"p":"b"}`, nil},
		{"invalid then accepted", []*Instance{inst("a", with(ErrInvalidToken)), inst("b", ok("b"))}, nil, `{"p":"b"}`, nil},
		{"final invalid stops", []*Instance{{Name: "a", Provider: with(ErrInvalidToken), Final: true}, inst("b", ok("b"))}, ErrInvalidToken, "", nil},
		{"unavailable beats invalid", []*Instance{inst("a", with(ErrUnavailable)), inst("b", with(ErrInvalidToken))}, ErrUnavailable, "", nil},
		{"unavailable then accepted", []*Instance{inst("a", with(ErrUnavailable)), inst("b", ok("b"))}, nil, `{"p":"b"}`, nil},
		{"nobody: invalid", []*Instance{inst("a", notMine)}, ErrInvalidToken, "", nil},
		{"denied is final", []*Instance{inst("a", with(fmt.Errorf("lookup: %w", ErrAccessDenied))), inst("b", ok("b"))}, ErrAccessDenied, "", nil},
		{"unknown error is unavailable", []*Instance{inst("a", with(errors.New("boom")))}, ErrUnavailable, "", nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ch := NewChain(tc.chain, cache.NewMemory(100, nil), nil, nil)
			res, err := ch.Resolve(context.Background(), "tok", TokenSum("tok"))
			if tc.wantErr != nil {
				if !errors.Is(err, tc.wantErr) {
					t.Fatalf("err = %v, want %v", err, tc.wantErr)
				}
				return
			}
			if err != nil || string(res.Document) != tc.wantDoc {
				t.Fatalf("got %s, %v; want %s", res.Document, err, tc.wantDoc)
			}
		})
	}
}

func TestChainCache(t *testing.T) {
	ctx := context.Background()
	t.Run("hit skips the provider but not the policy", func(t *testing.T) {
		clk := newClock()
		var checks atomic.Int64
		f := &fake{verdicts: map[string]error{"tok": nil}, doc: `{"scope":"a"}`}
		f.policy = func([]byte) error { checks.Add(1); return &ScopeError{Required: []string{"b"}} }
		in := &Instance{Name: "p", Provider: policyFake{f}, CacheTTL: time.Minute}
		ch := NewChain([]*Instance{in}, cache.NewMemory(100, clk.now), clk.now, nil)
		for i := 0; i < 2; i++ {
			if _, err := ch.Resolve(ctx, "tok", TokenSum("tok")); !errors.Is(err, ErrInsufficientScope) {
				t.Fatalf("request %d: err = %v, want insufficient scope", i, err)
			}
		}
		if f.calls.Load() != 1 || checks.Load() != 2 {
			t.Fatalf("provider calls %d (want 1), policy checks %d (want 2)", f.calls.Load(), checks.Load())
		}
	})
	t.Run("never past exp", func(t *testing.T) {
		clk := newClock()
		f := &fake{verdicts: map[string]error{"tok": nil}, doc: `{}`, expires: clk.now().Add(2 * time.Second)}
		ch := NewChain([]*Instance{{Name: "p", Provider: f, CacheTTL: time.Hour}}, cache.NewMemory(100, clk.now), clk.now, nil)
		ch.Resolve(ctx, "tok", TokenSum("tok"))
		ch.Resolve(ctx, "tok", TokenSum("tok"))
		if f.calls.Load() != 1 {
			t.Fatalf("calls = %d before exp, want 1", f.calls.Load())
		}
		clk.add(3 * time.Second)
		ch.Resolve(ctx, "tok", TokenSum("tok"))
		if f.calls.Load() != 2 {
			t.Fatalf("calls = %d after exp, want 2 (cache outlived the token)", f.calls.Load())
		}
	})
	t.Run("ttl zero disables", func(t *testing.T) {
		f := &fake{verdicts: map[string]error{"tok": nil}, doc: `{}`}
		ch := NewChain([]*Instance{{Name: "p", Provider: f}}, cache.NewMemory(100, nil), nil, nil)
		ch.Resolve(ctx, "tok", TokenSum("tok"))
		ch.Resolve(ctx, "tok", TokenSum("tok"))
		if f.calls.Load() != 2 {
			t.Fatalf("calls = %d, want 2", f.calls.Load())
		}
	})
	t.Run("negative kept for its ttl", func(t *testing.T) {
		clk := newClock()
		f := &fake{verdicts: map[string]error{"tok": ErrInvalidToken}}
		ch := NewChain([]*Instance{{Name: "p", Provider: f, NegativeTTL: 10 * time.Second}}, cache.NewMemory(100, clk.now), clk.now, nil)
		for i := 0; i < 3; i++ {
			if _, err := ch.Resolve(ctx, "tok", TokenSum("tok")); !errors.Is(err, ErrInvalidToken) {
				t.Fatal(err)
			}
		}
		if f.calls.Load() != 1 {
			t.Fatalf("calls = %d, want 1", f.calls.Load())
		}
		clk.add(11 * time.Second)
		ch.Resolve(ctx, "tok", TokenSum("tok"))
		if f.calls.Load() != 2 {
			t.Fatalf("calls = %d after negative ttl, want 2", f.calls.Load())
		}
	})
	t.Run("unavailable is never cached", func(t *testing.T) {
		f := &fake{verdicts: map[string]error{"tok": ErrUnavailable}}
		ch := NewChain([]*Instance{{Name: "p", Provider: f, CacheTTL: time.Minute, NegativeTTL: time.Minute}}, cache.NewMemory(100, nil), nil, nil)
		ch.Resolve(ctx, "tok", TokenSum("tok"))
		ch.Resolve(ctx, "tok", TokenSum("tok"))
		if f.calls.Load() != 2 {
			t.Fatalf("calls = %d, want 2", f.calls.Load())
		}
	})
	t.Run("concurrent identical lookups collapse", func(t *testing.T) {
		// In a synctest bubble the provider's delay ends only once every caller is
		// blocked: all 100 are then waiting on the one call, however slow the machine.
		synctest.Test(t, func(t *testing.T) {
			f := &fake{verdicts: map[string]error{"tok": nil}, doc: `{}`, delay: 50 * time.Millisecond}
			ch := NewChain([]*Instance{{Name: "p", Provider: f, CacheTTL: time.Minute}}, cache.NewMemory(100, nil), nil, nil)
			var wg sync.WaitGroup
			for i := 0; i < 100; i++ {
				wg.Add(1)
				go func() {
					defer wg.Done()
					if _, err := ch.Resolve(ctx, "tok", TokenSum("tok")); err != nil {
						t.Error(err)
					}
				}()
			}
			wg.Wait()
			if f.calls.Load() != 1 {
				t.Fatalf("calls = %d, want 1", f.calls.Load())
			}
		})
	})
	t.Run("reload with a new fingerprint starts fresh; purge drops", func(t *testing.T) {
		c := cache.NewMemory(100, nil)
		f := &fake{verdicts: map[string]error{"tok": nil}, doc: `{}`}
		ch := NewChain([]*Instance{{Name: "p", Provider: f, CacheTTL: time.Minute, Fingerprint: "v1"}}, c, nil, nil)
		ch.Resolve(ctx, "tok", TokenSum("tok"))
		ch2 := NewChain([]*Instance{{Name: "p", Provider: f, CacheTTL: time.Minute, Fingerprint: "v2"}}, c, nil, nil)
		ch2.Resolve(ctx, "tok", TokenSum("tok"))
		if f.calls.Load() != 2 {
			t.Fatalf("calls = %d, want 2", f.calls.Load())
		}
		if n := ch2.Purge(ctx, "p"); n != 2 {
			t.Fatalf("purged %d, want 2", n)
		}
		ch2.Resolve(ctx, "tok", TokenSum("tok"))
		if f.calls.Load() != 3 {
			t.Fatalf("calls = %d after purge, want 3", f.calls.Load())
		}
	})
}

type enricher struct {
	ttl time.Duration
	err error
}

func (e enricher) Enrich(_ context.Context, _ string, doc []byte) ([]byte, error) {
	if e.err != nil {
		return nil, e.err
	}
	return []byte(`{"enriched":true}`), nil
}
func (e enricher) TTL() time.Duration { return e.ttl }

func TestChainEnrichers(t *testing.T) {
	ctx := context.Background()
	clk := newClock()
	f := &fake{verdicts: map[string]error{"tok": nil}, doc: `{}`}
	in := &Instance{Name: "p", Provider: f, CacheTTL: time.Hour, Enrichers: []Enricher{enricher{ttl: time.Minute}}}
	ch := NewChain([]*Instance{in}, cache.NewMemory(100, clk.now), clk.now, nil)
	res, err := ch.Resolve(ctx, "tok", TokenSum("tok"))
	if err != nil || string(res.Document) != `{"enriched":true}` {
		t.Fatalf("got %s, %v", res.Document, err)
	}
	clk.add(2 * time.Minute)
	ch.Resolve(ctx, "tok", TokenSum("tok"))
	if f.calls.Load() != 2 {
		t.Fatal("the enricher's shorter ttl was not applied")
	}
	in.Enrichers = []Enricher{enricher{err: fmt.Errorf("lookup: %w", ErrAccessDenied)}}
	ch = NewChain([]*Instance{in}, nil, clk.now, nil)
	if _, err := ch.Resolve(ctx, "tok", TokenSum("tok")); !errors.Is(err, ErrAccessDenied) {
		t.Fatalf("err = %v, want access denied", err)
	}
}

// blocking answers once released; it records whether its context was cancelled.
type blocking struct {
	release chan struct{}
	calls   atomic.Int64
}

func (b *blocking) Authenticate(ctx context.Context, token string) (Identity, error) {
	b.calls.Add(1)
	select {
	case <-b.release:
		return Identity{Document: []byte(`{}`)}, nil
	case <-ctx.Done():
		return Identity{}, fmt.Errorf("%w: %w", ErrUnavailable, ctx.Err())
	}
}

func TestChainSharedCallSurvivesFirstCallerLeaving(t *testing.T) {
	// In a synctest bubble, Wait returns once every goroutine is blocked: no sleeps, and
	// no chance that B is late and the test passes without exercising the bug.
	synctest.Test(t, func(t *testing.T) {
		p := &blocking{release: make(chan struct{})}
		ch := NewChain([]*Instance{{Name: "p", Provider: p, CacheTTL: time.Minute}}, cache.NewMemory(100, nil), nil, nil)
		first, cancel := context.WithCancel(context.Background())
		errA := make(chan error, 1)
		go func() { _, err := ch.Resolve(first, "tok", TokenSum("tok")); errA <- err }()
		synctest.Wait() // A is in the provider
		if p.calls.Load() != 1 {
			t.Fatalf("calls = %d", p.calls.Load())
		}
		errB := make(chan error, 1)
		go func() { _, err := ch.Resolve(context.Background(), "tok", TokenSum("tok")); errB <- err }()
		synctest.Wait() // B waits on A's shared call
		cancel()
		synctest.Wait() // A has left
		close(p.release)
		if err := <-errB; err != nil {
			t.Fatalf("the second caller failed because the first one left: %v", err)
		}
		<-errA
		if n := p.calls.Load(); n != 1 {
			t.Errorf("calls = %d, want 1 (B joined A's call)", n)
		}
	})
}
