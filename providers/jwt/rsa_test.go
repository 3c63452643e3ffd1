package jwt

import (
	"bytes"
	"crypto"
	"crypto/fips140"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"math/big"
	"os"
	"os/exec"
	"strings"
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

// testRSAKeys generates, once per test binary, keys of the usual sizes plus the shapes
// that take other code paths in the arithmetic: a modulus that does not fill its last
// 64-bit word (2049 bits) and the exponent 3 (the classic target of forged signatures).
// A 4096-bit key takes about a second.
func testRSAKeys(t testing.TB) []*rsa.PrivateKey {
	t.Helper()
	rsaTestKeysOnce.Do(func() {
		for _, bits := range []int{2048, 3072, 4096, 2049} {
			k, err := rsa.GenerateKey(rand.Reader, bits)
			if err != nil {
				panic(err)
			}
			rsaTestKeys = append(rsaTestKeys, k)
		}
		rsaTestKeys = append(rsaTestKeys, rsaKeyE3(2048))
	})
	return rsaTestKeys
}

// rsaKeyE3 builds a bits-long key with e = 3, which rsa.GenerateKey never makes.
func rsaKeyE3(bits int) *rsa.PrivateKey {
	e := big.NewInt(3)
	one := big.NewInt(1)
	for {
		p, err := rand.Prime(rand.Reader, bits/2)
		if err != nil {
			panic(err)
		}
		q, err := rand.Prime(rand.Reader, bits-bits/2)
		if err != nil {
			panic(err)
		}
		n := new(big.Int).Mul(p, q)
		p1, q1 := new(big.Int).Sub(p, one), new(big.Int).Sub(q, one)
		phi := new(big.Int).Mul(p1, q1)
		d := new(big.Int).ModInverse(e, phi)
		if p.Cmp(q) == 0 || n.BitLen() != bits || d == nil {
			continue
		}
		k := &rsa.PrivateKey{PublicKey: rsa.PublicKey{N: n, E: 3}, D: d, Primes: []*big.Int{p, q}}
		k.Precompute()
		if k.Validate() != nil {
			continue
		}
		return k
	}
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
			firstByte := bytes.Clone(em)
			firstByte[0] = 1
			firstPS := bytes.Clone(em)
			firstPS[2] = 0xfe
			lastPS := bytes.Clone(em)
			lastPS[k-len(a.prefix)-len(digest)-2] = 0xfe
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
				{"first byte not zero", a.alg, input, rawSign(priv, firstByte), false},
				{"first padding byte not 0xff", a.alg, input, rawSign(priv, firstPS), false},
				{"last padding byte not 0xff", a.alg, input, rawSign(priv, lastPS), false},
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
		"even modulus":           {N: even, E: 65537},
		"exponent 1":             {N: priv.N, E: 1},
		"even exponent":          {N: priv.N, E: 65536},
		"odd exponent above 2³¹": {N: priv.N, E: 1<<31 + 1},
		"negative exponent":      {N: priv.N, E: -3},
	} {
		if _, err := newRSAKey(pk); err == nil {
			t.Errorf("%s: accepted", name)
		}
		// crypto/rsa must refuse the key itself, not merely this signature: otherwise
		// refusing it here would lock out a key that crypto/rsa could use.
		err := rsa.VerifyPKCS1v15(pk, crypto.SHA256, make([]byte, 32), make([]byte, priv.Size()))
		if err == nil || err == rsa.ErrVerification {
			t.Errorf("%s: crypto/rsa does not refuse the key (%v)", name, err)
		}
	}
	for _, e := range []int{3, 65537, 1<<31 - 1} {
		if _, err := newRSAKey(&rsa.PublicKey{N: priv.N, E: e}); err != nil {
			t.Errorf("e=%d: %v", e, err)
		}
	}
}

// TestRSAKeyRefusesNonCanonicalSignatures: a genuine signature stays genuine only in its
// one canonical form, s < n in exactly k bytes. Stripping a leading zero byte, or adding
// n to s, must be refused, as crypto/rsa refuses them.
func TestRSAKeyRefusesNonCanonicalSignatures(t *testing.T) {
	// A modulus well below 2^2048, so that s + n still fits in 256 bytes for many s.
	var priv *rsa.PrivateKey
	limit := new(big.Int).Lsh(big.NewInt(13), 2048-4) // 13/16 of 2^2048 (GenerateKey makes n ≥ 9/16 of it)
	for priv == nil || priv.N.Cmp(limit) > 0 {
		var err error
		if priv, err = rsa.GenerateKey(rand.Reader, 2048); err != nil {
			t.Fatal(err)
		}
	}
	rk := mustRSAKey(t, &priv.PublicKey)
	k := priv.Size()
	bound := new(big.Int).Lsh(big.NewInt(1), uint(8*k))
	var leadingZero, wrapped bool
	for i := 0; i < 20000 && !(leadingZero && wrapped); i++ {
		input := []byte{byte(i), byte(i >> 8), 'x'}
		sig := signPKCS1v15(t, priv, crypto.SHA256, input)
		if _, err := rk.verifyPKCS1v15("RS256", input, sig); err != nil {
			t.Fatalf("genuine signature refused: %v", err)
		}
		check := func(what string, bad []byte) {
			t.Helper()
			_, err := rk.verifyPKCS1v15("RS256", input, bad)
			ref := stdVerify(&priv.PublicKey, crypto.SHA256, input, bad)
			if err == nil || ref == nil {
				t.Errorf("%s: ours %v, crypto/rsa %v, want both to refuse", what, err, ref)
			}
		}
		if sig[0] == 0 && !leadingZero {
			leadingZero = true
			check("leading zero byte stripped", sig[1:])
		}
		if s := new(big.Int).Add(new(big.Int).SetBytes(sig), priv.N); s.Cmp(bound) < 0 && !wrapped {
			wrapped = true
			check("s + n", s.FillBytes(make([]byte, k)))
		}
	}
	if !leadingZero || !wrapped {
		t.Fatalf("found no signature to alter (leading zero %v, s + n %v)", leadingZero, wrapped)
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
		// One prepared key serves every request at once. bigmod's arithmetic is marked
		// go:norace, so the race detector does not see inside it; what this checks is
		// that answers stay right when verifications overlap.
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

// FuzzRSAVerifyEncoding fuzzes the block a signature decrypts to, which random signatures
// almost never reach past the first bytes: each input is taken as EM, signed with the
// private key as it is, and both verifiers must agree on it. The seeds are the genuine
// encodings; the rest is the fuzzer's mutation of them.
func FuzzRSAVerifyEncoding(f *testing.F) {
	priv := testRSAKeys(f)[3] // 2049 bits: the last word is partly used
	rk := mustRSAKey(f, &priv.PublicKey)
	k := priv.Size()
	input := []byte("eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJmdXp6In0")
	for i, a := range rsaAlgs {
		d := a.hash.New()
		d.Write(input)
		f.Add(uint8(i), encodeEM(k, a.prefix, d.Sum(nil)))
	}
	f.Fuzz(func(t *testing.T, algIdx uint8, em []byte) {
		a := rsaAlgs[int(algIdx)%len(rsaAlgs)]
		if len(em) != k || new(big.Int).SetBytes(em).Cmp(priv.N) >= 0 {
			return // not a block the private key can sign as is
		}
		sig := rawSign(priv, em)
		_, err := rk.verifyPKCS1v15(a.alg, input, sig)
		if ref := stdVerify(&priv.PublicKey, a.hash, input, sig); (err == nil) != (ref == nil) {
			t.Fatalf("%s on EM %x: ours %v, crypto/rsa %v", a.alg, em, err, ref)
		}
	})
}

// TestFIPSModeKeepsCryptoRSA: under GODEBUG=fips140=on, keys are not prepared, so that
// every RSA check stays inside the validated module. The check runs in a child process,
// since the mode is fixed when a process starts.
func TestFIPSModeKeepsCryptoRSA(t *testing.T) {
	if os.Getenv("IDBRIDGE_FIPS_CHILD") == "1" {
		if !fips140.Enabled() {
			t.Fatal("child runs without FIPS 140-3 mode")
		}
		priv := testRSAKeys(t)[0]
		ks, err := parseKeySet(jwks(t, rsaEntry(&priv.PublicKey, "k")), false)
		if err != nil || len(ks.all) != 1 {
			t.Fatalf("%v %+v", err, ks)
		}
		if ks.all[0].rsa != nil {
			t.Fatal("key prepared in FIPS mode")
		}
		input := []byte("header.payload")
		if err := ks.all[0].verify("RS256", input, signPKCS1v15(t, priv, crypto.SHA256, input)); err != nil {
			t.Fatalf("verify through crypto/rsa: %v", err)
		}
		return
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestFIPSModeKeepsCryptoRSA$", "-test.count=1", "-test.v")
	cmd.Env = append(os.Environ(), "IDBRIDGE_FIPS_CHILD=1", "GODEBUG=fips140=on")
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "--- PASS: TestFIPSModeKeepsCryptoRSA") {
		t.Fatalf("child: %v\n%s", err, out)
	}
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
