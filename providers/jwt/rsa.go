package jwt

import (
	"bytes"
	"crypto/fips140"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/sha512"
	"errors"

	"filippo.io/bigmod"
)

// rsaKey is an RSA public key prepared once, when its key set is loaded, for RSASSA-PKCS1-v1_5
// verification (RFC 8017 §8.2.2; JWS RS256, RS384 and RS512, RFC 7518 §3.3).
//
// Why not crypto/rsa: rsa.VerifyPKCS1v15 rebuilds the modulus' Montgomery constants from
// the *rsa.PublicKey on every call (it caches them for private keys only), which was about
// a third of the CPU of verifying a 2048-bit signature. A key set lives for minutes to
// days and signs every login, so this is the work BoringSSL and OpenSSL also keep on the
// key. The arithmetic is the standard library's own (filippo.io/bigmod is crypto/rsa's
// internal bigmod, published by its maintainer); what is ours is the check below, which
// mirrors crypto/rsa's: the signature is raised to e and compared, whole, against the
// encoding the expected digest must have. Nothing in the decrypted block is parsed, so
// malleable-padding forgeries (Bleichenbacher 2006) have nothing to aim at.
type rsaKey struct {
	n *bigmod.Modulus
	e uint
}

// newRSAKey prepares pk. It refuses what crypto/rsa refuses at verification time (an even
// modulus, an exponent that is even, below 3 or above 2³¹−1): jwk parsing refuses most
// such keys already, and checking here keeps this verifier from depending on that. A
// refusal is reported as a skipped key, never a failure of every token. In FIPS 140-3
// mode (GODEBUG=fips140=on or only) it returns nil and no error: every check then stays
// inside the validated module, crypto/rsa through jwx.
func newRSAKey(pk *rsa.PublicKey) (*rsaKey, error) {
	if pk.N == nil || pk.N.Bit(0) == 0 {
		return nil, errors.New("RSA modulus is even")
	}
	if pk.E < 3 || pk.E&1 == 0 || pk.E > 1<<31-1 {
		return nil, errors.New("RSA public exponent is not an odd number from 3 to 2³¹−1")
	}
	if fips140.Enabled() {
		return nil, nil
	}
	n, err := bigmod.NewModulus(pk.N.Bytes())
	if err != nil {
		return nil, err
	}
	return &rsaKey{n: n, e: uint(pk.E)}, nil
}

// errRSAVerification is every reason a PKCS #1 v1.5 signature does not verify: callers
// need only "no", and a finer reason would help nobody but a forger.
var errRSAVerification = errors.New("rsa: verification error")

// DigestInfo prefixes of RFC 8017 §9.2 note 1, as crypto/rsa has them.
var (
	prefixSHA256 = []byte{0x30, 0x31, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x01, 0x05, 0x00, 0x04, 0x20}
	prefixSHA384 = []byte{0x30, 0x41, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x02, 0x05, 0x00, 0x04, 0x30}
	prefixSHA512 = []byte{0x30, 0x51, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x03, 0x05, 0x00, 0x04, 0x40}
)

// verifyPKCS1v15 checks sig over input for alg "RS256", "RS384" or "RS512"; ok is false
// for any other alg, which the caller must then verify another way.
func (k *rsaKey) verifyPKCS1v15(alg string, input, sig []byte) (ok bool, err error) {
	var digest, prefix []byte
	switch alg {
	case "RS256":
		s := sha256.Sum256(input)
		digest, prefix = s[:], prefixSHA256
	case "RS384":
		s := sha512.Sum384(input)
		digest, prefix = s[:], prefixSHA384
	case "RS512":
		s := sha512.Sum512(input)
		digest, prefix = s[:], prefixSHA512
	default:
		return false, nil
	}
	// RFC 8017 §8.2.2 step 1: a signature of any length but the modulus' is invalid. (A
	// modulus too short for the encoding cannot load: keys are 2048 bits or more.)
	size := k.n.Size()
	t := len(prefix) + len(digest)
	if len(sig) != size || size < t+11 {
		return true, errRSAVerification
	}
	// Step 2: s must be below n (SetBytes refuses it otherwise); m = s^e mod n.
	s, err := bigmod.NewNat().SetBytes(sig, k.n)
	if err != nil {
		return true, errRSAVerification
	}
	em := bigmod.NewNat().ExpShortVarTime(s, k.e, k.n).Bytes(k.n)
	// Steps 3–4: EM' = 0x00 ‖ 0x01 ‖ PS (0xff…, at least 8 bytes) ‖ 0x00 ‖ DigestInfo ‖ H,
	// every byte compared.
	if em[0] != 0 || em[1] != 1 || em[size-t-1] != 0 ||
		!bytes.Equal(em[size-t:size-len(digest)], prefix) || !bytes.Equal(em[size-len(digest):], digest) {
		return true, errRSAVerification
	}
	for _, b := range em[2 : size-t-1] {
		if b != 0xff {
			return true, errRSAVerification
		}
	}
	return true, nil
}
