package cache

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/idbridge/idbridge/cache/redistest"
	"github.com/idbridge/idbridge/configs"
)

// TestRedisIntegrity: someone who can write to Redis, but holds no encryption key,
// must not be able to keep an entry alive past its TTL nor undo a purge (issue 14,
// item 7). Each sealed value carries its own expiry and generations, and a lost
// generation key purges instead of bringing back what was purged.
func TestRedisIntegrity(t *testing.T) {
	srv := redistest.Start(t)
	ctx := context.Background()
	raw := rawClient(t, srv.Addr())
	// The sealed expiry is read on the cache's own clock, so a fake one stands in for
	// waiting past the TTL; Redis, whose TTL was removed or extended, is no help.
	clk := &fakeClock{t: time.Unix(1_700_000_000, 0)}
	opts := RedisOptions{GenerationTTL: -1, Now: clk.Now}

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
		clk.Add(500 * time.Millisecond)
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
		clk.Add(500 * time.Millisecond)
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

// TestRedisClusterLayout runs against a 3-primary Redis Cluster: the generation keys
// share one slot (the one MGET never spans slots), entries spread over the nodes, a
// purge drops entries on every node, and the integrity rules hold there too.
func TestRedisClusterLayout(t *testing.T) {
	cl := redistest.StartCluster(t, 3)
	ctx := context.Background()
	cfg := redisConfig("", testKey(24))
	cfg.Redis.Addr = ""
	cfg.Redis.Cluster = &configs.RedisCluster{Addrs: cl.Addrs()[:1]}
	cfg.Redis.KeyPrefix = "idbridge:"
	clk := &fakeClock{t: time.Unix(1_700_000_000, 0)}
	r, err := NewRedis(cfg, RedisOptions{GenerationTTL: -1, OpTimeout: testOpTimeout, Now: clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	raw := redis.NewClusterClient(&redis.ClusterOptions{Addrs: cl.Addrs()})
	defer raw.Close()

	const n = 60
	for i := range n {
		for _, kind := range []Kind{Identity, Negative} {
			r.Set(ctx, Key{kind, fmt.Sprintf("p%d/f", i%4), fmt.Sprint(i)}, []byte("v"), time.Minute)
		}
	}
	if r.Degraded() {
		t.Fatalf("degraded on a healthy cluster: %+v", r.Health(ctx))
	}
	if h := r.Health(ctx); !h.OK || h.Topology != TopologyCluster || len(h.Primaries) != 3 {
		t.Fatalf("Health = %+v", h)
	}

	var slotsMu sync.Mutex // ForEachMaster runs its function on every node at once
	slots := map[int64]bool{}
	entriesPerNode := map[string]int{}
	err = raw.ForEachMaster(ctx, func(ctx context.Context, c *redis.Client) error {
		keys, err := c.Keys(ctx, "*").Result()
		if err != nil {
			return err
		}
		for _, k := range keys {
			if !strings.HasPrefix(k, "idbridge:") {
				return fmt.Errorf("key %q outside the prefix", k)
			}
			if strings.Contains(k, genHashTag) {
				if k[len("idbridge:"):len("idbridge:")+len(genHashTag)] != genHashTag {
					return fmt.Errorf("generation key %q: the hash tag must follow the prefix", k)
				}
				s, err := c.ClusterKeySlot(ctx, k).Result()
				if err != nil {
					return err
				}
				slotsMu.Lock()
				slots[s] = true
				slotsMu.Unlock()
				continue
			}
			if strings.ContainsAny(k, "{}") {
				return fmt.Errorf("entry %q carries a hash tag", k)
			}
			slotsMu.Lock()
			entriesPerNode[c.Options().Addr]++
			slotsMu.Unlock()
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(slots) != 1 {
		t.Errorf("generation keys span %d slots, want 1", len(slots))
	}
	if len(entriesPerNode) != 3 {
		t.Errorf("entries on %d nodes, want 3: %v", len(entriesPerNode), entriesPerNode)
	}

	t.Run("purge drops entries on every node", func(t *testing.T) {
		r.Purge(ctx, Identity, "")
		for i := range n {
			if _, ok := r.Get(ctx, Key{Identity, fmt.Sprintf("p%d/f", i%4), fmt.Sprint(i)}); ok {
				t.Fatalf("identity %d served after a kind-wide purge", i)
			}
			if _, ok := r.Get(ctx, Key{Negative, fmt.Sprintf("p%d/f", i%4), fmt.Sprint(i)}); !ok {
				t.Fatalf("negative %d dropped by a purge of identities", i)
			}
		}
	})

	t.Run("integrity", func(t *testing.T) {
		k := Key{Identity, "okta/f1", "x"}
		r.Set(ctx, k, []byte("v"), 300*time.Millisecond)
		name, _ := r.entryName(ctx, k)
		if ok, err := raw.Persist(ctx, name).Result(); err != nil || !ok {
			t.Fatalf("PERSIST: %v %v", ok, err)
		}
		clk.Add(500 * time.Millisecond)
		if _, ok := r.Get(ctx, k); ok {
			t.Fatal("a persisted entry outlived its TTL")
		}
		r.Set(ctx, k, []byte("v"), time.Minute)
		r.Purge(ctx, Identity, "okta")
		raw.Del(ctx, r.genName(genID{kind: Identity}), r.genName(genID{kind: Identity, prov: true, provider: "okta"}))
		if _, ok := r.Get(ctx, k); ok {
			t.Fatal("deleting the generation keys undid a purge")
		}
	})
}
