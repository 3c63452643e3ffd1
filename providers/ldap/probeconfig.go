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
// a provider the target has no filter: the caller must give one.
func TargetFor(cfg *configs.Config, dir, provider string) (ProbeTarget, error) {
	d, ok := cfg.Directories[dir]
	if !ok {
		names := make([]string, 0, len(cfg.Directories))
		for n := range cfg.Directories {
			names = append(names, n)
		}
		sort.Strings(names)
		return ProbeTarget{}, fmt.Errorf("no directory %q under directories (configured: %v)", dir, names)
	}
	t := ProbeTarget{Probe: Probe{Name: dir, File: cfg.File, Directory: d}}
	for _, sec := range cfg.Providers {
		if provider != "" && sec.Name != provider {
			continue
		}
		if sec.Lookup != nil && sec.Lookup.Directory == dir {
			t.Probe.Filter, t.Probe.Attributes = sec.Lookup.Filter, sec.Lookup.Attributes
			t.Source, t.Provider, t.Into = sec.Path+".lookup", sec, cmp.Or(sec.Lookup.Into, DefaultInto)
			return t, nil
		}
		if sec.Type == Type {
			var c Config
			if errs := sec.Decode(&c); len(errs) > 0 {
				return ProbeTarget{}, errs
			}
			if c.Directory == dir {
				t.Probe.Filter, t.Probe.Attributes = c.Filter, c.Attributes
				t.Source, t.Provider = sec.Path, sec
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
