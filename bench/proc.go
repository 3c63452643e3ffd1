package main

import (
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// clockTicks is USER_HZ, the unit of utime and stime in /proc/PID/stat: 100 on every
// Linux architecture Go supports.
const clockTicks = 100

// server is one process under test.
type server struct {
	name  string
	cmd   *exec.Cmd
	addr  string // host:port of its main listener
	log   string // its stdout and stderr
	admin string // idbridge's admin listener, host:port
	done  chan struct{}
}

// haveTaskset reports whether servers can be pinned; without it they float.
var haveTaskset = func() bool {
	_, err := exec.LookPath("taskset")
	return err == nil
}()

// startServer starts bin pinned to core 0 (taskset execs it, so the PID is the
// server's own) and waits until ready answers 200 (ready "": until addr answers).
func startServer(name, dir, bin string, args []string, env []string, addr, ready string) (*server, error) {
	logPath := filepath.Join(dir, name+".log")
	lf, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	defer lf.Close()
	var cmd *exec.Cmd
	if haveTaskset && ncpu() > 1 {
		cmd = exec.Command("taskset", append([]string{"-c", "0", bin}, args...)...)
	} else {
		cmd = exec.Command(bin, args...)
	}
	cmd.Env = append(os.Environ(), env...)
	cmd.Stdout, cmd.Stderr = lf, lf
	// Its own process group, so that a Ctrl-C on the benchmark reaches us first and we
	// stop it ourselves.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	s := &server{name: name, cmd: cmd, addr: addr, log: logPath, done: make(chan struct{})}
	go func() { _ = cmd.Wait(); close(s.done) }()
	deadline := time.Now().Add(30 * time.Second)
	hc := &http.Client{Timeout: time.Second}
	for {
		probe := ready
		if probe == "" {
			probe = "http://" + addr + "/"
		}
		resp, err := hc.Get(probe)
		if err == nil {
			resp.Body.Close()
			// A baseline has no readiness route: any answer means it listens.
			if resp.StatusCode == 200 || ready == "" {
				return s, nil
			}
		}
		select {
		case <-s.done:
			out, _ := os.ReadFile(logPath)
			return nil, fmt.Errorf("%s exited at start:\n%s", name, out)
		default:
		}
		if time.Now().After(deadline) {
			s.stop()
			out, _ := os.ReadFile(logPath)
			return nil, fmt.Errorf("%s not ready at %s within 30s:\n%s", name, ready, out)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (s *server) pid() int { return s.cmd.Process.Pid }

// stop sends SIGTERM, then SIGKILL after 5 s.
func (s *server) stop() {
	select {
	case <-s.done:
		return
	default:
	}
	_ = s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.done:
	case <-time.After(5 * time.Second):
		_ = s.cmd.Process.Kill()
		<-s.done
	}
}

// cpuTime is the process's user plus system CPU time, all threads.
func cpuTime(pid int) time.Duration {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0
	}
	// The command name may hold spaces; fields are counted after its closing paren.
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	if len(f) < 13 {
		return 0
	}
	ut, _ := strconv.ParseInt(f[11], 10, 64)
	st, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(ut+st) * time.Second / clockTicks
}

// memKB reads a /proc/PID/status field in kB (VmRSS, VmHWM).
func memKB(pid int, field string) int64 {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, field+":"); ok {
			n, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			return n
		}
	}
	return 0
}

// resetPeakRSS makes VmHWM start again from the current RSS (clear_refs value 5), so
// that each scenario's peak is its own.
func resetPeakRSS(pid int) {
	_ = os.WriteFile("/proc/"+strconv.Itoa(pid)+"/clear_refs", []byte("5"), 0)
}

// freeAddr returns a loopback address with a port that was free a moment ago.
func freeAddr() string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	defer l.Close()
	return l.Addr().String()
}

func ncpu() int { return runtime.NumCPU() }

// pinSelf moves every thread of this process to core 1, where the load generator and
// the peers run; GOMAXPROCS follows, since one core cannot run two Ps at once.
func pinSelf() string {
	if !haveTaskset || ncpu() < 2 {
		return "not pinned (no taskset or one core)"
	}
	out, err := exec.Command("taskset", "-a", "-p", "-c", "1", strconv.Itoa(os.Getpid())).CombinedOutput()
	if err != nil {
		return fmt.Sprintf("not pinned: %v: %s", err, out)
	}
	runtime.GOMAXPROCS(1)
	return "servers on core 0, load generator and peers on core 1"
}
