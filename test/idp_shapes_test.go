package test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"math/big"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/idbridge/idbridge/demoissuer"
	"github.com/idbridge/idbridge/providers/introspection/idptest"
)

// keySource is how a jwt provider gets its keys; the key-set cases run through each.
type keySource string

const (
	viaDiscovery keySource = "discovery"
	viaJWKSURI   keySource = "jwks_uri"
	viaJWKSFile  keySource = "jwks_file"
)

var keySources = []keySource{viaDiscovery, viaJWKSURI, viaJWKSFile}

// keyIdP is an issuer whose published key set is its demoissuer keys plus extra raw JWK
// entries (keys idbridge cannot use), served by discovery and jwks_uri, or written to a
// jwks_file that publish rewrites.
type keyIdP struct {
	t      *testing.T
	is     *demoissuer.Issuer
	srv    *httptest.Server
	file   string
	extra  atomic.Pointer[[]json.RawMessage]
	only   atomic.Bool // publish the extra entries only
	mu     sync.Mutex
	jwksN  atomic.Int64
	source keySource
}

func newKeyIdP(t *testing.T, source keySource, extra []json.RawMessage, opts ...demoissuer.Option) *keyIdP {
	t.Helper()
	is, err := demoissuer.NewIssuer(append([]demoissuer.Option{demoissuer.WithoutServer()}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	k := &keyIdP{t: t, is: is, source: source, file: filepath.Join(t.TempDir(), "jwks.json")}
	k.extra.Store(&extra)
	mux := http.NewServeMux()
	mux.HandleFunc("GET /.well-known/openid-configuration", func(w http.ResponseWriter, r *http.Request) {
		writeTestJSON(w, map[string]any{"issuer": is.URL(), "jwks_uri": is.URL() + "/jwks"})
	})
	mux.HandleFunc("GET /jwks", func(w http.ResponseWriter, r *http.Request) {
		k.jwksN.Add(1)
		w.Header().Set("Content-Type", "application/jwk-set+json")
		w.Write(k.jwks())
	})
	k.srv = httptest.NewServer(mux)
	t.Cleanup(k.srv.Close)
	is.SetURL(k.srv.URL)
	k.publish()
	return k
}

func writeTestJSON(w http.ResponseWriter, v any) {
	b, _ := json.Marshal(v)
	w.Header().Set("Content-Type", "application/json")
	w.Write(b)
}

// jwks is the set as published now.
func (k *keyIdP) jwks() []byte {
	var set struct {
		Keys []json.RawMessage `json:"keys"`
	}
	if !k.only.Load() {
		b, err := k.is.JWKS()
		if err != nil {
			k.t.Error(err)
		}
		json.Unmarshal(b, &set)
	}
	set.Keys = append(set.Keys, *k.extra.Load()...)
	b, _ := json.Marshal(set)
	return b
}

// publish rewrites the jwks_file after a change to the keys (the served set is always
// current).
func (k *keyIdP) publish() {
	k.mu.Lock()
	defer k.mu.Unlock()
	tmp := k.file + ".tmp"
	if err := os.WriteFile(tmp, k.jwks(), 0o600); err != nil {
		k.t.Fatal(err)
	}
	os.Rename(tmp, k.file)
}

// fetches counts key set reads: HTTP fetches of the JWKS (a jwks_file read is not
// counted).
func (k *keyIdP) fetches() int64 { return k.jwksN.Load() }

// providerLines are the provider keys that select the key source (indented by four).
func (k *keyIdP) providerLines() string {
	switch k.source {
	case viaJWKSURI:
		return "    jwks_uri: " + k.srv.URL + "/jwks\n"
	case viaJWKSFile:
		return "    jwks_file: " + k.file + "\n"
	}
	return "    discovery: true\n"
}

func (k *keyIdP) config(extra string) string {
	return jwtConfig(k.is.URL(), k.providerLines()+extra)
}

func b64u(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }

func rawJWK(t *testing.T, v map[string]any) json.RawMessage {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// rsaJWK is an RSA public key's JWK under kid.
func rsaJWK(t *testing.T, pub *rsa.PublicKey, kid string) json.RawMessage {
	return rawJWK(t, map[string]any{"kty": "RSA", "kid": kid, "use": "sig", "alg": "RS256",
		"n": b64u(pub.N.Bytes()), "e": b64u(big.NewInt(int64(pub.E)).Bytes())})
}

// unusableKeys are entries shaped as IdPs really publish them, each of which idbridge
// cannot use: RFC 7517 §5 says to ignore them, not to reject the set.
func unusableKeys(t *testing.T) []json.RawMessage {
	t.Helper()
	k1024, err := rsa.GenerateKey(rand.Reader, 1024)
	if err != nil {
		t.Fatal(err)
	}
	// A 16384-bit modulus would take minutes to generate; its size is what matters.
	huge := make([]byte, 16384/8)
	rand.Read(huge)
	huge[0] |= 0x80
	ec, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	ecPub, _ := ec.PublicKey.Bytes() // 0x04 || X || Y
	return []json.RawMessage{
		// A post-quantum ML-DSA key (draft-ietf-cose-dilithium "AKP").
		rawJWK(t, map[string]any{"kty": "AKP", "alg": "ML-DSA-44", "kid": "pq-1", "pub": b64u(make([]byte, 1312))}),
		// An ES256K key (RFC 8812), on a curve idbridge does not verify.
		rawJWK(t, map[string]any{"kty": "EC", "crv": "secp256k1", "kid": "k1-1", "x": b64u(ecPub[1:33]), "y": b64u(ecPub[33:])}),
		// An RSA key given only as a certificate chain.
		rawJWK(t, map[string]any{"kty": "RSA", "kid": "x5c-only", "use": "sig", "x5c": []string{base64.StdEncoding.EncodeToString([]byte("not really a certificate"))}}),
		// An EC key without y.
		rawJWK(t, map[string]any{"kty": "EC", "crv": "P-256", "kid": "no-y", "x": b64u(ecPub[1:33])}),
		// RSA-1024 and RSA-16384: outside 2048–8192 bits.
		rsaJWK(t, &k1024.PublicKey, "rsa-1024"),
		rawJWK(t, map[string]any{"kty": "RSA", "kid": "rsa-16384", "n": b64u(huge), "e": "AQAB"}),
		// An encryption key.
		rawJWK(t, map[string]any{"kty": "RSA", "kid": "enc-1", "use": "enc", "alg": "RSA-OAEP-256", "n": b64u(k1024.N.Bytes()), "e": "AQAB"}),
	}
}

var unusableKIDs = []string{"pq-1", "k1-1", "x5c-only", "no-y", "rsa-1024", "rsa-16384", "enc-1"}

// Case 1 and 9: one unusable key no longer breaks the whole set; each is skipped and
// reported (log line with kid and reason, metric, /readyz detail, check and resolve
// output); a set with no usable key stays an error; oversized RSA keys and too many keys
// under one kid are skipped too.
func TestUnusableKeysAreSkipped(t *testing.T) {
	for _, src := range keySources {
		t.Run(string(src), func(t *testing.T) {
			t.Parallel()
			bad := unusableKeys(t)
			idp := newKeyIdP(t, src, bad)
			// Six keys under one kid, the issuer's real key last: only the first four
			// are kept, so a token naming that kid cannot make idbridge try more.
			var many []json.RawMessage
			for range 5 { // five others, then the real one
				other, err := rsa.GenerateKey(rand.Reader, 2048)
				if err != nil {
					t.Fatal(err)
				}
				many = append(many, rsaJWK(t, &other.PublicKey, "many"))
			}
			sk, _ := idp.is.SigningKey("RS256")
			many = append(many, rsaJWK(t, sk.Private.Public().(*rsa.PublicKey), "many"))
			extra := append(*idp.extra.Load(), many...)
			idp.extra.Store(&extra)
			idp.publish()

			cfgPath := writeConfig(t, idp.config(""))
			br := startBridgeFile(t, cfgPath)
			if r := do(t, "GET", br.URL+"/v1/user-detail", nil, bearer(mint(t, idp.is, nil))); r.Status != 200 {
				t.Fatalf("token under the usable key: %d %s", r.Status, r.Body)
			}
			if r := do(t, "GET", br.URL+"/v1/user-detail", nil, bearer(mint(t, idp.is, nil, demoissuer.WithKID("many")))); r.Status != 401 {
				t.Fatalf("the sixth key under one kid was used: %d %s", r.Status, r.Body)
			}
			r := do(t, "GET", br.Admin+"/readyz", nil)
			if r.Status != 200 {
				t.Fatalf("readyz %d: %s", r.Status, r.Body)
			}
			if !strings.Contains(r.Body, "9 unusable keys skipped") || !strings.Contains(r.Body, `pq-1`) {
				t.Errorf("readyz does not report the skipped keys: %s", r.Body)
			}
			m := do(t, "GET", br.Admin+"/metrics", nil)
			if !strings.Contains(m.Body, `idbridge_jwks_keys_skipped_total{provider="corp",result="skipped"} 9`) {
				t.Errorf("metrics lack the skipped keys:\n%s", grepLines(m.Body, "idbridge_jwks"))
			}
			logs := logsWith(t, br, `jwt: key skipped`)
			for _, kid := range unusableKIDs {
				if !regexp.MustCompile(`"msg":"jwt: key skipped".*"kid":"` + kid + `".*"reason":"[^"]+"`).MatchString(logs) {
					t.Errorf("no log line for skipped kid %s", kid)
				}
			}
			for _, want := range []string{"RSA modulus of 16384 bits is outside 2048–8192", "RSA modulus of 1024 bits", `key type \"AKP\" is not supported`, "secp256k1", "x5c", "EC key without y", "more than 4 keys under one kid"} {
				if !strings.Contains(logs, want) {
					t.Errorf("no skip reason %q in the logs", want)
				}
			}
			if src == viaJWKSFile {
				code, out, errOut := runCLI(t, "", "check", "--config", cfgPath)
				if code != 0 || !strings.Contains(errOut, `warning: key skipped: kid "pq-1"`) {
					t.Errorf("check: exit %d\n%s%s", code, out, errOut)
				}
			}
			code, out, errOut := runCLI(t, mint(t, idp.is, nil), "resolve", "--config", cfgPath, "--token", "-")
			if code != 0 || !strings.Contains(errOut, "key skipped") || !strings.Contains(errOut, "rsa-16384") {
				t.Errorf("resolve: exit %d\n%s%s", code, out, errOut)
			}

			// A set with no usable key is still an error: not ready, and check fails on
			// a jwks_file.
			idp.extra.Store(&bad)
			idp.only.Store(true)
			idp.publish()
			if src != viaJWKSFile {
				br2 := startBridgeFile(t, cfgPath)
				if r := do(t, "GET", br2.Admin+"/readyz", nil); r.Status != 503 || !strings.Contains(r.Body, "no usable signature verification key") {
					t.Errorf("readyz with no usable key: %d %s", r.Status, r.Body)
				}
			} else {
				// A local file is read when the config is: serve refuses it like check.
				if code, _, errOut := runCLI(t, "", "check", "--config", cfgPath); code != 2 || !strings.Contains(errOut, "jwks_file: no usable signature verification key") {
					t.Errorf("check with no usable key: exit %d\n%s", code, errOut)
				}
			}
		})
	}
}

// Case 7: a token without kid is tried against every usable key that fits its alg, not
// only the first four.
func TestKeylessTokenTriesEveryKey(t *testing.T) {
	for _, src := range keySources {
		t.Run(string(src), func(t *testing.T) {
			t.Parallel()
			idp := newKeyIdP(t, src, nil)
			for range 4 {
				if _, err := idp.is.Rotate("RS256", false); err != nil {
					t.Fatal(err)
				}
			}
			idp.publish()
			if n := len(idp.is.Keys()); n != 5 {
				t.Fatalf("%d keys", n)
			}
			br := startBridge(t, idp.config(""))
			// Mint signs with the newest key: the fifth of the set.
			if r := do(t, "GET", br.URL+"/v1/user-detail", nil, bearer(mint(t, idp.is, nil, demoissuer.WithoutKID()))); r.Status != 200 {
				t.Fatalf("keyless token under the fifth key: %d %s", r.Status, r.Body)
			}
		})
	}
}

// Case 6: an emergency rotation right after a junk kid spent the refresh budget. The
// token under the new key waits for the next permitted refresh and is accepted; a 401
// for a key the IdP publishes is the bug.
func TestRotationRightAfterJunkKid(t *testing.T) {
	for _, src := range keySources {
		t.Run(string(src), func(t *testing.T) {
			t.Parallel()
			idp := newKeyIdP(t, src, nil)
			br := startBridge(t, idp.config(""))
			if r := do(t, "GET", br.URL+"/v1/user-detail", nil, bearer(mint(t, idp.is, nil, demoissuer.WithKID("junk")))); r.Status != 401 {
				t.Fatalf("junk kid: %d %s", r.Status, r.Body)
			}
			if _, err := idp.is.Rotate("RS256", true); err != nil {
				t.Fatal(err)
			}
			idp.publish()
			before := idp.fetches()
			start := time.Now()
			var wg sync.WaitGroup
			for range 5 {
				wg.Go(func() {
					if r := do(t, "GET", br.URL+"/v1/user-detail", nil, bearer(mint(t, idp.is, nil))); r.Status != 200 {
						t.Errorf("token under the rotated key: %d %s", r.Status, r.Body)
					}
				})
			}
			wg.Wait()
			t.Logf("accepted after %v", time.Since(start).Round(time.Millisecond))
			if src != viaJWKSFile {
				if n := idp.fetches() - before; n != 1 {
					t.Errorf("%d JWKS fetches for 5 waiting requests, want 1", n)
				}
			}
		})
	}
}

// Case 2: nbf or iat beyond the leeway is "not yet valid", not "expired", and the log
// says by how much the clocks differ.
func TestNotYetValidIsNotExpired(t *testing.T) {
	is := newIssuer(t)
	br := startBridge(t, jwtConfig(is.URL(), ""))
	for _, claim := range []string{"nbf", "iat"} {
		r := do(t, "GET", br.URL+"/v1/user-detail", nil, bearer(mint(t, is, map[string]any{claim: time.Now().Add(2 * time.Hour).Unix()})))
		want := `error="invalid_token", error_description="the access token is not yet valid"`
		if r.Status != 401 || !strings.Contains(r.Header.Get("WWW-Authenticate"), want) || r.JSON(t)["error_description"] != "the access token is not yet valid" {
			t.Errorf("%s in the future: %d %q %s", claim, r.Status, r.Header.Get("WWW-Authenticate"), r.Body)
		}
	}
	logs := logsWith(t, br, `ahead of this host`)
	t.Log(grepLines(logs, "ahead"))
	if !regexp.MustCompile(`nbf is (2h0m0s|1h59m59s) ahead of this host's clock \(leeway 30s\); check clock skew`).MatchString(logs) {
		t.Errorf("the log does not give the skew:\n%s", grepLines(logs, "ahead"))
	}
	// Expired stays expired.
	r := do(t, "GET", br.URL+"/v1/user-detail", nil, bearer(mint(t, is, map[string]any{"exp": time.Now().Add(-time.Hour).Unix(), "iat": time.Now().Add(-2 * time.Hour).Unix()})))
	if r.JSON(t)["error_description"] != "the access token has expired" {
		t.Errorf("expired: %s", r.Body)
	}
}

// Case 3: Okta names the client in cid, Entra v1 in appid; client_ids (jwt and
// introspection) read client_id_claims, default [client_id, azp, cid, appid].
func TestClientIDClaims(t *testing.T) {
	is := newIssuer(t)
	br := startBridge(t, jwtConfig(is.URL(), "    client_ids: [travel-app]\n"))
	for _, c := range []struct {
		name   string
		claims map[string]any
		status int
	}{
		{"Okta cid", map[string]any{"cid": "travel-app"}, 200},
		{"Entra v1 appid", map[string]any{"appid": "travel-app"}, 200},
		{"Entra v2 azp", map[string]any{"azp": "travel-app"}, 200},
		{"RFC 9068 client_id", map[string]any{"client_id": "travel-app"}, 200},
		{"another client in cid", map[string]any{"cid": "other-app"}, 401},
		{"the first claim present decides", map[string]any{"client_id": "other-app", "cid": "travel-app"}, 401},
		{"no client at all", nil, 401},
	} {
		if r := do(t, "GET", br.URL+"/v1/user-detail", nil, bearer(mint(t, is, c.claims))); r.Status != c.status {
			t.Errorf("%s: %d, want %d: %s", c.name, r.Status, c.status, r.Body)
		}
	}
	// A custom list replaces the default.
	br2 := startBridge(t, jwtConfig(is.URL(), "    client_ids: [travel-app]\n    client_id_claims: [appid]\n"))
	if r := do(t, "GET", br2.URL+"/v1/user-detail", nil, bearer(mint(t, is, map[string]any{"cid": "travel-app"}))); r.Status != 401 {
		t.Errorf("cid with client_id_claims [appid]: %d", r.Status)
	}

	// Introspection: an Okta introspection answer names the client in client_id, but an
	// IdP that answers with the token's claims may use cid.
	const secret = "intro-secret-5d1e"
	srv := idptest.New(t, idptest.Active(map[string]any{"cid": "travel-app", "email": "alice@example.com", "email_verified": true}))
	intro := startBridge(t, opaqueConfig(fakeIntrospection(srv.URL, secret, "")))
	if r := do(t, "GET", intro.URL+"/v1/user-detail", nil, bearer("opaque-token-1")); r.Status != 401 {
		t.Errorf("introspection, cid not in client_ids [idbridge]: %d %s", r.Status, r.Body)
	}
	srv.SetHandler(idptest.Active(map[string]any{"cid": "idbridge", "email": "alice@example.com", "email_verified": true}))
	if r := do(t, "GET", intro.URL+"/v1/user-detail", nil, bearer("opaque-token-2")); r.Status != 200 {
		t.Errorf("introspection, client in cid: %d %s", r.Status, r.Body)
	}
}

// Case 8: aud with a member that is not a string is malformed (RFC 7519 §4.1.3).
func TestAudienceMembersMustBeStrings(t *testing.T) {
	is := newIssuer(t)
	br := startBridge(t, jwtConfig(is.URL(), ""))
	for _, aud := range []any{[]any{"idbridge", 7}, []any{"idbridge", nil}, []any{"idbridge", []string{"x"}}, 7, map[string]any{"a": "idbridge"}} {
		if r := do(t, "GET", br.URL+"/v1/user-detail", nil, bearer(mint(t, is, map[string]any{"aud": aud}))); r.Status != 401 {
			t.Errorf("aud %v: %d %s", aud, r.Status, r.Body)
		}
	}
	if r := do(t, "GET", br.URL+"/v1/user-detail", nil, bearer(mint(t, is, map[string]any{"aud": []string{"other", "idbridge"}}))); r.Status != 200 {
		t.Errorf("aud [other idbridge]: %d %s", r.Status, r.Body)
	}
}

// Case 5: every directory attribute is an array; when's equals and matches hold when
// an element does, exists for a non-empty array, and the trace names the element.
func TestWhenOverArrays(t *testing.T) {
	cfg := writeConfig(t, `
providers:
  - name: corp
    type: jwt
    issuer: https://idp.example.com
    jwks_uri: https://idp.example.com/keys
    audiences: [idbridge]
mapping:
  email:
    - path: directory.mail
      when: {path: directory.employeeType, equals: Employee}
    - path: directory.mail
      when: {path: directory.memberOf, matches: "^cn=travel,"}
`)
	doc := `{"sub":"alice","directory":{"dn":"uid=alice,ou=people,dc=example,dc=com","mail":["alice@example.com"],"employeeType":["Contractor","Employee"],"memberOf":[]}}`
	code, out, errOut := runCLI(t, doc, "map", "--config", cfg, "--input", "-")
	if code != 0 || !strings.Contains(out, "email: alice@example.com") || !strings.Contains(out, "element 1 matched") {
		t.Fatalf("exit %d\n%s%s", code, out, errOut)
	}
	doc = `{"directory":{"mail":["bob@example.com"],"employeeType":["Contractor"],"memberOf":["cn=staff,ou=groups","cn=travel,ou=groups"]}}`
	if code, out, _ := runCLI(t, doc, "map", "--config", cfg, "--input", "-"); code != 0 || !strings.Contains(out, "email: bob@example.com") {
		t.Fatalf("matches over memberOf: exit %d\n%s", code, out)
	}
	doc = `{"directory":{"mail":["carol@example.com"],"employeeType":["Contractor"],"memberOf":["cn=staff,ou=groups"]}}`
	if code, out, _ := runCLI(t, doc, "map", "--config", cfg, "--input", "-"); code != 1 {
		t.Fatalf("no element matches: exit %d\n%s", code, out)
	}
}

// logsWith waits until the bridge's logs contain want, and returns them.
func logsWith(t *testing.T, br *bridge, want string) string {
	t.Helper()
	var logs string
	eventually(t, "a log line with "+want, func() bool {
		logs = br.Logs()
		return strings.Contains(logs, want)
	})
	return logs
}

func grepLines(s, sub string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}
