package jwt

import (
	"errors"
	"strings"
	"testing"

	"github.com/idbridge/idbridge/demoissuer"
	"github.com/idbridge/idbridge/providers"
)

// FuzzAuthenticate: no input panics, none but the one genuinely signed seed is accepted,
// and the "not mine" decision agrees with providers.PeekIssuer, which the chain and the
// other providers use to steer tokens.
func FuzzAuthenticate(f *testing.F) {
	c := newClock()
	is := newIssuer(f, c, demoissuer.WithAlgorithms("RS256", "ES256", "EdDSA"))
	p := newTestProvider(f, c, baseYAML(is, "algorithms: [RS256, ES256, EdDSA]", "jwks_refresh: 1h"))
	valid := map[string]bool{}
	add := func(tok string, err error, ok bool) {
		if err != nil {
			f.Fatal(err)
		}
		if ok {
			valid[tok] = true
		}
		f.Add(tok)
	}
	tok, err := is.Mint(claims())
	add(tok, err, true)
	tok, err = is.Mint(claims(), demoissuer.WithAlg("ES256"))
	add(tok, err, true)
	tok, err = is.Mint(claims(), demoissuer.WithAlg("EdDSA"), demoissuer.WithoutKID())
	add(tok, err, true)
	tok, err = is.MintNone(claims())
	add(tok, err, false)
	tok, err = is.MintHMACWithPublicKey(claims(), demoissuer.FormPEM)
	add(tok, err, false)
	tok, err = is.Mint(claims(), demoissuer.WithKID("x"))
	add(tok, err, false)
	for _, s := range []string{"", ".", "..", "a.b.c", "eyJhbGciOiJub25lIn0.e30.", "e30.e30.e30",
		"eyJhbGciOiJSUzI1NiJ9.eyJpc3MiOiJ4In0.AA", strings.Repeat("A", 20000)} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, token string) {
		id, err := p.Authenticate(bg, token)
		if err == nil {
			if !valid[token] {
				t.Fatalf("accepted a token that was never signed by the issuer: %q", token)
			}
			if len(id.Document) == 0 || id.Expires.IsZero() {
				t.Fatalf("accepted with empty identity %+v", id)
			}
			return
		}
		iss, ok := providers.PeekIssuer(token)
		mine := ok && iss == is.URL()
		if errors.Is(err, providers.ErrNotMine) == mine {
			t.Fatalf("NotMine = %v but PeekIssuer says mine = %v (err %v)", !mine, mine, err)
		}
		if mine && !errors.Is(err, providers.ErrInvalidToken) {
			t.Fatalf("a considered token must be invalid, got %v", err)
		}
		if len(token) >= 16 && strings.Contains(err.Error(), token) {
			t.Fatalf("error carries the token")
		}
	})
}
