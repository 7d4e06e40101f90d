// Package wait is the tests' one way to wait for something to happen: poll a condition until it
// holds or a deadline passes, instead of sleeping for a guessed time or writing the polling loop
// again.
package wait

import (
	"testing"
	"time"
)

// Interval is how often For polls.
const Interval = 5 * time.Millisecond

// For polls cond every Interval until it returns true, and fails t with "timed out after D
// waiting for what" if it does not within d. cond is called at once, so a condition that already
// holds costs no wait.
func For(t testing.TB, d time.Duration, what string, cond func() bool) {
	t.Helper()
	if !Until(d, Interval, cond) {
		t.Fatalf("timed out after %v waiting for %s", d, what)
	}
}

// Until polls cond every interval until it returns true or d has passed, and reports whether it
// held; for callers that fail with a message of their own (the last value seen) or that poll
// something slower than Interval allows (an external broker's statistics). cond is called at once
// and once more at the deadline.
func Until(d, interval time.Duration, cond func() bool) bool {
	if cond() {
		return true
	}
	deadline := time.NewTimer(d)
	defer deadline.Stop()
	tick := time.NewTicker(interval)
	defer tick.Stop()
	for {
		select {
		case <-tick.C:
			if cond() {
				return true
			}
		case <-deadline.C:
			return cond()
		}
	}
}
