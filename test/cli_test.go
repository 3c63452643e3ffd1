package test

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// commandNames are every command of the binary, as `idbridge --help` lists them.
var commandNames = []string{"serve", "demo", "init", "check", "map", "directory", "resolve", "exchange", "keys", "sandbox", "version"}

// TestHelpGolden: `idbridge COMMAND --help` (and -h) prints the command's one-line
// description, its usage and every flag to stdout, nothing to stderr, and exits 0; the
// text is pinned by testdata/cli/COMMAND.help (go test ./test -run TestHelpGolden -update).
func TestHelpGolden(t *testing.T) {
	code, out, errOut := runCLIClean(t, nil, "", "--help")
	if code != 0 || errOut != "" {
		t.Fatalf("idbridge --help: exit %d, stderr %q", code, errOut)
	}
	for _, name := range commandNames {
		if !strings.Contains(out, "\n  "+name) {
			t.Errorf("idbridge --help does not list %s:\n%s", name, out)
		}
	}
	for _, name := range append([]string{""}, commandNames...) {
		t.Run("help-"+name, func(t *testing.T) {
			args := []string{"--help"}
			if name != "" {
				args = []string{name, "--help"}
			}
			code, out, errOut := runCLIClean(t, nil, "", args...)
			if code != 0 || errOut != "" {
				t.Fatalf("%v: exit %d, stderr %q", args, code, errOut)
			}
			if name != "" {
				if _, short, _ := runCLIClean(t, nil, "", name, "-h"); short != out {
					t.Errorf("%s -h differs from --help", name)
				}
				if !strings.HasPrefix(out, "idbridge "+name) || !strings.Contains(out, "\n\nusage: idbridge "+name) || !strings.Contains(out, "flags:") {
					t.Errorf("%s --help lacks the description, usage or flags:\n%s", name, out)
				}
			}
			golden := filepath.Join("testdata", "cli", cmp(name, "idbridge")+".help")
			if *update {
				os.WriteFile(golden, []byte(out), 0o644)
				return
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run with -update to create it)", err)
			}
			if out != string(want) {
				t.Errorf("%v:\n--- got\n%s--- want\n%s", args, out, want)
			}
		})
	}
}

func cmp(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

// TestExitCodes: 0 success, 1 runtime failure, 2 usage or configuration error, for every
// command; a stray argument is an error, and a positional config file gets a hint.
func TestExitCodes(t *testing.T) {
	dir := t.TempDir()
	cfg := filepath.Join(dir, "ok.yaml")
	os.WriteFile(cfg, []byte("providers:\n  - {name: corp, type: jwt, issuer: 'https://idp.example.com', jwks_uri: 'https://idp.example.com/keys', audiences: [idbridge]}\nmapping:\n  email: [{path: email, when: {path: email_verified, equals: true}}]\n"), 0o600)
	doc := filepath.Join(dir, "doc.json")
	os.WriteFile(doc, []byte(`{"email":"a@example.com","email_verified":true}`), 0o600)
	bad := filepath.Join(dir, "bad.yaml")
	os.WriteFile(bad, []byte("providers: []\n"), 0o600)
	jwksFile := func(name, path string) string {
		f := filepath.Join(dir, name)
		os.WriteFile(f, []byte("providers:\n  - {name: corp, type: jwt, issuer: 'https://idp.example.com', jwks_file: '"+path+"', audiences: [idbridge]}\nmapping:\n  email: [{path: email, when: {path: email_verified, equals: true}}]\n"), 0o600)
		return f
	}
	jwksDir, jwksZero := jwksFile("jwks-dir.yaml", dir), jwksFile("jwks-zero.yaml", "/dev/zero")
	zeroCA := filepath.Join(dir, "zero-ca.yaml")
	os.WriteFile(zeroCA, []byte("outbound: {ca_file: /dev/zero}\n"+mustRead(t, cfg)), 0o600)
	for _, tc := range []struct {
		args []string
		code int
		err  string // in stderr
	}{
		{nil, 2, "usage: idbridge COMMAND"},
		{[]string{"bogus"}, 2, `unknown command "bogus"`},
		{[]string{"--version"}, 0, ""},
		{[]string{"version"}, 0, ""},
		{[]string{"version", "extra"}, 2, `unexpected argument "extra"`},
		{[]string{"help", "check"}, 0, ""},
		{[]string{"check", "--config", cfg}, 0, ""},
		{[]string{"check", "--config", cfg, "extra-arg"}, 2, `unexpected argument "extra-arg"`},
		{[]string{"check", cfg}, 2, "the config file is given as --config " + cfg},
		{[]string{"check", "--config", bad}, 2, "providers"},
		{[]string{"check"}, 2, "--config FILE is required"},
		{[]string{"check", "--bogus"}, 2, "flag provided but not defined: -bogus"},
		{[]string{"serve", cfg}, 2, "--config " + cfg},
		{[]string{"serve", "--config", bad}, 2, "providers"},
		// A configuration path is read with a bound: /dev/zero is an error, not a
		// process growing until the kernel stops it.
		{[]string{"check", "--config", "/dev/zero"}, 2, "cannot read the configuration: larger than 4 MiB"},
		{[]string{"serve", "--config", "/dev/zero"}, 2, "cannot read the configuration: larger than 4 MiB"},
		{[]string{"check", "--config", zeroCA}, 2, "outbound.ca_file: read /dev/zero: larger than 4 MiB"},
		// A jwks_file that can never be a key set is an error now, not at the first token.
		{[]string{"check", "--config", jwksDir}, 2, "providers[0].jwks_file: read " + dir + ": is a directory"},
		{[]string{"check", "--strict", "--config", jwksZero}, 2, "providers[0].jwks_file: read /dev/zero: larger than 1 MiB"},
		{[]string{"map", "--config", cfg, "--input", doc}, 0, ""},
		{[]string{"map", "--config", cfg, "--input", doc, "x"}, 2, "unexpected argument"},
		{[]string{"map", "--config", cfg}, 2, "--input FILE|- is required"},
		{[]string{"map", "--suggest", "--input", doc}, 0, ""},
		{[]string{"resolve", "--config", cfg}, 2, "--token FILE|- is required"},
		{[]string{"exchange", "--config", cfg}, 2, "--subject-token FILE|- is required"},
		{[]string{"directory"}, 2, "usage: idbridge directory test"},
		{[]string{"directory", "test", "--config", cfg, "--claims", doc}, 2, "no directory"},
		{[]string{"init"}, 2, "--idp KIND is required"},
		{[]string{"init", "--idp", "okta", "--out", "-", "extra"}, 2, "unexpected argument"},
		{[]string{"init", "--idp", "okta", "--out", "-"}, 0, ""},
		{[]string{"keys"}, 2, "usage: idbridge keys generate"},
		{[]string{"keys", "generate"}, 2, "--dir DIR is required"},
		{[]string{"sandbox", "extra"}, 2, "unexpected argument"},
		{[]string{"demo", "extra"}, 2, "unexpected argument"},
		{[]string{"demo", "--listen", "0.0.0.0:0"}, 2, "not a loopback address"},
	} {
		code, out, errOut := runCLIClean(t, nil, "", tc.args...)
		if code != tc.code || !strings.Contains(errOut, tc.err) {
			t.Errorf("idbridge %s: exit %d, stderr %q (stdout %.200q); want %d with %q", strings.Join(tc.args, " "), code, errOut, out, tc.code, tc.err)
		}
	}
}

// TestVersionFromBuildInfo: a build from a git checkout prints its VCS revision, with or
// without -ldflags; `--version` and `version` agree.
func TestVersionFromBuildInfo(t *testing.T) {
	_, v1, _ := runCLIClean(t, nil, "", "version")
	_, v2, _ := runCLIClean(t, nil, "", "--version")
	if v1 != v2 || !strings.HasPrefix(v1, "idbridge ") || strings.HasPrefix(v1, "idbridge dev") {
		t.Fatalf("version %q, --version %q", v1, v2)
	}
	if st, err := os.Stat("../.git"); err != nil || !st.IsDir() {
		// Go stamps VCS information only where .git is a directory (a clone, as in CI),
		// not in a git worktree, whose .git is a file.
		t.Skipf("../.git is not a directory (a git worktree?): Go records no VCS revision here")
	}
	bin := filepath.Join(t.TempDir(), "idbridge")
	build := exec.Command("go", "build", "-buildvcs=true", "-o", bin, "./cmd/idbridge")
	build.Dir = ".."
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	rev, err := exec.Command("git", "-C", "..", "rev-parse", "HEAD").Output()
	if err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(bin, "version").Output()
	if err != nil || !strings.Contains(string(out), "(revision "+strings.TrimSpace(string(rev))) {
		t.Errorf("version of a VCS build: %q %v; want revision %s", out, err, rev)
	}
}

func mustRead(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
