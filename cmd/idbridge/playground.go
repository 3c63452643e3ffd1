package main

import (
	"fmt"

	"gopkg.in/yaml.v3"

	"github.com/idbridge/idbridge/app"
	"github.com/idbridge/idbridge/configs"
	"github.com/idbridge/idbridge/playground"

	"github.com/idbridge/idbridge/internal/loopback"
)

// playgroundOptions returns the playground's hooks when cfg turns it on: by default
// while the admin listener is on loopback, else only with server.playground: true.
// path is the config file (its mapping section is the page's starting rules); "" is the
// demo's embedded config.
func playgroundOptions(cfg *configs.Config, path string) *playground.Options {
	on := loopback.HostPort(cfg.Server.AdminListen)
	if cfg.Server.Playground != nil {
		on = *cfg.Server.Playground
	}
	if !on {
		return nil
	}
	return &playground.Options{
		Compile: compilePlaygroundRules,
		Rules: func() string {
			data := configs.Demo
			if path != "" {
				var err error
				if data, err = configs.ReadFileLimited(path, configs.MaxFileBytes); err != nil {
					return ""
				}
			}
			return mappingSection(data)
		},
	}
}

// mappingSection returns the text of a config's top-level mapping: section, re-encoded.
func mappingSection(data []byte) string {
	var root yaml.Node
	if yaml.Unmarshal(data, &root) != nil || len(root.Content) == 0 {
		return ""
	}
	top := root.Content[0]
	for i := 0; i+1 < len(top.Content); i += 2 {
		if top.Content[i].Value == "mapping" {
			out, err := yaml.Marshal(top.Content[i+1])
			if err != nil {
				return ""
			}
			return string(out)
		}
	}
	return ""
}

// compilePlaygroundRules compiles the page's mapping section exactly as a config's.
func compilePlaygroundRules(text []byte) playground.Compiled {
	const file = "rules"
	var out playground.Compiled
	var root yaml.Node
	if err := yaml.Unmarshal(text, &root); err != nil {
		out.Errors = []string{fmt.Sprintf("%s: %v", file, err)}
		return out
	}
	if len(root.Content) == 0 {
		out.Errors = []string{"the rules are empty: write an email: list"}
		return out
	}
	var m configs.Mapping
	if errs := configs.DecodeStrict(file, "mapping", root.Content[0], &m); len(errs) > 0 {
		for _, e := range errs {
			out.Errors = append(out.Errors, e.Error())
		}
		return out
	}
	rules, errs := app.CompileMapping(file, "mapping", &m)
	for _, e := range errs {
		out.Errors = append(out.Errors, e.Error())
	}
	for _, w := range app.LintMapping(file, "mapping", &m) {
		out.Warnings = append(out.Warnings, w.Error())
	}
	out.Rules = rules
	return out
}
