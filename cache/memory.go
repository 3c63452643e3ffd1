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
			l.shards[i] = &shard{cap: per, items: make(map[memKey]*list.Element), order: list.New()}
		}
		m.kinds[k] = l
	}
	return m
}

type memKey struct{ group, id string }

type memEntry struct {
	key     memKey
	val     []byte
	expires int64 // unix nanoseconds
}

type lru struct{ shards [shardCount]*shard }

type shard struct {
	mu    sync.Mutex
	cap   int
	items map[memKey]*list.Element
	order *list.List // front: most recently used
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
		s.order.Remove(el)
		delete(s.items, e.key)
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
	s.mu.Lock()
	defer s.mu.Unlock()
	if el, ok := s.items[mk]; ok {
		e := el.Value.(*memEntry)
		e.val, e.expires = v, exp
		s.order.MoveToFront(el)
		return
	}
	for s.order.Len() >= s.cap {
		old := s.order.Back()
		s.order.Remove(old)
		delete(s.items, old.Value.(*memEntry).key)
	}
	s.items[mk] = s.order.PushFront(&memEntry{key: mk, val: v, expires: exp})
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
		s.order.Remove(el)
		delete(s.items, memKey{k.Group, k.ID})
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
				s.order.Remove(el)
				delete(s.items, mk)
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
