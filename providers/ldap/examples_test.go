package ldap

import (
	"os"
	"path/filepath"
	"testing"

	"gopkg.in/yaml.v3"

	"github.com/idbridge/idbridge/configs"
)

// TestExamples checks the LDAP parts of the example configurations: every directory is
// valid, and every lookup and type: ldap filter compiles. (The examples move to
// configs/examples/ later; the configs loader will check the rest.)
func TestExamples(t *testing.T) {
	files, err := filepath.Glob("testdata/*.yaml")
	if err != nil || len(files) == 0 {
		t.Fatalf("no examples: %v", err)
	}
	for _, file := range files {
		t.Run(filepath.Base(file), func(t *testing.T) {
			src, err := os.ReadFile(file)
			if err != nil {
				t.Fatal(err)
			}
			var cfg struct {
				Directories map[string]*configs.Directory `yaml:"directories"`
				Providers   []struct {
					Name      string          `yaml:"name"`
					Type      string          `yaml:"type"`
					Directory string          `yaml:"directory"`
					Filter    string          `yaml:"filter"`
					Lookup    *configs.Lookup `yaml:"lookup"`
				} `yaml:"providers"`
			}
			if err := yaml.Unmarshal(src, &cfg); err != nil {
				t.Fatal(err)
			}
			for name, d := range cfg.Directories {
				d.CAFile = "" // the example's CA file exists only where it is deployed
				if _, errs := newDirectory(name, d, file, nil); len(errs) > 0 {
					t.Errorf("directory %s: %v", name, errs)
				}
			}
			ldapProviders := 0
			for _, p := range cfg.Providers {
				if p.Lookup != nil {
					if _, ok := cfg.Directories[p.Lookup.Directory]; !ok {
						t.Errorf("%s: lookup.directory %q not defined", p.Name, p.Lookup.Directory)
					}
					if _, err := compileFilter(p.Lookup.Filter); err != nil {
						t.Errorf("%s: lookup.filter: %v", p.Name, err)
					}
				}
				if p.Type == "ldap" {
					ldapProviders++
					if _, ok := cfg.Directories[p.Directory]; !ok {
						t.Errorf("%s: directory %q not defined", p.Name, p.Directory)
					}
					f, err := compileFilter(p.Filter)
					if err != nil {
						t.Errorf("%s: filter: %v", p.Name, err)
					} else if ps := f.paths(); len(ps) != 1 || ps[0] != tokenPlaceholder {
						t.Errorf("%s: filter placeholders %v", p.Name, ps)
					}
				}
			}
			if ldapProviders == 0 {
				t.Errorf("no type: ldap provider in the example")
			}
		})
	}
}
