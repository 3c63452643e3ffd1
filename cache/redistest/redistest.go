// Package redistest starts a throwaway redis-server for tests: its own process on a free
// loopback port, in a temporary directory, with no persistence. Tests skip when
// redis-server is not on PATH, unless IDBRIDGE_REQUIRE_SERVERS=1 (as in CI), where a
// missing server fails the test instead.
package redistest

import (
	"bufio"
	"errors"
	"fmt"
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
const RequireEnv = "IDBRIDGE_REQUIRE_SERVERS"

// startTimeout is how long a server may take to answer PING; generous, since CI
// machines are slow, and never reached when things work.
const startTimeout = 15 * time.Second

// Server is one redis-server process, restartable on the same port.
type Server struct {
	t    testing.TB
	bin  string
	dir  string
	port int

	mu  sync.Mutex
	cmd *exec.Cmd
	end chan struct{} // closed when cmd has exited
}

// Start starts a redis-server and stops it when the test ends.
func Start(t testing.TB) *Server {
	t.Helper()
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		if os.Getenv(RequireEnv) == "1" {
			t.Fatalf("redistest: redis-server not found and %s=1: %v", RequireEnv, err)
		}
		t.Skipf("redistest: redis-server not found (set %s=1 to fail instead): %v", RequireEnv, err)
	}
	s := &Server{t: t, bin: bin, dir: t.TempDir()}
	t.Cleanup(s.Kill)
	// Another process may take the free port between our probe and redis' bind: try again
	// on a new port a few times.
	for attempt := 0; ; attempt++ {
		s.port, err = freePort()
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

// Stop shuts the server down gracefully (SIGTERM) and waits for it to exit.
func (s *Server) Stop() { s.halt(syscall.SIGTERM) }

// Kill kills the server (SIGKILL), as a crash would, and waits for it to exit.
func (s *Server) Kill() { s.halt(os.Kill) }

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
	_ = cmd.Process.Signal(sig)
	select {
	case <-end:
	case <-time.After(startTimeout):
		_ = cmd.Process.Kill()
		<-end
	}
}

func (s *Server) start() error {
	logFile := filepath.Join(s.dir, "redis.log")
	cmd := exec.Command(s.bin,
		"--port", strconv.Itoa(s.port),
		"--bind", "127.0.0.1",
		"--save", "",
		"--appendonly", "no",
		"--dir", s.dir,
		"--logfile", logFile,
	)
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start redis-server: %w", err)
	}
	end := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		close(end)
	}()
	s.mu.Lock()
	s.cmd, s.end = cmd, end
	s.mu.Unlock()

	deadline := time.Now().Add(startTimeout)
	for {
		err := ping(s.Addr())
		if err == nil {
			return nil
		}
		select {
		case <-end:
			s.mu.Lock()
			s.cmd, s.end = nil, nil
			s.mu.Unlock()
			return fmt.Errorf("redis-server on port %d exited: %s", s.port, tail(logFile))
		default:
		}
		if time.Now().After(deadline) {
			s.Kill()
			return fmt.Errorf("redis-server on port %d did not answer PING: %v; %s", s.port, err, tail(logFile))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// ping speaks just enough RESP to see the server answer.
func ping(addr string) error {
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(time.Second))
	if _, err := c.Write([]byte("PING\r\n")); err != nil {
		return err
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		return err
	}
	if strings.TrimSpace(line) != "+PONG" {
		return errors.New("unexpected reply " + strconv.Quote(line))
	}
	return nil
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
