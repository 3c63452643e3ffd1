package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
)

type report struct {
	Date      string       `json:"date"`
	Machine   string       `json:"machine"`
	Placement string       `json:"placement"`
	Settings  string       `json:"settings"`
	Elapsed   string       `json:"elapsed"`
	Runs      []sample     `json:"runs"`
	Memory    *memResult   `json:"memory,omitempty"`
	Targets   []targetLine `json:"targets"`
	Notes     []string     `json:"notes"`
}

// targetLine is one of the benchmark's targets (issues 7 and 11) with its measured ratio.
type targetLine struct {
	Name     string  `json:"name"`
	Measured float64 `json:"measured"`
	Bound    float64 `json:"bound"`
	AtLeast  bool    `json:"at_least"` // measured must be ≥ bound (else ≤)
	Unit     string  `json:"unit"`     // "×" for ratios
	Met      bool    `json:"met"`
}

// median keeps, for each field, the median over the rounds (rounds are interleaved,
// so a noisy moment on the shared machine hits one sample of each run, not one run).
func median(t *target, ss []sample) sample {
	if len(ss) == 0 {
		return sample{Scenario: t.scenario, Server: t.server}
	}
	med := func(get func(sample) float64) float64 {
		v := make([]float64, len(ss))
		for i, s := range ss {
			v[i] = get(s)
		}
		slices.Sort(v)
		return v[len(v)/2]
	}
	out := sample{Scenario: t.scenario, Server: t.server, Rounds: len(ss)}
	out.RPS = med(func(s sample) float64 { return s.RPS })
	out.P50 = dur(med(func(s sample) float64 { return float64(s.P50) }))
	out.P99 = dur(med(func(s sample) float64 { return float64(s.P99) }))
	out.CPUus = med(func(s sample) float64 { return s.CPUus })
	out.Requests = int64(med(func(s sample) float64 { return float64(s.Requests) }))
	for _, s := range ss {
		out.Errors += s.Errors
		out.PeakRSSKB = max(out.PeakRSSKB, s.PeakRSSKB)
		out.RPSAll = append(out.RPSAll, s.RPS)
		if out.FirstErr == "" {
			out.FirstErr = s.FirstErr
		}
	}
	return out
}

func (r *report) find(scenario, server string) *sample {
	for i := range r.Runs {
		if r.Runs[i].Scenario == scenario && r.Runs[i].Server == server {
			return &r.Runs[i]
		}
	}
	return nil
}

func targets(r report) []targetLine {
	var out []targetLine
	add := func(name string, measured, bound float64, atLeast bool, unit string) {
		met := measured <= bound
		if atLeast {
			met = measured >= bound
		}
		out = append(out, targetLine{Name: name, Measured: measured, Bound: bound, AtLeast: atLeast, Unit: unit, Met: met})
	}
	if i, g := r.find("a", "idbridge"), r.find("a", "gin"); i != nil && g != nil && g.RPS > 0 && g.CPUus > 0 {
		add("a: cached path requests/s vs bare Gin", i.RPS/g.RPS, 0.8, true, "×")
		add("a: cached path CPU per request vs bare Gin", i.CPUus/g.CPUus, 1.3, false, "×")
	}
	if i, v := r.find("b", "idbridge"), r.find("b", "jwtverify"); i != nil && v != nil && v.RPS > 0 && v.P99 > 0 {
		add("b: distinct RS256 tokens requests/s vs minimal verifier", i.RPS/v.RPS, 0.9, true, "×")
		add("b: distinct RS256 tokens p99 vs minimal verifier", float64(i.P99)/float64(v.P99), 1.5, false, "×")
		if v.CPUus > 0 {
			add("b: distinct RS256 tokens CPU per request vs minimal verifier", i.CPUus/v.CPUus, 1.1, false, "×")
		}
	}
	peak := int64(0)
	for _, s := range r.Runs {
		if s.Server == "idbridge" {
			peak = max(peak, s.PeakRSSKB)
		}
	}
	if peak > 0 {
		add("memory: idbridge peak RSS under load (scenarios a–e)", float64(peak)/1024, 40, false, "MB")
	}
	if r.Memory != nil {
		add(fmt.Sprintf("memory: RSS per cached identity (%d identities)", r.Memory.Identities), r.Memory.BytesPerIdent/1024, 1.5, false, "KB")
	}
	if i, d := r.find("e", "idbridge"), r.find("e", "sandbox-direct"); i != nil && d != nil && d.P50 > 0 {
		add("e: exchange p50 latency vs calling the sandbox directly", float64(i.P50)/float64(d.P50), 1.3, false, "×")
	}
	if i, d := r.find("d", "idbridge"), r.find("d", "ldapdial"); i != nil && d != nil && d.RPS > 0 {
		add("d: LDAP through the pool requests/s vs a new connection per request", i.RPS/d.RPS, 3, true, "×")
	}
	return out
}

// baselineOf names the run each scenario's rows are compared with in the table.
func baselineOf(scenario string) string {
	switch scenario {
	case "a", "c":
		return "gin"
	case "b":
		return "jwtverify"
	case "d":
		return "ldapdial"
	case "e":
		return "sandbox-direct"
	}
	return ""
}

var scenarioNames = map[string]string{
	"a": "a: one token (cache hit)",
	"b": "b: 10k distinct RS256 tokens, cache 1000",
	"c": "c: introspection, 90% cache hits",
	"d": "d: LDAP provider through the pool",
	"e": "e: POST /v1/token-exchange via sandbox",
}

func (r report) markdown() string {
	var b strings.Builder
	fmt.Fprintf(&b, "Measured %s on %s.  \n%s; %s.\n\n", r.Date, r.Machine, r.Placement, r.Settings)
	b.WriteString("| scenario | server | req/s | p50 | p99 | CPU µs/req | peak RSS MB | req/s ratio | p99 ratio | CPU ratio | errors |\n")
	b.WriteString("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n")
	for _, s := range r.Runs {
		ratio := func(f func(*sample) float64) string {
			base := r.find(s.Scenario, baselineOf(s.Scenario))
			if s.Scenario == "c" {
				base = r.find("a", "gin")
			}
			if base == nil || f(base) == 0 || f(&s) == 0 {
				return ""
			}
			return fmt.Sprintf("%.2f× %s", f(&s)/f(base), base.Server)
		}
		cpu, rss := "", ""
		if s.CPUus > 0 {
			cpu = fmt.Sprintf("%.1f", s.CPUus)
		}
		if s.PeakRSSKB > 0 {
			rss = fmt.Sprintf("%.1f", float64(s.PeakRSSKB)/1024)
		}
		fmt.Fprintf(&b, "| %s | %s | %.0f | %s | %s | %s | %s | %s | %s | %s | %d |\n", scenarioNames[s.Scenario], s.Server,
			s.RPS, s.P50, s.P99, cpu, rss,
			ratio(func(x *sample) float64 { return x.RPS }),
			ratio(func(x *sample) float64 { return float64(x.P99) }),
			ratio(func(x *sample) float64 { return x.CPUus }), s.Errors)
	}
	b.WriteString("\nRatios compare each row with its scenario's baseline (scenario c with scenario a's bare Gin).\n\n")
	b.WriteString("| target | measured | bound | met |\n|---|---:|---:|---|\n")
	for _, t := range r.Targets {
		op := "≤"
		if t.AtLeast {
			op = "≥"
		}
		met := "yes"
		if !t.Met {
			met = "**missed**"
		}
		fmt.Fprintf(&b, "| %s | %.2f %s | %s %.2f %s | %s |\n", t.Name, t.Measured, t.Unit, op, t.Bound, t.Unit, met)
	}
	if m := r.Memory; m != nil {
		fmt.Fprintf(&b, "\nPer-identity memory: VmRSS %.1f MB → %.1f MB for %d cached identities = %.0f bytes each (peak %.1f MB). Replaying %d of them cost %.1f µs CPU each",
			float64(m.RSSBeforeKB)/1024, float64(m.RSSAfterKB)/1024, m.Identities, m.BytesPerIdent, float64(m.PeakKB)/1024, m.Replayed, m.ReplayCPUus)
		if m.CacheHits > 0 {
			fmt.Fprintf(&b, " (%.0f identity-cache hits in /metrics)", m.CacheHits)
		}
		b.WriteString(". " + m.Note + ".\n")
	}
	if len(r.Notes) > 0 {
		b.WriteString("\nNotes:\n")
		for _, n := range r.Notes {
			b.WriteString("- " + n + "\n")
		}
	}
	fmt.Fprintf(&b, "\nWhole run: %s.\n", r.Elapsed)
	return b.String()
}

func (r report) write(dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	js, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, "latest.json"), append(js, '\n'), 0o644); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, "latest.md"), []byte(r.markdown()), 0o644)
}
