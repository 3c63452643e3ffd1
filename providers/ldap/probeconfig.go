package ldap

import (
	"cmp"
	"fmt"
	"sort"

	"github.com/idbridge/idbridge/configs"
)

// ProbeTarget is what `idbridge directory test` tests: a directory, and the search a
// provider of the config makes on it.
type ProbeTarget struct {
	Probe Probe
	// Source names where the filter comes from: "providers[0].lookup", "providers[1]".
	Source string
	// Provider is the section whose search it is (its mapping override applies).
	Provider *configs.ProviderSection
	// Into is the lookup's into key; "" for a `type: ldap` provider, whose document is
	// the entry itself.
	Into string
}

// TargetFor finds directory dir in cfg and the first provider that searches it (a
// lookup step or a `type: ldap` provider), or the provider named provider. Without such
// a provider the target has no filter: the caller must give one. The directory's own
// errors are returned as configs.Errors.
func TargetFor(cfg *configs.Config, dir, provider string) (ProbeTarget, error) {
	var sec *configs.Section
	var names []string
	for _, s := range cfg.Directories {
		names = append(names, s.Name)
		if s.Name == dir {
			sec = s
		}
	}
	if sec == nil {
		sort.Strings(names)
		return ProbeTarget{}, fmt.Errorf("no directory %q under directories (configured: %v)", dir, names)
	}
	dc, errs := DecodeDirectory(sec)
	if len(errs) > 0 {
		return ProbeTarget{}, errs
	}
	t := ProbeTarget{Probe: Probe{Name: dir, File: cfg.File, Directory: dc}}
	for _, ps := range cfg.Providers {
		if provider != "" && ps.Name != provider {
			continue
		}
		own, steps := ps.Split([]string{"lookup"})
		for _, st := range steps {
			var lk LookupConfig
			if errs := st.Decode(&lk); len(errs) > 0 {
				return ProbeTarget{}, errs
			}
			if lk.Directory == dir {
				t.Probe.Filter, t.Probe.Attributes = lk.Filter, lk.Attributes
				t.Source, t.Provider, t.Into = st.Path, ps, cmp.Or(lk.Into, DefaultInto)
				return t, nil
			}
		}
		if ps.Type == Type {
			var c Config
			if errs := own.Decode(&c); len(errs) > 0 {
				return ProbeTarget{}, errs
			}
			if c.Directory == dir {
				t.Probe.Filter, t.Probe.Attributes = c.Filter, c.Attributes
				t.Source, t.Provider = ps.Path, ps
				return t, nil
			}
		}
	}
	if provider != "" {
		return ProbeTarget{}, fmt.Errorf("provider %q does not search directory %q", provider, dir)
	}
	return t, nil
}

// Merge puts the entry document under into in doc, as a lookup step does.
func Merge(doc []byte, into string, entry []byte) ([]byte, error) {
	return mergeInto(doc, into, entry)
}
