// Command bench is idbridge's load benchmark. From the repository root:
//
//	go run ./bench
//
// It builds the real idbridge binary and the baselines (bench/baseline/...), starts
// every server pinned to core 0 with taskset, runs the peers (test issuer,
// introspection endpoint, slapd, Spotnana sandbox) and its own closed-loop load
// generator on core 1, and drives each scenario against idbridge and its baselines in
// interleaved rounds. It writes bench/results/latest.json and latest.md, and renders
// latest.png with the separate bench/chart module. Everything listens on 127.0.0.1 and
// every run is bounded in time; the whole benchmark takes about three minutes.
package main

import (
	"crypto/sha256"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"time"
)

type options struct {
	duration, warmup time.Duration
	rounds, conns    int
	distinct         int
	memTokens        int
	out              string
	only             string
	pprof            bool
	keep             bool
	compare          string
	paired           bool
}

func main() {
	var o options
	flag.DurationVar(&o.duration, "duration", 3*time.Second, "measured window of each run")
	flag.DurationVar(&o.warmup, "warmup", 500*time.Millisecond, "unmeasured load before each window")
	flag.IntVar(&o.rounds, "rounds", 3, "interleaved rounds; the report gives each run's median")
	flag.IntVar(&o.conns, "c", 64, "keep-alive connections (closed loop)")
	flag.IntVar(&o.distinct, "distinct", 10000, "distinct tokens cycled in scenario b")
	flag.IntVar(&o.memTokens, "mem-tokens", 100000, "tokens warmed in for the per-identity memory measure (0: skip)")
	flag.StringVar(&o.out, "out", "bench/results", "folder for latest.json, latest.md, latest.png")
	flag.StringVar(&o.only, "only", "", "comma-separated scenarios to run (a,b,c,d,e); default all")
	flag.BoolVar(&o.pprof, "pprof", false, "also write CPU profiles of idbridge (IDBRIDGE_PPROF=1) and of jwtverify under scenarios a and b")
	flag.BoolVar(&o.keep, "keep", false, "keep the temporary folder (binaries, configs, server logs)")
	flag.BoolVar(&o.paired, "paired", false, "run the servers of scenarios a and b at the same time (the connections split between them, all on core 0), so that a shared machine's drift hits them alike; CPU per request is still each process's own")
	flag.StringVar(&o.compare, "compare", "", "also run scenarios a and b on idbridge built from this git revision (row idbridge@REV), for a before/after in one run")
	flag.Parse()
	log.SetFlags(log.Ltime)
	if err := run(o); err != nil {
		log.Fatal(err)
	}
}

// env is everything the scenarios share.
type env struct {
	o       options
	tmp     string
	bins    map[string]string
	servers []*server
	cleanup []func()
	// exchAddr is scenario e's idbridge address, chosen before it starts because the
	// sandbox must know where to call back.
	exchAddr string
	profiled map[string]bool
	mu       sync.Mutex
}

func (e *env) atExit(f func()) { e.cleanup = append(e.cleanup, f) }

func (e *env) close() {
	for _, s := range e.servers {
		s.stop()
	}
	for i := len(e.cleanup) - 1; i >= 0; i-- {
		e.cleanup[i]()
	}
	if !e.o.keep {
		os.RemoveAll(e.tmp)
	}
}

func run(o options) error {
	started := time.Now()
	if _, err := os.Stat("cmd/idbridge"); err != nil {
		return fmt.Errorf("run from the repository root (go run ./bench): %w", err)
	}
	tmp, err := os.MkdirTemp("", "idbridge-bench-")
	if err != nil {
		return err
	}
	e := &env{o: o, tmp: tmp, bins: map[string]string{}}
	defer e.close()
	// A Ctrl-C still stops every server we started.
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, os.Interrupt, syscall.SIGTERM)
	go func() { <-sig; e.close(); os.Exit(130) }()

	log.Printf("building idbridge and baselines")
	for name, pkg := range map[string]string{
		"idbridge":  "./cmd/idbridge",
		"gin":       "./bench/baseline/gin",
		"jwtverify": "./bench/baseline/jwtverify",
		"ldapdial":  "./bench/baseline/ldapdial",
	} {
		bin := filepath.Join(tmp, name)
		if out, err := exec.Command("go", "build", "-o", bin, pkg).CombinedOutput(); err != nil {
			return fmt.Errorf("go build %s: %v\n%s", pkg, err, out)
		}
		e.bins[name] = bin
	}
	if o.compare != "" {
		if err := e.buildRevision(o.compare); err != nil {
			return err
		}
	}

	sc, err := setupScenarios(e)
	if err != nil {
		return err
	}
	placement := pinSelf()
	log.Printf("pinning: %s", placement)
	if err := sc.start(e); err != nil {
		return err
	}

	runs := sc.runs(e)
	samples := map[string][]sample{}
	grouped := groups(runs, o.paired)
	for round := 1; round <= o.rounds; round++ {
		for _, group := range grouped {
			ss := make([]sample, len(group))
			errs := make([]error, len(group))
			var wg sync.WaitGroup
			for i, r := range group {
				wg.Add(1)
				go func() {
					defer wg.Done()
					ss[i], errs[i] = measure(e, r)
				}()
			}
			wg.Wait()
			for i, r := range group {
				if errs[i] != nil {
					return fmt.Errorf("%s: %w", r.id(), errs[i])
				}
				s := ss[i]
				log.Printf("round %d %-22s %8.0f req/s  p50 %7s  p99 %7s  cpu %6.1fµs/req  hwm %5.1f MB  errors %d %s",
					round, r.id(), s.RPS, s.P50, s.P99, s.CPUus, float64(s.PeakRSSKB)/1024, s.Errors, s.FirstErr)
				samples[r.id()] = append(samples[r.id()], s)
			}
		}
	}

	rep := report{
		Date:      time.Now().UTC().Format(time.RFC3339),
		Machine:   machine(),
		Placement: placement,
		Settings: fmt.Sprintf("c=%d keep-alive connections, closed loop; %d rounds of %s measured after %s warm-up; medians",
			o.conns, o.rounds, o.duration, o.warmup),
		Notes: sc.notes,
	}
	if o.paired {
		rep.Settings += "; -paired: the servers of a and b measured at the same time, sharing core 0 and the connections"
	}
	for _, r := range runs {
		rep.Runs = append(rep.Runs, median(r, samples[r.id()]))
	}
	if sc.mem != nil && o.memTokens > 0 {
		m, err := sc.mem(e)
		if err != nil {
			return fmt.Errorf("memory: %w", err)
		}
		rep.Memory = m
	}
	rep.Targets = targets(rep)
	rep.Elapsed = time.Since(started).Round(time.Second).String()
	if err := rep.write(o.out); err != nil {
		return err
	}
	log.Printf("wrote %s/latest.json and latest.md in %s", o.out, rep.Elapsed)
	chart := exec.Command("go", "run", ".", "-in", mustAbs(filepath.Join(o.out, "latest.json")), "-out", mustAbs(filepath.Join(o.out, "latest.png")))
	chart.Dir = "bench/chart"
	if out, err := chart.CombinedOutput(); err != nil {
		log.Printf("chart not rendered (bench/chart): %v\n%s", err, out)
	} else {
		log.Printf("wrote %s/latest.png", o.out)
	}
	return nil
}

// buildRevision builds cmd/idbridge as it was at rev, from a temporary git worktree,
// into bins["idbridge@rev"].
func (e *env) buildRevision(rev string) error {
	dir := filepath.Join(e.tmp, "worktree")
	if out, err := exec.Command("git", "worktree", "add", "--detach", dir, rev).CombinedOutput(); err != nil {
		return fmt.Errorf("-compare %s: git worktree add: %v\n%s", rev, err, out)
	}
	defer exec.Command("git", "worktree", "remove", "--force", dir).Run()
	bin := filepath.Join(e.tmp, "idbridge-compare")
	build := exec.Command("go", "build", "-o", bin, "./cmd/idbridge")
	build.Dir = dir
	if out, err := build.CombinedOutput(); err != nil {
		return fmt.Errorf("-compare %s: go build: %v\n%s", rev, err, out)
	}
	e.bins["idbridge@"+rev] = bin
	return nil
}

// groups lists the runs of a round: one at a time, or with paired, the servers of
// scenarios a and b together (each with its share of the connections).
func groups(runs []*target, paired bool) [][]*target {
	var out [][]*target
	for _, r := range runs {
		if n := len(out); paired && n > 0 && (r.scenario == "a" || r.scenario == "b") && out[n-1][0].scenario == r.scenario {
			out[n-1] = append(out[n-1], r)
			continue
		}
		out = append(out, []*target{r})
	}
	if paired {
		for _, g := range out {
			for _, r := range g {
				r.conns = max(1, r.conns/len(g))
			}
		}
	}
	return out
}

func mustAbs(p string) string {
	a, err := filepath.Abs(p)
	if err != nil {
		return p
	}
	return a
}

// target is one (scenario, server) pair.
type target struct {
	scenario string // a..e
	server   string // idbridge, gin, jwtverify, ...
	srv      *server
	addr     string // where the load goes (may differ from srv's: the sandbox)
	gen      requestFunc
	conns    int
	before   func() // called before each run (e.g. reset the cycling counter)
}

func (t *target) id() string { return t.scenario + "/" + t.server }

// sample is one measured run.
type sample struct {
	Scenario  string    `json:"scenario"`
	Server    string    `json:"server"`
	Requests  int64     `json:"requests"`
	Errors    int64     `json:"errors"`
	FirstErr  string    `json:"first_error,omitempty"`
	RPS       float64   `json:"rps"`
	P50       dur       `json:"p50"`
	P99       dur       `json:"p99"`
	CPUus     float64   `json:"cpu_us_per_req"`   // server process; 0 when not ours to measure
	PeakRSSKB int64     `json:"peak_rss_kb"`      // VmHWM during the run
	Rounds    int       `json:"rounds,omitempty"` // in medians
	RPSAll    []float64 `json:"rps_rounds,omitempty"`
}

// dur marshals as microseconds and prints compactly.
type dur time.Duration

func (d dur) MarshalJSON() ([]byte, error) {
	return []byte(fmt.Sprintf("%.1f", float64(d)/float64(time.Microsecond))), nil
}

func (d *dur) UnmarshalJSON(b []byte) error {
	var f float64
	if err := json.Unmarshal(b, &f); err != nil {
		return err
	}
	*d = dur(f * float64(time.Microsecond))
	return nil
}

func (d dur) String() string {
	t := time.Duration(d)
	switch {
	case t >= 10*time.Millisecond:
		return t.Round(100 * time.Microsecond).String()
	case t >= time.Millisecond:
		return t.Round(10 * time.Microsecond).String()
	}
	return t.Round(time.Microsecond).String()
}

func measure(e *env, t *target) (sample, error) {
	if t.before != nil {
		t.before()
	}
	pid := 0
	if t.srv != nil {
		pid = t.srv.pid()
		select {
		case <-t.srv.done:
			out, _ := os.ReadFile(t.srv.log)
			return sample{}, fmt.Errorf("server %s exited:\n%s", t.srv.name, tail(string(out), 2000))
		default:
		}
		resetPeakRSS(pid)
	}
	var cpu0, cpu1 time.Duration
	prof := profile(e, t)
	r := runLoad(t.addr, t.conns, e.o.warmup, e.o.duration, t.gen, func(start bool) {
		if pid == 0 {
			return
		}
		if start {
			cpu0 = cpuTime(pid)
		} else {
			cpu1 = cpuTime(pid)
		}
	})
	prof()
	s := sample{Scenario: t.scenario, Server: t.server, Requests: r.Requests, Errors: r.Errors, FirstErr: r.FirstErr,
		RPS: float64(r.Requests) / r.Elapsed.Seconds(), P50: dur(r.P50), P99: dur(r.P99)}
	if pid != 0 {
		if r.Requests > 0 {
			s.CPUus = float64(cpu1-cpu0) / float64(time.Microsecond) / float64(r.Requests)
		}
		s.PeakRSSKB = memKB(pid, "VmHWM")
	}
	if r.Requests == 0 {
		return s, fmt.Errorf("no request completed: %s", r.FirstErr)
	}
	return s, nil
}

func tail(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}

// fakeTB lets the benchmark reuse ldaptest.Start, which takes a testing.TB: embedding
// the interface satisfies its unexported method, and the methods Start calls are ours.
type fakeTB struct {
	testingTB
	e   *env
	dir int
}

func machine() string {
	model := ""
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			if v, ok := strings.CutPrefix(l, "model name"); ok {
				model = strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(v), ":"))
				break
			}
		}
	}
	return fmt.Sprintf("nproc %d, %s, %s %s/%s", runtime.NumCPU(), model, runtime.Version(), runtime.GOOS, runtime.GOARCH)
}

// tokenSums returns the identity-cache IDs of tokens, as the chain computes them.
func tokenSums(tokens []string) [][32]byte {
	out := make([][32]byte, len(tokens))
	for i, t := range tokens {
		out[i] = sha256.Sum256([]byte(t))
	}
	return out
}

// scrape returns the value of the first Prometheus sample on url whose line starts
// with name and contains every label given; ok is false when there is none.
func scrape(u, name string, labels ...string) (float64, bool) {
	resp, err := http.Get(u)
	if err != nil {
		return 0, false
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
lines:
	for _, l := range strings.Split(string(b), "\n") {
		if !strings.HasPrefix(l, name) {
			continue
		}
		for _, lb := range labels {
			if !strings.Contains(l, lb) {
				continue lines
			}
		}
		var v float64
		if _, err := fmt.Sscan(l[strings.LastIndexByte(l, ' ')+1:], &v); err == nil {
			return v, true
		}
	}
	return 0, false
}

// profile fetches a CPU profile of a server over the run (and its allocations after),
// once per scenario and server, when -pprof is given; the returned func waits for it.
func profile(e *env, t *target) func() {
	if !e.o.pprof || t.srv == nil || t.srv.admin == "" || e.profiled[t.id()] {
		return func() {}
	}
	if e.profiled == nil {
		e.profiled = map[string]bool{}
	}
	e.profiled[t.id()] = true
	secs := max(1, int((e.o.warmup+e.o.duration)/time.Second))
	done := make(chan struct{})
	name := strings.ReplaceAll(t.id(), "/", "-")
	go func() {
		defer close(done)
		for _, p := range []struct{ path, file string }{
			{fmt.Sprintf("profile?seconds=%d", secs), "cpu-" + name + ".pprof"},
			{"allocs", "allocs-" + name + ".pprof"},
		} {
			resp, err := http.Get("http://" + t.srv.admin + "/debug/pprof/" + p.path)
			if err != nil {
				log.Printf("pprof: %v", err)
				return
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				log.Printf("pprof %s: HTTP %d", t.id(), resp.StatusCode)
				return
			}
			_ = os.MkdirAll(e.o.out, 0o755)
			_ = os.WriteFile(filepath.Join(e.o.out, p.file), b, 0o644)
		}
	}()
	return func() { <-done }
}
