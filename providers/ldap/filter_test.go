package ldap

import (
	"context"
	"encoding/json"
	"errors"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/go-ldap/ldap/v3"
	"github.com/tidwall/gjson"

	"github.com/idbridge/idbridge/configs"
	"github.com/idbridge/idbridge/providers"
)

// Tests in this file need no directory server.

func TestCompileFilter(t *testing.T) {
	tests := []struct {
		name, filter, wantErr string
	}{
		{"equality", "(uid={{sub}})", ""},
		{"and-or", "(&(objectClass=user)(|(userPrincipalName={{upn}})(sAMAccountName={{preferred_username}})))", ""},
		{"substring", "(cn={{name}}*)", ""},
		{"nested path", "(employeeNumber={{claims.emp.id}})", ""},
		{"spaces in placeholder", "(uid={{ sub }})", ""},
		{"unbalanced parens", "(&(uid={{sub}})", "not a valid LDAP filter"},
		{"no parens", "uid={{sub}}", "not a valid LDAP filter"},
		{"unbalanced braces", "(uid={{sub)", "unbalanced braces"},
		{"no placeholder", "(uid=alice)", "no {{path}} placeholder"},
		{"placeholder as attribute", "({{attr}}=alice)", "must stand in an assertion value"},
		{"placeholder outside an item", "(&{{sub}}(uid=x))", "must stand in an assertion value"},
		{"empty", "", "no {{path}} placeholder"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := compileFilter(tt.filter)
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("compileFilter(%q) = %v", tt.filter, err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("compileFilter(%q) = %v; want an error containing %q", tt.filter, err, tt.wantErr)
			}
		})
	}
}

// TestFilterEscaping checks that every value a placeholder brings is RFC 4515-escaped
// (RFC 4515 §3: "*", "(", ")", "\" and NUL, plus every non-ASCII byte as go-ldap does),
// and that the result is still one equality assertion on the intended attribute.
func TestFilterEscaping(t *testing.T) {
	f, err := compileFilter("(&(objectClass=person)(uid={{sub}}))")
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, value, want string
	}{
		{"plain", "alice", `alice`},
		{"star", "*", `\2a`},
		{"prefix wildcard", "al*", `al\2a`},
		{"close and reopen", "alice)(uid=*", `alice\29\28uid=\2a`},
		{"or injection", "*)(|(uid=*", `\2a\29\28|\28uid=\2a`},
		{"backslash", `back\slash`, `back\5cslash`},
		{"pre-escaped", `\2a`, `\5c2a`},
		{"NUL", "ali\x00ce", `ali\00ce`},
		{"non-ASCII", "josé", `jos\c3\a9`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			doc, _ := json.Marshal(map[string]string{"sub": tt.value})
			got, ok := f.build(doc)
			if !ok {
				t.Fatalf("build: no value")
			}
			want := "(&(objectClass=person)(uid=" + tt.want + "))"
			if got != want {
				t.Fatalf("build(%q) = %s; want %s", tt.value, got, want)
			}
			pkt, err := ldap.CompileFilter(got)
			if err != nil {
				t.Fatalf("built filter does not compile: %v", err)
			}
			// Two items under the AND, the second an equality match: the value did not
			// change the filter's structure.
			if n := len(pkt.Children); n != 2 || pkt.Children[1].Tag != ldap.FilterEqualityMatch {
				t.Fatalf("filter structure changed: %d children", n)
			}
		})
	}
}

func TestFilterBuildMissing(t *testing.T) {
	f, err := compileFilter("(uid={{sub}})")
	if err != nil {
		t.Fatal(err)
	}
	for _, doc := range []string{`{}`, `{"sub":""}`, `{"sub":null}`, `{"sub":["a","b"]}`, `{"sub":{"x":1}}`} {
		if got, ok := f.build([]byte(doc)); ok {
			t.Errorf("build(%s) = %q; want no filter", doc, got)
		}
	}
	if got, ok := f.build([]byte(`{"sub":1001}`)); !ok || got != "(uid=1001)" {
		t.Errorf("number: build = %q, %v", got, ok)
	}
}

func TestDocument(t *testing.T) {
	guid := []byte{0x00, 0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88, 0x99, 0xaa, 0xbb, 0xcc, 0xdd, 0xee, 0xff}
	ascii := []byte("0123456789abcdef") // a GUID that happens to be valid UTF-8 stays base64
	e := &ldap.Entry{DN: "uid=alice,ou=people,dc=example,dc=com", Attributes: []*ldap.EntryAttribute{
		{Name: "MAIL", ByteValues: [][]byte{[]byte("alice@example.com")}},
		{Name: "proxyAddresses", ByteValues: [][]byte{[]byte("smtp:a@old.example.com"), []byte("SMTP:Alice@Example.com")}},
		{Name: "objectGUID", ByteValues: [][]byte{ascii}},
		{Name: "objectSid", ByteValues: [][]byte{guid}},
		{Name: "thing", ByteValues: [][]byte{{0xff, 0xfe}}},
		{Name: "userPassword", ByteValues: [][]byte{[]byte("{SSHA}secret")}},
		{Name: "apiTokenHash", ByteValues: [][]byte{[]byte("ABCDEF"), []byte("other")}},
	}}
	s := newSearch(nil, []string{"mail", "proxyAddresses", "objectGUID"})
	got := string(s.document(e, "abcdef"))
	want := `{"apiTokenHash":["other"],"dn":"uid=alice,ou=people,dc=example,dc=com",` +
		`"mail":["alice@example.com"],"objectGUID":["MDEyMzQ1Njc4OWFiY2RlZg=="],` +
		`"objectSid":["ABEiM0RVZneImaq7zN3u/w=="],` +
		`"proxyAddresses":["smtp:a@old.example.com","SMTP:Alice@Example.com"],"thing":["//4="]}`
	if got != want {
		t.Fatalf("document =\n%s\nwant\n%s", got, want)
	}
}

func TestMergeInto(t *testing.T) {
	doc := []byte(`{"sub":"alice","n":12345678901234567890,"html":"<a&b>","directory":"claim"}`)
	got, err := mergeInto(doc, "directory", []byte(`{"dn":"uid=alice"}`))
	if err != nil {
		t.Fatal(err)
	}
	for path, want := range map[string]string{
		"sub": "alice", "n": "12345678901234567890", "html": "<a&b>", "directory.dn": "uid=alice",
	} {
		if v := gjson.GetBytes(got, path); v.String() != want && v.Raw != want {
			t.Errorf("%s = %s; want %s (doc %s)", path, v.Raw, want, got)
		}
	}
	for _, bad := range []string{`[]`, `"x"`, `null`, `{`} {
		if _, err := mergeInto([]byte(bad), "d", []byte(`{}`)); err == nil {
			t.Errorf("mergeInto(%s) succeeded", bad)
		}
	}
}

func TestNewDirectoriesErrors(t *testing.T) {
	src := `directories:
  a:
    url: http://x
    base_dn: dc=x
    scope: subtree
  b: {url: "ldaps://h", start_tls: true, bind_dn: cn=x, ca_file: /nonexistent}
  c:
    url: ldap://h/dc=x?uid
    base_dn: not a dn
    bind_password: p
    pool_size: -1
  d:
    url: ldap://ldap.example.com
    base_dn: dc=x
    bind_dn: cn=x
    bind_password: p
    insecure_skip_verify: true
    pool_sizee: 3
providers: [{name: p, type: ldap}]
mapping: {email: [{path: mail}]}
`
	cfg, cerrs := configs.Parse("idbridge.yaml", []byte(src), nil, "bind_password")
	if len(cerrs.Fatal()) > 0 {
		t.Fatal(cerrs)
	}
	ds, errs := NewDirectories(cfg.Directories, providers.Deps{File: "idbridge.yaml"})
	want := []string{
		"idbridge.yaml:3: directories.a.url: scheme must be ldap:// or ldaps://",
		"idbridge.yaml:5: directories.a.scope: must be base, one or sub",
		"idbridge.yaml:6: directories.b.url: warning: ldap:// without start_tls", // not expected: filtered below
		"idbridge.yaml:6: directories.b.start_tls:",
		"idbridge.yaml:6: directories.b.base_dn: required",
		"idbridge.yaml:6: directories.b.bind_password: required with bind_dn",
		"idbridge.yaml:6: directories.b.ca_file:",
		"idbridge.yaml:8: directories.c.url: give only scheme, host and port",
		"idbridge.yaml:8: directories.c.url: warning: ldap:// without start_tls sends bind_password in clear",
		"idbridge.yaml:9: directories.c.base_dn: not a DN",
		"idbridge.yaml:7: directories.c.bind_dn: required with bind_password",
		"idbridge.yaml:11: directories.c.pool_size: must not be negative",
		"idbridge.yaml:18: directories.d.pool_sizee: unknown key (did you mean \"pool_size\"?)",
	}
	want = append(want[:2], want[3:]...)
	text := errs.Error()
	for _, w := range want {
		if !strings.Contains(text, w) {
			t.Errorf("missing error %q in:\n%s", w, text)
		}
	}
	if len(errs) != len(want) {
		t.Errorf("%d errors; want %d:\n%s", len(errs), len(want), text)
	}
	if strings.Contains(text, `"p"`) {
		t.Errorf("an error echoes the bind password:\n%s", text)
	}
	// A directory with errors is still known: what refers to it adds no error.
	for _, name := range []string{"a", "b", "c", "d"} {
		if !ds.Has(name) {
			t.Errorf("Has(%q) = false", name)
		}
	}
	if _, err := New(section(t, "directory: a\nfilter: (h={{token_sha256}})"), providers.Deps{Directories: ds}); err == nil || err.Error() != "" {
		t.Errorf("New with a broken directory = %v; want an empty error list", err)
	}

	// Warnings of a valid directory.
	cfg, cerrs = configs.Parse("idbridge.yaml", []byte("directories:\n  e:\n    url: ldap://ldap.example.com\n    base_dn: dc=x\n    bind_dn: cn=x\n    bind_password: p\n    insecure_skip_verify: true\n"+
		"providers: [{name: p, type: ldap}]\nmapping: {email: [{path: mail}]}\n"), nil, "bind_password")
	if len(cerrs.Fatal()) > 0 {
		t.Fatal(cerrs)
	}
	_, errs = NewDirectories(cfg.Directories, providers.Deps{})
	got := errs.Error()
	for _, w := range []string{
		"idbridge.yaml:3: directories.e.url: warning: ldap:// without start_tls sends bind_password in clear",
		"idbridge.yaml:7: directories.e.insecure_skip_verify: warning: the directory's certificate is not verified",
	} {
		if !strings.Contains(got, w) {
			t.Errorf("missing warning %q in:\n%s", w, got)
		}
	}
	if len(errs.Fatal()) > 0 {
		t.Errorf("fatal errors: %v", errs.Fatal())
	}
}

// unreachableDirectories is a valid configuration whose server refuses connections.
func unreachableDirectories(t *testing.T) *Directories {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	ds, err := newDirectoriesFrom(map[string]*DirectoryConfig{
		"corp": {URL: "ldap://" + addr, BaseDN: "dc=example,dc=com", Timeout: time.Second},
	}, providers.Deps{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ds.Close() })
	return ds
}

func TestProviderConfigErrors(t *testing.T) {
	ds := unreachableDirectories(t)
	tests := []struct {
		name, yaml string
		want       []string
	}{
		{"empty", `{}`, []string{"directory: required", "filter: required"}},
		{"unknown directory", "directory: hr\nfilter: (h={{token_sha256}})", []string{"directory: unknown directory \"hr\" (configured: corp)"}},
		{"no token placeholder", "directory: corp\nfilter: (uid={{sub}})", []string{"unknown placeholder {{sub}}", "must contain {{token_sha256}}"}},
		{"bad filter", "directory: corp\nfilter: (h={{token_sha256}}", []string{"not a valid LDAP filter"}},
		{"bad accepts", "directory: corp\nfilter: (h={{token_sha256}})\naccepts: all", []string{"accepts: must be opaque, jwt or any"}},
		{"negative ttl", "directory: corp\nfilter: (h={{token_sha256}})\ncache_ttl: -1s", []string{"cache_ttl: must not be negative"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := New(section(t, tt.yaml), providers.Deps{Directories: ds})
			if err == nil {
				t.Fatal("New succeeded")
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("missing %q in:\n%v", w, err)
				}
			}
		})
	}
	inst, err := New(section(t, "directory: corp\nfilter: (h={{token_sha256}})"), providers.Deps{Directories: ds})
	if err != nil {
		t.Fatal(err)
	}
	if inst.CacheTTL != DefaultCacheTTL || inst.NegativeTTL != NegativeTTL || inst.Final || inst.Type != "ldap" {
		t.Errorf("instance = %+v", inst)
	}
	zero := "directory: corp\nfilter: (h={{token_sha256}})\ncache_ttl: 0s"
	if inst, err := New(section(t, zero), providers.Deps{Directories: ds}); err != nil || inst.CacheTTL != 0 {
		t.Errorf("cache_ttl: 0s → %v, %v; want 0 (no cache)", inst.CacheTTL, err)
	}
}

func TestLookupConfigErrors(t *testing.T) {
	ds := unreachableDirectories(t)
	tests := []struct {
		name string
		lk   LookupConfig
		want []string
	}{
		{"empty", LookupConfig{}, []string{"lookup.directory: required", "lookup.filter: required"}},
		{"bad into", LookupConfig{Directory: "corp", Filter: "(uid={{sub}})", Into: "a.b"}, []string{"lookup.into: must be a plain key"}},
		{"bad filter", LookupConfig{Directory: "corp", Filter: "(uid={{sub}}"}, []string{"lookup.filter: not a valid LDAP filter"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := NewLookup(lookupSection(t, tt.lk), section(t, "{}"), nil, providers.Deps{Directories: ds})
			if err == nil {
				t.Fatal("NewLookup succeeded")
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("missing %q in:\n%v", w, err)
				}
			}
		})
	}
	e, err := NewLookup(lookupSection(t, LookupConfig{Directory: "corp", Filter: "(uid={{sub}})"}), section(t, "{}"), nil, providers.Deps{Directories: ds})
	if err != nil {
		t.Fatal(err)
	}
	if e.TTL() != DefaultCacheTTL {
		t.Errorf("TTL = %v; want %v", e.TTL(), DefaultCacheTTL)
	}
	// The directory refuses connections: unavailable, whether or not the entry is required.
	_, err = e.Enrich(context.Background(), "", []byte(`{"sub":"alice"}`))
	if !errors.Is(err, providers.ErrUnavailable) {
		t.Errorf("Enrich against a closed port = %v; want ErrUnavailable", err)
	}
}

// TestTimeout: a server that accepts but never answers costs one timeout, not a hang.
func TestTimeout(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			defer c.Close()
		}
	}()
	ds, err := newDirectoriesFrom(map[string]*DirectoryConfig{
		"mute": {URL: "ldap://" + l.Addr().String(), BaseDN: "dc=example,dc=com", BindDN: "cn=x", BindPassword: "p", Timeout: 200 * time.Millisecond},
	}, providers.Deps{})
	if err != nil {
		t.Fatal(err)
	}
	defer ds.Close()
	d, _ := ds.directory("mute")
	if h := d.Health(context.Background()); h.OK {
		t.Fatalf("Health of a mute server = %+v", h)
	}
	s := newSearch(d, nil)

	start := time.Now()
	_, _, err = s.findOne(context.Background(), "(uid=alice)")
	if !errors.Is(err, providers.ErrUnavailable) {
		t.Fatalf("err = %v; want ErrUnavailable", err)
	}
	if el := time.Since(start); el > 5*time.Second { // a hang guard, not a timing test
		t.Fatalf("took %v with timeout 200ms", el)
	}

	// A caller that gives up interrupts the search at once.
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(20*time.Millisecond, cancel)
	_, _, err = s.findOne(ctx, "(uid=alice)")
	if !errors.Is(err, providers.ErrUnavailable) || !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v; want ErrUnavailable wrapping context.Canceled", err)
	}
	if st := d.Stats(); st.InUse != 0 || st.Idle != 0 {
		t.Fatalf("stats after failures = %+v; want nothing in use or idle", st)
	}
}

func BenchmarkFilterBuild(b *testing.B) {
	f, err := compileFilter("(&(objectClass=user)(|(userPrincipalName={{upn}})(sAMAccountName={{preferred_username}})))")
	if err != nil {
		b.Fatal(err)
	}
	doc := []byte(`{"iss":"https://idp.example.com","sub":"00u1abcd","upn":"alice(*)@corp.example.com","preferred_username":"alice","aud":["idbridge"],"exp":1900000000}`)
	b.ReportAllocs()
	for b.Loop() {
		if _, ok := f.build(doc); !ok {
			b.Fatal("no filter")
		}
	}
}
