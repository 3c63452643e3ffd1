package server

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/idbridge/idbridge/configs"
	"github.com/idbridge/idbridge/mapping"
	"github.com/idbridge/idbridge/providers"
)

// closedAware accepts every token, unless the runtime it belongs to has been closed:
// a request served by a closed runtime is a bug (its pools and clients are gone).
type closedAware struct {
	closed *atomic.Bool
	misuse *atomic.Int64 // counts calls on a closed runtime; nil: not counted
}

func (p closedAware) Authenticate(context.Context, string) (providers.Identity, error) {
	if p.closed.Load() {
		if p.misuse != nil {
			p.misuse.Add(1)
		}
		return providers.Identity{}, errors.New("runtime used after Close")
	}
	return providers.Identity{Document: []byte(`{"email":"alice@example.com"}`)}, nil
}

func testRuntime(t *testing.T, p providers.Provider, closeFn func()) *Runtime {
	t.Helper()
	cfg, errs := configs.Parse("test.yaml", []byte("providers:\n  - {name: any, type: fake}\nmapping:\n  email: [{path: email}]\n"),
		func(string) (string, bool) { return "", false })
	if len(errs.Fatal()) > 0 {
		t.Fatal(errs.Fatal())
	}
	rules, merrs := mapping.Compile(mapping.Spec{Candidates: []mapping.Candidate{{Path: "email"}}})
	if len(merrs) > 0 {
		t.Fatal(merrs)
	}
	chain := providers.NewChain([]*providers.Instance{{Name: "any", Type: "fake", Provider: p}}, nil, nil, nil)
	return &Runtime{Config: cfg, Bridge: NewBridge(chain, rules, nil, "", nil), Close: closeFn}
}

// TestSwapNeverServesFromAClosedRuntime swaps runtimes while requests keep arriving: a
// request must never run on a runtime that a swap has already retired and closed.
func TestSwapNeverServesFromAClosedRuntime(t *testing.T) {
	// The property is counted where it is broken, in the provider of a closed runtime:
	// a status other than 200 can also come from a request starved past its deadline
	// on a loaded machine (-race, 2 cores), which says nothing about the swap.
	var misuse atomic.Int64
	newRT := func() *Runtime {
		closed := new(atomic.Bool)
		return testRuntime(t, closedAware{closed, &misuse}, func() { closed.Store(true) })
	}
	s, err := New(newRT(), Options{})
	if err != nil {
		t.Fatal(err)
	}
	const workers, swaps = 4, 3000
	var stop atomic.Bool
	var served atomic.Int64
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for !stop.Load() {
				r := httptest.NewRequest("GET", "/v1/user-detail", nil)
				r.Header.Set("Authorization", "Bearer tok")
				w := httptest.NewRecorder()
				s.ServeHTTP(w, r)
				if w.Code == http.StatusOK {
					served.Add(1)
				}
			}
		}()
	}
	for range swaps {
		if err := s.Swap(newRT()); err != nil {
			t.Fatal(err)
		}
	}
	stop.Store(true)
	wg.Wait()
	if n := misuse.Load(); n > 0 {
		t.Fatalf("%d requests ran on a closed runtime", n)
	}
	if served.Load() == 0 {
		t.Fatal("no request was served during the swaps")
	}
}

// TestPinReleasedWhenExchangePanics: a panicking exchange is answered 500, and its pin
// goes with it; a pin left behind would answer user-detail for that token forever.
func TestPinReleasedWhenExchangePanics(t *testing.T) {
	rt := testRuntime(t, acceptAll{}, nil)
	rt.Exchange = func(context.Context, *Resolution, string) ([]byte, error) { panic("boom") }
	s, err := New(rt, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if w := call(s, "POST", "/v1/token-exchange", "10.0.0.1:1"); w.Code != http.StatusInternalServerError {
		t.Fatalf("status %d, want 500: %s", w.Code, w.Body)
	}
	if n := s.Pins().Len(); n != 0 {
		t.Fatalf("%d pins left after a panicking exchange", n)
	}
}
