package test

import (
	"bytes"
	"errors"
	"flag"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite the golden files of TestCheckGolden")

// TestCheckGolden runs `idbridge check` on every broken config in testdata/check and
// compares the whole output (stdout and stderr) and the exit status with the .golden
// file beside it: each fault is reported once, by the package that owns the rule, at its
// line, in file order, the same way on every run. go test ./test -run TestCheckGolden
// -update rewrites the golden files after a deliberate change; read the diff.
func TestCheckGolden(t *testing.T) {
	dir := filepath.Join("testdata", "check")
	files, err := filepath.Glob(filepath.Join(dir, "*.yaml"))
	if err != nil || len(files) < 15 {
		t.Fatalf("want at least 15 broken configs, got %d (%v)", len(files), err)
	}
	for _, f := range files {
		name := filepath.Base(f)
		t.Run(strings.TrimSuffix(name, ".yaml"), func(t *testing.T) {
			t.Parallel()
			got := runCheck(t, dir, name)
			// Twice: the output must not depend on map order or timing.
			if again := runCheck(t, dir, name); again != got {
				t.Errorf("two runs differ:\n%s\n---\n%s", got, again)
			}
			golden := filepath.Join(dir, strings.TrimSuffix(name, ".yaml")+".golden")
			if *update {
				if err := os.WriteFile(golden, []byte(got), 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run with -update to create it)", err)
			}
			if got != string(want) {
				t.Errorf("idbridge check %s:\n--- got\n%s--- want\n%s", name, got, want)
			}
			if strings.Contains(got, "TOPSECRET") {
				t.Errorf("a secret value is printed:\n%s", got)
			}
			lines := strings.Split(strings.TrimSpace(got), "\n")
			seen := map[string]bool{}
			for _, l := range lines[:len(lines)-1] {
				if seen[l] {
					t.Errorf("printed twice: %s", l)
				}
				seen[l] = true
			}
		})
	}
}

// runCheck runs check in dir on name and returns its output followed by "exit N".
func runCheck(t *testing.T, dir, name string) string {
	t.Helper()
	cmd := exec.Command(binary, "check", "--config", name)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "IDBRIDGE_CONFIG=")
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	code := 0
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return out.String() + "exit " + string(rune('0'+code)) + "\n"
}
