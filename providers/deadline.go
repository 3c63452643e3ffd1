package providers

import (
	"context"
	"sync"
	"time"
)

// lazyDeadline is a context with a deadline whose timer starts only when something
// waits on it. It reports its deadline from the start (Deadline), so code that sizes its
// own timeouts from it (net/http, go-redis, net.Dialer) sees the bound; but the timer
// behind Done is made on the first call to Done, or to Err after the deadline.
// A JWT verified against keys already in memory never waits on its context, and the
// chain's deadline then costs no timer: two context.WithDeadline per request were ≈3%
// of the CPU of verifying a new RS256 token (bench scenario b).
//
// Values are the parent's. Cancellation of the parent is seen once armed (Done
// derives from the parent) and at once through Err.
type lazyDeadline struct {
	parent   context.Context
	deadline time.Time

	mu     sync.Mutex
	armed  context.Context // context.WithDeadline(parent, deadline), once needed
	cancel context.CancelFunc
}

var _ context.Context = (*lazyDeadline)(nil)

// withLazyDeadline bounds parent by d, unless parent's own deadline is already no
// later; release (nil-safe) stops the timer if one was started.
func withLazyDeadline(parent context.Context, d time.Time) (context.Context, *lazyDeadline) {
	if pd, ok := parent.Deadline(); ok && !pd.After(d) {
		return parent, nil
	}
	c := &lazyDeadline{parent: parent, deadline: d}
	return c, c
}

func (c *lazyDeadline) arm() context.Context {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.armed == nil {
		c.armed, c.cancel = context.WithDeadline(c.parent, c.deadline)
	}
	return c.armed
}

func (c *lazyDeadline) current() context.Context {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.armed
}

func (c *lazyDeadline) release() {
	if c == nil {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.cancel != nil {
		c.cancel()
	}
}

func (c *lazyDeadline) Deadline() (time.Time, bool) { return c.deadline, true }

func (c *lazyDeadline) Done() <-chan struct{} { return c.arm().Done() }

func (c *lazyDeadline) Err() error {
	if a := c.current(); a != nil {
		return a.Err()
	}
	if err := c.parent.Err(); err != nil {
		return err
	}
	if !time.Now().Before(c.deadline) {
		// Arm, so that Done, Err and context.Cause agree from here on.
		return c.arm().Err()
	}
	return nil
}

// Value is the parent's, except for the context package's internal key by which
// context.Cause and derived contexts find the nearest cancellation: once armed, that is
// the armed context, so a context derived from this one registers on it directly (no
// goroutine per derivation) and Cause reports the deadline.
func (c *lazyDeadline) Value(key any) any {
	if a := c.current(); a != nil {
		return a.Value(key)
	}
	return c.parent.Value(key)
}
