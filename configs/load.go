package configs

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"
)

// Load reads and parses the configuration file at path. ${env:} references are resolved
// from the process environment, and relative ${file:} paths from path's folder.
func Load(path string) (*Config, Errors) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, Errors{{File: path, Msg: fmt.Sprintf("cannot read the configuration: %v", unwrapPathError(err))}}
	}
	return Parse(path, data, os.LookupEnv)
}

// Parse parses a configuration. file names it in errors and is the base of relative
// ${file:} paths; lookupEnv resolves ${env:} references (nil: no variable is set).
//
// The returned Errors hold every error found, warnings included (Warning: true); the
// configuration is valid when errs.Fatal() is empty. The Config is returned whenever the
// YAML itself could be read, even with errors, so that a checker can go on to decode the
// provider sections and report their errors together with these.
func Parse(file string, data []byte, lookupEnv func(string) (string, bool)) (*Config, Errors) {
	return parse(file, data, lookupEnv, os.ReadFile)
}

func parse(file string, data []byte, lookupEnv func(string) (string, bool), readFile func(string) ([]byte, error)) (*Config, Errors) {
	if lookupEnv == nil {
		lookupEnv = func(string) (string, bool) { return "", false }
	}
	root, err := parseYAML(data)
	if err != nil {
		return nil, Errors{yamlError(file, err)}
	}
	if root == nil || len(root.Content) == 0 || isNull(root.Content[0]) {
		return nil, Errors{{File: file, Line: 1, Msg: "the configuration is empty: providers and mapping are required"}}
	}
	top := root.Content[0]
	if top.Kind != yaml.MappingNode {
		return nil, Errors{{File: file, Line: top.Line, Msg: "the configuration must be a mapping of keys (server:, providers:, mapping:, …)"}}
	}

	res := &resolver{file: file, dir: filepath.Dir(file), lookupEnv: lookupEnv, readFile: readFile}
	res.walk("", "", top, 0)

	lines := map[string]int{"": top.Line}
	d := newDecoder(file, lines)
	d.refs = res.refs
	cfg := &Config{File: file, resolved: res.resolved}

	// Everything but providers: decodes into Config; providers: is built by hand, since
	// each section keeps its own keys as a node.
	rest := &yaml.Node{Kind: yaml.MappingNode, Tag: "!!map", Line: top.Line, Column: top.Column}
	var provKey, provNode *yaml.Node
	for _, p := range d.pairs("", top, 0) {
		if p.key.Value == "providers" {
			provKey, provNode = p.key, p.val
			continue
		}
		rest.Content = append(rest.Content, p.key, p.val)
	}
	d.decode("", top.Line, rest, reflect.ValueOf(cfg).Elem())
	if provKey != nil {
		lines["providers"] = provKey.Line
		cfg.Providers = d.providers(provKey, provNode)
	}

	setDefaults(cfg)
	v := &validator{file: file, lines: lines, root: top.Line, skip: res.failed, refs: res.refs}
	v.config(cfg, provKey != nil)

	errs := append(res.errs, d.errs...)
	errs = append(errs, v.errs...)
	sortErrors(errs)
	return cfg, cfg.Redact(errs)
}

// parseYAML reads one YAML document into a node tree. A panic inside the YAML library (a
// bug there, reached by a malformed file) is turned into an error: a broken file must
// never take the process down, least of all on a reload.
func parseYAML(data []byte) (root *yaml.Node, err error) {
	defer func() {
		if r := recover(); r != nil {
			root, err = nil, fmt.Errorf("yaml: cannot parse the file (%v)", r)
		}
	}()
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, nil
		}
		return nil, err
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); err == nil {
		return nil, fmt.Errorf("yaml: line %d: a second document (---): the configuration is one document", max(extra.Line, 1))
	} else if !errors.Is(err, io.EOF) {
		return nil, err
	}
	return &doc, nil
}

var yamlLineRE = regexp.MustCompile(`^(?:yaml: )?line (\d+): `)

// yamlError turns a yaml.v3 syntax error into an Error with its line.
func yamlError(file string, err error) *Error {
	msg := err.Error()
	line := 0
	if m := yamlLineRE.FindStringSubmatch(msg); m != nil {
		line, _ = strconv.Atoi(m[1])
		msg = msg[len(m[0]):]
	}
	msg = strings.TrimPrefix(msg, "yaml: ")
	return &Error{File: file, Line: line, Msg: "invalid YAML: " + msg}
}

// sharedKeys are the provider keys configs decodes itself; the rest belong to the type.
var sharedKeys = []string{"name", "type", "mapping", "lookup", "userinfo"}

// providers builds the provider sections from the providers: list.
func (d *decoder) providers(key, n *yaml.Node) []*ProviderSection {
	if n.Kind == yaml.AliasNode && n.Alias != nil {
		n = n.Alias
	}
	if isNull(n) {
		return nil
	}
	if n.Kind != yaml.SequenceNode {
		d.errorf(n.Line, "providers", "expected a list of providers, got %s", kindName(n))
		return nil
	}
	var out []*ProviderSection
	for i, item := range n.Content {
		path := fmt.Sprintf("providers[%d]", i)
		d.record(path, item.Line)
		if item.Kind == yaml.AliasNode && item.Alias != nil {
			item = item.Alias
		}
		if item.Kind != yaml.MappingNode {
			d.errorf(item.Line, path, "expected a provider (a mapping with name:, type:, …), got %s", kindName(item))
			continue
		}
		sec := &ProviderSection{
			File: d.file,
			Path: path,
			Line: item.Line,
			Node: &yaml.Node{Kind: yaml.MappingNode, Tag: "!!map", Line: item.Line, Column: item.Column},
		}
		pairs := d.pairs(path, item, 0)
		for _, p := range pairs {
			kp := joinPath(path, p.key.Value)
			if slices.Contains(sharedKeys, p.key.Value) {
				d.record(kp, p.key.Line)
			}
			switch p.key.Value {
			case "name":
				d.decode(kp, p.key.Line, p.val, reflect.ValueOf(&sec.Name).Elem())
			case "type":
				d.decode(kp, p.key.Line, p.val, reflect.ValueOf(&sec.Type).Elem())
			case "mapping":
				d.decode(kp, p.key.Line, p.val, reflect.ValueOf(&sec.Mapping).Elem())
			case "lookup":
				d.decode(kp, p.key.Line, p.val, reflect.ValueOf(&sec.Lookup).Elem())
			case "userinfo":
				d.decode(kp, p.key.Line, p.val, reflect.ValueOf(&sec.Userinfo).Elem())
			default:
				sec.Node.Content = append(sec.Node.Content, p.key, p.val)
			}
		}
		sec.Fingerprint = fingerprint(pairs)
		for p, ref := range d.refs {
			if strings.HasPrefix(p, path+".") {
				if sec.refs == nil {
					sec.refs = map[string]string{}
				}
				sec.refs[p] = ref
			}
		}
		out = append(out, sec)
	}
	return out
}

// fingerprint is the hex SHA-256 of a canonical encoding of a provider's resolved
// section: keys sorted, scalars with their resolved tag, aliases expanded. Two sections
// that mean the same get the same fingerprint however they are written.
func fingerprint(pairs []pair) string {
	var b bytes.Buffer
	// One decoder for the whole walk: merge keys are expanded within its node budget;
	// its errors were already reported while decoding.
	d := newDecoder("", nil)
	canonPairs(&b, d, pairs, 0)
	sum := sha256.Sum256(b.Bytes())
	return hex.EncodeToString(sum[:])
}

func canonPairs(b *bytes.Buffer, d *decoder, pairs []pair, depth int) {
	sorted := slices.Clone(pairs)
	slices.SortFunc(sorted, func(x, y pair) int { return strings.Compare(x.key.Value, y.key.Value) })
	b.WriteByte('{')
	for _, p := range sorted {
		b.WriteString(strconv.Quote(p.key.Value))
		b.WriteByte(':')
		canon(b, d, p.val, depth+1)
		b.WriteByte(',')
	}
	b.WriteByte('}')
}

func canon(b *bytes.Buffer, d *decoder, n *yaml.Node, depth int) {
	d.nodes++
	if d.nodes > maxNodes || depth > maxDepth {
		b.WriteString("!")
		return
	}
	if n.Kind == yaml.AliasNode && n.Alias != nil {
		n = n.Alias
	}
	switch n.Kind {
	case yaml.MappingNode:
		canonPairs(b, d, d.pairs("", n, 0), depth)
	case yaml.SequenceNode:
		b.WriteByte('[')
		for _, c := range n.Content {
			canon(b, d, c, depth+1)
			b.WriteByte(',')
		}
		b.WriteByte(']')
	case yaml.ScalarNode:
		if isNull(n) {
			b.WriteString("null")
			return
		}
		b.WriteString(scalarTag(n))
		b.WriteString(strconv.Quote(n.Value))
	default:
		b.WriteString("?")
	}
}
