package test

import (
	"net"
	"regexp"
	"strings"
	"testing"
)

// demoSteps are the lines `idbridge demo` must print, in order.
var demoSteps = []string{
	"Listening (loopback only):",
	"1. The demo issuer minted a token for alice@example.com",
	`"email_verified": true`,
	"2. The app sends the token to the bridge: POST ",
	"3. While that request waits, Spotnana (the sandbox) calls the bridge back:",
	"/v1/user-detail (Authorization: Bearer <the same token>) -> 200",
	"4. The bridge returns the email",
	`{"user":{"email":"alice@example.com"}}`,
	"5. Spotnana's tokens reach the app",
	"token_type:    Bearer",
	"expires_in:    ",
	"access_token:  <fingerprint ",
	"6. The app calls Spotnana with the access token",
	"Try each step yourself",
	"curl -s -X POST -H \"Authorization: Bearer $(cat ",
	"Done (--once).",
}

func runDemo(t *testing.T) string {
	t.Helper()
	code, out, errOut := runCLI(t, "", "demo", "--once")
	if code != 0 {
		t.Fatalf("demo --once: exit %d\n%s\n%s", code, out, errOut)
	}
	rest := out
	for _, step := range demoSteps {
		i := strings.Index(rest, step)
		if i < 0 {
			t.Fatalf("demo output lacks %q (or has it out of order):\n%s", step, out)
		}
		rest = rest[i+len(step):]
	}
	// Claims and fingerprints only: nothing JWT-shaped is printed.
	if m := jwtShape.FindString(out + errOut); m != "" {
		t.Fatalf("the demo printed a token: %.20s…", m)
	}
	return out
}

func TestDemoOnce(t *testing.T) {
	out := runDemo(t)
	if !regexp.MustCompile(`bridge\s+http://127\.0\.0\.1:\d+`).MatchString(out) {
		t.Fatalf("the demo does not print the bridge's address:\n%s", out)
	}
}

// TestDemoBusyPort: with 127.0.0.1:8080 taken, the demo moves the bridge to a free port
// and says so.
func TestDemoBusyPort(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:8080")
	if err == nil {
		defer ln.Close()
	} // else something already holds it, which is the situation under test anyway
	out := runDemo(t)
	m := regexp.MustCompile(`bridge\s+http://127\.0\.0\.1:(\d+)\s+\(127\.0\.0\.1:8080 was busy`).FindStringSubmatch(out)
	if m == nil || m[1] == "8080" {
		t.Fatalf("the demo did not report moving off the busy port 8080:\n%s", out)
	}
}
