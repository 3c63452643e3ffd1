package cache

import (
	"context"
	"testing"
	"time"

	"github.com/idbridge/idbridge/cache/redistest"
)

// TestRedisIntegrity: someone who can write to Redis, but holds no encryption key,
// must not be able to keep an entry alive past its TTL nor undo a purge (issue 14,
// item 7). Each sealed value carries its own expiry and generations, and a lost
// generation key purges instead of bringing back what was purged.
func TestRedisIntegrity(t *testing.T) {
	srv := redistest.Start(t)
	ctx := context.Background()
	raw := rawClient(t, srv.Addr())
	opts := RedisOptions{GenerationTTL: -1}

	t.Run("PERSIST does not outlive the TTL", func(t *testing.T) {
		r := newTestRedis(t, srv.Addr(), testKey(20), opts)
		k := Key{Identity, "okta/f1", "short-lived"}
		r.Set(ctx, k, []byte("v"), 300*time.Millisecond)
		name, ok := r.entryName(ctx, k)
		if !ok {
			t.Fatal("no entry name")
		}
		if n, err := raw.Persist(ctx, name).Result(); err != nil || !n {
			t.Fatalf("PERSIST %v, %v: the entry should exist with a TTL", n, err)
		}
		time.Sleep(500 * time.Millisecond)
		if raw.Exists(ctx, name).Val() != 1 {
			t.Fatal("control: the persisted entry should still be in Redis")
		}
		if v, ok := r.Get(ctx, k); ok {
			t.Fatalf("an entry kept past its TTL with PERSIST was served: %q", v)
		}
	})

	t.Run("EXPIRE further does not outlive the TTL", func(t *testing.T) {
		r := newTestRedis(t, srv.Addr(), testKey(21), opts)
		k := Key{Token, "spotnana", "alice"}
		r.Set(ctx, k, []byte("v"), 300*time.Millisecond)
		name, _ := r.entryName(ctx, k)
		raw.Expire(ctx, name, time.Hour)
		time.Sleep(500 * time.Millisecond)
		if v, ok := r.Get(ctx, k); ok {
			t.Fatalf("an entry whose Redis TTL was extended was served: %q", v)
		}
	})

	for _, scope := range []struct {
		name   string
		prefix string
	}{{"provider purge", "okta"}, {"kind-wide purge", ""}} {
		t.Run("deleting the generation keys does not undo a "+scope.name, func(t *testing.T) {
			cfg := redisConfig(srv.Addr(), testKey(22))
			cfg.Redis.KeyPrefix = "integrity-" + scope.name + ":"
			r, err := NewRedis(cfg, RedisOptions{GenerationTTL: -1, OpTimeout: testOpTimeout})
			if err != nil {
				t.Fatal(err)
			}
			defer r.Close()
			k := Key{Identity, "okta/f1", "revoked"}
			r.Set(ctx, k, []byte("before the purge"), time.Minute)
			if _, ok := r.Get(ctx, k); !ok {
				t.Fatal("control: miss before the purge")
			}
			r.Purge(ctx, Identity, scope.prefix)
			if _, ok := r.Get(ctx, k); ok {
				t.Fatal("control: hit after the purge")
			}
			for _, id := range []genID{{kind: Identity}, {kind: Identity, prov: true, provider: "okta"}} {
				raw.Del(ctx, r.genName(id))
			}
			if v, ok := r.Get(ctx, k); ok {
				t.Fatalf("deleting the generation keys brought a purged entry back: %q", v)
			}
			// And the cache still works afterwards.
			r.Set(ctx, k, []byte("after"), time.Minute)
			if v, ok := r.Get(ctx, k); !ok || string(v) != "after" {
				t.Fatalf("after the generation keys were lost: %q, %v", v, ok)
			}
		})
	}

	t.Run("losing the generation keys before any purge purges", func(t *testing.T) {
		cfg := redisConfig(srv.Addr(), testKey(23))
		cfg.Redis.KeyPrefix = "integrity-lost:"
		r, err := NewRedis(cfg, RedisOptions{GenerationTTL: -1, OpTimeout: testOpTimeout})
		if err != nil {
			t.Fatal(err)
		}
		defer r.Close()
		k := Key{Negative, "okta/f1", "x"}
		r.Set(ctx, k, []byte("v"), time.Minute)
		raw.Del(ctx, r.genName(genID{kind: Negative}), r.genName(genID{kind: Negative, prov: true, provider: "okta"}))
		if v, ok := r.Get(ctx, k); ok {
			t.Fatalf("entry served after its generation keys were lost: %q", v)
		}
	})
}
