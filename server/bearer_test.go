package server

import (
	"errors"
	"strings"
	"testing"
)

func TestParseBearer(t *testing.T) {
	tests := []struct {
		name   string
		values []string
		token  string
		err    error
	}{
		{"absent", nil, "", errNoCredentials},
		{"empty", []string{""}, "", errNoCredentials},
		{"ok", []string{"Bearer abc.def-ghi_~+/=="}, "abc.def-ghi_~+/==", nil},
		{"scheme case-insensitive", []string{"bEaReR tok"}, "tok", nil},
		{"basic", []string{"Basic dXNlcjpwYXNz"}, "", errMalformed},
		{"no token", []string{"Bearer "}, "", errMalformed},
		{"scheme only", []string{"Bearer"}, "", errMalformed},
		{"two spaces", []string{"Bearer  tok"}, "", errMalformed},
		{"trailing space", []string{"Bearer tok "}, "", errMalformed},
		{"inner space", []string{"Bearer to k"}, "", errMalformed},
		{"equals inside", []string{"Bearer a=b"}, "", errMalformed},
		{"only equals", []string{"Bearer =="}, "", errMalformed},
		{"non-ascii", []string{"Bearer tök"}, "", errMalformed},
		{"two headers", []string{"Bearer a", "Bearer b"}, "", errMalformed},
		{"too long", []string{"Bearer " + strings.Repeat("a", maxTokenBytes+1)}, "", errMalformed},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tok, err := ParseBearer(tc.values)
			if tok != tc.token || !errors.Is(err, tc.err) {
				t.Fatalf("ParseBearer(%q) = %q, %v; want %q, %v", tc.values, tok, err, tc.token, tc.err)
			}
		})
	}
}

func FuzzParseBearer(f *testing.F) {
	for _, s := range []string{"Bearer abc", "bearer a.b.c", "Basic x", "Bearer  x", "Bearer x==", "Bearer\t x", "Bearer \x00"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, h string) {
		tok, err := ParseBearer([]string{h})
		if err != nil {
			if tok != "" {
				t.Fatal("token returned with an error")
			}
			return
		}
		if tok == "" || !isToken68(tok) || !strings.HasSuffix(h, tok) {
			t.Fatalf("accepted %q as token %q", h, tok)
		}
	})
}

func BenchmarkParseBearer(b *testing.B) {
	v := []string{"Bearer eyJhbGciOiJSUzI1NiIsImtpZCI6ImsxIn0.eyJpc3MiOiJodHRwczovL2lkcCJ9.c2lnbmF0dXJl"}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := ParseBearer(v); err != nil {
			b.Fatal(err)
		}
	}
}
