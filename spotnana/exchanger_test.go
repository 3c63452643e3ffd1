package spotnana

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/idbridge/idbridge/cache"
	"github.com/idbridge/idbridge/configs"
	"github.com/idbridge/idbridge/internal/testhttp"
)

type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *fakeClock { return &fakeClock{t: time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)} }

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// mintServer issues a distinct token per call ("at-1", "at-2", …).
func mintServer(t *testing.T, expiresIn string, latency time.Duration) (*httptest.Server, *atomic.Int64) {
	t.Helper()
	var n atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		i := n.Add(1)
		time.Sleep(latency)
		w.Header().Set("Content-Type", "application/json")
		exp := ""
		if expiresIn != "" {
			exp = `,"expires_in":` + expiresIn
		}
		fmt.Fprintf(w, `{"access_token":"at-%d","refresh_token":"rt-%d","token_type":"Bearer","scope":"openid"%s}`, i, i, exp)
	}))
	t.Cleanup(srv.Close)
	return srv, &n
}

func newTestExchanger(t *testing.T, cfg *configs.Spotnana, srv *httptest.Server, clock *fakeClock) *Exchanger {
	t.Helper()
	return newExchangerWith(t, cfg, srv.Client(), clock)
}

// newExchangerWith is newTestExchanger over hc (testhttp.Client inside a synctest bubble).
func newExchangerWith(t *testing.T, cfg *configs.Spotnana, hc *http.Client, clock *fakeClock) *Exchanger {
	t.Helper()
	c, err := NewClient(cfg, hc, nil)
	if err != nil {
		t.Fatal(err)
	}
	x, err := NewExchanger(c, cache.NewMemory(1000, clock.Now), cfg, clock.Now, nil)
	if err != nil {
		t.Fatal(err)
	}
	return x
}

func TestExchangerReuse(t *testing.T) {
	type step struct {
		advance   time.Duration
		user      string
		wantToken string
		wantExp   int64
	}
	for _, tc := range []struct {
		name  string
		steps []step
	}{
		{
			name: "reuse reports the seconds left",
			steps: []step{
				{0, "alice@example.com", "at-1", 3600},
				{100 * time.Second, "alice@example.com", "at-1", 3500},
				{3000 * time.Second, "alice@example.com", "at-1", 500},
			},
		},
		{
			// The key is the email as mapped: a look-alike (U+212A KELVIN SIGN) or another
			// spelling never reaches a cached token of someone else.
			name: "the key is the exact email",
			steps: []step{
				{0, "kate@example.com", "at-1", 3600},
				{0, "\u212Aate@example.com", "at-2", 3600},
				{0, "Kate@example.com", "at-3", 3600},
				{time.Second, "kate@example.com", "at-1", 3599},
			},
		},
		{
			name: "a token stops being reused 60s before expiry",
			steps: []step{
				{0, "alice@example.com", "at-1", 3600},
				{3539 * time.Second, "alice@example.com", "at-1", 61},
				{time.Second, "alice@example.com", "at-2", 3600}, // 60s left: not handed out
				{time.Second, "alice@example.com", "at-2", 3599},
			},
		},
		{
			name: "users do not share tokens",
			steps: []step{
				{0, "alice@example.com", "at-1", 3600},
				{0, "bob@example.com", "at-2", 3600},
				{time.Second, "alice@example.com", "at-1", 3599},
			},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv, _ := mintServer(t, "3600", 0)
			clock := newClock()
			x := newTestExchanger(t, testConfig(srv.URL), srv, clock)
			for i, s := range tc.steps {
				clock.Advance(s.advance)
				tr, err := x.Exchange(context.Background(), s.user, testSubject, "")
				if err != nil {
					t.Fatalf("step %d: %v", i, err)
				}
				if tr.AccessToken != s.wantToken || tr.ExpiresIn != s.wantExp {
					t.Errorf("step %d: got %s expires_in %d, want %s %d", i, tr.AccessToken, tr.ExpiresIn, s.wantToken, s.wantExp)
				}
				var m map[string]any
				b, _ := json.Marshal(tr)
				_ = json.Unmarshal(b, &m)
				if m["expires_in"] != float64(s.wantExp) {
					t.Errorf("step %d: marshalled expires_in %v", i, m["expires_in"])
				}
			}
		})
	}
}

func TestExchangerNoCache(t *testing.T) {
	for _, tc := range []struct {
		name      string
		cache     *bool
		expiresIn string
		wantCalls int64
	}{
		{"token_cache false", boolp(false), "3600", 3},
		{"no expires_in is never cached", nil, "", 3},
		{"token_cache default true", nil, "3600", 1},
		{"expires_in within the margin is not cached", nil, "60", 3},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv, calls := mintServer(t, tc.expiresIn, 0)
			cfg := testConfig(srv.URL)
			cfg.TokenCache = tc.cache
			clock := newClock()
			x := newTestExchanger(t, cfg, srv, clock)
			for range 3 {
				if _, err := x.Exchange(context.Background(), "alice@example.com", testSubject, ""); err != nil {
					t.Fatal(err)
				}
				clock.Advance(time.Second)
			}
			if got := calls.Load(); got != tc.wantCalls {
				t.Errorf("Spotnana calls = %d, want %d", got, tc.wantCalls)
			}
		})
	}
}

func TestExchangerSingleflight(t *testing.T) {
	for _, tc := range []struct {
		name  string
		cache *bool
	}{
		{"with cache", nil},
		{"token_cache false still collapses concurrent calls", boolp(false)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv, calls := mintServer(t, "3600", 100*time.Millisecond)
			// In a synctest bubble (Spotnana reached without a socket), Spotnana's
			// latency ends only once every caller is blocked: all 50 are then in
			// the flights, however slow the machine.
			synctest.Test(t, func(t *testing.T) {
				cfg := testConfig(srv.URL)
				cfg.TokenCache = tc.cache
				x := newExchangerWith(t, cfg, testhttp.Client(srv), newClock())
				var wg sync.WaitGroup
				var mu sync.Mutex
				tokens := map[string]map[string]bool{}
				start := make(chan struct{})
				for i := range 50 {
					user := fmt.Sprintf("user%d@example.com", i%5)
					wg.Add(1)
					go func() {
						defer wg.Done()
						<-start
						tr, err := x.Exchange(context.Background(), user, testSubject, "")
						if err != nil {
							t.Error(err)
							return
						}
						mu.Lock()
						if tokens[user] == nil {
							tokens[user] = map[string]bool{}
						}
						tokens[user][tr.AccessToken] = true
						mu.Unlock()
					}()
				}
				close(start)
				wg.Wait()
				if got := calls.Load(); got > 5 {
					t.Errorf("Spotnana calls = %d, want at most 5", got)
				}
				for u, ts := range tokens {
					if len(ts) != 1 {
						t.Errorf("%s got %d different tokens", u, len(ts))
					}
				}
			})
		})
	}
}

func TestExchangerFlightSurvivesFirstCallerCancel(t *testing.T) {
	srv, calls := mintServer(t, "3600", 150*time.Millisecond)
	// In a synctest bubble (Spotnana reached without a socket), Wait returns once every
	// caller is blocked: the first is in Spotnana's answer, then the second has joined
	// its flight, before the first one leaves.
	synctest.Test(t, func(t *testing.T) {
		x := newExchangerWith(t, testConfig(srv.URL), testhttp.Client(srv), newClock())
		ctx, cancel := context.WithCancel(context.Background())
		first := make(chan error, 1)
		go func() {
			_, err := x.Exchange(ctx, "alice@example.com", testSubject, "")
			first <- err
		}()
		synctest.Wait()
		if calls.Load() != 1 {
			t.Fatalf("control: the first caller's exchange has not reached Spotnana (%d calls)", calls.Load())
		}
		second := make(chan error, 1)
		go func() {
			_, err := x.Exchange(context.Background(), "alice@example.com", testSubject, "")
			second <- err
		}()
		synctest.Wait()
		cancel()
		if err := <-first; err == nil {
			t.Error("the cancelled caller got no error")
		}
		if err := <-second; err != nil {
			t.Errorf("the second caller failed with the first one's cancellation: %v", err)
		}
		if calls.Load() != 1 {
			t.Errorf("calls = %d, want 1", calls.Load())
		}
	})
}

func TestExchangerErrorsAreNotCached(t *testing.T) {
	srv, calls := scripted(t, reply{401, "", `{"error":"invalid_grant"}`})
	clock := newClock()
	x := newTestExchanger(t, testConfig(srv.URL), srv, clock)
	for range 2 {
		if _, err := x.Exchange(context.Background(), "alice@example.com", testSubject, ""); err == nil {
			t.Fatal("want an error")
		}
	}
	if calls.Load() != 2 {
		t.Errorf("calls = %d, want 2", calls.Load())
	}
}

func TestNewExchangerNeedsCacheWhenOn(t *testing.T) {
	c, err := NewClient(testConfig("https://x"), nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := NewExchanger(c, nil, testConfig("https://x"), nil, nil); err == nil {
		t.Error("token_cache on without a cache was accepted")
	}
	cfg := testConfig("https://x")
	cfg.TokenCache = boolp(false)
	if _, err := NewExchanger(c, nil, cfg, nil, nil); err != nil {
		t.Errorf("token_cache off without a cache: %v", err)
	}
}
