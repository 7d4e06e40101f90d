package wait

import (
	"fmt"
	"sync/atomic"
	"testing"
	"time"
)

func TestUntilHolds(t *testing.T) {
	var n atomic.Int32
	if !Until(10*time.Second, time.Millisecond, func() bool { return n.Add(1) == 3 }) {
		t.Fatal("Until gave up on a condition that holds on the third call")
	}
	if got := n.Load(); got != 3 {
		t.Errorf("cond called %d times, want 3", got)
	}
}

func TestUntilGivesUp(t *testing.T) {
	start := time.Now()
	if Until(20*time.Millisecond, time.Millisecond, func() bool { return false }) {
		t.Fatal("Until reported a condition that never holds")
	}
	if el := time.Since(start); el < 20*time.Millisecond {
		t.Errorf("gave up after %v, before the 20ms deadline", el)
	}
}

// fakeT records a Fatalf instead of stopping the test.
type fakeT struct {
	testing.TB
	failed string
}

func (f *fakeT) Helper()                           {}
func (f *fakeT) Fatalf(format string, args ...any) { f.failed = fmt.Sprintf(format, args...) }

func TestForFailsWithWhat(t *testing.T) {
	ft := &fakeT{}
	For(ft, 10*time.Millisecond, "the moon", func() bool { return false })
	if ft.failed != "timed out after 10ms waiting for the moon" {
		t.Errorf("For failed with %q", ft.failed)
	}
	ft = &fakeT{}
	For(ft, time.Second, "now", func() bool { return true })
	if ft.failed != "" {
		t.Errorf("For failed on a condition that holds: %q", ft.failed)
	}
}
