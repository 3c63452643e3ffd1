package configs

import (
	"encoding"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// DecodeStrict decodes node into out (a pointer to a struct with yaml tags). Unlike
// yaml.Node.Decode it refuses unknown keys and duplicate keys, and it goes on after an
// error so that every error is reported at once. Every error carries file, the line of
// the offending node and the key path below path (providers[0].audiences).
//
// It handles structs (with `,inline`), pointers, slices, maps with string keys,
// yaml.Node fields (copied as they are), time.Duration written as "30s", scalars, `any`,
// and types with their own UnmarshalYAML(*yaml.Node) such as Transform. A struct field
// `Line int yaml:"-"` is set to the line where the struct's key (or list item) is written,
// and a field `Name string yaml:"-"` of a map value is set to its key.
func DecodeStrict(file, path string, node *yaml.Node, out any) Errors {
	d := newDecoder(file, nil)
	d.decodeInto(path, node, out)
	return d.errs
}

// Decode decodes the section's keys into out, strictly. Its errors show a value that
// came from a reference as that reference, never as the resolved value, and never show
// the value of a secret key.
func (s *Section) Decode(out any) Errors {
	d := newDecoder(s.File, nil)
	d.refs, d.secrets = s.refs, s.secrets
	d.decodeInto(s.Path, s.Node, out)
	return d.errs
}

// Errorf builds an error located at key inside the section (at the section itself when
// the key is absent). key may be a dotted path below the section (scope.items[0]); the
// line is that of its first key found in the section.
func (s *Section) Errorf(key, format string, args ...any) *Error {
	line := s.Line
	if s.Node != nil && s.Node.Kind == yaml.MappingNode {
		first, _, _ := strings.Cut(key, ".")
		first, _, _ = strings.Cut(first, "[")
		for i := 0; i+1 < len(s.Node.Content); i += 2 {
			if s.Node.Content[i].Value == first {
				line = s.Node.Content[i].Line
			}
		}
	}
	p := s.Path
	if key != "" {
		p += "." + key
	}
	return &Error{File: s.File, Line: line, Path: p, Msg: sprintf(format, args...)}
}

// Warnf is Errorf for advice that does not make the file invalid.
func (s *Section) Warnf(key, format string, args ...any) *Error {
	e := s.Errorf(key, format, args...)
	e.Warning = true
	return e
}

// Shown quotes a value of the section for an error message: a secret key's value, or a
// value that came from a reference, is never shown.
func (s *Section) Shown(key, value string) string {
	return showValue(s.refs, s.secrets, joinPath(s.Path, key), value)
}

// Decode decodes the provider's own keys into out, strictly (see Section.Decode).
func (s *ProviderSection) Decode(out any) Errors { return s.section().Decode(out) }

// Errorf builds an error located at key inside the provider's section.
func (s *ProviderSection) Errorf(key, format string, args ...any) *Error {
	e := s.section().Errorf(key, format, args...)
	if l, ok := s.sharedLines[key]; ok {
		e.Line = l
	}
	return e
}

func (s *ProviderSection) section() *Section {
	return &Section{File: s.File, Path: s.Path, Line: s.Line, Node: s.Node, refs: s.refs, secrets: s.secrets}
}

// Split separates the keys of the enrichment steps (lookup, userinfo, rest: whatever
// the registry names) from the provider's own keys. It returns a copy of the section
// without them, and one section per step present, in the order of keys. s is unchanged.
func (s *ProviderSection) Split(keys []string) (*ProviderSection, []*Section) {
	own := *s
	var steps []*Section
	if s.Node == nil {
		return &own, nil
	}
	node := *s.Node
	node.Content = nil
	found := map[string]*Section{}
	for i := 0; i+1 < len(s.Node.Content); i += 2 {
		k, v := s.Node.Content[i], s.Node.Content[i+1]
		if !slices.Contains(keys, k.Value) {
			node.Content = append(node.Content, k, v)
			continue
		}
		if v.Kind == yaml.AliasNode && v.Alias != nil {
			v = v.Alias
		}
		found[k.Value] = &Section{Name: k.Value, File: s.File, Path: joinPath(s.Path, k.Value), Line: k.Line, Node: v, refs: s.refs, secrets: s.secrets}
	}
	own.Node = &node
	for _, k := range keys {
		if sec := found[k]; sec != nil {
			steps = append(steps, sec)
		}
	}
	return &own, steps
}

// Limits that keep a hostile or broken file (an alias that contains itself, a "billion
// laughs" of nested aliases) from exhausting the stack or the memory.
const (
	maxDepth = 100
	maxNodes = 1 << 20
)

// decoder walks a node tree and a Go value side by side.
type decoder struct {
	file string
	errs Errors
	// lines, when non-nil, records the line of every key path decoded, so that
	// validation can place its errors.
	lines map[string]int
	// refs maps the paths whose value came from a ${env:} or ${file:} reference to the
	// reference text, so that errors show the reference rather than the value.
	refs map[string]string
	// secrets are the secret key names, whose values are never shown.
	secrets secretSet
	nodes   int // nodes visited, bounded by maxNodes
	depth   int
	// merging holds the mappings whose merge keys are being expanded, to refuse a
	// mapping that merges itself.
	merging map[*yaml.Node]bool
}

func newDecoder(file string, lines map[string]int) *decoder {
	return &decoder{file: file, lines: lines}
}

func (d *decoder) errorf(line int, path, format string, args ...any) {
	d.errs = append(d.errs, &Error{File: d.file, Line: line, Path: path, Msg: fmt.Sprintf(format, args...)})
}

func (d *decoder) decodeInto(path string, node *yaml.Node, out any) {
	if node == nil {
		return
	}
	v := reflect.ValueOf(out)
	if v.Kind() != reflect.Pointer || v.IsNil() {
		d.errorf(node.Line, path, "internal error: DecodeStrict needs a non-nil pointer, got %T", out)
		return
	}
	if node.Kind == yaml.DocumentNode {
		if len(node.Content) == 0 {
			return
		}
		node = node.Content[0]
	}
	d.decode(path, 0, node, v.Elem())
}

var (
	durationType  = reflect.TypeFor[time.Duration]()
	nodeType      = reflect.TypeFor[yaml.Node]()
	unmarshalType = reflect.TypeFor[yaml.Unmarshaler]()
	textType      = reflect.TypeFor[encoding.TextUnmarshaler]()
)

// decode sets v from n. keyLine is the line of the key n is the value of (0 for list
// items and the root); it is the line reported for the value as a whole.
func (d *decoder) decode(path string, keyLine int, n *yaml.Node, v reflect.Value) {
	d.nodes++
	if d.nodes > maxNodes {
		if d.nodes == maxNodes+1 {
			d.errorf(n.Line, path, "document too large (aliases expand to more than %d nodes)", maxNodes)
		}
		return
	}
	if d.depth >= maxDepth {
		d.errorf(n.Line, path, "nested too deeply (or an alias refers to itself)")
		return
	}
	d.depth++
	defer func() { d.depth-- }()

	if n.Kind == yaml.AliasNode {
		if n.Alias == nil {
			d.errorf(n.Line, path, "unknown alias")
			return
		}
		n = n.Alias
	}
	line := keyLine
	if line == 0 {
		line = n.Line
	}

	// A yaml.Node field keeps the node as it is, for a later decoding stage.
	if v.Type() == nodeType {
		v.Set(reflect.ValueOf(*n))
		return
	}
	if v.Kind() == reflect.Pointer {
		if isNull(n) {
			v.SetZero()
			return
		}
		if v.IsNil() {
			v.Set(reflect.New(v.Type().Elem()))
		}
		d.decode(path, keyLine, n, v.Elem())
		return
	}
	if v.CanAddr() {
		if u, ok := v.Addr().Interface().(yaml.Unmarshaler); ok && v.Addr().Type().Implements(unmarshalType) {
			if err := u.UnmarshalYAML(n); err != nil {
				var pe *posError
				if errors.As(err, &pe) {
					p := path
					if pe.key != "" {
						p += "." + pe.key
					}
					d.errorf(pe.line, p, "%s", pe.msg)
				} else {
					d.errorf(n.Line, path, "%s", err.Error())
				}
			}
			return
		}
	}
	if v.Type() == durationType {
		d.duration(path, n, v)
		return
	}
	if v.CanAddr() && v.Kind() != reflect.String && v.Addr().Type().Implements(textType) {
		if !d.wantScalar(path, n) {
			return
		}
		if err := v.Addr().Interface().(encoding.TextUnmarshaler).UnmarshalText([]byte(n.Value)); err != nil {
			d.errorf(n.Line, path, "%s", err.Error())
		}
		return
	}

	switch v.Kind() {
	case reflect.Struct:
		d.structure(path, line, n, v)
	case reflect.Slice:
		d.slice(path, n, v)
	case reflect.Map:
		d.mapping(path, n, v)
	case reflect.Interface:
		if isNull(n) {
			v.SetZero()
			return
		}
		var x any
		if err := n.Decode(&x); err != nil {
			d.errorf(n.Line, path, "%s", strings.TrimPrefix(err.Error(), "yaml: "))
			return
		}
		if x != nil {
			v.Set(reflect.ValueOf(x))
		}
	case reflect.String:
		if !d.wantScalar(path, n) {
			return
		}
		if isNull(n) {
			v.SetString("")
			return
		}
		v.SetString(n.Value)
	case reflect.Bool:
		if !d.wantScalar(path, n) || isNull(n) {
			return
		}
		var b bool
		if scalarTag(n) != "!!bool" || n.Decode(&b) != nil {
			d.errorf(n.Line, path, "expected true or false, got %s", d.shown(path, n.Value))
			return
		}
		v.SetBool(b)
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		if !d.wantScalar(path, n) || isNull(n) {
			return
		}
		var i int64
		if scalarTag(n) != "!!int" || decodeScalar(n, &i) != nil || v.OverflowInt(i) {
			d.errorf(n.Line, path, "expected an integer, got %s", d.shown(path, n.Value))
			return
		}
		v.SetInt(i)
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		if !d.wantScalar(path, n) || isNull(n) {
			return
		}
		var i uint64
		if scalarTag(n) != "!!int" || decodeScalar(n, &i) != nil || v.OverflowUint(i) {
			d.errorf(n.Line, path, "expected a non-negative integer, got %s", d.shown(path, n.Value))
			return
		}
		v.SetUint(i)
	case reflect.Float32, reflect.Float64:
		if !d.wantScalar(path, n) || isNull(n) {
			return
		}
		var f float64
		if t := scalarTag(n); (t != "!!float" && t != "!!int") || decodeScalar(n, &f) != nil {
			d.errorf(n.Line, path, "expected a number, got %s", d.shown(path, n.Value))
			return
		}
		v.SetFloat(f)
	default:
		d.errorf(n.Line, path, "internal error: cannot decode into %s", v.Type())
	}
}

func (d *decoder) duration(path string, n *yaml.Node, v reflect.Value) {
	if !d.wantScalar(path, n) || isNull(n) {
		return
	}
	dur, err := time.ParseDuration(n.Value)
	if err != nil {
		d.errorf(n.Line, path, "invalid duration %s (write it like 30s, 5m or 1h)", d.shown(path, n.Value))
		return
	}
	v.SetInt(int64(dur))
}

// wantScalar reports whether n is a scalar, recording an error when it is not.
func (d *decoder) wantScalar(path string, n *yaml.Node) bool {
	if n.Kind == yaml.ScalarNode {
		return true
	}
	d.errorf(n.Line, path, "expected a single value, got %s", kindName(n))
	return false
}

// field is one decodable struct field, reached through index (inline structs).
type field struct {
	index []int
}

// fieldsOf lists the yaml keys of a struct type, following `,inline`.
func fieldsOf(t reflect.Type, prefix []int, out map[string]field, order *[]string) {
	for i := range t.NumField() {
		f := t.Field(i)
		if !f.IsExported() {
			continue
		}
		tag := f.Tag.Get("yaml")
		if tag == "-" {
			continue
		}
		name, opts, _ := strings.Cut(tag, ",")
		idx := append(append([]int(nil), prefix...), i)
		if strings.Contains(","+opts+",", ",inline,") && f.Type.Kind() == reflect.Struct {
			fieldsOf(f.Type, idx, out, order)
			continue
		}
		if name == "" {
			name = strings.ToLower(f.Name)
		}
		if _, dup := out[name]; !dup {
			*order = append(*order, name)
		}
		out[name] = field{index: idx}
	}
}

func (d *decoder) structure(path string, line int, n *yaml.Node, v reflect.Value) {
	if isNull(n) {
		return
	}
	if n.Kind != yaml.MappingNode {
		d.errorf(n.Line, path, "expected a mapping of keys, got %s", kindName(n))
		return
	}
	t := v.Type()
	if f, ok := t.FieldByName("Line"); ok && f.Type.Kind() == reflect.Int && f.Tag.Get("yaml") == "-" {
		v.FieldByIndex(f.Index).SetInt(int64(line))
	}
	fields := map[string]field{}
	var order []string
	fieldsOf(t, nil, fields, &order)

	for _, p := range d.pairs(path, n, 0) {
		key := p.key.Value
		kp := joinPath(path, key)
		f, ok := fields[key]
		if !ok {
			msg := "unknown key"
			if s := suggest(key, order); s != "" {
				msg += fmt.Sprintf(" (did you mean %q?)", s)
			}
			d.errorf(p.key.Line, kp, "%s", msg)
			continue
		}
		d.record(kp, p.key.Line)
		d.decode(kp, p.key.Line, p.val, v.FieldByIndex(f.index))
	}
}

func (d *decoder) slice(path string, n *yaml.Node, v reflect.Value) {
	if isNull(n) {
		v.SetZero()
		return
	}
	if n.Kind != yaml.SequenceNode {
		d.errorf(n.Line, path, "expected a list, got %s", kindName(n))
		return
	}
	s := reflect.MakeSlice(v.Type(), len(n.Content), len(n.Content))
	for i, item := range n.Content {
		ip := fmt.Sprintf("%s[%d]", path, i)
		d.record(ip, item.Line)
		d.decode(ip, 0, item, s.Index(i))
	}
	v.Set(s)
}

func (d *decoder) mapping(path string, n *yaml.Node, v reflect.Value) {
	if isNull(n) {
		v.SetZero()
		return
	}
	if n.Kind != yaml.MappingNode {
		d.errorf(n.Line, path, "expected a mapping of keys, got %s", kindName(n))
		return
	}
	t := v.Type()
	if t.Key().Kind() != reflect.String {
		d.errorf(n.Line, path, "internal error: map key type %s", t.Key())
		return
	}
	m := reflect.MakeMapWithSize(t, len(n.Content)/2)
	for _, p := range d.pairs(path, n, 0) {
		key := p.key.Value
		kp := joinPath(path, key)
		d.record(kp, p.key.Line)
		ev := reflect.New(t.Elem()).Elem()
		d.decode(kp, p.key.Line, p.val, ev)
		setName(ev, key)
		m.SetMapIndex(reflect.ValueOf(key).Convert(t.Key()), ev)
	}
	v.Set(m)
}

// setName fills a `Name string yaml:"-"` field of a map value with its key.
func setName(v reflect.Value, key string) {
	for v.Kind() == reflect.Pointer {
		if v.IsNil() {
			return
		}
		v = v.Elem()
	}
	if v.Kind() != reflect.Struct {
		return
	}
	if f, ok := v.Type().FieldByName("Name"); ok && f.Type.Kind() == reflect.String && f.Tag.Get("yaml") == "-" {
		v.FieldByIndex(f.Index).SetString(key)
	}
}

func (d *decoder) record(path string, line int) {
	if d.lines != nil {
		if _, seen := d.lines[path]; !seen {
			d.lines[path] = line
		}
	}
}

// pair is one key and its value in a mapping.
type pair struct{ key, val *yaml.Node }

// pairs lists the keys of a mapping node in order, with YAML merge keys (<<: *base)
// expanded: an explicit key wins over a merged one, and an earlier merge over a later
// one. A duplicate explicit key, or a key that is not a scalar, is an error.
func (d *decoder) pairs(path string, n *yaml.Node, depth int) []pair {
	if depth > maxDepth {
		d.errorf(n.Line, path, "merge keys nested too deeply")
		return nil
	}
	if d.merging[n] {
		d.errorf(n.Line, path, "a merge (<<) refers to the mapping that contains it")
		return nil
	}
	if d.merging == nil {
		d.merging = map[*yaml.Node]bool{}
	}
	d.merging[n] = true
	defer delete(d.merging, n)
	d.nodes += len(n.Content) / 2
	if d.nodes > maxNodes {
		if d.nodes-len(n.Content)/2 <= maxNodes {
			d.errorf(n.Line, path, "document too large (aliases expand to more than %d nodes)", maxNodes)
		}
		return nil
	}
	var out, merged []pair
	seen := map[string]int{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, val := n.Content[i], n.Content[i+1]
		if k.Kind == yaml.AliasNode && k.Alias != nil {
			k = k.Alias
		}
		if k.Kind != yaml.ScalarNode {
			d.errorf(k.Line, path, "a key must be a single value, got %s", kindName(k))
			continue
		}
		if isMergeKey(k) {
			merged = append(merged, d.mergeSources(path, val, depth)...)
			continue
		}
		if first, dup := seen[k.Value]; dup {
			d.errorf(k.Line, joinPath(path, k.Value), "duplicate key (first given at line %d)", first)
			continue
		}
		seen[k.Value] = k.Line
		out = append(out, pair{k, val})
	}
	for _, p := range merged {
		if _, ok := seen[p.key.Value]; ok {
			continue
		}
		seen[p.key.Value] = p.key.Line
		out = append(out, p)
	}
	return out
}

func (d *decoder) mergeSources(path string, val *yaml.Node, depth int) []pair {
	if val.Kind == yaml.AliasNode && val.Alias != nil {
		val = val.Alias
	}
	switch val.Kind {
	case yaml.MappingNode:
		return d.pairs(path, val, depth+1)
	case yaml.SequenceNode:
		var out []pair
		seen := map[string]bool{}
		for _, item := range val.Content {
			if item.Kind == yaml.AliasNode && item.Alias != nil {
				item = item.Alias
			}
			if item.Kind != yaml.MappingNode {
				d.errorf(item.Line, path, "a merge (<<) takes a mapping or a list of mappings")
				continue
			}
			for _, p := range d.pairs(path, item, depth+1) {
				if !seen[p.key.Value] {
					seen[p.key.Value] = true
					out = append(out, p)
				}
			}
		}
		return out
	}
	d.errorf(val.Line, path, "a merge (<<) takes a mapping or a list of mappings")
	return nil
}

func isMergeKey(k *yaml.Node) bool {
	return k.Kind == yaml.ScalarNode && k.Value == "<<" && (k.ShortTag() == "!!merge" || k.Tag == "" && k.Style == 0)
}

// posError is an error an UnmarshalYAML method of ours returns to place itself below the
// value's path (key) and at a line of its own.
type posError struct {
	line int
	key  string
	msg  string
}

func (e *posError) Error() string { return e.msg }

// isNull reports whether n is an explicit or implicit null (`key:`, `key: ~`).
func isNull(n *yaml.Node) bool {
	return n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null"
}

// scalarTag resolves a plain scalar from its text (so that a value substituted from
// ${env:} is typed like one written in the file); a quoted scalar stays a string.
func scalarTag(n *yaml.Node) string {
	if n.Style&(yaml.DoubleQuotedStyle|yaml.SingleQuotedStyle|yaml.LiteralStyle|yaml.FoldedStyle) != 0 {
		return "!!str"
	}
	if t := n.ShortTag(); t != "!!str" {
		return t
	}
	if n.Tag != "" && n.Tag != "!!str" {
		return n.ShortTag()
	}
	c := yaml.Node{Kind: yaml.ScalarNode, Value: n.Value}
	return c.ShortTag()
}

// decodeScalar decodes a scalar by its resolved tag, whatever tag it carries.
func decodeScalar(n *yaml.Node, out any) error {
	c := yaml.Node{Kind: yaml.ScalarNode, Value: n.Value, Tag: scalarTag(n), Line: n.Line}
	return c.Decode(out)
}

func kindName(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.AliasNode:
		return "an alias"
	case yaml.DocumentNode:
		return "a document"
	}
	if isNull(n) {
		return "nothing"
	}
	return "a single value"
}

// shown quotes a value for an error message: see showValue.
func (d *decoder) shown(path, value string) string { return showValue(d.refs, d.secrets, path, value) }

// showValue quotes a value for an error message, unless it may be a secret: the value
// of a secret key is never shown, and a value that came from a reference is shown as
// the reference that produced it (an environment variable may hold a secret whatever
// the key it is used in).
func showValue(refs map[string]string, secrets secretSet, path, value string) string {
	if ref, ok := refs[path]; ok {
		return fmt.Sprintf("%s (resolved value not shown)", strconv.Quote(ref))
	}
	if secrets == nil {
		secrets = newSecretSet(nil)
	}
	if secrets.has(lastKey(path)) {
		return "(secret value not shown)"
	}
	if len(value) > 60 {
		value = value[:60] + "…"
	}
	return strconv.Quote(value)
}

// lastKey returns the last key of a path: "a.b[2]" → "b", "a.c" → "c".
func lastKey(path string) string {
	if i := strings.IndexByte(path, '['); i >= 0 && !strings.ContainsRune(path[i:], '.') {
		path = path[:i]
	}
	if i := strings.LastIndexByte(path, '.'); i >= 0 {
		return path[i+1:]
	}
	return path
}

func joinPath(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

// suggest returns the known key closest to key, when it is close enough to be a typo.
func suggest(key string, known []string) string {
	best, bestD := "", 3
	for _, k := range known {
		limit := 2
		if len(k) <= 4 {
			limit = 1
		}
		if dist := editDistance(key, k); dist <= limit && dist < bestD {
			best, bestD = k, dist
		}
	}
	return best
}

// editDistance is the Levenshtein distance between a and b.
func editDistance(a, b string) int {
	if len(a) > 64 || len(b) > 64 {
		return 1 << 30
	}
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}
