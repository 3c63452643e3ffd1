// Package test holds idbridge's end-to-end tests: the real binary, built once, against
// real peers on loopback (a test OIDC issuer, slapd, redis-server, oidc-provider, the
// Spotnana sandbox).
package test

import (
	"github.com/idbridge/idbridge/internal/testenv"

	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// binary is the idbridge binary built by TestMain.
var binary string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "idbridge-e2e-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binary = filepath.Join(dir, "idbridge")
	build := exec.Command("go", "build", "-o", binary, "./cmd/idbridge")
	build.Dir = ".."
	build.Stdout, build.Stderr = os.Stdout, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "building idbridge:", err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// syncBuffer collects a process's output while it runs.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
	// written, when a waiter made it, is closed by the next Write.
	written chan struct{}
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.written != nil {
		close(b.written)
		b.written = nil
	}
	return b.buf.Write(p)
}

// waitFor blocks until the output holds every one of parts, or until deadline fires or
// done is closed (the process exited: nothing more will come); it returns the parts
// still missing then.
func (b *syncBuffer) waitFor(parts []string, deadline <-chan time.Time, done <-chan struct{}) []string {
	for last := false; ; {
		b.mu.Lock()
		var missing []string
		for _, p := range parts {
			if !bytes.Contains(b.buf.Bytes(), []byte(p)) {
				missing = append(missing, p)
			}
		}
		if len(missing) == 0 || last {
			b.mu.Unlock()
			return missing
		}
		parts = missing
		if b.written == nil {
			b.written = make(chan struct{})
		}
		written := b.written
		b.mu.Unlock()
		select {
		case <-written:
		case <-deadline:
			return missing
		case <-done:
			last = true // one more look: the output is complete now
		}
	}
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// bridge is a running `idbridge serve`.
type bridge struct {
	t      *testing.T
	cmd    *exec.Cmd
	URL    string // main listener
	Admin  string // admin listener
	Config string // config file path
	logs   *syncBuffer
	// exited is closed once the process has exited and all its output is in logs;
	// waitErr is Wait's answer, readable after that.
	exited  chan struct{}
	waitErr error

	mu sync.Mutex
	// answered holds the X-Request-Id of each API answer do got from the main listener;
	// Logs has seen the lines of the first seen of them.
	answered []string
	seen     int
}

// bridges maps a running bridge's main listener (host:port) to it, so that do can tell
// it which requests it answered.
var bridges sync.Map

// writeConfig writes yaml into a fresh temp dir and returns its path.
func writeConfig(t *testing.T, yaml string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "idbridge.yaml")
	if err := os.WriteFile(path, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// startBridge runs `idbridge serve` on cfg (YAML) and waits until it listens.
func startBridge(t *testing.T, yaml string, env ...string) *bridge {
	t.Helper()
	return startBridgeFile(t, writeConfig(t, yaml), env...)
}

func startBridgeFile(t *testing.T, path string, env ...string) *bridge {
	t.Helper()
	b := &bridge{t: t, Config: path, logs: &syncBuffer{}, exited: make(chan struct{})}
	b.cmd = exec.Command(binary, "serve", "--config", path)
	b.cmd.Env = append(os.Environ(), env...)
	pr, pw := io.Pipe()
	b.cmd.Stderr = pw
	b.cmd.Stdout = b.logs
	if err := b.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	ready := make(chan struct{ main, admin string }, 1)
	scanned := make(chan struct{})
	go func() {
		defer close(scanned)
		// A line too long for the scanner must not block the process on a full pipe.
		defer io.Copy(io.Discard, pr)
		sc := bufio.NewScanner(pr)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		sent := false
		for sc.Scan() {
			line := sc.Text()
			b.logs.Write([]byte(line + "\n"))
			if !sent && strings.Contains(line, `"idbridge serving"`) {
				var m struct {
					Listen string `json:"listen"`
					Admin  string `json:"admin_listen"`
				}
				json.Unmarshal([]byte(line), &m)
				ready <- struct{ main, admin string }{m.Listen, m.Admin}
				sent = true
			}
		}
	}()
	go func() {
		err := b.cmd.Wait()
		pw.Close()
		<-scanned
		b.waitErr = err
		close(b.exited)
	}()
	select {
	case addr := <-ready:
		b.URL = "http://" + addr.main
		bridges.Store(addr.main, b)
		t.Cleanup(func() { bridges.CompareAndDelete(addr.main, b) })
		b.Admin = "http://" + addr.admin
	case <-b.exited:
		t.Fatalf("idbridge exited before listening: %v\n%s", b.waitErr, b.logs.String())
	case <-time.After(20 * time.Second):
		b.cmd.Process.Kill()
		t.Fatalf("idbridge did not start listening\n%s", b.logs.String())
	}
	t.Cleanup(func() { b.stop() })
	return b
}

// stop sends SIGTERM and returns the exit error (nil for exit 0).
func (b *bridge) stop() error {
	select {
	case <-b.exited:
		return b.waitErr
	default:
	}
	b.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-b.exited:
		return b.waitErr
	case <-time.After(30 * time.Second):
		b.cmd.Process.Kill()
		<-b.exited
		return fmt.Errorf("idbridge did not stop on SIGTERM")
	}
}

// Logs returns what the process wrote so far, including the line of every request do
// sent to it: idbridge buffers info lines (flushed every 100 ms, at once for warnings),
// so Logs first waits until the line of each request do saw answered is out. The log is
// written in order, so every line logged before those is out too. A line logged later or
// in the background (a reload, a refresh, a browser's request) needs its own wait:
// eventually, or a do request after it.
func (b *bridge) Logs() string {
	b.mu.Lock()
	from := b.seen
	ids := b.answered[from:]
	b.mu.Unlock()
	if len(ids) > 0 {
		// Bounded so that a request whose line is not logged (a log level above info)
		// cannot hang the test; a check that needs the line then fails on its absence.
		deadline := time.NewTimer(10 * time.Second)
		defer deadline.Stop()
		b.logs.waitFor(ids, deadline.C, b.exited)
		b.mu.Lock()
		b.seen = max(b.seen, from+len(ids))
		b.mu.Unlock()
	}
	return b.logs.String()
}

// settledLogs is Logs after one more request through do, for a check that something is
// absent after traffic do did not send (a browser's): that traffic's lines were logged
// before its answers, so before this request's line.
func (b *bridge) settledLogs(t *testing.T) string {
	t.Helper()
	if r := do(t, "GET", b.URL+"/v1/user-detail", nil); r.Header.Get("X-Request-Id") == "" {
		t.Fatalf("the barrier request was not an API request: %d %s", r.Status, r.Body)
	}
	return b.Logs()
}

// sawAnswer records that the bridge listening on host answered the request with id.
func sawAnswer(host, id string) {
	if v, ok := bridges.Load(host); ok && id != "" {
		b := v.(*bridge)
		b.mu.Lock()
		b.answered = append(b.answered, id)
		b.mu.Unlock()
	}
}

// response is a finished HTTP exchange.
type response struct {
	Status int
	Header http.Header
	Body   string
}

func (r response) JSON(t *testing.T) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal([]byte(r.Body), &m); err != nil {
		t.Fatalf("body is not JSON: %q", r.Body)
	}
	return m
}

var httpClient = &http.Client{Timeout: 30 * time.Second}

// do sends method url with the given headers ("Name: value").
func do(t *testing.T, method, url string, body io.Reader, headers ...string) response {
	t.Helper()
	req, err := http.NewRequest(method, url, body)
	if err != nil {
		t.Fatal(err)
	}
	for _, h := range headers {
		name, value, _ := strings.Cut(h, ": ")
		if name == "Host" {
			// net/http sends req.Host and ignores a Host entry in the header map.
			req.Host = value
			continue
		}
		req.Header.Add(name, value)
	}
	resp, err := httpClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	sawAnswer(req.URL.Host, resp.Header.Get("X-Request-Id"))
	return response{Status: resp.StatusCode, Header: resp.Header, Body: string(b)}
}

func bearer(token string) string { return "Authorization: Bearer " + token }

// runCLI runs the binary with args and stdin, returning exit code, stdout and stderr.
func runCLI(t *testing.T, stdin string, args ...string) (int, string, string) {
	t.Helper()
	return runCmd(t, exec.Command(binary, args...), stdin)
}

// runCmd runs cmd with stdin, returning exit code, stdout and stderr.
func runCmd(t *testing.T, cmd *exec.Cmd, stdin string) (int, string, string) {
	t.Helper()
	cmd.Stdin = strings.NewReader(stdin)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return code, out.String(), errb.String()
}

// skipOrFail skips on a laptop without the peer, and fails in CI (testenv.SkipOrFail).
func skipOrFail(t *testing.T, format string, args ...any) {
	t.Helper()
	testenv.SkipOrFail(t, format, args...)
}
