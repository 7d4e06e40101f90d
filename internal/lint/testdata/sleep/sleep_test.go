package sleep

import (
	"testing"
	t2 "time"
)

func TestSleeps(t *testing.T) {
	t2.Sleep(t2.Millisecond) // a violation: the call
	nap := t2.Sleep          // a violation: the function as a value
	nap(0)
	go func() { t2.Sleep(0) }() // a violation inside a closure: reported for TestSleeps
}

type clock struct{}

func (clock) Sleep(t2.Duration) {}

func (c *clock) wait() { c.Sleep(0) } // not time.Sleep: no violation
