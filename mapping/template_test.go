package mapping

import (
	"slices"
	"strings"
	"testing"
)

func TestCompileTemplate(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		paths   []string
		wantErr string
	}{
		{name: "one placeholder", in: "{{sub}}", paths: []string{"sub"}},
		{name: "literal around", in: "(&(objectClass=person)(uid={{sub}}))", paths: []string{"sub"}},
		{name: "blanks trimmed", in: "{{ preferred_username }}@example.com", paths: []string{"preferred_username"}},
		{name: "several", in: "{{a}}.{{b.c}}@{{d.#(x==1).e}}", paths: []string{"a", "b.c", "d.#(x==1).e"}},
		{name: "adjacent", in: "{{a}}{{b}}", paths: []string{"a", "b"}},
		{name: "single braces literal", in: "{a}{{b}}}", paths: []string{"b"}},
		{name: "empty", in: "", wantErr: "no {{path}} placeholder"},
		{name: "no placeholder", in: "(uid=admin)", wantErr: "no {{path}} placeholder"},
		{name: "unclosed", in: "(uid={{sub)", wantErr: `unbalanced braces: "{{" without "}}"`},
		{name: "stray close", in: "}}{{a}}", wantErr: `unbalanced braces: "}}" without "{{"`},
		{name: "stray close after", in: "{{a}}}}", wantErr: `unbalanced braces: "}}" without "{{"`},
		{name: "nested", in: "{{a{{b}}", wantErr: `unbalanced braces: "{{" inside a placeholder`},
		{name: "empty placeholder", in: "{{}}", wantErr: "empty {{ }} placeholder"},
		{name: "blank placeholder", in: "x{{ \t }}", wantErr: "empty {{ }} placeholder"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tm, err := CompileTemplate(tt.in)
			if tt.wantErr != "" {
				if err == nil || err.Error() != tt.wantErr {
					t.Fatalf("err = %v; want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := tm.Paths(); !slices.Equal(got, tt.paths) {
				t.Errorf("Paths = %q; want %q", got, tt.paths)
			}
		})
	}
}

func TestTemplateRender(t *testing.T) {
	// An RFC 4515 escape of the kind the LDAP filter builder passes.
	ldapEscape := strings.NewReplacer(`\`, `\5c`, `*`, `\2a`, `(`, `\28`, `)`, `\29`, "\x00", `\00`).Replace
	doc := []byte(`{"sub":"alice","evil":"*)(uid=*","n":12,"f":1.5,"b":true,"null":null,"empty":"","arr":["x"],"obj":{"a":1},"u":"caf\u00e9"}`)
	tests := []struct {
		name   string
		tmpl   string
		escape func(string) string
		want   string
		ok     bool
	}{
		{name: "string", tmpl: "(uid={{sub}})", want: "(uid=alice)", ok: true},
		{name: "escaped value, literal untouched", tmpl: "(&(objectClass=person)(uid={{evil}}))", escape: ldapEscape, want: `(&(objectClass=person)(uid=\2a\29\28uid=\2a))`, ok: true},
		{name: "raw value without escape", tmpl: "(uid={{evil}})", want: "(uid=*)(uid=*)", ok: true},
		{name: "integer", tmpl: "{{n}}", want: "12", ok: true},
		{name: "float", tmpl: "{{f}}", want: "1.5", ok: true},
		{name: "bool", tmpl: "{{b}}", want: "true", ok: true},
		{name: "unicode escape decoded", tmpl: "{{u}}", want: "café", ok: true},
		{name: "array element", tmpl: "{{arr.0}}", want: "x", ok: true},
		{name: "absent", tmpl: "(uid={{nope}})", ok: false},
		{name: "null", tmpl: "{{null}}", ok: false},
		{name: "empty string", tmpl: "(uid={{empty}})", ok: false},
		{name: "array", tmpl: "{{arr}}", ok: false},
		{name: "object", tmpl: "{{obj}}", ok: false},
		{name: "second absent", tmpl: "{{sub}}{{nope}}", ok: false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tm, err := CompileTemplate(tt.tmpl)
			if err != nil {
				t.Fatal(err)
			}
			got, ok := tm.Render(doc, tt.escape)
			if ok != tt.ok || got != tt.want {
				t.Errorf("Render = %q, %t; want %q, %t", got, ok, tt.want, tt.ok)
			}
		})
	}
}

func TestTemplatePathsIsACopy(t *testing.T) {
	tm, err := CompileTemplate("{{a}}")
	if err != nil {
		t.Fatal(err)
	}
	tm.Paths()[0] = "b"
	if got, _ := tm.Render([]byte(`{"a":"x","b":"y"}`), nil); got != "x" {
		t.Errorf("Render = %q after changing Paths' result", got)
	}
}
