// Package testenv is the one place that decides what a test does on a machine without a
// real peer it needs (slapd, redis-server, Chromium, node): it skips on a laptop, and it
// fails in CI, where .ci/run sets IDBRIDGE_REQUIRE_SERVERS=1, so that a skip can never
// pass for a green run.
package testenv

import (
	"os"
	"testing"
)

// RequireEnv names the variable that turns a skip for a missing peer into a failure.
const RequireEnv = "IDBRIDGE_REQUIRE_SERVERS"

// Required reports whether missing peers fail tests (RequireEnv=1).
func Required() bool { return os.Getenv(RequireEnv) == "1" }

// SkipOrFail skips t, or fails it when Required.
func SkipOrFail(t testing.TB, format string, args ...any) {
	t.Helper()
	if Required() {
		t.Fatalf(format+" (%s=1: a missing server is a failure)", append(args, RequireEnv)...)
	}
	t.Skipf(format, args...)
}
