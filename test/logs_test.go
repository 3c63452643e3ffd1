package test

import (
	"net/http"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/idbridge/idbridge/spotnana"
)

// waitLog waits until the bridge's log holds want.
func waitLog(t *testing.T, br *bridge, want string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(br.Logs(), want) {
		if time.Now().After(deadline) {
			t.Fatalf("the log lacks %q:\n%s", want, br.Logs())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// lineWith returns the first log line that holds every one of parts.
func lineWith(logs string, parts ...string) string {
	for _, l := range strings.Split(logs, "\n") {
		ok := true
		for _, p := range parts {
			ok = ok && strings.Contains(l, p)
		}
		if ok {
			return l
		}
	}
	return ""
}

// TestOperatorLogs: request lines carry latency_ms; a refusal says what was found and
// what was expected; 403 and 502 lines carry the mapped email (masked with
// log.redact_emails); a retry line carries its error; a reload that changes log: warns;
// a stop is logged from its start to its end.
func TestOperatorLogs(t *testing.T) {
	is := newIssuer(t)
	sbSrv, sw := inProcessSandbox(t)
	path := exchangeConfig(t, "127.0.0.1:0", is.URL(), sbSrv.URL+spotnana.SandboxTokenPath, "  max_retries: 1\n")
	data, _ := os.ReadFile(path)
	os.WriteFile(path, []byte(strings.Replace(string(data), "    - path: email\n      when: {path: email_verified, equals: true}\n",
		"    - path: email\n      when: {path: email_verified, equals: true}\n  allowed_domains: [example.com]\n", 1)), 0o600)
	br := startBridgeFile(t, path)
	// Spotnana knows nobody: an exchange is refused USER_NOT_FOUND (502).
	newSandbox(sw, spotnana.SandboxConfig{Mode: spotnana.SandboxModeCallback, Users: []string{"nobody@example.com"},
		UserDetailURL: br.URL + "/v1/user-detail"})

	r := do(t, "GET", br.URL+"/v1/user-detail", nil, bearer(mint(t, is, map[string]any{"aud": "someone-else"})))
	if r.Status != 401 {
		t.Fatalf("wrong audience: %d", r.Status)
	}
	r = do(t, "GET", br.URL+"/v1/user-detail", nil, bearer(mint(t, is, map[string]any{"exp": time.Now().Add(-2 * time.Hour).Unix()})))
	if r.Status != 401 {
		t.Fatalf("expired: %d", r.Status)
	}
	r = do(t, "GET", br.URL+"/v1/user-detail", nil, bearer(mint(t, is, map[string]any{"email": "bob@gmail.com"})))
	if r.Status != 403 {
		t.Fatalf("refused domain: %d", r.Status)
	}
	r = exchange(t, br, mint(t, is, nil))
	if r.Status != 502 {
		t.Fatalf("USER_NOT_FOUND: %d %s", r.Status, r.Body)
	}
	// Spotnana down: the retry line says why.
	sw.set(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { http.Error(w, "{}", http.StatusServiceUnavailable) }))
	exchange(t, br, mint(t, is, map[string]any{"email": "carol@example.com"}))

	logs := br.Logs()
	for name, parts := range map[string][]string{
		"latency in ms":         {`"msg":"request"`, `"status":401`, `"latency_ms":`},
		"audience found/wanted": {`"status":401`, `audience not accepted (found \"someone-else\"; expected one of idbridge)`},
		"expiry found/wanted":   {`"status":401`, `exp passed: expired at `, ` ago (leeway `},
		"403 shows the email":   {`"status":403`, `"email":"bob@gmail.com"`, `domain \"gmail.com\"`},
		"502 shows the email":   {`"status":502`, `"email":"alice@example.com"`},
		"retry line error":      {`spotnana request failed, retrying`, `"error":"HTTP 503 `},
	} {
		if lineWith(logs, parts...) == "" {
			t.Errorf("%s: no line with %q:\n%s", name, parts, logs)
		}
	}
	if strings.Contains(logs, `"latency":`) {
		t.Errorf("a bare latency field remains")
	}

	// A reload that changes log: warns (and turns on redact_emails at once).
	data, _ = os.ReadFile(path)
	os.WriteFile(path, []byte(strings.Replace(string(data), "log: {level: debug, format: json}", "log: {level: info, format: json, redact_emails: true}", 1)), 0o600)
	br.cmd.Process.Signal(syscall.SIGHUP)
	waitLog(t, br, "config reloaded")
	if lineWith(br.Logs(), `log section changed`, `"new_level":"info"`) == "" {
		t.Errorf("no warning for the changed log section:\n%s", br.Logs())
	}
	do(t, "GET", br.URL+"/v1/user-detail", nil, bearer(mint(t, is, map[string]any{"email": "dave@gmail.com"})))
	waitLog(t, br, `"email":"***@gmail.com"`)
	if strings.Contains(br.Logs(), "dave@gmail.com") {
		t.Errorf("redact_emails: the local part is logged")
	}

	if err := br.stop(); err != nil {
		t.Fatalf("stop: %v", err)
	}
	logs = br.Logs()
	stopping, stopped := strings.Index(logs, "idbridge stopping: no new connections"), strings.Index(logs, `"msg":"idbridge stopped","shutdown_ms":`)
	if stopping < 0 || stopped < 0 || stopped < stopping {
		t.Errorf("want the stopping line, then the stopped line, on shutdown (at %d and %d):\n%s", stopping, stopped, logs)
	}
}
