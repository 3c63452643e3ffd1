package configs

import (
	"strings"
	"testing"
)

func TestCheckOrigin(t *testing.T) {
	for _, tc := range []struct {
		origin  string
		err     string // "" = accepted
		warning bool
	}{
		{"https://app.example.com", "", false},
		{"https://app.example.com:8443", "", false},
		{"http://localhost:3000", "", false},
		{"http://127.0.0.1:5173", "", false},
		{"http://[::1]:3000", "", false},
		{"http://app.example.com", "", true},
		{"*", `"*" is not allowed`, false},
		{"null", `"null" is not allowed`, false},
		{"", "empty origin", false},
		{"https://*.example.com", "wildcards", false},
		{"https://app.example.com/", "remove the trailing slash", false},
		{"https://app.example.com/travel", "no path", false},
		{"https://app.example.com?x=1", "no query", false},
		{"https://app.example.com#x", "no query or fragment", false},
		{"https://user@app.example.com", "no user info", false},
		{"https://App.Example.com", "lower case", false},
		{"https://app.example.com:443", "default port", false},
		{"http://localhost:80", "default port", false},
		{"ftp://app.example.com", "scheme must be https or http", false},
		{"app.example.com", "not an origin", false},
	} {
		warning, err := CheckOrigin(tc.origin)
		switch {
		case tc.err == "" && err != nil:
			t.Errorf("%q: %v", tc.origin, err)
		case tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)):
			t.Errorf("%q: error %v, want one containing %q", tc.origin, err, tc.err)
		case (warning != "") != tc.warning:
			t.Errorf("%q: warning %q, want one: %v", tc.origin, warning, tc.warning)
		}
	}
}
