package cache

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/idbridge/idbridge/cache/redistest"
	"github.com/idbridge/idbridge/configs"
)

// callBound is how long any cache call may take in these tests before we call it
// blocked: far above the op timeout, so it is a hang detector, not a timing test.
const callBound = 10 * time.Second

// testOpTimeout replaces the 300ms production op timeout in these tests: on a loaded CI
// machine a dial or a reply can take longer, which would put the cache in degraded mode
// and turn a shared entry into a miss. Outages here are real (a killed or stopped
// server refuses at once), so none waits for it.
const testOpTimeout = 2 * time.Second

func testKey(b byte) []byte { return bytes.Repeat([]byte{b}, 32) }

func redisConfig(addr string, key []byte) configs.Cache {
	return configs.Cache{
		Backend:       "redis",
		MaxEntries:    1000,
		EncryptionKey: hex.EncodeToString(key),
		Redis:         configs.Redis{Addr: addr, KeyPrefix: "t:"},
	}
}

func newTestRedis(t testing.TB, addr string, key []byte, opts RedisOptions) *Redis {
	t.Helper()
	if opts.OpTimeout == 0 {
		opts.OpTimeout = testOpTimeout
	}
	r, err := NewRedis(redisConfig(addr, key), opts)
	if err != nil {
		t.Fatalf("NewRedis: %v", err)
	}
	t.Cleanup(func() { _ = r.Close() })
	return r
}

func rawClient(t testing.TB, addr string) *redis.Client {
	t.Helper()
	c := redis.NewClient(&redis.Options{Addr: addr})
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// allKeys lists every key in the server, whatever its prefix.
func allKeys(t testing.TB, c *redis.Client) []string {
	t.Helper()
	var keys []string
	it := c.Scan(context.Background(), 0, "*", 100).Iterator()
	for it.Next(context.Background()) {
		keys = append(keys, it.Val())
	}
	if err := it.Err(); err != nil {
		t.Fatalf("scan: %v", err)
	}
	return keys
}

// entryKeys lists the keys that are not generations (nor the probe key).
func entryKeys(t testing.TB, c *redis.Client) []string {
	t.Helper()
	var out []string
	for _, k := range allKeys(t, c) {
		if !strings.Contains(k, genHashTag) {
			out = append(out, k)
		}
	}
	return out
}

func TestRedisSetGetTTL(t *testing.T) {
	srv := redistest.Start(t)
	ctx := context.Background()
	r := newTestRedis(t, srv.Addr(), testKey(1), RedisOptions{})
	raw := rawClient(t, srv.Addr())

	cases := []struct {
		name string
		key  Key
		val  []byte
		ttl  time.Duration
	}{
		{"identity", Key{Identity, "okta/f1", "tok-1"}, []byte(`{"sub":"alice"}`), time.Minute},
		{"negative", Key{Negative, "okta/f1", "tok-2"}, []byte("x"), 1500 * time.Millisecond},
		{"lookup", Key{Lookup, "corp-ldap", "uid=bob"}, []byte(`{"mail":"bob@example.com"}`), time.Hour},
		{"token whole seconds", Key{Token, "spotnana", "alice@example.com"}, []byte("tok"), 10 * time.Second},
		{"empty value", Key{Identity, "okta/f1", "tok-3"}, []byte{}, time.Minute},
		{"binary id", Key{Identity, "okta/f1", "\x00\xff\x10"}, []byte{0, 1, 2}, time.Minute},
		{"ttl beyond cap", Key{Identity, "okta/f1", "tok-4"}, []byte("long"), 365 * 24 * time.Hour},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r.Set(ctx, tc.key, tc.val, tc.ttl)
			v, ok := r.Get(ctx, tc.key)
			if !ok || !bytes.Equal(v, tc.val) {
				t.Fatalf("Get = %q, %v; want %q", v, ok, tc.val)
			}
			other := tc.key
			other.Kind = (tc.key.Kind + 1) % numKinds
			if _, ok := r.Get(ctx, other); ok {
				t.Fatal("another kind with the same group and ID must not hit")
			}
		})
	}

	t.Run("every entry has a TTL", func(t *testing.T) {
		keys := entryKeys(t, raw)
		if len(keys) < len(cases) {
			t.Fatalf("found %d entries, want at least %d", len(keys), len(cases))
		}
		for _, k := range allKeys(t, raw) {
			if !strings.HasPrefix(k, "t:") {
				t.Errorf("key %q lacks the prefix", k)
			}
		}
		for _, k := range keys {
			pttl, err := raw.PTTL(ctx, k).Result()
			if err != nil || pttl <= 0 || pttl > maxEntryTTL {
				t.Errorf("entry %q: PTTL = %v, %v; want in (0, %v]", k, pttl, err, maxEntryTTL)
			}
		}
	})

	t.Run("ttl honoured", func(t *testing.T) {
		k := Key{Negative, "okta/f1", "short"}
		r.Set(ctx, k, []byte("v"), 50*time.Millisecond)
		// A clock, not an event: Redis's own TTL (in redis-server) and the sealed expiry
		// both run out on real time here.
		time.Sleep(200 * time.Millisecond)
		if _, ok := r.Get(ctx, k); ok {
			t.Fatal("entry outlived its TTL")
		}
	})

	t.Run("zero ttl stores nothing", func(t *testing.T) {
		k := Key{Identity, "okta/f1", "zero"}
		r.Set(ctx, k, []byte("v"), 0)
		if _, ok := r.Get(ctx, k); ok {
			t.Fatal("ttl 0 stored an entry")
		}
	})

	t.Run("delete", func(t *testing.T) {
		k := Key{Identity, "okta/f1", "del"}
		r.Set(ctx, k, []byte("v"), time.Minute)
		r.Delete(ctx, k)
		if _, ok := r.Get(ctx, k); ok {
			t.Fatal("deleted entry still served")
		}
	})

	if r.Degraded() {
		t.Fatal("degraded with a healthy server")
	}
	if h := r.Health(ctx); !h.OK || h.Topology != TopologyStandalone || len(h.Primaries) != 1 || h.Primaries[0] != srv.Addr() {
		t.Fatalf("Health = %+v", h)
	}
	st := r.Stats()
	if st.Kinds[Identity].Hits == 0 || st.Kinds[Identity].Misses == 0 || st.Errors != 0 {
		t.Fatalf("stats = %+v", st)
	}
}

func TestRedisSharingAndKeys(t *testing.T) {
	srv := redistest.Start(t)
	ctx := context.Background()
	a := newTestRedis(t, srv.Addr(), testKey(1), RedisOptions{})
	b := newTestRedis(t, srv.Addr(), testKey(1), RedisOptions{})
	// The same key written as base64 must be the same key.
	cfg := redisConfig(srv.Addr(), testKey(1))
	cfg.EncryptionKey = base64.StdEncoding.EncodeToString(testKey(1))
	b64, err := NewRedis(cfg, RedisOptions{OpTimeout: testOpTimeout})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = b64.Close() })
	wrong := newTestRedis(t, srv.Addr(), testKey(2), RedisOptions{})

	k := Key{Identity, "okta/f1", "tok"}
	a.Set(ctx, k, []byte("shared"), time.Minute)

	cases := []struct {
		name string
		c    *Redis
		want bool
	}{
		{"same key, other replica", b, true},
		{"same key in base64", b64, true},
		{"different key", wrong, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			v, ok := tc.c.Get(ctx, k)
			if ok != tc.want {
				t.Fatalf("Get = %q, %v; want hit %v", v, ok, tc.want)
			}
			if ok && string(v) != "shared" {
				t.Fatalf("Get = %q", v)
			}
		})
	}

	t.Run("delete on one replica is seen by the other", func(t *testing.T) {
		b.Delete(ctx, k)
		if _, ok := a.Get(ctx, k); ok {
			t.Fatal("entry survived a delete on another replica")
		}
	})

	t.Run("different key reads no garbage even on a tampered-free value", func(t *testing.T) {
		wrong.Set(ctx, k, []byte("mine"), time.Minute)
		a.Set(ctx, k, []byte("ours"), time.Minute)
		if v, _ := wrong.Get(ctx, k); string(v) != "mine" {
			t.Fatalf("wrong-key replica read %q", v)
		}
		if v, _ := a.Get(ctx, k); string(v) != "ours" {
			t.Fatalf("replica read %q", v)
		}
	})
}

func TestRedisNoPlaintext(t *testing.T) {
	srv := redistest.Start(t)
	ctx := context.Background()
	r := newTestRedis(t, srv.Addr(), testKey(3), RedisOptions{})
	raw := rawClient(t, srv.Addr())

	secrets := []string{
		"okta-provider", "9f2c4e1d", "alice@example.com", "bob.smith", "tokenhash-abcdef",
		`{"email":"alice@example.com","sub":"00u1"}`, "spotnana-access-token", "corp-ldap",
	}
	entries := []struct {
		key Key
		val string
	}{
		{Key{Identity, "okta-provider/9f2c4e1d", "tokenhash-abcdef"}, `{"email":"alice@example.com","sub":"00u1"}`},
		{Key{Negative, "okta-provider/9f2c4e1d", "tokenhash-abcdef"}, "bob.smith"},
		{Key{Lookup, "corp-ldap", "alice@example.com"}, `{"uid":"bob.smith"}`},
		{Key{Token, "spotnana", "alice@example.com"}, "spotnana-access-token"},
	}
	for _, e := range entries {
		r.Set(ctx, e.key, []byte(e.val), time.Minute)
	}
	r.Purge(ctx, Identity, "okta-provider/9f2c4e1d") // so that a generation key exists too
	r.Set(ctx, entries[0].key, []byte(entries[0].val), time.Minute)

	keys := allKeys(t, raw)
	if len(keys) < len(entries)+1 {
		t.Fatalf("found %d keys, want at least %d", len(keys), len(entries)+1)
	}
	for _, k := range keys {
		v, err := raw.Get(ctx, k).Bytes()
		if err != nil {
			t.Fatalf("get: %v", err)
		}
		dump, err := raw.Dump(ctx, k).Bytes()
		if err != nil {
			t.Fatalf("dump: %v", err)
		}
		for _, s := range secrets {
			for _, hay := range [][]byte{[]byte(k), v, dump} {
				if bytes.Contains(hay, []byte(s)) {
					t.Errorf("%q found in Redis", s)
				}
				lower := bytes.ToLower(hay)
				if bytes.Contains(lower, []byte(hex.EncodeToString([]byte(s)))) {
					t.Errorf("hex of %q found in Redis", s)
				}
			}
		}
	}
}

func TestRedisTamper(t *testing.T) {
	srv := redistest.Start(t)
	ctx := context.Background()
	r := newTestRedis(t, srv.Addr(), testKey(4), RedisOptions{})
	raw := rawClient(t, srv.Addr())

	ka, kb := Key{Identity, "p/f", "a"}, Key{Identity, "p/f", "b"}
	setup := func(t *testing.T) (nameA, nameB string) {
		t.Helper()
		r.Set(ctx, ka, []byte("value-a"), time.Minute)
		r.Set(ctx, kb, []byte("value-b"), time.Minute)
		nameA, _ = r.entryName(ctx, ka)
		nameB, _ = r.entryName(ctx, kb)
		return nameA, nameB
	}
	cases := []struct {
		name   string
		tamper func(t *testing.T, nameA, nameB string)
	}{
		{"raw plaintext", func(t *testing.T, a, _ string) {
			raw.Set(ctx, a, "value-a", time.Minute)
		}},
		{"random bytes", func(t *testing.T, a, _ string) {
			raw.Set(ctx, a, bytes.Repeat([]byte{sealVersion, 0x42}, 40), time.Minute)
		}},
		{"one bit flipped", func(t *testing.T, a, _ string) {
			v := raw.Get(ctx, a).Val()
			b := []byte(v)
			b[len(b)-1] ^= 1
			raw.Set(ctx, a, b, time.Minute)
		}},
		{"truncated", func(t *testing.T, a, _ string) {
			v := raw.Get(ctx, a).Val()
			raw.Set(ctx, a, v[:len(v)-1], time.Minute)
		}},
		{"empty", func(t *testing.T, a, _ string) {
			raw.Set(ctx, a, "", time.Minute)
		}},
		{"value moved from another key", func(t *testing.T, a, b string) {
			raw.Set(ctx, a, raw.Get(ctx, b).Val(), time.Minute)
		}},
		{"wrong type", func(t *testing.T, a, _ string) {
			raw.Del(ctx, a)
			raw.HSet(ctx, a, "f", "v")
			raw.PExpire(ctx, a, time.Minute)
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			a, b := setup(t)
			if a == "" || b == "" {
				t.Fatal("no entry names")
			}
			tc.tamper(t, a, b)
			if v, ok := r.Get(ctx, ka); ok {
				t.Fatalf("tampered entry read as %q", v)
			}
			if v, ok := r.Get(ctx, kb); !ok || string(v) != "value-b" {
				t.Fatalf("untouched entry = %q, %v", v, ok)
			}
			if r.Degraded() {
				t.Fatal("tampering must not look like an outage")
			}
		})
	}

	t.Run("tampered generation", func(t *testing.T) {
		r.Set(ctx, ka, []byte("value-a"), time.Minute)
		r.Purge(ctx, Identity, "p")
		r.Set(ctx, ka, []byte("value-a"), time.Minute)
		gname := r.genName(genID{kind: Identity, prov: true, provider: "p"})
		raw.Set(ctx, gname, "garbage", time.Minute)
		r.genMu.Lock()
		clear(r.gens)
		r.genMu.Unlock()
		if v, ok := r.Get(ctx, ka); ok {
			t.Fatalf("entry under a tampered generation read as %q", v)
		}
	})
}

func TestRedisPurge(t *testing.T) {
	srv := redistest.Start(t)
	ctx := context.Background()
	clk := &fakeClock{t: time.Unix(1_700_000_000, 0)}

	groups := []string{"okta/f1", "okta/f2", "azure/f1", "oktab/f1", "ldap"}
	cases := []struct {
		name   string
		kind   Kind
		prefix string
		gone   []string // groups of kind Identity that must be gone
	}{
		{"provider", Identity, "okta", []string{"okta/f1", "okta/f2"}},
		{"provider with slash", Identity, "okta/", []string{"okta/f1", "okta/f2"}},
		{"provider and fingerprint purges the provider", Identity, "okta/f1", []string{"okta/f1", "okta/f2"}},
		{"group without slash", Identity, "ldap", []string{"ldap"}},
		{"whole kind", Identity, "", groups},
		{"other kind", Negative, "", nil},
		{"unknown provider", Identity, "nobody", nil},
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			// Each case has its own prefix, so that the generations of one case do not
			// leak into the next.
			cfg := redisConfig(srv.Addr(), testKey(5))
			cfg.Redis.KeyPrefix = fmt.Sprintf("purge%d:", i)
			opts := RedisOptions{Now: clk.Now, OpTimeout: testOpTimeout}
			a, err := NewRedis(cfg, opts)
			if err != nil {
				t.Fatal(err)
			}
			defer a.Close()
			b, err := NewRedis(cfg, opts)
			if err != nil {
				t.Fatal(err)
			}
			defer b.Close()
			for _, g := range groups {
				for _, kind := range []Kind{Identity, Negative} {
					a.Set(ctx, Key{kind, g, "id"}, []byte(g), time.Minute)
				}
			}
			// b reads first, so it holds generations from before the purge.
			for _, g := range groups {
				if _, ok := b.Get(ctx, Key{Identity, g, "id"}); !ok {
					t.Fatalf("%s: miss before purge", g)
				}
			}
			if n := a.Purge(ctx, tc.kind, tc.prefix); n != -1 {
				t.Fatalf("Purge = %d, want -1 (cannot count)", n)
			}
			clk.Add(DefaultGenerationTTL) // past b's generation window
			for _, c := range []*Redis{a, b} {
				for _, g := range groups {
					_, ok := c.Get(ctx, Key{Identity, g, "id"})
					wantGone := contains(tc.gone, g)
					if ok == wantGone {
						t.Errorf("identity %s: hit = %v, want %v", g, ok, !wantGone)
					}
					if tc.kind != Negative {
						if _, ok := c.Get(ctx, Key{Negative, g, "id"}); !ok {
							t.Errorf("negative %s purged by a purge of another kind", g)
						}
					}
				}
			}
			// New entries after a purge are served again.
			a.Set(ctx, Key{Identity, "okta/f1", "new"}, []byte("n"), time.Minute)
			if _, ok := b.Get(ctx, Key{Identity, "okta/f1", "new"}); !ok {
				t.Error("entry set after the purge is not shared")
			}
		})
	}
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// within runs f and fails the test if it does not return in callBound.
func within(t *testing.T, what string, f func()) {
	t.Helper()
	done := make(chan struct{})
	go func() { f(); close(done) }()
	select {
	case <-done:
	case <-time.After(callBound):
		t.Fatalf("%s blocked", what)
	}
}

// eventually polls cond for up to callBound.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(callBound); !cond(); {
		if time.Now().After(deadline) {
			t.Fatalf("never: %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestRedisDegraded(t *testing.T) {
	srv := redistest.Start(t)
	ctx := context.Background()
	var mu sync.Mutex
	var states []bool
	var logs bytes.Buffer
	opts := RedisOptions{
		ProbeInterval: 50 * time.Millisecond,
		OnStateChange: func(d bool) { mu.Lock(); states = append(states, d); mu.Unlock() },
		Logger:        newTestLogger(&logs, &mu),
	}
	a := newTestRedis(t, srv.Addr(), testKey(6), opts)
	b := newTestRedis(t, srv.Addr(), testKey(6), RedisOptions{ProbeInterval: 50 * time.Millisecond})

	k := Key{Identity, "okta/f1", "tok"}
	a.Set(ctx, k, []byte("before"), time.Minute)
	if _, ok := b.Get(ctx, k); !ok {
		t.Fatal("not shared before the outage")
	}

	srv.Kill()

	t.Run("calls keep working from memory", func(t *testing.T) {
		within(t, "Get during outage", func() { a.Get(ctx, k) })
		within(t, "Set during outage", func() {
			a.Set(ctx, Key{Identity, "okta/f1", "during"}, []byte("mem"), time.Minute)
		})
		if !a.Degraded() {
			t.Fatal("not degraded after failed calls")
		}
		var v []byte
		var ok bool
		within(t, "Get from memory", func() { v, ok = a.Get(ctx, Key{Identity, "okta/f1", "during"}) })
		if !ok || string(v) != "mem" {
			t.Fatalf("memory fallback Get = %q, %v", v, ok)
		}
		within(t, "Delete during outage", func() { a.Delete(ctx, Key{Identity, "okta/f1", "during"}) })
		if _, ok := a.Get(ctx, Key{Identity, "okta/f1", "during"}); ok {
			t.Fatal("delete ignored by the fallback")
		}
		within(t, "Purge during outage", func() { a.Purge(ctx, Identity, "azure") })
		within(t, "Health during outage", func() {
			if h := a.Health(ctx); h.OK || !strings.Contains(h.Detail, "degraded") {
				t.Errorf("Health = %+v", h)
			}
		})
		// The other replica notices through Health even without traffic.
		within(t, "Health of an idle replica", func() { b.Health(ctx) })
		if !b.Degraded() {
			t.Fatal("idle replica not degraded after Health")
		}
	})

	// A burst of concurrent calls during the outage: none may block.
	t.Run("concurrent calls during outage", func(t *testing.T) {
		within(t, "concurrent calls", func() {
			var wg sync.WaitGroup
			for i := range 16 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					kk := Key{Kind(i % int(numKinds)), "okta/f1", fmt.Sprint(i)}
					a.Set(ctx, kk, []byte("v"), time.Minute)
					a.Get(ctx, kk)
				}()
			}
			wg.Wait()
		})
	})

	srv.Restart()

	t.Run("back to redis after restart", func(t *testing.T) {
		eventually(t, "a back from degraded", func() bool { return !a.Degraded() })
		eventually(t, "b back from degraded", func() bool { return !b.Degraded() })
		k2 := Key{Identity, "okta/f1", "after"}
		a.Set(ctx, k2, []byte("shared again"), time.Minute)
		if v, ok := b.Get(ctx, k2); !ok || string(v) != "shared again" {
			t.Fatalf("sharing did not resume: %q, %v", v, ok)
		}
		if h := a.Health(ctx); !h.OK {
			t.Fatalf("Health after recovery = %+v", h)
		}
	})

	mu.Lock()
	defer mu.Unlock()
	if len(states) != 2 || !states[0] || states[1] {
		t.Errorf("state changes = %v, want [true false]", states)
	}
	if n := strings.Count(logs.String(), "redis unreachable"); n != 1 {
		t.Errorf("logged the outage %d times, want once:\n%s", n, logs.String())
	}
	if n := strings.Count(logs.String(), "reachable again"); n != 1 {
		t.Errorf("logged the recovery %d times, want once:\n%s", n, logs.String())
	}
	if st := a.Stats(); st.Transitions != 2 || st.Fallback == 0 || st.Errors == 0 {
		t.Errorf("stats = %+v", st)
	}
}

func TestRedisPurgeDuringOutageIsReplayed(t *testing.T) {
	srv := redistest.Start(t)
	ctx := context.Background()
	// A frozen server does not refuse: every call waits for its op timeout.
	opts := RedisOptions{ProbeInterval: 50 * time.Millisecond, GenerationTTL: -1, OpTimeout: 300 * time.Millisecond}
	a := newTestRedis(t, srv.Addr(), testKey(7), opts)
	k := Key{Identity, "okta/f1", "tok"}
	a.Set(ctx, k, []byte("before"), time.Minute)
	if _, ok := a.Get(ctx, k); !ok {
		t.Fatal("control: miss before the outage")
	}
	// A frozen server keeps its data (a network partition, not a restart): the entry
	// is still there when it answers again, and only the replayed purge can drop it.
	srv.Freeze()
	within(t, "Purge during outage", func() { a.Purge(ctx, Identity, "okta") })
	if !a.Degraded() {
		t.Fatal("not degraded")
	}
	srv.Thaw()
	eventually(t, "a back from degraded", func() bool { return !a.Degraded() })
	if v, ok := a.Get(ctx, k); ok {
		t.Fatalf("purge made during the outage was not replayed: got %q", v)
	}
}

func TestRedisStartsDegraded(t *testing.T) {
	srv := redistest.Start(t)
	addr := srv.Addr()
	srv.Stop()
	ctx := context.Background()
	var r *Redis
	within(t, "NewRedis with Redis down", func() {
		var err error
		r, err = NewRedis(redisConfig(addr, testKey(8)), RedisOptions{ProbeInterval: 50 * time.Millisecond})
		if err != nil {
			t.Errorf("NewRedis with Redis down: %v", err)
		}
	})
	if r == nil {
		t.FailNow()
	}
	defer r.Close()
	if !r.Degraded() {
		t.Fatal("not degraded")
	}
	k := Key{Token, "spotnana", "u"}
	r.Set(ctx, k, []byte("v"), time.Minute)
	if _, ok := r.Get(ctx, k); !ok {
		t.Fatal("fallback miss")
	}
	srv.Restart()
	eventually(t, "back from degraded", func() bool { return !r.Degraded() })
}

func TestNewRedisConfig(t *testing.T) {
	srv := redistest.Start(t)
	key := testKey(9)
	tf := redistest.NewTLSFiles(t)
	notPEM := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(notPEM, []byte("not a certificate"), 0o600); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name    string
		edit    func(c *configs.Cache)
		wantErr string
	}{
		{"hex", func(c *configs.Cache) {}, ""},
		{"hex upper case", func(c *configs.Cache) { c.EncryptionKey = strings.ToUpper(hex.EncodeToString(key)) }, ""},
		{"base64 std", func(c *configs.Cache) { c.EncryptionKey = base64.StdEncoding.EncodeToString(key) }, ""},
		{"base64 raw url", func(c *configs.Cache) { c.EncryptionKey = base64.RawURLEncoding.EncodeToString(key) }, ""},
		{"surrounding space", func(c *configs.Cache) { c.EncryptionKey = " " + hex.EncodeToString(key) + "\n" }, ""},
		{"default prefix", func(c *configs.Cache) { c.Redis.KeyPrefix = "" }, ""},
		{"missing key", func(c *configs.Cache) { c.EncryptionKey = "" }, "required"},
		{"short hex", func(c *configs.Cache) { c.EncryptionKey = hex.EncodeToString(key[:31]) }, "32 bytes"},
		{"long hex", func(c *configs.Cache) { c.EncryptionKey = hex.EncodeToString(append(key, 1)) }, "32 bytes"},
		{"short base64", func(c *configs.Cache) { c.EncryptionKey = base64.StdEncoding.EncodeToString(key[:16]) }, "32 bytes"},
		{"not an encoding", func(c *configs.Cache) { c.EncryptionKey = "correct horse battery staple!!" }, "32 bytes"},
		{"bad addr", func(c *configs.Cache) { c.Redis.Addr = "no-port" }, "redis.addr"},
		{"missing ca_file", func(c *configs.Cache) { c.Redis.TLS, c.Redis.CAFile = true, "/nonexistent/ca.pem" }, "cache.redis.ca_file"},
		{"ca_file without PEM", func(c *configs.Cache) { c.Redis.TLS, c.Redis.CAFile = true, notPEM }, "no PEM certificate"},
		{"client key not matching", func(c *configs.Cache) {
			c.Redis.TLS, c.Redis.ClientCertFile, c.Redis.ClientKeyFile = true, tf.ClientCert, tf.ServerKey
		}, "do not form a key pair"},
		{"negative db", func(c *configs.Cache) { c.Redis.DB = -1 }, "redis.db"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cfg := redisConfig(srv.Addr(), key)
			tc.edit(&cfg)
			r, err := NewRedis(cfg, RedisOptions{OpTimeout: testOpTimeout})
			if tc.wantErr == "" {
				if err != nil {
					t.Fatalf("NewRedis: %v", err)
				}
				defer r.Close()
				ctx := context.Background()
				k := Key{Identity, "p/f", "x"}
				r.Set(ctx, k, []byte("v"), time.Minute)
				if _, ok := r.Get(ctx, k); !ok || r.Degraded() {
					t.Fatal("a valid config does not serve from Redis")
				}
				return
			}
			if err == nil {
				r.Close()
				t.Fatalf("NewRedis accepted a bad config")
			}
			if !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("error %q does not mention %q", err, tc.wantErr)
			}
			if cfg.EncryptionKey != "" && strings.Contains(err.Error(), strings.TrimSpace(cfg.EncryptionKey)) {
				t.Fatal("the error leaks the key")
			}
		})
	}
}

func TestRedisConcurrent(t *testing.T) {
	srv := redistest.Start(t)
	ctx := context.Background()
	r := newTestRedis(t, srv.Addr(), testKey(10), RedisOptions{})
	var wg sync.WaitGroup
	var bad atomic.Int32
	for w := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 200 {
				k := Key{Kind(i % int(numKinds)), fmt.Sprintf("p%d/f", w%3), fmt.Sprint(w, "-", i)}
				want := fmt.Sprint("v", w, i)
				r.Set(ctx, k, []byte(want), time.Minute)
				if v, ok := r.Get(ctx, k); !ok || string(v) != want {
					bad.Add(1)
				}
				if i%50 == 0 {
					r.Purge(ctx, Negative, fmt.Sprintf("p%d", w%3))
				}
			}
		}()
	}
	wg.Wait()
	// A purge of Negative by another worker may drop a Negative entry between its Set
	// and its Get; anything else is a bug.
	if n := bad.Load(); n > 8*200/int32(numKinds) {
		t.Fatalf("%d bad reads", n)
	}
}

func BenchmarkRedisGet(b *testing.B) {
	srv := redistest.Start(b)
	ctx := context.Background()
	r := newTestRedis(b, srv.Addr(), testKey(11), RedisOptions{})
	k := Key{Identity, "okta/0123456789abcdef", string(bytes.Repeat([]byte{7}, 32))}
	r.Set(ctx, k, bytes.Repeat([]byte("x"), 512), time.Hour)
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		if _, ok := r.Get(ctx, k); !ok {
			b.Fatal("miss")
		}
	}
}

func BenchmarkRedisSet(b *testing.B) {
	srv := redistest.Start(b)
	ctx := context.Background()
	r := newTestRedis(b, srv.Addr(), testKey(12), RedisOptions{})
	k := Key{Identity, "okta/0123456789abcdef", string(bytes.Repeat([]byte{7}, 32))}
	v := bytes.Repeat([]byte("x"), 512)
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		r.Set(ctx, k, v, time.Hour)
	}
}

// lockedWriter lets the test read what the logger wrote while the prober may write.
type lockedWriter struct {
	mu  *sync.Mutex
	buf *bytes.Buffer
}

func (w lockedWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.buf.Write(p)
}

func newTestLogger(buf *bytes.Buffer, mu *sync.Mutex) *slog.Logger {
	return slog.New(slog.NewTextHandler(lockedWriter{mu: mu, buf: buf}, nil))
}

func TestRedisAuthAndDB(t *testing.T) {
	srv := redistest.Start(t)
	ctx := context.Background()
	raw := rawClient(t, srv.Addr())
	if err := raw.ConfigSet(ctx, "requirepass", "s3cret").Err(); err != nil {
		t.Fatal(err)
	}
	authed := redis.NewClient(&redis.Options{Addr: srv.Addr(), Password: "s3cret", DB: 2})
	t.Cleanup(func() { _ = authed.Close() })

	cases := []struct {
		name     string
		password string
		degraded bool
	}{
		{"right password", "s3cret", false},
		{"wrong password", "nope", true},
		{"no password", "", true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cfg := redisConfig(srv.Addr(), testKey(13))
			cfg.Redis.Password = tc.password
			cfg.Redis.DB = 2
			var r *Redis
			within(t, "NewRedis", func() {
				var err error
				if r, err = NewRedis(cfg, RedisOptions{OpTimeout: testOpTimeout}); err != nil {
					t.Errorf("NewRedis: %v", err)
				}
			})
			if r == nil {
				t.FailNow()
			}
			defer r.Close()
			k := Key{Identity, "p/f", "x"}
			within(t, "Set", func() { r.Set(ctx, k, []byte("v"), time.Minute) })
			within(t, "Get", func() {
				if _, ok := r.Get(ctx, k); !ok {
					t.Error("miss right after Set")
				}
			})
			if r.Degraded() != tc.degraded {
				t.Fatalf("Degraded = %v, want %v", r.Degraded(), tc.degraded)
			}
			if !tc.degraded {
				if n := authed.DBSize(ctx).Val(); n == 0 {
					t.Fatal("nothing written to db 2")
				}
			}
		})
	}
}

// TestRedisTopologiesStartDegraded: a Sentinel set or a Cluster that cannot be reached
// at start is not a configuration error; the cache starts degraded, serves from memory
// and says why.
func TestRedisTopologiesStartDegraded(t *testing.T) {
	cases := []struct {
		name string
		edit func(r *configs.Redis)
	}{
		{"sentinel", func(r *configs.Redis) {
			r.Sentinel = &configs.RedisSentinel{MasterName: "m", Addrs: []string{"127.0.0.1:1"}}
		}},
		{"cluster", func(r *configs.Redis) { r.Cluster = &configs.RedisCluster{Addrs: []string{"127.0.0.1:1"}} }},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cfg := redisConfig("", testKey(14))
			tc.edit(&cfg.Redis)
			var r *Redis
			within(t, "NewRedis", func() {
				var err error
				if r, err = NewRedis(cfg, RedisOptions{OpTimeout: 200 * time.Millisecond}); err != nil {
					t.Errorf("NewRedis: %v", err)
				}
			})
			if r == nil {
				t.FailNow()
			}
			defer r.Close()
			h := r.Health(context.Background())
			if h.OK || !h.Degraded || h.Topology != tc.name || h.Detail == "" {
				t.Fatalf("Health = %+v", h)
			}
			k := Key{Identity, "p/f", "x"}
			r.Set(context.Background(), k, []byte("v"), time.Minute)
			if _, ok := r.Get(context.Background(), k); !ok {
				t.Fatal("the memory fallback does not serve")
			}
		})
	}
}
