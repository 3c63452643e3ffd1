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
//
// secretKeys are the secret key names the packages owning the other sections declare
// (the registry collects them); the shared sections' own are always secret.
func Load(path string, secretKeys ...string) (*Config, Errors) {
	data, err := readBounded(path)
	if err != nil {
		return nil, Errors{{File: path, Msg: fmt.Sprintf("cannot read the configuration: %v", unwrapPathError(err))}}
	}
	return Parse(path, data, os.LookupEnv, secretKeys...)
}

// Parse parses a configuration. file names it in errors and is the base of relative
// ${file:} paths; lookupEnv resolves ${env:} references (nil: no variable is set).
//
// The returned Errors hold every error found, warnings included (Warning: true); the
// configuration is valid when errs.Fatal() is empty. The Config is returned whenever the
// YAML itself could be read, even with errors, so that a checker can go on to decode the
// provider sections and report their errors together with these.
//
// Parse has no side effect beyond reading the files that ${file:} references name: the
// sections other packages own (providers, steps, directories) are only located here.
func Parse(file string, data []byte, lookupEnv func(string) (string, bool), secretKeys ...string) (*Config, Errors) {
	return parse(file, data, lookupEnv, readBounded, secretKeys...)
}

// LoadOffline is Load for validating a file away from where it runs (`idbridge check`
// without --strict, `idbridge map`, `idbridge directory test`): an ${env:} or ${file:}
// reference that cannot be resolved here, and a file the configuration names (ca_file,
// cert_file, keys_dir, …) that is absent here, are warnings that name it instead of
// errors, and errors that only follow from them are excused (Config.Excused). Syntax
// errors in references stay errors.
func LoadOffline(path string, secretKeys ...string) (*Config, Errors) {
	data, err := readBounded(path)
	if err != nil {
		return nil, Errors{{File: path, Msg: fmt.Sprintf("cannot read the configuration: %v", unwrapPathError(err))}}
	}
	return parseWith(path, data, os.LookupEnv, readBounded, true, secretKeys...)
}

// MaxFileBytes bounds the configuration file and each file a ${file:} reference reads
// (4 MiB: a configuration is a few KiB, a secret a few hundred bytes). A path that names
// /dev/zero or a runaway generated file is then an error, not a process that grows until
// the kernel stops it.
const MaxFileBytes = 4 << 20

// readBounded is os.ReadFile refusing more than MaxFileBytes.
func readBounded(path string) ([]byte, error) { return ReadFileLimited(path, MaxFileBytes) }

// ReadFileLimited is os.ReadFile refusing a file of more than max bytes (an *os.PathError
// "larger than …"), without reading more than max+1 of it: a path may name /dev/zero or
// a file that is still growing.
func ReadFileLimited(path string, max int64) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, max+1))
	if err != nil {
		return nil, err
	}
	if int64(len(data)) > max {
		size := fmt.Sprintf("%d bytes", max)
		if max%(1<<20) == 0 {
			size = fmt.Sprintf("%d MiB", max>>20)
		}
		return nil, &os.PathError{Op: "read", Path: path, Err: errors.New("larger than " + size)}
	}
	return data, nil
}

func parse(file string, data []byte, lookupEnv func(string) (string, bool), readFile func(string) ([]byte, error), secretKeys ...string) (*Config, Errors) {
	return parseWith(file, data, lookupEnv, readFile, false, secretKeys...)
}

func parseWith(file string, data []byte, lookupEnv func(string) (string, bool), readFile func(string) ([]byte, error), offline bool, secretKeys ...string) (*Config, Errors) {
	secrets := newSecretSet(secretKeys)
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

	res := &resolver{file: file, dir: filepath.Dir(file), lookupEnv: lookupEnv, readFile: readFile, secrets: secrets, offline: offline}
	res.walk("", "", top, 0)
	if offline {
		res.absentFiles("", "", top, 0)
	}

	lines := map[string]int{"": top.Line}
	d := newDecoder(file, lines)
	d.refs, d.secrets = res.refs, secrets
	cfg := &Config{File: file, resolved: res.resolved, absent: res.absent}

	// Everything but providers: decodes into Config; providers: is built by hand, since
	// each section keeps its own keys as a node.
	rest := &yaml.Node{Kind: yaml.MappingNode, Tag: "!!map", Line: top.Line, Column: top.Column}
	var provKey, provNode, dirKey, dirNode *yaml.Node
	for _, p := range d.pairs("", top, 0) {
		switch p.key.Value {
		case "providers":
			provKey, provNode = p.key, p.val
			continue
		case "directories":
			dirKey, dirNode = p.key, p.val
			continue
		}
		rest.Content = append(rest.Content, p.key, p.val)
	}
	d.decode("", top.Line, rest, reflect.ValueOf(cfg).Elem())
	if provKey != nil {
		lines["providers"] = provKey.Line
		cfg.Providers = d.providers(provKey, provNode)
	}
	if dirKey != nil {
		lines["directories"] = dirKey.Line
		cfg.Directories = d.sections("directories", dirNode)
	}

	setDefaults(cfg)
	v := &validator{file: file, lines: lines, root: top.Line, skip: res.failed, refs: res.refs, absent: res.absent, secrets: secrets}
	v.config(cfg, provKey != nil)

	errs := append(res.errs, d.errs...)
	errs = append(errs, v.errs...)
	sortErrors(errs)
	for _, e := range errs.Fatal() {
		cfg.reported = append(cfg.reported, e.Path)
	}
	cfg.unresolved = res.failed
	return cfg, cfg.Redact(errs)
}

// Reported tells whether configs reported a fatal error at path or below it (a typo in
// a mapping's when:, a spotnana key it checks). The package that owns the next rule
// about that section does not judge it again: the fault is reported once, by its owner.
func (c *Config) Reported(path string) bool {
	for _, p := range c.reported {
		if below(p, path) {
			return true
		}
	}
	return false
}

// Unresolved tells whether a ${env:} or ${file:} reference at path or below it failed
// (and was reported): the value there is the reference's text, not a value to judge.
func (c *Config) Unresolved(path string) bool {
	for p := range c.unresolved {
		if below(p, path) {
			return true
		}
	}
	return false
}

// below reports whether key path p is path itself or inside it.
func below(p, path string) bool {
	return p == path || strings.HasPrefix(p, path+".") || strings.HasPrefix(p, path+"[")
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
var sharedKeys = []string{"name", "type", "mapping"}

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
				if sec.sharedLines == nil {
					sec.sharedLines = map[string]int{}
				}
				sec.sharedLines[p.key.Value] = p.key.Line
			}
			switch p.key.Value {
			case "name":
				d.decode(kp, p.key.Line, p.val, reflect.ValueOf(&sec.Name).Elem())
			case "type":
				d.decode(kp, p.key.Line, p.val, reflect.ValueOf(&sec.Type).Elem())
			case "mapping":
				d.decode(kp, p.key.Line, p.val, reflect.ValueOf(&sec.Mapping).Elem())
			default:
				sec.Node.Content = append(sec.Node.Content, p.key, p.val)
			}
		}
		sec.Fingerprint = fingerprint(pairs)
		sec.refs, sec.secrets = d.refsBelow(path), d.secrets
		out = append(out, sec)
	}
	return out
}

// refsBelow returns the references recorded below path.
func (d *decoder) refsBelow(path string) map[string]string {
	var out map[string]string
	for p, ref := range d.refs {
		if strings.HasPrefix(p, path+".") || strings.HasPrefix(p, path+"[") {
			if out == nil {
				out = map[string]string{}
			}
			out[p] = ref
		}
	}
	return out
}

// sections builds the sections of a mapping whose values another package decodes
// (directories:), in file order.
func (d *decoder) sections(key string, n *yaml.Node) []*Section {
	if n.Kind == yaml.AliasNode && n.Alias != nil {
		n = n.Alias
	}
	if isNull(n) {
		return nil
	}
	if n.Kind != yaml.MappingNode {
		d.errorf(n.Line, key, "expected a mapping of names, got %s", kindName(n))
		return nil
	}
	var out []*Section
	for _, p := range d.pairs(key, n, 0) {
		path := joinPath(key, p.key.Value)
		d.record(path, p.key.Line)
		val := p.val
		if val.Kind == yaml.AliasNode && val.Alias != nil {
			val = val.Alias
		}
		out = append(out, &Section{Name: p.key.Value, File: d.file, Path: path, Line: p.key.Line, Node: val,
			refs: d.refsBelow(path), secrets: d.secrets})
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
