package configs

import (
	"fmt"
	"reflect"

	"gopkg.in/yaml.v3"
)

// Transform names.
const (
	TransformTrim       = "trim"
	TransformLower      = "lower"
	TransformTrimPrefix = "trim_prefix"
	TransformTrimSuffix = "trim_suffix"
	TransformReplace    = "replace"
)

const transformNames = "trim, lower, trim_prefix, trim_suffix, replace"

// UnmarshalYAML accepts a bare name (trim, lower) or a one-key mapping:
// {trim_prefix: "SMTP:"}, {trim_suffix: "@corp"}, {replace: {regex: "…", with: "…"}}.
// The regex is compiled by validation, which reports it with its line.
func (t *Transform) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind == yaml.AliasNode && n.Alias != nil {
		n = n.Alias
	}
	*t = Transform{Line: n.Line}
	switch n.Kind {
	case yaml.ScalarNode:
		switch n.Value {
		case TransformTrim, TransformLower:
			t.Name = n.Value
			return nil
		case TransformTrimPrefix, TransformTrimSuffix:
			return &posError{line: n.Line, msg: fmt.Sprintf("%s needs its argument: {%s: \"…\"}", n.Value, n.Value)}
		case TransformReplace:
			return &posError{line: n.Line, msg: `replace needs its arguments: {replace: {regex: "…", with: "…"}}`}
		}
		return &posError{line: n.Line, msg: fmt.Sprintf("unknown transform %q (known: %s)", n.Value, transformNames)}
	case yaml.MappingNode:
		if len(n.Content) != 2 {
			return &posError{line: n.Line, msg: "a transform with an argument is a mapping of exactly one key, e.g. {trim_prefix: \"SMTP:\"}"}
		}
		k, v := n.Content[0], n.Content[1]
		if v.Kind == yaml.AliasNode && v.Alias != nil {
			v = v.Alias
		}
		t.Name = k.Value
		switch k.Value {
		case TransformTrimPrefix, TransformTrimSuffix:
			if v.Kind != yaml.ScalarNode || isNull(v) || v.Value == "" {
				return &posError{line: v.Line, key: k.Value, msg: "expected a non-empty string"}
			}
			t.Arg = v.Value
			return nil
		case TransformReplace:
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
			if r.Regex == nil || *r.Regex == "" {
				return &posError{line: k.Line, key: k.Value + ".regex", msg: "required"}
			}
			if r.With == nil {
				return &posError{line: k.Line, key: k.Value + ".with", msg: `required (write with: "" to delete what matches)`}
			}
			t.Arg, t.With = *r.Regex, *r.With
			return nil
		case TransformTrim, TransformLower:
			return &posError{line: k.Line, msg: fmt.Sprintf("%s takes no argument: write it bare", k.Value)}
		}
		return &posError{line: k.Line, msg: fmt.Sprintf("unknown transform %q (known: %s)", k.Value, transformNames)}
	}
	return &posError{line: n.Line, msg: "expected a transform name or a one-key mapping"}
}

func reflectValue(p any) reflect.Value { return reflect.ValueOf(p).Elem() }
