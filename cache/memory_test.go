package cache

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"
)

type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *fakeClock) Add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

func TestMemory(t *testing.T) {
	ctx := context.Background()
	clk := &fakeClock{t: time.Unix(1_700_000_000, 0)}
	k := func(kind Kind, group, id string) Key { return Key{Kind: kind, Group: group, ID: id} }

	t.Run("set get expire", func(t *testing.T) {
		m := NewMemory(100, clk.Now)
		m.Set(ctx, k(Identity, "p", "a"), []byte("doc"), time.Minute)
		if v, ok := m.Get(ctx, k(Identity, "p", "a")); !ok || string(v) != "doc" {
			t.Fatalf("get = %q, %v", v, ok)
		}
		if _, ok := m.Get(ctx, k(Negative, "p", "a")); ok {
			t.Fatal("kinds must not share entries")
		}
		clk.Add(time.Minute)
		if _, ok := m.Get(ctx, k(Identity, "p", "a")); ok {
			t.Fatal("entry outlived its ttl")
		}
	})
	t.Run("zero ttl stores nothing", func(t *testing.T) {
		m := NewMemory(100, clk.Now)
		m.Set(ctx, k(Identity, "p", "a"), []byte("doc"), 0)
		if _, ok := m.Get(ctx, k(Identity, "p", "a")); ok {
			t.Fatal("stored with ttl 0")
		}
	})
	t.Run("bounded and negative kept apart", func(t *testing.T) {
		m := NewMemory(64, clk.Now)
		m.Set(ctx, k(Identity, "p", "good"), []byte("doc"), time.Hour)
		for i := 0; i < 10000; i++ {
			m.Set(ctx, k(Negative, "p", fmt.Sprint("junk", i)), []byte{0}, time.Hour)
		}
		if _, ok := m.Get(ctx, k(Identity, "p", "good")); !ok {
			t.Fatal("a flood of negative entries evicted a good identity")
		}
		if n := m.Len(Negative); n > 64+shardCount {
			t.Fatalf("negative kind holds %d entries, bound is 64", n)
		}
		for i := 0; i < 1000; i++ {
			m.Set(ctx, k(Identity, "p", fmt.Sprint("id", i)), []byte{0}, time.Hour)
		}
		if n := m.Len(Identity); n > 64+shardCount {
			t.Fatalf("identity kind holds %d entries, bound is 64", n)
		}
	})
	t.Run("purge by group prefix", func(t *testing.T) {
		m := NewMemory(100, clk.Now)
		m.Set(ctx, k(Identity, "a/1", "x"), []byte{1}, time.Hour)
		m.Set(ctx, k(Identity, "a/1", "y"), []byte{1}, time.Hour)
		m.Set(ctx, k(Identity, "b/1", "x"), []byte{1}, time.Hour)
		if n := m.Purge(ctx, Identity, "a/"); n != 2 {
			t.Fatalf("purged %d, want 2", n)
		}
		if _, ok := m.Get(ctx, k(Identity, "b/1", "x")); !ok {
			t.Fatal("purge dropped another group")
		}
		m.Purge(ctx, Identity, "")
		if m.Len(Identity) != 0 {
			t.Fatal("purge all left entries")
		}
	})
	t.Run("delete", func(t *testing.T) {
		m := NewMemory(100, clk.Now)
		m.Set(ctx, k(Token, "", "u"), []byte{1}, time.Hour)
		m.Delete(ctx, k(Token, "", "u"))
		if _, ok := m.Get(ctx, k(Token, "", "u")); ok {
			t.Fatal("delete left the entry")
		}
	})
}

func BenchmarkMemoryGet(b *testing.B) {
	ctx := context.Background()
	m := NewMemory(100000, nil)
	key := Key{Kind: Identity, Group: "corp-jwt/abcd", ID: "0123456789abcdef0123456789abcdef"}
	m.Set(ctx, key, []byte(`{"email":"a@example.com"}`), time.Hour)
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, ok := m.Get(ctx, key); !ok {
				b.Fatal("miss")
			}
		}
	})
}

// BenchmarkMemoryGetSpread reads many keys from parallel goroutines, as many users'
// requests do: the sharded locks rarely meet (BenchmarkMemoryGet is the one-key worst
// case, every reader on one shard).
func BenchmarkMemoryGetSpread(b *testing.B) {
	ctx := context.Background()
	m := NewMemory(100000, nil)
	keys := make([]Key, 1024)
	for i := range keys {
		keys[i] = Key{Kind: Identity, Group: "corp-jwt/abcd", ID: fmt.Sprintf("%032d", i)}
		m.Set(ctx, keys[i], []byte(`{"email":"a@example.com"}`), time.Hour)
	}
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		i := 0
		for pb.Next() {
			if _, ok := m.Get(ctx, keys[i%len(keys)]); !ok {
				b.Fatal("miss")
			}
			i += 7
		}
	})
}

// BenchmarkMemorySetEvict is the miss path of a cache smaller than its working set:
// every Set evicts the least recently used entry of its shard.
func BenchmarkMemorySetEvict(b *testing.B) {
	ctx := context.Background()
	m := NewMemory(1000, nil)
	keys := make([]Key, 10000)
	for i := range keys {
		keys[i] = Key{Kind: Identity, Group: "corp-jwt/abcd", ID: fmt.Sprintf("%032d", i)}
	}
	v := []byte(`{"email":"a@example.com"}`)
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		m.Set(ctx, keys[i%len(keys)], v, time.Hour)
		i++
	}
}

// TestMemoryBytes: LimitBytes bounds each kind in bytes: the least recently used go, a
// value too large for its shard is not cached (and does not leave a stale one behind),
// and every way out (expiry, Delete, Purge, eviction, replacement) gives its bytes back.
func TestMemoryBytes(t *testing.T) {
	ctx := context.Background()
	clk := &fakeClock{t: time.Unix(1_700_000_000, 0)}
	m := NewMemory(100000, clk.Now).LimitBytes(16 * 4096) // 4 KiB per shard
	total := func(kind Kind) (n int64) {
		for _, s := range m.kinds[kind].shards {
			s.mu.Lock()
			n += s.bytes
			if s.bytes > s.maxBytes || s.bytes < 0 {
				t.Errorf("shard holds %d bytes, bound %d", s.bytes, s.maxBytes)
			}
			s.mu.Unlock()
		}
		return n
	}
	key := func(i int) Key { return Key{Kind: Identity, Group: "p", ID: fmt.Sprintf("id-%05d", i)} }
	for i := range 2000 {
		m.Set(ctx, key(i), make([]byte, 1000), time.Minute)
	}
	if n := total(Identity); n > 16*4096 {
		t.Fatalf("%d bytes held, bound %d", n, 16*4096)
	}
	if _, ok := m.Get(ctx, key(1999)); !ok {
		t.Fatal("the newest entry was evicted")
	}
	if _, ok := m.Get(ctx, key(0)); ok {
		t.Fatal("the oldest entry survived 2000 KB of newer ones in 64 KiB")
	}
	// Too large for a shard: not cached, and the smaller value it replaces is gone too.
	m.Set(ctx, key(1999), make([]byte, 5000), time.Minute)
	if _, ok := m.Get(ctx, key(1999)); ok {
		t.Fatal("a value larger than its shard's share was cached, or the old one kept")
	}
	if total(Negative) != 0 {
		t.Fatal("another kind was charged")
	}
	m.Purge(ctx, Identity, "")
	if n := total(Identity); n != 0 || m.Len(Identity) != 0 {
		t.Fatalf("after Purge: %d bytes, %d entries", n, m.Len(Identity))
	}
	m.Set(ctx, key(1), []byte("a"), time.Minute)
	m.Set(ctx, key(1), []byte("bb"), time.Minute) // replaced: counted once
	m.Set(ctx, key(2), []byte("c"), time.Second)
	m.Set(ctx, key(3), []byte("d"), time.Minute)
	m.Delete(ctx, key(3))
	clk.Add(2 * time.Second)
	m.Get(ctx, key(2)) // expired: dropped on touch
	if n, want := total(Identity), int64(2+len("p")+len("id-00001")+entryOverhead); n != want {
		t.Fatalf("%d bytes held, want %d (one entry)", n, want)
	}
}
