package providers

import "testing"

func TestAccepts(t *testing.T) {
	jwt := "eyJhbGciOiJSUzI1NiJ9.eyJpc3MiOiJ4In0.c2ln"
	for _, tt := range []struct {
		in              string
		opaque, jwtTok  bool
		empty, parseErr bool
	}{
		{in: "", opaque: true},
		{in: "opaque", opaque: true},
		{in: "jwt", jwtTok: true},
		{in: "any", opaque: true, jwtTok: true},
		{in: "all", parseErr: true},
	} {
		a, err := ParseAccepts(tt.in)
		if (err != nil) != tt.parseErr {
			t.Errorf("ParseAccepts(%q) = %v", tt.in, err)
			continue
		}
		if err != nil {
			continue
		}
		if a.Considers("opaque-token") != tt.opaque || a.Considers(jwt) != tt.jwtTok || a.Considers("") {
			t.Errorf("%q: opaque %v, jwt %v, empty %v", tt.in, a.Considers("opaque-token"), a.Considers(jwt), a.Considers(""))
		}
	}
}
