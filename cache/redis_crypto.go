package cache

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"hash"
	"strings"
	"sync"
	"time"

	"github.com/idbridge/idbridge/configs"
)

// sealVersion is the first byte of every sealed value, so that a change of format
// reads old values as misses rather than garbage. Version 2 put the expiry and the
// generations inside the sealed entries (version 1 values read as misses).
const sealVersion = 2

// keyLen is the size of cache.encryption_key: AES-256.
const keyLen = 32

// HKDF labels: one master key yields independent subkeys, so that the key that seals
// values never also serves as the key that names them.
const (
	infoSeal = "idbridge cache v1: seal values (AES-256-GCM)"
	infoName = "idbridge cache v1: name keys (HMAC-SHA256)"
)

// parseEncryptionKey decodes cache.encryption_key as the config check does
// (configs.Cache.Key: hex or any usual base64 alphabet). Its errors never carry the key.
func parseEncryptionKey(cfg configs.Cache) ([]byte, error) {
	if strings.TrimSpace(cfg.EncryptionKey) == "" {
		return nil, errors.New("cache: encryption_key is required with backend redis")
	}
	k, err := cfg.Key()
	if err != nil {
		return nil, fmt.Errorf("cache: encryption_key %w", err)
	}
	return k, nil
}

// sealer seals values and names keys under subkeys of one master key.
type sealer struct {
	aead cipher.AEAD // the standard GCM keeps no per-call state: safe to share
	macs sync.Pool   // of hash.Hash (HMAC-SHA256 under the naming subkey)
}

func newSealer(master []byte) (*sealer, error) {
	sealKey, err := hkdf.Key(sha256.New, master, nil, infoSeal, keyLen)
	if err != nil {
		return nil, fmt.Errorf("cache: derive sealing key: %w", err)
	}
	nameKey, err := hkdf.Key(sha256.New, master, nil, infoName, keyLen)
	if err != nil {
		return nil, fmt.Errorf("cache: derive naming key: %w", err)
	}
	block, err := aes.NewCipher(sealKey)
	if err != nil {
		return nil, fmt.Errorf("cache: %w", err)
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, fmt.Errorf("cache: %w", err)
	}
	s := &sealer{aead: aead}
	s.macs.New = func() any { return hmac.New(sha256.New, nameKey) }
	return s, nil
}

// seal returns version | nonce | AES-GCM(v), binding the Redis key as additional data
// so that a value copied under another key does not open.
func (s *sealer) seal(redisKey string, v []byte) []byte {
	ns := s.aead.NonceSize()
	out := make([]byte, 1+ns, 1+ns+len(v)+s.aead.Overhead())
	out[0] = sealVersion
	// A random 96-bit nonce is safe far beyond the number of values this key will seal
	// between rotations; crypto/rand never fails on supported platforms.
	_, _ = rand.Read(out[1 : 1+ns])
	return s.aead.Seal(out, out[1:1+ns], v, []byte(redisKey))
}

// open reverses seal; anything that does not authenticate is reported as not ok.
func (s *sealer) open(redisKey string, b []byte) ([]byte, bool) {
	ns := s.aead.NonceSize()
	if len(b) < 1+ns+s.aead.Overhead() || b[0] != sealVersion {
		return nil, false
	}
	v, err := s.aead.Open(nil, b[1:1+ns], b[1+ns:], []byte(redisKey))
	if err != nil {
		return nil, false
	}
	return v, true
}

// entryHeader is the sealed prefix of an entry's plaintext: its expiry (Unix ms) and
// the kind-wide and provider generations it was written under. Redis' own TTL is only
// housekeeping: someone who can write to Redis but holds no key can PERSIST an entry,
// but cannot change the expiry sealed inside it.
const entryHeader = 8 + 8 + 8

// sealEntry seals an entry's value with its expiry and generations.
func (s *sealer) sealEntry(redisKey string, expires time.Time, g gens, v []byte) []byte {
	b := make([]byte, entryHeader, entryHeader+len(v))
	binary.BigEndian.PutUint64(b[0:], uint64(expires.UnixMilli()))
	binary.BigEndian.PutUint64(b[8:], g.kind)
	binary.BigEndian.PutUint64(b[16:], g.prov)
	return s.seal(redisKey, append(b, v...))
}

// openEntry reverses sealEntry and refuses a value that does not authenticate, whose
// sealed expiry is not after now, or that was written under other generations than g.
func (s *sealer) openEntry(redisKey string, b []byte, now time.Time, g gens) ([]byte, bool) {
	p, ok := s.open(redisKey, b)
	if !ok || len(p) < entryHeader {
		return nil, false
	}
	if int64(binary.BigEndian.Uint64(p[0:])) <= now.UnixMilli() {
		return nil, false
	}
	if binary.BigEndian.Uint64(p[8:]) != g.kind || binary.BigEndian.Uint64(p[16:]) != g.prov {
		return nil, false
	}
	return p[entryHeader:], true
}

// Name tags keep the entry and generation namespaces of the HMAC apart.
const (
	tagEntry   = 'e'
	tagKindGen = 'k'
	tagProvGen = 'p'
)

// genHashTag puts every generation key in one Redis Cluster hash slot, so that the one
// command that reads two keys (MGET of the kind-wide and the provider's generation)
// never spans slots. Entries carry no tag: their HMAC names spread over every node.
// The tag follows the prefix, so that an ACL user limited to the prefix (~idbridge:*)
// can still reach the generations.
const genHashTag = "{gen}"

// name returns prefix + base64url(HMAC(tag | kind | gens | len(group) | group | id)),
// with genHashTag after the prefix for generation keys. Lengths are encoded so that
// no two distinct (group, id) pairs hash the same input.
func (s *sealer) name(prefix string, tag byte, kind Kind, g gens, group, id string) string {
	h := s.macs.Get().(hash.Hash)
	h.Reset()
	var hdr [2 + 8 + 8 + binary.MaxVarintLen64]byte
	hdr[0], hdr[1] = tag, byte(kind)
	binary.BigEndian.PutUint64(hdr[2:], g.kind)
	binary.BigEndian.PutUint64(hdr[10:], g.prov)
	n := 18 + binary.PutUvarint(hdr[18:], uint64(len(group)))
	h.Write(hdr[:n])
	h.Write([]byte(group))
	h.Write([]byte(id))
	var sum [sha256.Size]byte
	mac := h.Sum(sum[:0])
	s.macs.Put(h)
	var out [64]byte
	enc := base64.RawURLEncoding
	n = enc.EncodedLen(len(mac))
	enc.Encode(out[:n], mac)
	if tag != tagEntry {
		return prefix + genHashTag + string(out[:n])
	}
	return prefix + string(out[:n])
}
