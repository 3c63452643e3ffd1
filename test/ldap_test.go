package test

import (
	"fmt"
	"os/exec"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/idbridge/idbridge/demoissuer"
	"github.com/idbridge/idbridge/providers/ldap/ldaptest"
)

// ldapConfig: a jwt provider enriched from the test directory by uid = sub, plus a
// type: ldap provider for opaque API tokens stored as hashes.
func ldapConfig(issuer, url, bindPassword string, poolSize int) string {
	return fmt.Sprintf(`
server: {listen: "127.0.0.1:0", admin_listen: "127.0.0.1:0"}
log: {level: debug}
directories:
  corp:
    url: %s
    bind_dn: %s
    bind_password: %q
    base_dn: %s
    pool_size: %d
    timeout: 2s
providers:
  - name: corp-jwt
    type: jwt
    issuer: %s
    audiences: [idbridge]
    lookup:
      directory: corp
      filter: "(&(objectClass=person)(uid={{sub}}))"
      attributes: [mail, userPrincipalName, proxyAddresses]
      cache_ttl: 1s
  - name: api-tokens
    type: ldap
    directory: corp
    filter: "(apiTokenHash={{token_sha256}})"
    attributes: [mail, uid, proxyAddresses]
    cache_ttl: 1s
mapping:
  email:
    - path: directory.mail
    - path: mail
    - path: 'directory.proxyAddresses.#(%%"SMTP:*")'
      transforms: [{trim_prefix: "SMTP:"}, lower]
    - path: 'proxyAddresses.#(%%"SMTP:*")'
      transforms: [{trim_prefix: "SMTP:"}, lower]
`, url, ldaptest.BindDN, bindPassword, ldaptest.PeopleDN, poolSize, issuer)
}

func startSlapd(t *testing.T) *ldaptest.Server {
	t.Helper()
	if _, err := exec.LookPath("slapd"); err != nil {
		if _, err := exec.LookPath("/usr/sbin/slapd"); err != nil {
			skipOrFail(t, "slapd is not installed (Debian: apt-get install slapd ldap-utils)")
		}
	}
	return ldaptest.Start(t)
}

func TestLDAPEndToEnd(t *testing.T) {
	dir := startSlapd(t)
	is := newIssuer(t)
	br := startBridge(t, ldapConfig(is.URL(), dir.URL(), ldaptest.BindPassword, 3))
	url := br.URL + "/v1/user-detail"
	var n atomic.Int64
	userToken := func(sub string) string {
		// A jti of its own makes every token new to the identity cache.
		tok, err := is.Mint(map[string]any{"sub": sub, "aud": "idbridge", "jti": fmt.Sprint(n.Add(1))})
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}

	cases := []struct {
		name, token string
		status      int
		email       string
	}{
		{"jwt sub → entry → mail", userToken("alice"), 200, "alice@example.com"},
		{"entry without mail → primary proxyAddresses", userToken("carol"), 200, "carol.white@example.com"},
		{"no entry → 403", userToken("nobody"), 403, ""},
		{"two entries → 403", userToken("twin"), 403, ""},
		{"opaque token found by its hash", "alice-api-token", 200, "alice@example.com"},
		{"opaque token without mail on its entry", "carol-api-token", 200, "carol.white@example.com"},
		{"token shared by two entries → 401", "dup-api-token", 401, ""},
		{"unknown opaque token → 401", "no-such-token", 401, ""},
	}
	// Claim values made of filter metacharacters must never match another user's entry.
	for _, sub := range []string{"*", "al*", "alice)(uid=*", "*)(|(uid=*", `ali\2a`, "alice\x00", "(uid=alice)"} {
		status := 403
		email := ""
		if sub == "al*" {
			// An entry whose uid is literally "al*" exists; escaping makes it match itself.
			status, email = 200, "star@example.com"
		}
		cases = append(cases, struct {
			name, token string
			status      int
			email       string
		}{"injection " + fmt.Sprintf("%q", sub), userToken(sub), status, email})
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := do(t, "GET", url, nil, bearer(c.token))
			if r.Status != c.status {
				t.Fatalf("status %d, want %d: %s", r.Status, c.status, r.Body)
			}
			if c.email != "" && !strings.Contains(r.Body, `"email":"`+c.email+`"`) {
				t.Fatalf("body %s, want %s", r.Body, c.email)
			}
		})
	}

	t.Run("pool bounds connections", func(t *testing.T) {
		var wg sync.WaitGroup
		peak := 0
		var mu sync.Mutex
		stop := make(chan struct{})
		go func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				if n, err := dir.Connections(); err == nil {
					mu.Lock()
					peak = max(peak, n)
					mu.Unlock()
				}
				time.Sleep(5 * time.Millisecond)
			}
		}()
		for i := 0; i < 40; i++ {
			wg.Add(1)
			go func(i int) {
				defer wg.Done()
				// Distinct subjects so that the identity cache does not answer.
				subs := []string{"alice", "bob", "carol"}
				do(t, "GET", url, nil, bearer(userToken(subs[i%3])))
			}(i)
		}
		wg.Wait()
		close(stop)
		mu.Lock()
		defer mu.Unlock()
		if peak > 3 {
			t.Fatalf("%d connections seen at the directory, pool_size is 3", peak)
		}
	})

	t.Run("directory restart: 503 during the outage, 200 after, no idbridge restart", func(t *testing.T) {
		dir.Kill()
		// A fresh token, so that no cache can answer.
		r := do(t, "GET", url, nil, bearer(userToken("bob")))
		if r.Status != 503 || r.Header.Get("Retry-After") == "" {
			t.Fatalf("during the outage: %d %s, want 503 with Retry-After", r.Status, r.Body)
		}
		if r := do(t, "GET", url, nil, bearer("carol-api-token")); r.Status != 503 && r.Status != 200 {
			// carol's token may still be cached (cache_ttl 1s); anything else must be 503.
			t.Fatalf("opaque token during the outage: %d", r.Status)
		}
		dir.Restart()
		deadline := time.Now().Add(15 * time.Second)
		for {
			r := do(t, "GET", url, nil, bearer(userToken("bob")))
			if r.Status == 200 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("still %d after slapd restarted: %s", r.Status, r.Body)
			}
			time.Sleep(100 * time.Millisecond)
		}
	})
	t.Run("pool gauges in /metrics", func(t *testing.T) {
		r := do(t, "GET", br.Admin+"/metrics", nil)
		for _, want := range []string{`idbridge_ldap_pool_connections{directory="corp",state="idle"}`, `idbridge_ldap_pool_connections{directory="corp",state="in_use"}`} {
			if !strings.Contains(r.Body, want) {
				t.Fatalf("/metrics lacks %s", want)
			}
		}
	})
	t.Run("no token and no bind password in the logs", func(t *testing.T) {
		logs := br.Logs()
		for _, s := range []string{"alice-api-token", "carol-api-token", ldaptest.BindPassword} {
			if strings.Contains(logs, s) {
				t.Fatalf("the logs contain %q", s)
			}
		}
	})
}

func TestLDAPWrongBindPassword(t *testing.T) {
	dir := startSlapd(t)
	is := newIssuer(t, demoissuer.WithAlgorithms("RS256"))
	br := startBridge(t, ldapConfig(is.URL(), dir.URL(), "wrong-password", 2))
	tok, _ := is.Mint(map[string]any{"sub": "alice", "aud": "idbridge"})
	if r := do(t, "GET", br.URL+"/v1/user-detail", nil, bearer(tok)); r.Status != 503 {
		t.Fatalf("status %d with a wrong bind password, want 503 (not 401): %s", r.Status, r.Body)
	}
	if r := do(t, "GET", br.URL+"/v1/user-detail", nil, bearer("alice-api-token")); r.Status != 503 {
		t.Fatalf("opaque token: status %d with a wrong bind password, want 503", r.Status)
	}
	logs := br.Logs()
	if !strings.Contains(logs, "Invalid Credentials") {
		t.Fatalf("the start-up bind failure is not reported:\n%s", logs)
	}
	if strings.Contains(logs, "wrong-password") {
		t.Fatal("the bind password is in the logs")
	}
	r := do(t, "GET", br.Admin+"/readyz", nil)
	if !strings.Contains(r.Body, "Invalid Credentials") && !strings.Contains(r.Body, `"ok":false`) {
		t.Fatalf("/readyz does not report the directory: %s", r.Body)
	}
}
