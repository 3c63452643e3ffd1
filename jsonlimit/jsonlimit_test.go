package jsonlimit

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
)

func TestCheckDepth(t *testing.T) {
	for _, tc := range []struct {
		name string
		in   string
		max  int
		ok   bool
	}{
		{"empty", ``, 1, true},
		{"scalar", `"x"`, 0, true},
		{"flat object", `{"a":1}`, 1, true},
		{"one too deep", `{"a":[1]}`, 1, false},
		{"at the limit", `[[[]]]`, 3, true},
		{"past the limit", `[[[[]]]]`, 3, false},
		{"brackets in strings", `{"a":"[[[[{{{{"}`, 1, true},
		{"escaped quote", `{"a":"\"[[[["}`, 1, true},
		{"escaped backslash then bracket", `{"a":"\\"}`, 1, true},
		{"siblings do not add up", `[[],[],[],[]]`, 2, true},
		{"closing without opening", `]]]][`, 1, true},
		{"attack", strings.Repeat("[", 1<<20), MaxDepth, false},
		{"string attack", `"` + strings.Repeat("[", 1<<20), MaxDepth, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := CheckDepth([]byte(tc.in), tc.max)
			if (err == nil) != tc.ok {
				t.Fatalf("CheckDepth = %v; want ok %t", err, tc.ok)
			}
			if err != nil && !errors.Is(err, ErrTooDeep) {
				t.Fatalf("error %v is not ErrTooDeep", err)
			}
			if (CheckString(tc.in) == nil) != (CheckDepth([]byte(tc.in), MaxDepth) == nil) {
				t.Fatal("CheckString and CheckDepth disagree")
			}
		})
	}
}

func TestCheckDepthDoesNotAllocate(t *testing.T) {
	b := []byte(`{"a":[{"b":"[[["},2,3],"c":{"d":{}}}`)
	if n := testing.AllocsPerRun(100, func() { _ = CheckDepth(b, 8) }); n != 0 {
		t.Fatalf("%v allocations", n)
	}
}

// depthOf measures a valid document's nesting with encoding/json, independently.
func depthOf(v any) int {
	switch v := v.(type) {
	case []any:
		d := 0
		for _, e := range v {
			d = max(d, depthOf(e))
		}
		return d + 1
	case map[string]any:
		d := 0
		for _, e := range v {
			d = max(d, depthOf(e))
		}
		return d + 1
	}
	return 0
}

// FuzzCheckDepth checks CheckDepth against encoding/json on every valid document: it
// refuses exactly the documents deeper than the limit.
func FuzzCheckDepth(f *testing.F) {
	for _, s := range []string{`{}`, `[[1]]`, `{"a":"[["}`, `"\\"`, `{"a\"[":[{}]}`, `[[[[[[`, `]`} {
		f.Add([]byte(s), 3)
	}
	f.Fuzz(func(t *testing.T, b []byte, limit int) {
		limit = limit & 63
		err := CheckDepth(b, limit)
		if err != nil && !errors.Is(err, ErrTooDeep) {
			t.Fatalf("error %v", err)
		}
		var v any
		if json.Unmarshal(b, &v) != nil {
			return
		}
		if d := depthOf(v); (d > limit) != (err != nil) {
			t.Fatalf("depth %d, limit %d: CheckDepth = %v", d, limit, err)
		}
	})
}
