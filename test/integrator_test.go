package test

import (
	"bufio"
	"io"
	"net/http"
	"os/exec"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"
)

// startDemo runs `idbridge demo` (serving) on free ports and returns its output up to
// "Serving until Ctrl-C."; the demo is interrupted when the test ends.
func startDemo(t *testing.T) string {
	t.Helper()
	cmd := exec.Command(binary, "demo", "--issuer-listen", "127.0.0.1:0", "--listen", "127.0.0.1:0",
		"--admin-listen", "127.0.0.1:0", "--sandbox-listen", "127.0.0.1:0",
		"--app-listen", "127.0.0.1:0", "--embed-listen", "127.0.0.1:0")
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGINT)
		done := make(chan error, 1)
		go func() { done <- cmd.Wait() }()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("demo after Ctrl-C: %v", err)
			}
		case <-time.After(20 * time.Second):
			_ = cmd.Process.Kill()
			t.Errorf("demo did not stop on Ctrl-C")
		}
	})
	var b strings.Builder
	lines := make(chan string)
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
		_, _ = io.Copy(io.Discard, out)
	}()
	deadline := time.After(30 * time.Second)
	for {
		select {
		case l, ok := <-lines:
			if !ok {
				t.Fatalf("demo ended early:\n%s", b.String())
			}
			b.WriteString(l + "\n")
			if l == "Serving until Ctrl-C." {
				go func() {
					for range lines {
					}
				}()
				return b.String()
			}
		case <-deadline:
			t.Fatalf("demo not serving after 30s:\n%s", b.String())
		}
	}
}

// TestDemoMint: the curl lines the demo prints mint bob, an expired token and custom
// claims at the demo issuer, and the bridge answers each as documented.
func TestDemoMint(t *testing.T) {
	out := startDemo(t)
	mint := regexp.MustCompile(`curl -s -X POST '(http://127\.0\.0\.1:\d+/mint)(\?ttl=-5m)?' -d '([^']+)'`).FindAllStringSubmatch(out, -1)
	detail := regexp.MustCompile(`curl -s -H "Authorization: Bearer \$\(cat bob\.token\)\" '([^']+)'`).FindStringSubmatch(out)
	if len(mint) != 3 || detail == nil {
		t.Fatalf("the demo does not print the three mint lines and the user-detail line:\n%s", out)
	}
	for i, want := range []struct {
		status int
		body   string
	}{
		{200, `{"user":{"email":"bob@example.com"}}`},
		{401, `error="invalid_token"`},
		{403, `access_denied`},
	} {
		resp, err := http.Post(mint[i][1]+mint[i][2], "application/json", strings.NewReader(mint[i][3]))
		if err != nil {
			t.Fatal(err)
		}
		tok, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Fatalf("mint %s: %d %s", mint[i][3], resp.StatusCode, tok)
		}
		r := do(t, "GET", detail[1], nil, bearer(strings.TrimSpace(string(tok))))
		if r.Status != want.status || !strings.Contains(r.Body+r.Header.Get("WWW-Authenticate"), want.body) {
			t.Errorf("token %d (%s): %d %s %s; want %d %s", i, mint[i][3], r.Status, r.Header.Get("WWW-Authenticate"), r.Body, want.status, want.body)
		}
	}
}
