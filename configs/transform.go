package configs

import (
	"reflect"

	"gopkg.in/yaml.v3"
)

// TransformReplace is the one transform whose argument is a mapping ({regex, with}).
const TransformReplace = "replace"

// UnmarshalYAML reads a transform's shape: a bare name (trim, lower) or a one-key
// mapping ({trim_prefix: "SMTP:"}, {trim_suffix: "@corp"}, {replace: {regex: "…", with:
// "…"}}). Whether the name is known and its argument fits is the mapping package's rule
// (mapping.Compile), reported once, with this transform's line.
func (t *Transform) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind == yaml.AliasNode && n.Alias != nil {
		n = n.Alias
	}
	*t = Transform{Line: n.Line}
	switch n.Kind {
	case yaml.ScalarNode:
		t.Name = n.Value
		return nil
	case yaml.MappingNode:
		if len(n.Content) != 2 {
			return &posError{line: n.Line, msg: "a transform with an argument is a mapping of exactly one key, e.g. {trim_prefix: \"SMTP:\"}"}
		}
		k, v := n.Content[0], n.Content[1]
		if v.Kind == yaml.AliasNode && v.Alias != nil {
			v = v.Alias
		}
		t.Name = k.Value
		if k.Value != TransformReplace {
			if v.Kind != yaml.ScalarNode || isNull(v) {
				return &posError{line: v.Line, key: k.Value, msg: "expected a single value"}
			}
			t.Arg = v.Value
			return nil
		}
		var r struct {
			Regex *string `yaml:"regex"`
			With  *string `yaml:"with"`
		}
		d := newDecoder("", nil)
		d.decode(k.Value, k.Line, v, reflectValue(&r))
		if len(d.errs) > 0 {
			e := d.errs[0]
			return &posError{line: e.Line, key: e.Path, msg: e.Msg}
		}
		if r.With == nil {
			return &posError{line: k.Line, key: k.Value + ".with", msg: `required (write with: "" to delete what matches)`}
		}
		if r.Regex != nil {
			t.Arg = *r.Regex
		}
		t.With = *r.With
		return nil
	}
	return &posError{line: n.Line, msg: "expected a transform name or a one-key mapping"}
}

func reflectValue(p any) reflect.Value { return reflect.ValueOf(p).Elem() }
