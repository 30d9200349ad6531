// Package e2e holds end-to-end tests: a real keyhold server over TLS, driven
// by the real Azure SDK for Go clients, as a customer's tooling would.
package e2e

import (
	"testing"
	"time"

	"github.com/keyhold/keyhold/internal/testenv"
	"github.com/keyhold/keyhold/server"
)

// env is one running server and what a client needs to reach it; the
// embedding lets these tests add their own helpers.
type env struct{ *testenv.Env }

// start runs a server on a random port with its data in dir (a fresh
// temporary directory when dir is ""), its logs kept for secret scanning,
// a movable clock, and registrations that take long enough to be seen
// pending.
func start(t *testing.T, dir string) *env {
	t.Helper()
	return &env{testenv.Start(t, testenv.WithDir(dir), testenv.WithCapturedLogs(), testenv.WithClock(&testenv.Clock{}),
		testenv.WithConfig(func(c *server.Config) { c.RegistrationDelay = 50 * time.Millisecond }))}
}
