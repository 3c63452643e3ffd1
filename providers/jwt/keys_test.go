package jwt

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"math/big"
	"strings"
	"testing"
)

func b64u(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }

func rsaEntry(pub *rsa.PublicKey, kid string) map[string]any {
	return map[string]any{"kty": "RSA", "kid": kid, "n": b64u(pub.N.Bytes()), "e": b64u(big.NewInt(int64(pub.E)).Bytes())}
}

func jwks(t *testing.T, keys ...any) []byte {
	t.Helper()
	b, err := json.Marshal(map[string]any{"keys": keys})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestParseKeySetSkipsUnusableKeys: every key idbridge cannot use is skipped with its
// reason (RFC 7517 §5), and the usable ones stay.
func TestParseKeySetSkipsUnusableKeys(t *testing.T) {
	good, _ := rsa.GenerateKey(rand.Reader, 2048)
	weak, _ := rsa.GenerateKey(rand.Reader, 1024)
	ec, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	ecb, _ := ec.PublicKey.Bytes()
	huge := make([]byte, 1<<17) // a 1-Mbit modulus: refused by its length alone
	huge[0] = 0x80
	cases := []struct {
		name   string
		entry  any
		reason string
	}{
		{"post-quantum AKP", map[string]any{"kty": "AKP", "kid": "k", "alg": "ML-DSA-65", "pub": "AAAA"}, `key type "AKP" is not supported`},
		{"secp256k1", map[string]any{"kty": "EC", "kid": "k", "crv": "secp256k1", "x": b64u(ecb[1:33]), "y": b64u(ecb[33:])}, `EC curve "secp256k1"`},
		{"P-521", map[string]any{"kty": "EC", "kid": "k", "crv": "P-521", "x": "AA", "y": "AA"}, `EC curve "P-521"`},
		{"RSA as x5c only", map[string]any{"kty": "RSA", "kid": "k", "x5c": []string{"MIIB"}}, "x5c"},
		{"EC without y", map[string]any{"kty": "EC", "kid": "k", "crv": "P-256", "x": b64u(ecb[1:33])}, "without y"},
		{"RSA-1024", rsaEntry(&weak.PublicKey, "k"), "1024 bits is outside 2048–8192"},
		{"RSA 1 Mbit", map[string]any{"kty": "RSA", "kid": "k", "n": b64u(huge), "e": "AQAB"}, "larger than"},
		{"RSA 16384", map[string]any{"kty": "RSA", "kid": "k", "n": b64u(huge[:2048]), "e": "AQAB"}, "16384 bits is outside"},
		{"encryption key", map[string]any{"kty": "RSA", "kid": "k", "use": "enc", "n": b64u(good.N.Bytes()), "e": "AQAB"}, `use "enc"`},
		{"HMAC-bound alg", map[string]any{"kty": "RSA", "kid": "k", "alg": "HS256", "n": b64u(good.N.Bytes()), "e": "AQAB"}, `alg "HS256"`},
		{"symmetric", map[string]any{"kty": "oct", "kid": "k", "k": "c2VjcmV0"}, `key type "oct"`},
		{"X25519", map[string]any{"kty": "OKP", "kid": "k", "crv": "X25519", "x": "AA"}, `OKP curve "X25519"`},
		{"not an object", "a string", "not a JSON object"},
		{"no kty", map[string]any{"kid": "k"}, "kty missing"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			ks, err := parseKeySet(jwks(t, rsaEntry(&good.PublicKey, "good"), c.entry), false)
			if err != nil {
				t.Fatalf("one unusable key failed the set: %v", err)
			}
			if len(ks.all) != 1 || len(ks.byKid["good"]) != 1 {
				t.Fatalf("usable keys %d", len(ks.all))
			}
			if len(ks.skipped) != 1 || !strings.Contains(ks.skipped[0].Reason, c.reason) || ks.skipped[0].Index != 1 {
				t.Fatalf("skipped %+v, want one with reason %q", ks.skipped, c.reason)
			}
			// Alone, it leaves no usable key: that is still an error.
			if _, err := parseKeySet(jwks(t, c.entry), false); err == nil || !strings.Contains(err.Error(), "no usable signature verification key") {
				t.Fatalf("a set of only this key: %v", err)
			}
		})
	}
}

func TestParseKeySetBounds(t *testing.T) {
	k, _ := rsa.GenerateKey(rand.Reader, 2048)
	var entries []any
	for i := range maxSetEntries + 10 {
		entries = append(entries, rsaEntry(&k.PublicKey, fmt.Sprint("kid-", i%50)))
	}
	ks, err := parseKeySet(jwks(t, entries...), false)
	if err != nil {
		t.Fatal(err)
	}
	if len(ks.all) != maxUsableKeys {
		t.Errorf("usable keys %d, want the cap %d", len(ks.all), maxUsableKeys)
	}
	for kid, keys := range ks.byKid {
		if len(keys) > maxKeysPerKid {
			t.Errorf("%d keys under %s", len(keys), kid)
		}
	}
	if got := len(ks.all) + len(ks.skipped); got != maxSetEntries+10 {
		t.Errorf("%d keys accounted for, want %d", got, maxSetEntries+10)
	}
	last := ks.skipped[len(ks.skipped)-1]
	if !strings.Contains(last.Reason, "beyond the first 100 entries") {
		t.Errorf("last skip: %+v", last)
	}
	// Too many keys under one kid.
	var same []any
	for range 6 {
		same = append(same, rsaEntry(&k.PublicKey, "one"))
	}
	ks, err = parseKeySet(jwks(t, same...), false)
	if err != nil || len(ks.byKid["one"]) != maxKeysPerKid || len(ks.skipped) != 2 {
		t.Fatalf("six keys under one kid: %v, kept %d, skipped %d", err, len(ks.byKid["one"]), len(ks.skipped))
	}
}

func TestParseKeySetMalformedSet(t *testing.T) {
	for _, doc := range []string{``, `[]`, `{"keys":{}}`, `{"nokeys":[]}`, `{"keys":[],"keys":[]}`, `{"keys":[`} {
		if _, err := parseKeySet([]byte(doc), false); err == nil {
			t.Errorf("%q: no error", doc)
		}
	}
}

// A PEM jwks_file: each block on its own; an unusable block does not hide the others.
func TestParseKeySetPEM(t *testing.T) {
	good, _ := rsa.GenerateKey(rand.Reader, 2048)
	weak, _ := rsa.GenerateKey(rand.Reader, 1024)
	var buf strings.Builder
	for _, pub := range []*rsa.PublicKey{&weak.PublicKey, &good.PublicKey} {
		der, _ := x509.MarshalPKIXPublicKey(pub)
		pem.Encode(&buf, &pem.Block{Type: "PUBLIC KEY", Bytes: der})
	}
	pem.Encode(&buf, &pem.Block{Type: "PRIVATE KEY", Bytes: []byte("junk")})
	ks, err := parseKeySet([]byte(buf.String()), true)
	if err != nil {
		t.Fatal(err)
	}
	if len(ks.all) != 1 || ks.all[0].kid == "" || len(ks.skipped) != 2 {
		t.Fatalf("usable %d (kid %q), skipped %+v", len(ks.all), ks.all[0].kid, ks.skipped)
	}
}

// FuzzParseKeySet: no key set, however malformed, panics, and every key kept is within
// the bounds.
func FuzzParseKeySet(f *testing.F) {
	k, _ := rsa.GenerateKey(rand.Reader, 2048)
	good, _ := json.Marshal(map[string]any{"keys": []any{rsaEntry(&k.PublicKey, "a")}})
	f.Add(good)
	f.Add([]byte(`{"keys":[{"kty":"AKP","pub":"AA"},{"kty":"EC","crv":"P-256","x":"AA"}]}`))
	f.Add([]byte(`{"keys":[{"kty":"RSA","n":"AQAB","e":"AQAB","x5c":["AA"]},1,null,[]]}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		ks, err := parseKeySet(data, isPEM(data))
		if err != nil || ks == nil {
			return
		}
		if len(ks.all) > maxUsableKeys {
			t.Fatalf("%d usable keys", len(ks.all))
		}
		for _, key := range ks.all {
			if rk, ok := key.pub.(*rsa.PublicKey); ok && (rk.N.BitLen() < minRSABits || rk.N.BitLen() > maxRSABits) {
				t.Fatalf("RSA key of %d bits kept", rk.N.BitLen())
			}
		}
	})
}
