package spotnana

import (
	"bytes"
	"context"
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/lestrrat-go/jwx/v3/jwa"
	"github.com/lestrrat-go/jwx/v3/jwk"
	"github.com/lestrrat-go/jwx/v3/jwt"
	"github.com/tidwall/gjson"

	"github.com/idbridge/idbridge/configs"
)

// Defaults of `spotnana.assertion:` (configs.Assertion), applied to zero values.
const (
	DefaultAssertionAudience = "spotnana"
	DefaultSubjectPath       = "sub"
	DefaultAssertionTTL      = 5 * time.Minute
	DefaultPublishAhead      = 10 * time.Minute
	DefaultJWKSPath          = "/.well-known/jwks.json"
)

// KeyBits is the size of generated keys. Loaded keys must have at least MinKeyBits.
const (
	KeyBits    = 3072
	MinKeyBits = 2048
)

// keyExt is the extension of key files; anything else in keys_dir is ignored (our
// own temporary files included).
const keyExt = ".pem"

// GenerateKey creates an RSA key in dir (created 0700 if missing) as a PKCS#8 PEM file
// of mode 0600, named after its kid, the RFC 7638 SHA-256 thumbprint (base64url). The
// file's modification time is set to now: KeyStore counts publish_ahead from it. The
// file appears atomically (written aside, then renamed), so a running KeyStore never
// loads half a key.
func GenerateKey(dir string, now time.Time) (kid string, path string, err error) {
	return generateKey(dir, now, KeyBits)
}

// generateKey is GenerateKey with a chosen size: tests use MinKeyBits, which is
// several times faster to generate.
func generateKey(dir string, now time.Time, bits int) (kid string, path string, err error) {
	priv, err := rsa.GenerateKey(rand.Reader, bits)
	if err != nil {
		return "", "", fmt.Errorf("spotnana: generating key: %w", err)
	}
	kid, err = thumbprint(&priv.PublicKey)
	if err != nil {
		return "", "", err
	}
	der, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		return "", "", fmt.Errorf("spotnana: encoding key: %w", err)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", "", fmt.Errorf("spotnana: keys dir: %w", err)
	}
	path = filepath.Join(dir, kid+keyExt)
	if _, err := os.Lstat(path); err == nil {
		return "", "", fmt.Errorf("spotnana: %s already exists", path)
	}
	tmp, err := os.CreateTemp(dir, ".tmp-key-*")
	if err != nil {
		return "", "", fmt.Errorf("spotnana: writing key: %w", err)
	}
	defer os.Remove(tmp.Name()) // a no-op once renamed
	if err := tmp.Chmod(0o600); err != nil {
		tmp.Close()
		return "", "", fmt.Errorf("spotnana: writing key: %w", err)
	}
	werr := pem.Encode(tmp, &pem.Block{Type: "PRIVATE KEY", Bytes: der})
	if werr == nil {
		werr = tmp.Sync()
	}
	if cerr := tmp.Close(); werr == nil {
		werr = cerr
	}
	if werr != nil {
		return "", "", fmt.Errorf("spotnana: writing key: %w", werr)
	}
	if err := os.Chtimes(tmp.Name(), now, now); err != nil {
		return "", "", fmt.Errorf("spotnana: writing key: %w", err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return "", "", fmt.Errorf("spotnana: writing key: %w", err)
	}
	return kid, path, nil
}

// thumbprint is the RFC 7638 SHA-256 thumbprint of pub, base64url without padding.
func thumbprint(pub *rsa.PublicKey) (string, error) {
	k, err := jwk.Import(pub)
	if err != nil {
		return "", fmt.Errorf("spotnana: importing key: %w", err)
	}
	tp, err := k.Thumbprint(crypto.SHA256)
	if err != nil {
		return "", fmt.Errorf("spotnana: thumbprint: %w", err)
	}
	return base64.RawURLEncoding.EncodeToString(tp), nil
}

// storedKey is one key of the directory.
type storedKey struct {
	kid     string
	path    string
	created time.Time // the file's modification time
	priv    jwk.Key
}

// keySet is one consistent load of the directory, replaced whole on reload.
type keySet struct {
	keys  []*storedKey // oldest first
	jwks  []byte
	state string // names, sizes and times of the files: Watch compares it
}

// KeyStore holds assertion mode's signing keys: every *.pem file of keys_dir. All of
// them are published in the JWKS; which one signs is chosen at each signature:
//
//   - a key signs only once publish_ahead has passed since its file's modification
//     time, so that Spotnana's cached copy of our JWKS already holds it;
//   - among keys old enough, the newest signs (rotation: add a key, and it takes over
//     after publish_ahead; remove the old file once no token it signed is alive);
//   - when no key is old enough yet (a fresh install), the oldest signs, since
//     refusing to sign would only fail every exchange until then.
//
// It is safe for concurrent use; Reload swaps the whole set at once.
type KeyStore struct {
	dir          string
	publishAhead time.Duration
	now          func() time.Time
	log          *slog.Logger

	mu  sync.RWMutex
	set *keySet
}

// NewKeyStore loads every key of cfg.KeysDir (required). publish_ahead 0 means its
// default. It fails when the directory holds no key: run `idbridge keys generate`.
// now and logger may be nil.
func NewKeyStore(cfg *configs.Assertion, now func() time.Time, logger *slog.Logger) (*KeyStore, error) {
	if cfg == nil || cfg.KeysDir == "" {
		return nil, errors.New("spotnana.assertion.keys_dir: required in assertion mode")
	}
	if cfg.PublishAhead < 0 {
		return nil, errors.New("spotnana.assertion.publish_ahead: must not be negative")
	}
	s := &KeyStore{dir: cfg.KeysDir, publishAhead: cfg.PublishAhead, now: now, log: logger}
	if s.publishAhead == 0 {
		s.publishAhead = DefaultPublishAhead
	}
	if s.now == nil {
		s.now = time.Now
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	if err := s.Reload(); err != nil {
		return nil, err
	}
	for _, f := range LooseKeyFiles(s.dir) {
		s.log.Warn("spotnana signing key file is readable by group or others; make it 0400 or 0600", "file", f)
	}
	return s, nil
}

// Reload rescans the directory. On any error (an unreadable or invalid key file, no
// key at all) the previous set stays in use and the error names the file. Safe to call
// on SIGHUP, concurrently with signing.
func (s *KeyStore) Reload() error {
	s.mu.RLock()
	prev := s.set
	s.mu.RUnlock()
	set, err := loadKeys(s.dir, prev)
	if err != nil {
		return err
	}
	s.mu.Lock()
	old := s.set
	s.set = set
	s.mu.Unlock()
	if old == nil || old.state != set.state {
		kids := make([]string, len(set.keys))
		for i, k := range set.keys {
			kids[i] = k.kid
		}
		s.log.Info("spotnana signing keys loaded", "dir", s.dir, "kids", kids)
	}
	return nil
}

// Watch reloads the keys whenever the directory's content changes, checking every
// interval until ctx ends. Errors are logged and the previous keys kept.
func (s *KeyStore) Watch(ctx context.Context, interval time.Duration) {
	if interval <= 0 {
		interval = 30 * time.Second
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		st, err := dirState(s.dir)
		if err != nil {
			s.log.Warn("spotnana keys dir unreadable", "dir", s.dir, "error", err.Error())
			continue
		}
		s.mu.RLock()
		same := s.set != nil && s.set.state == st
		s.mu.RUnlock()
		if same {
			continue
		}
		if err := s.Reload(); err != nil {
			s.log.Warn("spotnana keys reload failed, keeping the previous keys", "error", err.Error())
		}
	}
}

// keyFile is one key file of keys_dir: its name there and what it resolves to.
type keyFile struct {
	name   string      // the name in keys_dir (a symlink's own name)
	target string      // the regular file it resolves to
	info   fs.FileInfo // the target's
}

// keyFiles lists the key files of dir, sorted by name. A symlink counts when it resolves
// to a regular file: a Kubernetes Secret volume is made of them (key.pem → ..data/key.pem
// → ..2024_…/key.pem), and a Secret update swaps ..data, which dirState notices through
// the target's path. Names starting with "." (..data itself) are never keys.
func keyFiles(dir string) ([]keyFile, error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("spotnana: keys dir: %w", err)
	}
	var out []keyFile
	for _, e := range ents {
		if !strings.HasSuffix(e.Name(), keyExt) || strings.HasPrefix(e.Name(), ".") {
			continue
		}
		path := filepath.Join(dir, e.Name())
		target, err := filepath.EvalSymlinks(path)
		var info fs.FileInfo
		if err == nil {
			info, err = os.Stat(target)
		}
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				continue // removed while we looked, or a link to nothing
			}
			return nil, fmt.Errorf("spotnana: %s: %w", path, err)
		}
		if !info.Mode().IsRegular() {
			continue
		}
		out = append(out, keyFile{name: e.Name(), target: target, info: info})
	}
	return out, nil
}

// dirState summarises the key files, cheaply, for change detection.
func dirState(dir string) (string, error) {
	files, err := keyFiles(dir)
	if err != nil {
		return "", err
	}
	return stateOf(files), nil
}

func stateOf(files []keyFile) string {
	var b strings.Builder
	for _, f := range files {
		fmt.Fprintf(&b, "%s\x00%s\x00%d\x00%d\n", f.name, f.target, f.info.Size(), f.info.ModTime().UnixNano())
	}
	return b.String()
}

// LooseKeyFiles names the key files of dir that group or others may read (mode & 044):
// a private key should be readable by idbridge's user only (a Kubernetes Secret volume
// needs defaultMode: 0400 for that).
func LooseKeyFiles(dir string) []string {
	files, err := keyFiles(dir)
	if err != nil {
		return nil
	}
	var out []string
	for _, f := range files {
		if f.info.Mode().Perm()&0o044 != 0 {
			out = append(out, fmt.Sprintf("%s (mode %04o)", filepath.Join(dir, f.name), f.info.Mode().Perm()))
		}
	}
	return out
}

// loadKeys loads every key of dir. A key prev already held keeps its creation time: a
// Kubernetes Secret update rewrites every file, and the key that was signing must not
// look as new as the one just added, or the new one could sign before Spotnana's cached
// JWKS holds it.
func loadKeys(dir string, prev *keySet) (*keySet, error) {
	files, err := keyFiles(dir)
	if err != nil {
		return nil, err
	}
	set := &keySet{state: stateOf(files)}
	seen := map[string]bool{}
	for _, f := range files {
		path := filepath.Join(dir, f.name)
		k, err := loadKey(path)
		if err != nil {
			return nil, err
		}
		if seen[k.kid] {
			continue // two files, one key: harmless, publish it once
		}
		seen[k.kid] = true
		k.created = f.info.ModTime()
		if prev != nil {
			for _, old := range prev.keys {
				if old.kid == k.kid && old.created.Before(k.created) {
					k.created = old.created
				}
			}
		}
		set.keys = append(set.keys, k)
	}
	if len(set.keys) == 0 {
		return nil, fmt.Errorf("spotnana: no key in %s (create one with `idbridge keys generate --dir %s`): %w", dir, dir, ErrNoSigningKey)
	}
	sort.SliceStable(set.keys, func(i, j int) bool {
		if !set.keys[i].created.Equal(set.keys[j].created) {
			return set.keys[i].created.Before(set.keys[j].created)
		}
		return set.keys[i].kid < set.keys[j].kid
	})
	pub := jwk.NewSet()
	for _, k := range set.keys {
		pk, err := k.priv.PublicKey()
		if err != nil {
			return nil, fmt.Errorf("spotnana: %s: %w", k.path, err)
		}
		if err := pub.AddKey(pk); err != nil {
			return nil, fmt.Errorf("spotnana: %s: %w", k.path, err)
		}
	}
	b, err := json.Marshal(pub)
	if err != nil {
		return nil, fmt.Errorf("spotnana: encoding JWKS: %w", err)
	}
	set.jwks = b
	return set, nil
}

// loadKey reads one PEM file: an RSA private key, PKCS#8 or PKCS#1, of at least
// MinKeyBits. Its kid is recomputed from the key, never taken from the file name.
func loadKey(path string) (*storedKey, error) {
	data, err := configs.ReadFileLimited(path, 1<<20)
	if err != nil {
		return nil, fmt.Errorf("spotnana: %s: %w", path, err)
	}
	block, _ := pem.Decode(data)
	if block == nil {
		return nil, fmt.Errorf("spotnana: %s: no PEM block", path)
	}
	var raw any
	switch block.Type {
	case "PRIVATE KEY":
		raw, err = x509.ParsePKCS8PrivateKey(block.Bytes)
	case "RSA PRIVATE KEY":
		raw, err = x509.ParsePKCS1PrivateKey(block.Bytes)
	default:
		return nil, fmt.Errorf("spotnana: %s: PEM block %q is not a private key", path, block.Type)
	}
	if err != nil {
		return nil, fmt.Errorf("spotnana: %s: %w", path, err)
	}
	priv, ok := raw.(*rsa.PrivateKey)
	if !ok {
		return nil, fmt.Errorf("spotnana: %s: not an RSA key (RS256 needs one)", path)
	}
	if priv.N.BitLen() < MinKeyBits {
		return nil, fmt.Errorf("spotnana: %s: RSA key of %d bits, at least %d required", path, priv.N.BitLen(), MinKeyBits)
	}
	kid, err := thumbprint(&priv.PublicKey)
	if err != nil {
		return nil, err
	}
	k, err := jwk.Import(priv)
	if err != nil {
		return nil, fmt.Errorf("spotnana: %s: %w", path, err)
	}
	// One algorithm per key (RFC 8725 §3.1): the JWKS says so, and so do we when signing.
	for name, v := range map[string]any{jwk.KeyIDKey: kid, jwk.AlgorithmKey: jwa.RS256(), jwk.KeyUsageKey: "sig"} {
		if err := k.Set(name, v); err != nil {
			return nil, fmt.Errorf("spotnana: %s: %w", path, err)
		}
	}
	return &storedKey{kid: kid, path: path, priv: k}, nil
}

func (s *KeyStore) current() *keySet {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.set
}

// JWKS returns the public keys of every key in the directory ({"keys":[…]}, each with
// kid, alg RS256 and use sig). The slice must not be modified.
func (s *KeyStore) JWKS() []byte { return s.current().jwks }

// Handler serves the JWKS (GET and HEAD), cacheable for five minutes: publish_ahead
// (default 10m) is meant to exceed that.
func (s *KeyStore) Handler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
			return
		}
		b := s.JWKS()
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Cache-Control", "public, max-age=300")
		http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(b))
	})
}

// SigningKID names the key that would sign now.
func (s *KeyStore) SigningKID() string { return s.signer().kid }

// signer applies the selection rule documented on KeyStore.
func (s *KeyStore) signer() *storedKey {
	keys := s.current().keys
	now := s.now()
	for i := len(keys) - 1; i >= 0; i-- {
		if !keys[i].created.Add(s.publishAhead).After(now) {
			return keys[i]
		}
	}
	return keys[0]
}

// AssertionClaims is the payload of an assertion, as Spotnana's JWKS variant documents.
type AssertionClaims struct {
	Issuer   string    // iss; required
	Subject  string    // sub; required (see SubjectFor)
	Audience string    // aud; "" means "spotnana"
	Email    string    // email; required
	IssuedAt time.Time // iat; zero means now
	TTL      time.Duration
	// ID is jti; "" means a random one.
	ID string
}

// Sign returns an RS256 JWT of claims with the selected key's kid in its header.
// exp is iat + TTL (default 5m).
func (s *KeyStore) Sign(claims AssertionClaims) (string, error) {
	if claims.Issuer == "" || claims.Subject == "" || claims.Email == "" {
		return "", errors.New("spotnana: assertion needs iss, sub and email")
	}
	if claims.Audience == "" {
		claims.Audience = DefaultAssertionAudience
	}
	if claims.IssuedAt.IsZero() {
		claims.IssuedAt = s.now()
	}
	if claims.TTL <= 0 {
		claims.TTL = DefaultAssertionTTL
	}
	if claims.ID == "" {
		claims.ID = rand.Text()
	}
	iat := claims.IssuedAt.Truncate(time.Second)
	tok, err := jwt.NewBuilder().
		Issuer(claims.Issuer).
		Subject(claims.Subject).
		Audience([]string{claims.Audience}).
		IssuedAt(iat).
		Expiration(iat.Add(claims.TTL)).
		JwtID(claims.ID).
		Claim("email", claims.Email).
		Build()
	if err != nil {
		return "", fmt.Errorf("spotnana: building assertion: %w", err)
	}
	k := s.signer()
	b, err := jwt.Sign(tok, jwt.WithKey(jwa.RS256(), k.priv))
	if err != nil {
		return "", fmt.Errorf("spotnana: signing assertion: %w", err)
	}
	return string(b), nil
}

// SubjectFor picks the assertion's sub: the string at subjectPath (a gjson path, ""
// meaning "sub") in the user's identity document, else the email.
func SubjectFor(doc []byte, subjectPath, email string) string {
	if subjectPath == "" {
		subjectPath = DefaultSubjectPath
	}
	if gjson.ValidBytes(doc) {
		r := gjson.GetBytes(doc, subjectPath)
		if r.IsArray() {
			for _, e := range r.Array() {
				if s := strings.TrimSpace(e.String()); s != "" && e.Type == gjson.String {
					return s
				}
			}
		} else if r.Type == gjson.String || r.Type == gjson.Number {
			if s := strings.TrimSpace(r.String()); s != "" {
				return s
			}
		}
	}
	return email
}

// Asserter mints assertion-mode subject tokens from validated identities.
type Asserter struct {
	keys             *KeyStore
	issuer           string
	audience         string
	subjectPath      string
	subjectTokenType string
	ttl              time.Duration
	now              func() time.Time
}

// NewAsserter applies cfg's defaults (audience spotnana, subject_path sub, ttl 5m,
// subject_token_type access_token); issuer is required. now may be nil.
func NewAsserter(cfg *configs.Assertion, keys *KeyStore, now func() time.Time) (*Asserter, error) {
	if cfg == nil || cfg.Issuer == "" {
		return nil, errors.New("spotnana.assertion.issuer: required in assertion mode")
	}
	if keys == nil {
		return nil, errors.New("spotnana: asserter needs a key store")
	}
	if cfg.TTL < 0 {
		return nil, errors.New("spotnana.assertion.ttl: must not be negative")
	}
	a := &Asserter{
		keys: keys, issuer: cfg.Issuer, audience: cfg.Audience, subjectPath: cfg.SubjectPath,
		subjectTokenType: cfg.SubjectTokenType, ttl: cfg.TTL, now: now,
	}
	if a.audience == "" {
		a.audience = DefaultAssertionAudience
	}
	if a.subjectPath == "" {
		a.subjectPath = DefaultSubjectPath
	}
	if a.subjectTokenType == "" {
		a.subjectTokenType = TokenTypeAccessToken
	}
	if a.ttl == 0 {
		a.ttl = DefaultAssertionTTL
	}
	if a.now == nil {
		a.now = time.Now
	}
	return a, nil
}

// Assert returns the signed assertion for a user (doc: the identity document, email:
// the mapped email) and the subject_token_type to send with it.
func (a *Asserter) Assert(doc []byte, email string) (token, tokenType string, err error) {
	token, err = a.keys.Sign(AssertionClaims{
		Issuer:   a.issuer,
		Subject:  SubjectFor(doc, a.subjectPath, email),
		Audience: a.audience,
		Email:    email,
		IssuedAt: a.now(),
		TTL:      a.ttl,
	})
	return token, a.subjectTokenType, err
}
