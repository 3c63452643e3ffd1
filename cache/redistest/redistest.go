// Package redistest starts throwaway Redis deployments for tests, each process on free
// loopback ports, in a temporary directory, with no persistence: one redis-server
// (optionally over TLS, with ACL users), a Sentinel set (a primary, a replica and three
// sentinels) and a Redis Cluster (built with `redis-cli --cluster create`). Tests skip
// when a needed program is not on PATH, unless IDBRIDGE_REQUIRE_SERVERS=1 (as in CI),
// where a missing program fails the test instead.
package redistest

import (
	"github.com/idbridge/idbridge/internal/testenv"

	"bufio"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// RequireEnv is the variable that turns a missing redis-server into a failure.
const RequireEnv = testenv.RequireEnv

// startTimeout is how long a server may take to answer PING; generous, since CI
// machines are slow, and never reached when things work.
const startTimeout = 15 * time.Second

// Options shape one redis-server.
type Options struct {
	// Conf lines go into the server's redis.conf (ACL `user` lines, say).
	Conf []string
	// TLS, when set, makes the server speak TLS only, with these files.
	TLS *TLSFiles
	// ClientCerts: with TLS, require a client certificate signed by the test CA.
	ClientCerts bool
	// Args are extra command-line arguments.
	Args []string
}

// Server is one redis-server (or redis-sentinel) process, restartable on its port.
type Server struct {
	t    testing.TB
	bin  string
	dir  string
	port int
	conf string   // path of the config file, first argument
	args []string // fixed arguments after the port
	tls  *tls.Config

	mu  sync.Mutex
	cmd *exec.Cmd
	end chan struct{} // closed when cmd has exited
}

// need finds a program or skips (fails under RequireEnv=1) the test.
func need(t testing.TB, prog string) string {
	t.Helper()
	bin, err := exec.LookPath(prog)
	if err != nil {
		testenv.SkipOrFail(t, "redistest: %s not found: %v", prog, err)
	}
	return bin
}

// Start starts a redis-server and stops it when the test ends.
func Start(t testing.TB) *Server { return StartWith(t, Options{}) }

// StartWith starts a redis-server shaped by o and stops it when the test ends.
func StartWith(t testing.TB, o Options) *Server {
	t.Helper()
	return launch(t, need(t, "redis-server"), o.Conf, func(port int) []string {
		args := append([]string{"--save", "", "--appendonly", "no"}, o.Args...)
		if o.TLS == nil {
			return append(args, "--port", strconv.Itoa(port))
		}
		auth := "no"
		if o.ClientCerts {
			auth = "yes"
		}
		return append(args, "--port", "0", "--tls-port", strconv.Itoa(port),
			"--tls-cert-file", o.TLS.ServerCert, "--tls-key-file", o.TLS.ServerKey,
			"--tls-ca-cert-file", o.TLS.CA, "--tls-auth-clients", auth)
	}, o.TLS)
}

// launch starts bin with a config file of conf lines and args(port) on a free port,
// trying again on a new port if another process took it first.
func launch(t testing.TB, bin string, conf []string, args func(port int) []string, tf *TLSFiles) *Server {
	t.Helper()
	s := &Server{t: t, bin: bin, dir: t.TempDir()}
	if tf != nil {
		s.tls = tf.clientConfig()
	}
	t.Cleanup(s.Kill)
	for attempt := 0; ; attempt++ {
		port, err := freePort()
		if err == nil {
			s.port = port
			s.args = args(port)
			s.conf = filepath.Join(s.dir, "redis.conf")
			lines := append([]string{"bind 127.0.0.1", "dir " + s.dir, "logfile " + filepath.Join(s.dir, "redis.log")}, conf...)
			err = os.WriteFile(s.conf, []byte(strings.Join(lines, "\n")+"\n"), 0o600)
		}
		if err == nil {
			err = s.start()
		}
		if err == nil {
			return s
		}
		if attempt == 2 {
			t.Fatalf("redistest: %v", err)
		}
	}
}

// Addr is the server's host:port.
func (s *Server) Addr() string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(s.port)) }

// Port is the server's port.
func (s *Server) Port() int { return s.port }

// Stop shuts the server down gracefully (SIGTERM) and waits for it to exit.
func (s *Server) Stop() { s.halt(syscall.SIGTERM) }

// Kill kills the server (SIGKILL), as a crash would, and waits for it to exit.
func (s *Server) Kill() { s.halt(os.Kill) }

// Freeze stops the process (SIGSTOP) without losing its data, as a network partition
// would look to a client: connections open, nothing answers.
func (s *Server) Freeze() { s.signal(syscall.SIGSTOP) }

// Thaw resumes a frozen server (SIGCONT).
func (s *Server) Thaw() { s.signal(syscall.SIGCONT) }

func (s *Server) signal(sig os.Signal) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd != nil {
		_ = s.cmd.Process.Signal(sig)
	}
}

// Restart starts the server again on the same port, stopping it first if it runs. The
// data is gone: nothing is persisted.
func (s *Server) Restart() {
	s.t.Helper()
	s.Stop()
	if err := s.start(); err != nil {
		s.t.Fatalf("redistest: restart: %v", err)
	}
}

func (s *Server) halt(sig os.Signal) {
	s.mu.Lock()
	cmd, end := s.cmd, s.end
	s.cmd, s.end = nil, nil
	s.mu.Unlock()
	if cmd == nil {
		return
	}
	_ = cmd.Process.Signal(syscall.SIGCONT) // a frozen server cannot act on SIGTERM
	_ = cmd.Process.Signal(sig)
	select {
	case <-end:
	case <-time.After(startTimeout):
		_ = cmd.Process.Kill()
		<-end
	}
}

func (s *Server) start() error {
	cmd := exec.Command(s.bin, append([]string{s.conf}, s.args...)...)
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start %s: %w", s.bin, err)
	}
	end := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		close(end)
	}()
	s.mu.Lock()
	s.cmd, s.end = cmd, end
	s.mu.Unlock()

	logFile := filepath.Join(s.dir, "redis.log")
	deadline := time.Now().Add(startTimeout)
	for {
		_, err := s.Do("PING")
		if err == nil || strings.HasPrefix(err.Error(), "NOAUTH") {
			return nil
		}
		select {
		case <-end:
			s.mu.Lock()
			s.cmd, s.end = nil, nil
			s.mu.Unlock()
			return fmt.Errorf("%s on port %d exited: %s", filepath.Base(s.bin), s.port, tail(logFile))
		default:
		}
		if time.Now().After(deadline) {
			s.Kill()
			return fmt.Errorf("%s on port %d did not answer PING: %v; %s", filepath.Base(s.bin), s.port, err, tail(logFile))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Do sends one command (as the default user, over TLS when the server speaks it) and
// returns its reply: a string, an int64, nil, or a []any of those; an error reply is
// an error.
func (s *Server) Do(args ...string) (any, error) {
	c, err := net.DialTimeout("tcp", s.Addr(), time.Second)
	if err != nil {
		return nil, err
	}
	if s.tls != nil {
		c = tls.Client(c, s.tls)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	var b strings.Builder
	fmt.Fprintf(&b, "*%d\r\n", len(args))
	for _, a := range args {
		fmt.Fprintf(&b, "$%d\r\n%s\r\n", len(a), a)
	}
	if _, err := c.Write([]byte(b.String())); err != nil {
		return nil, err
	}
	return readReply(bufio.NewReader(c), 0)
}

// String runs a command whose reply is a string (or a number).
func (s *Server) String(args ...string) (string, error) {
	v, err := s.Do(args...)
	if err != nil {
		return "", err
	}
	switch v := v.(type) {
	case string:
		return v, nil
	case int64:
		return strconv.FormatInt(v, 10), nil
	}
	return "", fmt.Errorf("%s: unexpected reply %v", args[0], v)
}

// readReply reads one RESP2 reply.
func readReply(r *bufio.Reader, depth int) (any, error) {
	if depth > 8 {
		return nil, errors.New("reply too deep")
	}
	line, err := r.ReadString('\n')
	if err != nil {
		return nil, err
	}
	line = strings.TrimRight(line, "\r\n")
	if line == "" {
		return nil, errors.New("empty reply line")
	}
	body := line[1:]
	switch line[0] {
	case '+':
		return body, nil
	case '-':
		return nil, errors.New(body)
	case ':':
		return strconv.ParseInt(body, 10, 64)
	case '$':
		n, err := strconv.Atoi(body)
		if err != nil || n < 0 {
			return nil, err
		}
		buf := make([]byte, n+2)
		if _, err := io.ReadFull(r, buf); err != nil {
			return nil, err
		}
		return string(buf[:n]), nil
	case '*':
		n, err := strconv.Atoi(body)
		if err != nil || n < 0 {
			return nil, err
		}
		out := make([]any, n)
		for i := range out {
			if out[i], err = readReply(r, depth+1); err != nil {
				return nil, err
			}
		}
		return out, nil
	}
	return nil, fmt.Errorf("unknown reply %q", line)
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func tail(path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return "no log"
	}
	if len(b) > 2000 {
		b = b[len(b)-2000:]
	}
	return "log: " + string(b)
}
