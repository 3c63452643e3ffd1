package introspection

import (
	"encoding/json"
	"errors"
	"testing"
)

// FuzzParseAnswer: whatever the endpoint sends, the parser never panics, and it accepts
// only a JSON object whose "active" is the boolean true, with exp/nbf numbers.
func FuzzParseAnswer(f *testing.F) {
	for _, seed := range []string{
		`{"active":true,"sub":"u","exp":1900000000,"aud":["a","b"],"scope":"x y"}`,
		`{"active":false}`,
		`{"active":"true"}`,
		`{"active":1}`,
		`{"active":null}`,
		`{}`,
		`[]`,
		`"active"`,
		`{"active":true,"active":false}`,
		`{"active":false,"active":true}`,
		`{"active":true,"exp":"1900000000"}`,
		`{"active":true,"exp":1e400}`,
		`{"active":true,"aud":[1]}`,
		`{"active":true,"tid":"t","tid":"u"}`,
		`{"active":true,"sub":`,
		"\xff\xfe",
		``,
	} {
		f.Add([]byte(seed))
	}
	claims := []string{"tid"}
	f.Fuzz(func(t *testing.T, body []byte) {
		a, err := parseAnswer(body, claims)
		if err != nil {
			if !errors.Is(err, errMalformed) && !errors.Is(err, errInactive) {
				t.Fatalf("unexpected error kind: %v", err)
			}
			return
		}
		var doc map[string]json.RawMessage
		if jerr := json.Unmarshal(body, &doc); jerr != nil {
			t.Fatalf("accepted a body encoding/json refuses: %v: %q", jerr, body)
		}
		if string(doc["active"]) != "true" {
			t.Fatalf("accepted with active = %s: %q", doc["active"], body)
		}
		if a.hasExp {
			var n float64
			if json.Unmarshal(doc["exp"], &n) != nil {
				t.Fatalf("exp accepted but not a number: %q", body)
			}
		}
	})
}
