package cache

import (
	"container/list"
	"context"
	"hash/maphash"
	"strings"
	"sync"
	"time"
)

// shardCount spreads lock contention: every request touches the identity cache, and a
// single mutex would serialise the two cores on the hot path.
const shardCount = 16

// DefaultMaxBytes bounds what one kind of entry may hold in memory unless LimitBytes says
// otherwise: 256 MiB. max_entries alone does not bound memory: an upstream whose answers
// are near their 1 MiB limit would make 100,000 identities 100 GB.
const DefaultMaxBytes = 256 << 20

// entryOverhead approximates what an entry costs beyond its key and value bytes: its list
// element, its memEntry and its map slot (measured at about 150 bytes on amd64).
const entryOverhead = 160

// Memory is the in-process backend: one bounded LRU per kind, each split into shards.
type Memory struct {
	seed  maphash.Seed
	kinds [numKinds]*lru
	now   func() time.Time
}

var _ Cache = (*Memory)(nil)

// NewMemory returns a memory cache holding at most maxEntries entries of each kind
// (accepted identities, failed lookups, directory lookups and Spotnana tokens are
// bounded separately, so that junk tokens cannot evict good identities). now may be nil.
func NewMemory(maxEntries int, now func() time.Time) *Memory {
	if maxEntries <= 0 {
		maxEntries = 100000
	}
	if now == nil {
		now = time.Now
	}
	m := &Memory{seed: maphash.MakeSeed(), now: now}
	per := (maxEntries + shardCount - 1) / shardCount
	for k := range m.kinds {
		l := &lru{}
		for i := range l.shards {
			l.shards[i] = &shard{cap: per, maxBytes: DefaultMaxBytes / shardCount, items: make(map[memKey]*list.Element), order: list.New()}
		}
		m.kinds[k] = l
	}
	return m
}

// LimitBytes bounds the bytes each kind may hold (keys, values and entryOverhead per
// entry), evicting least recently used entries of that kind to stay under it; a value too
// large for its shard's share (perKind/16) is not cached at all. perKind ≤ 0 keeps
// DefaultMaxBytes. Call it before the cache is used; it returns m.
func (m *Memory) LimitBytes(perKind int64) *Memory {
	if perKind <= 0 {
		perKind = DefaultMaxBytes
	}
	for _, l := range m.kinds {
		for _, s := range l.shards {
			s.maxBytes = perKind / shardCount
		}
	}
	return m
}

type memKey struct{ group, id string }

type memEntry struct {
	key     memKey
	val     []byte
	expires int64 // unix nanoseconds
	cost    int64 // what the entry counts against its shard's maxBytes
}

type lru struct{ shards [shardCount]*shard }

type shard struct {
	mu       sync.Mutex
	cap      int
	maxBytes int64
	bytes    int64 // sum of the entries' cost
	items    map[memKey]*list.Element
	order    *list.List // front: most recently used
}

// remove drops el; the caller holds s.mu.
func (s *shard) remove(el *list.Element) {
	e := el.Value.(*memEntry)
	s.order.Remove(el)
	delete(s.items, e.key)
	s.bytes -= e.cost
}

func (m *Memory) shard(k Key) *shard {
	if int(k.Kind) >= len(m.kinds) {
		return nil
	}
	return m.kinds[k.Kind].shards[maphash.String(m.seed, k.ID)%shardCount]
}

// Get returns the live value for k.
func (m *Memory) Get(_ context.Context, k Key) ([]byte, bool) {
	s := m.shard(k)
	if s == nil {
		return nil, false
	}
	now := m.now().UnixNano()
	s.mu.Lock()
	defer s.mu.Unlock()
	el, ok := s.items[memKey{k.Group, k.ID}]
	if !ok {
		return nil, false
	}
	e := el.Value.(*memEntry)
	if now >= e.expires {
		s.remove(el)
		return nil, false
	}
	s.order.MoveToFront(el)
	return e.val, true
}

// Set stores v under k for ttl, evicting the least recently used entry of the same kind
// when the shard is full.
func (m *Memory) Set(_ context.Context, k Key, v []byte, ttl time.Duration) {
	s := m.shard(k)
	if s == nil || ttl <= 0 {
		return
	}
	exp := m.now().Add(ttl).UnixNano()
	mk := memKey{k.Group, k.ID}
	cost := int64(len(v)+len(mk.group)+len(mk.id)) + entryOverhead
	s.mu.Lock()
	defer s.mu.Unlock()
	if el, ok := s.items[mk]; ok {
		// Replaced, never kept stale: the old value goes even when the new one is too
		// large to cache.
		s.remove(el)
	}
	if cost > s.maxBytes {
		return
	}
	for s.order.Len() > 0 && (s.order.Len() >= s.cap || s.bytes+cost > s.maxBytes) {
		s.remove(s.order.Back())
	}
	s.items[mk] = s.order.PushFront(&memEntry{key: mk, val: v, expires: exp, cost: cost})
	s.bytes += cost
}

// Delete drops k.
func (m *Memory) Delete(_ context.Context, k Key) {
	s := m.shard(k)
	if s == nil {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if el, ok := s.items[memKey{k.Group, k.ID}]; ok {
		s.remove(el)
	}
}

// Purge drops every entry of kind whose group starts with groupPrefix.
func (m *Memory) Purge(_ context.Context, kind Kind, groupPrefix string) int {
	if int(kind) >= len(m.kinds) {
		return 0
	}
	n := 0
	for _, s := range m.kinds[kind].shards {
		s.mu.Lock()
		for mk, el := range s.items {
			if strings.HasPrefix(mk.group, groupPrefix) {
				s.remove(el)
				n++
			}
		}
		s.mu.Unlock()
	}
	return n
}

// Len reports the number of entries of kind, expired ones included until they are
// touched or evicted.
func (m *Memory) Len(kind Kind) int {
	if int(kind) >= len(m.kinds) {
		return 0
	}
	n := 0
	for _, s := range m.kinds[kind].shards {
		s.mu.Lock()
		n += s.order.Len()
		s.mu.Unlock()
	}
	return n
}

// Close does nothing: memory needs no release.
func (m *Memory) Close() error { return nil }
