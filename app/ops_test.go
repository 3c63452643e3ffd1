package app

import (
	"context"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/idbridge/idbridge/configs"
	"github.com/idbridge/idbridge/providers"
	"github.com/idbridge/idbridge/server"
)

// counting is a provider that keeps a counter for the metrics and reports a health.
type counting struct {
	providers.ProviderFunc
	n     atomic.Int64
	ready bool
}

func (c *counting) Counters() []providers.Counter {
	return []providers.Counter{{Name: "fake_loads", Help: "Loads.", Result: "ok", Value: c.n.Load()}}
}

func (c *counting) Health(context.Context) providers.Health {
	return providers.Health{Ready: c.ready, OK: c.ready}
}

func planOf(ins ...*providers.Instance) *Plan {
	return &Plan{Config: &configs.Config{}, Instances: ins}
}

// TestCountersSurviveReload: a provider's counters become one monotonic series per
// provider name, across a reload that starts a new provider from zero.
func TestCountersSurviveReload(t *testing.T) {
	m := newMetrics("test")
	old := &counting{}
	m.install(planOf(&providers.Instance{Name: "a", Provider: old}))
	old.n.Store(3)
	check := func(v float64) {
		t.Helper()
		if got := value(t, m.reg, "idbridge_fake_loads_total", "provider", "a", "result", "ok"); got != v {
			t.Errorf("idbridge_fake_loads_total{provider=a,result=ok} = %v, want %v", got, v)
		}
	}
	check(3)
	old.n.Store(5) // counted after the last scrape, before the reload
	fresh := &counting{}
	m.install(planOf(&providers.Instance{Name: "a", Provider: fresh}))
	fresh.n.Store(1)
	check(6)
	check(6) // a scrape adds nothing by itself
}

func TestReadiness(t *testing.T) {
	down, up := &counting{ready: false}, &counting{ready: true}
	plain := providers.ProviderFunc(nil)
	for _, tt := range []struct {
		name string
		ins  []*providers.Instance
		want bool
	}{
		{"one provider that cannot serve yet", []*providers.Instance{{Name: "a", Provider: down}}, false},
		{"one of two can serve", []*providers.Instance{{Name: "a", Provider: down}, {Name: "b", Provider: up}}, true},
		{"a provider with nothing to wait for", []*providers.Instance{{Name: "a", Provider: down}, {Name: "c", Provider: plain}}, true},
	} {
		var none *Process
		ready, detail := none.health(planOf(tt.ins...))(context.Background())
		if ready != tt.want {
			t.Errorf("%s: ready %v, want %v (%v)", tt.name, ready, tt.want, detail)
		}
		if _, ok := detail.Providers["a"]; !ok {
			t.Errorf("%s: no detail for provider a: %v", tt.name, detail)
		}
	}
}

// TestReload: a bad file keeps the old runtime serving; a good one replaces it; each is
// counted.
func TestReload(t *testing.T) {
	f := &fakeType{}
	reg := registry(f)
	path := filepath.Join(t.TempDir(), "c.yaml")
	write := func(s string) {
		if err := os.WriteFile(path, []byte(s), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	const good = "server: {listen: \"127.0.0.1:0\", admin_listen: \"127.0.0.1:0\"}\nproviders:\n  - {name: a, type: fake}\nmapping: {email: [{path: email}]}\n"
	write(good)
	plan, errs := LoadFile(path, reg, nil)
	if len(errs.Fatal()) > 0 {
		t.Fatal(errs)
	}
	proc, err := NewProcess(plan.Config, discard(), "test")
	if err != nil {
		t.Fatal(err)
	}
	defer proc.Close()
	rt, err := proc.Runtime(t.Context(), plan)
	if err != nil {
		t.Fatal(err)
	}
	srv, err := server.New(rt, proc.Options(discard()))
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()

	write("providers:\n  - {name: a, type: nosuch}\nmapping: {email: [{path: email}]}\n")
	if Reload(t.Context(), path, reg, discard(), srv, proc) {
		t.Fatal("a bad file was installed")
	}
	if srv.Current() != rt {
		t.Fatal("the old runtime no longer serves")
	}
	write(good)
	if !Reload(t.Context(), path, reg, discard(), srv, proc) || srv.Current() == rt {
		t.Fatal("a good file was not installed")
	}
	if f.started != 2 {
		t.Errorf("started %d times, want 2 (the first plan, then the reloaded one; never the bad one)", f.started)
	}
	for _, result := range []string{"ok", "error"} {
		if got := value(t, proc.metrics.reg, "idbridge_config_reloads_total", "result", result); got != 1 {
			t.Errorf("reloads{result=%s} = %v, want 1", result, got)
		}
	}
}

// value returns the counter or gauge named name with the given label pairs (-1: none).
func value(t *testing.T, reg *prometheus.Registry, name string, labels ...string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	metric:
		for _, m := range mf.GetMetric() {
			got := map[string]string{}
			for _, lp := range m.GetLabel() {
				got[lp.GetName()] = lp.GetValue()
			}
			for i := 0; i+1 < len(labels); i += 2 {
				if got[labels[i]] != labels[i+1] {
					continue metric
				}
			}
			if c := m.GetCounter(); c != nil {
				return c.GetValue()
			}
			return m.GetGauge().GetValue()
		}
	}
	return -1
}
