// Package cache keeps what idbridge may reuse between requests: accepted identity
// documents, failed lookups, directory lookups and Spotnana tokens. Backends implement
// Cache: memory (the default) and Redis (several replicas share one cache). Keys are
// always hashes, never raw tokens or emails.
package cache

import (
	"context"
	"time"
)

// Kind separates what is cached, so that a flood of one kind (junk tokens in Negative)
// cannot evict another (good identities).
type Kind uint8

// The kinds of entries.
const (
	Identity Kind = iota // accepted identity documents; bounded by cache.max_entries
	Negative             // failed lookups, kept apart
	Lookup               // directory lookups
	Token                // Spotnana tokens
	numKinds
)

func (k Kind) String() string {
	switch k {
	case Identity:
		return "identity"
	case Negative:
		return "negative"
	case Lookup:
		return "lookup"
	case Token:
		return "token"
	}
	return "unknown"
}

// Key names an entry. Group is the owner (a provider's name and configuration
// fingerprint, a directory): Purge drops a group at once. ID is a hash (the token's
// SHA-256, raw bytes are fine), never a raw secret.
type Key struct {
	Kind  Kind
	Group string
	ID    string
}

// Cache stores opaque byte values with a time to live. A backend failure is never an
// error for the caller: a Get that cannot be answered is a miss, and a Set may be lost.
// Values handed to Set and returned by Get must not be modified.
type Cache interface {
	Get(ctx context.Context, k Key) ([]byte, bool)
	// Set stores v for ttl; a ttl <= 0 stores nothing.
	Set(ctx context.Context, k Key, v []byte, ttl time.Duration)
	Delete(ctx context.Context, k Key)
	// Purge drops every entry of kind whose Group starts with groupPrefix ("" = all),
	// and returns how many it dropped where the backend can tell (else -1).
	Purge(ctx context.Context, kind Kind, groupPrefix string) int
	Close() error
}
