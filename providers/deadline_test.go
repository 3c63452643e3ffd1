package providers

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"testing"
	"testing/synctest"
	"time"

	"github.com/idbridge/idbridge/cache"
)

type ctxKey struct{}

func TestLazyDeadline(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		parent := context.WithValue(context.Background(), ctxKey{}, "v")
		d := time.Now().Add(time.Second)
		ctx, lazy := withLazyDeadline(parent, d)
		defer lazy.release()
		if got, ok := ctx.Deadline(); !ok || !got.Equal(d) {
			t.Fatalf("Deadline = %v %v", got, ok)
		}
		if ctx.Value(ctxKey{}) != "v" || ctx.Err() != nil {
			t.Fatalf("Value %v, Err %v", ctx.Value(ctxKey{}), ctx.Err())
		}
		if lazy.current() != nil {
			t.Fatal("armed before anything waited on it")
		}
		// A context derived by the context package registers on the armed context (found
		// through Value): no goroutine per derivation.
		before := runtime.NumGoroutine()
		child, cancelChild := context.WithCancel(ctx)
		defer cancelChild()
		if n := runtime.NumGoroutine(); n != before {
			t.Errorf("goroutines %d -> %d for a derived context", before, n)
		}
		select {
		case <-ctx.Done():
			t.Fatal("done before the deadline")
		default:
		}
		time.Sleep(time.Second) // bubble time: the deadline passes
		synctest.Wait()
		for name, c := range map[string]context.Context{"ctx": ctx, "child": child} {
			select {
			case <-c.Done():
			default:
				t.Fatalf("%s not done at the deadline", name)
			}
			if !errors.Is(c.Err(), context.DeadlineExceeded) || !errors.Is(context.Cause(c), context.DeadlineExceeded) {
				t.Errorf("%s: Err %v, Cause %v", name, c.Err(), context.Cause(c))
			}
		}
	})
}

func TestLazyDeadlineUnarmed(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		// Err sees the deadline without a timer, and Done then agrees.
		ctx, lazy := withLazyDeadline(context.Background(), time.Now().Add(time.Second))
		defer lazy.release()
		time.Sleep(2 * time.Second)
		if !errors.Is(ctx.Err(), context.DeadlineExceeded) {
			t.Fatalf("Err = %v", ctx.Err())
		}
		select {
		case <-ctx.Done():
		default:
			t.Fatal("Err reports the deadline but Done is open")
		}

		// The parent's cancellation is seen before and after arming.
		parent, cancel := context.WithCancel(context.Background())
		ctx, lazy = withLazyDeadline(parent, time.Now().Add(time.Hour))
		defer lazy.release()
		cancel()
		if !errors.Is(ctx.Err(), context.Canceled) {
			t.Fatalf("Err after the parent's cancel = %v", ctx.Err())
		}
		<-ctx.Done()

		// A parent bounded no later is used as it is.
		tight, cancelTight := context.WithTimeout(context.Background(), time.Second)
		defer cancelTight()
		if ctx, lazy := withLazyDeadline(tight, time.Now().Add(time.Hour)); ctx != tight || lazy != nil {
			t.Fatal("a tighter parent deadline was wrapped")
		}
		lazy.release() // nil-safe

		// release stops an armed timer.
		ctx, lazy = withLazyDeadline(context.Background(), time.Now().Add(time.Hour))
		_ = ctx.Done() // arms it
		lazy.release()
		if !errors.Is(ctx.Err(), context.Canceled) {
			t.Fatalf("Err after release = %v", ctx.Err())
		}
	})
}

// TestChainRequestTimeout: the chain bounds a provider by request_timeout, and a
// provider that never waits on its context costs no timer.
func TestChainRequestTimeout(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var armedInProvider bool
		quick := ProviderFunc(func(ctx context.Context, _ string) (Identity, error) {
			if _, ok := ctx.Deadline(); !ok {
				t.Error("the provider's context has no deadline")
			}
			if l, ok := ctx.(*lazyDeadline); !ok || l.current() != nil {
				armedInProvider = true
			}
			return Identity{Document: []byte(`{"email":"a@example.com"}`)}, nil
		})
		ch := NewChain([]*Instance{{Name: "p", Provider: quick}}, cache.NewMemory(10, nil), nil, nil)
		ch.SetRequestTimeout(2 * time.Second)
		if _, err := ch.Resolve(context.Background(), "t1", TokenSum("t1")); err != nil {
			t.Fatal(err)
		}
		if armedInProvider {
			t.Error("a timer was started for a provider that never waited")
		}

		slow := ProviderFunc(func(ctx context.Context, _ string) (Identity, error) {
			<-ctx.Done()
			return Identity{}, fmt.Errorf("%w: %w", ErrUnavailable, ctx.Err())
		})
		ch = NewChain([]*Instance{{Name: "p", Provider: slow}}, cache.NewMemory(10, nil), nil, nil)
		ch.SetRequestTimeout(2 * time.Second)
		start := time.Now()
		_, err := ch.Resolve(context.Background(), "t2", TokenSum("t2"))
		if !errors.Is(err, ErrUnavailable) || !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("err = %v", err)
		}
		if d := time.Since(start); d != 2*time.Second {
			t.Errorf("cut after %v, want 2s", d)
		}
	})
}
