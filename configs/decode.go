package configs

import (
	"gopkg.in/yaml.v3"
)

// DecodeStrict decodes node into out (a pointer to a struct with yaml tags). Unlike
// yaml.Node.Decode it refuses unknown keys. Every error carries file, the line of the
// offending node and the key path below path (providers[0].audiences).
//
// TODO(configs): stub until the strict decoder lands.
func DecodeStrict(file, path string, node *yaml.Node, out any) Errors {
	if node == nil {
		return nil
	}
	if err := node.Decode(out); err != nil {
		return Errors{{File: file, Line: node.Line, Path: path, Msg: err.Error()}}
	}
	return nil
}

// Decode decodes the provider's own keys into out, strictly.
func (s *ProviderSection) Decode(out any) Errors {
	return DecodeStrict(s.File, s.Path, s.Node, out)
}

// Errorf builds an error located at key inside the section (at the section itself when
// the key is absent).
func (s *ProviderSection) Errorf(key, format string, args ...any) *Error {
	line := s.Line
	if s.Node != nil {
		for i := 0; i+1 < len(s.Node.Content); i += 2 {
			if s.Node.Content[i].Value == key {
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
