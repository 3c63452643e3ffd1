package jwt

import (
	"bytes"
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"math/big"
	"sync"
	"testing"
)

// rsaAlgs are the algorithms rsaKey verifies, with the hash crypto/rsa needs for each.
var rsaAlgs = []struct {
	alg    string
	hash   crypto.Hash
	prefix []byte
}{
	{"RS256", crypto.SHA256, prefixSHA256},
	{"RS384", crypto.SHA384, prefixSHA384},
	{"RS512", crypto.SHA512, prefixSHA512},
}

var (
	rsaTestKeysOnce sync.Once
	rsaTestKeys     []*rsa.PrivateKey
)

// testRSAKeys generates one key of each size idbridge accepts at the usual lengths, once
// per test binary (a 4096-bit key takes about a second).
func testRSAKeys(t testing.TB) []*rsa.PrivateKey {
	t.Helper()
	rsaTestKeysOnce.Do(func() {
		for _, bits := range []int{2048, 3072, 4096} {
			k, err := rsa.GenerateKey(rand.Reader, bits)
			if err != nil {
				panic(err)
			}
			rsaTestKeys = append(rsaTestKeys, k)
		}
	})
	return rsaTestKeys
}

func mustRSAKey(t testing.TB, pk *rsa.PublicKey) *rsaKey {
	t.Helper()
	rk, err := newRSAKey(pk)
	if err != nil {
		t.Fatal(err)
	}
	return rk
}

// stdVerify is the reference: crypto/rsa's verdict on sig over input under alg.
func stdVerify(pub *rsa.PublicKey, h crypto.Hash, input, sig []byte) error {
	d := h.New()
	d.Write(input)
	return rsa.VerifyPKCS1v15(pub, h, d.Sum(nil), sig)
}

// signPKCS1v15 signs input under h the way an issuer does.
func signPKCS1v15(t testing.TB, priv *rsa.PrivateKey, h crypto.Hash, input []byte) []byte {
	t.Helper()
	d := h.New()
	d.Write(input)
	sig, err := rsa.SignPKCS1v15(rand.Reader, priv, h, d.Sum(nil))
	if err != nil {
		t.Fatal(err)
	}
	return sig
}

// rawSign applies the private operation to em as is, so that a test can sign an encoding
// that no honest signer would produce.
func rawSign(k *rsa.PrivateKey, em []byte) []byte {
	s := new(big.Int).Exp(new(big.Int).SetBytes(em), k.D, k.N)
	return s.FillBytes(make([]byte, k.Size()))
}

// encodeEM builds EMSA-PKCS1-v1_5 (RFC 8017 §9.2) for a k-byte modulus.
func encodeEM(k int, prefix, digest []byte) []byte {
	em := make([]byte, k)
	em[1] = 1
	t := len(prefix) + len(digest)
	for i := 2; i < k-t-1; i++ {
		em[i] = 0xff
	}
	copy(em[k-t:], prefix)
	copy(em[k-len(digest):], digest)
	return em
}

// TestRSAKeyAgreesWithCryptoRSA holds the prepared-key verifier to crypto/rsa's verdict on
// genuine signatures and on every kind of wrong one, at each key size and hash.
func TestRSAKeyAgreesWithCryptoRSA(t *testing.T) {
	input := []byte("eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ1MSJ9")
	for _, priv := range testRSAKeys(t) {
		pub := &priv.PublicKey
		rk := mustRSAKey(t, pub)
		other, err := rsa.GenerateKey(rand.Reader, priv.N.BitLen())
		if err != nil {
			t.Fatal(err)
		}
		for _, a := range rsaAlgs {
			d := a.hash.New()
			d.Write(input)
			digest := d.Sum(nil)
			good := signPKCS1v15(t, priv, a.hash, input)
			k := priv.Size()
			flip := func(i int) []byte {
				s := bytes.Clone(good)
				s[i] ^= 0x01
				return s
			}
			otherSig := signPKCS1v15(t, other, a.hash, input)
			// The classic forgeries target verifiers that parse the decrypted block:
			// garbage after the digest, a short padding, a foreign DigestInfo.
			em := encodeEM(k, a.prefix, digest)
			garbage := make([]byte, k)
			garbage[1] = 1
			copy(garbage[2:], []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x00})
			copy(garbage[11:], a.prefix)
			copy(garbage[11+len(a.prefix):], digest)
			shortPS := bytes.Clone(em)
			shortPS[5] = 0x00
			badPS := bytes.Clone(em)
			badPS[10] = 0xfe
			badHead := bytes.Clone(em)
			badHead[1] = 2
			noSep := bytes.Clone(em)
			noSep[k-len(a.prefix)-len(digest)-1] = 0xff
			foreignPrefix := bytes.Clone(em)
			foreignPrefix[k-len(digest)-5] ^= 0x01
			cases := []struct {
				name  string
				alg   string
				input []byte
				sig   []byte
				valid bool
			}{
				{"genuine", a.alg, input, good, true},
				{"raw-signed genuine encoding", a.alg, input, rawSign(priv, em), true},
				{"other input", a.alg, append(bytes.Clone(input), 'x'), good, false},
				{"first byte flipped", a.alg, input, flip(0), false},
				{"middle byte flipped", a.alg, input, flip(k / 2), false},
				{"last byte flipped", a.alg, input, flip(k - 1), false},
				{"one byte short", a.alg, input, good[1:], false},
				{"leading zero added", a.alg, input, append([]byte{0}, good...), false},
				{"empty", a.alg, input, nil, false},
				{"all zero", a.alg, input, make([]byte, k), false},
				{"all 0xff (above n)", a.alg, input, bytes.Repeat([]byte{0xff}, k), false},
				{"n itself", a.alg, input, priv.N.FillBytes(make([]byte, k)), false},
				{"another key's signature", a.alg, input, otherSig, false},
				{"garbage after the digest", a.alg, input, rawSign(priv, garbage), false},
				{"padding cut short", a.alg, input, rawSign(priv, shortPS), false},
				{"padding byte not 0xff", a.alg, input, rawSign(priv, badPS), false},
				{"block type 2", a.alg, input, rawSign(priv, badHead), false},
				{"no zero separator", a.alg, input, rawSign(priv, noSep), false},
				{"DigestInfo altered", a.alg, input, rawSign(priv, foreignPrefix), false},
			}
			for _, b := range rsaAlgs {
				if b.alg != a.alg {
					cases = append(cases, struct {
						name  string
						alg   string
						input []byte
						sig   []byte
						valid bool
					}{"checked as " + b.alg, b.alg, input, good, false})
				}
			}
			for _, c := range cases {
				ok, err := rk.verifyPKCS1v15(c.alg, c.input, c.sig)
				if !ok {
					t.Fatalf("%d bits %s %s: alg not handled", priv.N.BitLen(), a.alg, c.name)
				}
				h := a.hash
				for _, b := range rsaAlgs {
					if b.alg == c.alg {
						h = b.hash
					}
				}
				ref := stdVerify(pub, h, c.input, c.sig)
				if (err == nil) != c.valid || (ref == nil) != c.valid {
					t.Errorf("%d bits %s %s: ours %v, crypto/rsa %v, want valid=%v", priv.N.BitLen(), a.alg, c.name, err, ref, c.valid)
				}
			}
		}
	}
}

// TestRSAKeyLeavesOtherAlgsToJWX: PS256 and friends are RSA keys too, but not PKCS #1 v1.5;
// the verifier must say it did not check them rather than refuse or accept.
func TestRSAKeyLeavesOtherAlgsToJWX(t *testing.T) {
	priv := testRSAKeys(t)[0]
	rk := mustRSAKey(t, &priv.PublicKey)
	for _, alg := range []string{"PS256", "PS384", "PS512", "ES256", "EdDSA", "none", ""} {
		if ok, err := rk.verifyPKCS1v15(alg, []byte("x"), make([]byte, priv.Size())); ok || err != nil {
			t.Errorf("%q: ok=%v err=%v, want not handled", alg, ok, err)
		}
	}
	k := &key{kind: kindRSA, pub: &priv.PublicKey, rsa: rk}
	d := crypto.SHA256.New()
	d.Write([]byte("in"))
	sig, err := rsa.SignPSS(rand.Reader, priv, crypto.SHA256, d.Sum(nil), &rsa.PSSOptions{SaltLength: rsa.PSSSaltLengthEqualsHash})
	if err != nil {
		t.Fatal(err)
	}
	if err := k.verify("PS256", []byte("in"), sig); err != nil {
		t.Errorf("PS256 through key.verify: %v", err)
	}
}

// TestNewRSAKeyRefusesWhatCryptoRSARefuses: keys crypto/rsa would fail at every
// verification are refused when the set loads, with a reason for the skipped-key report.
func TestNewRSAKeyRefusesWhatCryptoRSARefuses(t *testing.T) {
	priv := testRSAKeys(t)[0]
	even := new(big.Int).Add(priv.N, big.NewInt(1))
	for name, pk := range map[string]*rsa.PublicKey{
		"even modulus":       {N: even, E: 65537},
		"exponent 1":         {N: priv.N, E: 1},
		"even exponent":      {N: priv.N, E: 65536},
		"exponent too large": {N: priv.N, E: 1 << 31},
		"negative exponent":  {N: priv.N, E: -3},
	} {
		if _, err := newRSAKey(pk); err == nil {
			t.Errorf("%s: accepted", name)
		}
		if err := rsa.VerifyPKCS1v15(pk, crypto.SHA256, make([]byte, 32), make([]byte, priv.Size())); err == nil {
			t.Errorf("%s: crypto/rsa accepted it, so refusing it here is not needed", name)
		}
	}
	if _, err := newRSAKey(&rsa.PublicKey{N: priv.N, E: 3}); err != nil {
		t.Errorf("e=3: %v", err)
	}
}

// TestLoadedRSAKeysArePrepared: every RSA key a set loads, from a JWKS or from PEM, takes
// the prepared path, and it verifies what the issuer signs.
func TestLoadedRSAKeysArePrepared(t *testing.T) {
	priv := testRSAKeys(t)[1]
	der, err := x509.MarshalPKIXPublicKey(&priv.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	pemSet := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
	input := []byte("header.payload")
	sig := signPKCS1v15(t, priv, crypto.SHA384, input)
	for name, set := range map[string][]byte{"jwks": jwks(t, rsaEntry(&priv.PublicKey, "k")), "pem": pemSet} {
		ks, err := parseKeySet(set, name == "pem")
		if err != nil || len(ks.all) != 1 {
			t.Fatalf("%s: %v %+v", name, err, ks)
		}
		k := ks.all[0]
		if k.rsa == nil {
			t.Fatalf("%s: RSA key loaded without its prepared form", name)
		}
		if err := k.verify("RS384", input, sig); err != nil {
			t.Errorf("%s: %v", name, err)
		}
		if err := k.verify("RS384", append(input, '.'), sig); err == nil {
			t.Errorf("%s: a signature over other input verified", name)
		}
		// One prepared key serves every request at once (go test -race checks the
		// sharing).
		var wg sync.WaitGroup
		for range 8 {
			wg.Go(func() {
				for range 4 {
					if err := k.verify("RS384", input, sig); err != nil {
						t.Errorf("%s, concurrently: %v", name, err)
					}
				}
			})
		}
		wg.Wait()
	}
}

// FuzzRSAVerifyPKCS1v15 holds the verifier to crypto/rsa's verdict on arbitrary
// signatures and inputs.
func FuzzRSAVerifyPKCS1v15(f *testing.F) {
	priv := testRSAKeys(f)[0]
	rk := mustRSAKey(f, &priv.PublicKey)
	for i, a := range rsaAlgs {
		f.Add(uint8(i), []byte("seed"), signPKCS1v15(f, priv, a.hash, []byte("seed")))
	}
	f.Add(uint8(0), []byte{}, []byte{})
	f.Fuzz(func(t *testing.T, algIdx uint8, input, sig []byte) {
		a := rsaAlgs[int(algIdx)%len(rsaAlgs)]
		ok, err := rk.verifyPKCS1v15(a.alg, input, sig)
		if !ok {
			t.Fatalf("%s not handled", a.alg)
		}
		if ref := stdVerify(&priv.PublicKey, a.hash, input, sig); (err == nil) != (ref == nil) {
			t.Fatalf("%s: ours %v, crypto/rsa %v", a.alg, err, ref)
		}
	})
}

// BenchmarkVerifyRS256 compares the prepared key with crypto/rsa on one 2048-bit
// signature, the cost every new login pays.
func BenchmarkVerifyRS256(b *testing.B) {
	priv := testRSAKeys(b)[0]
	input := []byte("eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ1MSJ9")
	sig := signPKCS1v15(b, priv, crypto.SHA256, input)
	b.Run("prepared", func(b *testing.B) {
		rk := mustRSAKey(b, &priv.PublicKey)
		b.ReportAllocs()
		for b.Loop() {
			if _, err := rk.verifyPKCS1v15("RS256", input, sig); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("crypto-rsa", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if err := stdVerify(&priv.PublicKey, crypto.SHA256, input, sig); err != nil {
				b.Fatal(err)
			}
		}
	})
}
