package integration

// Helpers for the reliability suites (wire conformance, churn, idle connections, soak): a broker whose
// log is captured and checked for panics, and a snapshot of the process's goroutines, open files and
// heap that a test returns to after its work.

import (
	"fmt"
	"log/slog"
	"os"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/warrenmq/warren/internal/wait"
	"github.com/warrenmq/warren/server"
)

// logCapture is an io.Writer for a broker's log: it keeps the lines that mention a panic and the
// last 64 KiB, so that long runs (churn, soak) do not keep every line they logged.
type logCapture struct {
	mu    sync.Mutex
	bad   []string // lines mentioning a panic (at most 20)
	nbad  int
	tail  []byte
	lines int
}

// logPanicWords mark a panic in a log line: a recovered panic, a runtime error, a stack dump.
var logPanicWords = []string{"panic", "runtime error", "goroutine "}

func (l *logCapture) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.lines++
	low := strings.ToLower(string(p))
	for _, w := range logPanicWords {
		if strings.Contains(low, w) {
			l.nbad++
			if len(l.bad) < 20 {
				l.bad = append(l.bad, string(p))
			}
			break
		}
	}
	l.tail = append(l.tail, p...)
	if len(l.tail) > 64<<10 {
		l.tail = append(l.tail[:0], l.tail[len(l.tail)-32<<10:]...)
	}
	return len(p), nil
}

func (l *logCapture) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return string(l.tail)
}

// checkNoPanic fails t if a log line mentioned a panic.
func (l *logCapture) checkNoPanic(t testing.TB) {
	t.Helper()
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.nbad > 0 {
		t.Errorf("%d of the broker's %d log lines mention a panic, for example:\n%s", l.nbad, l.lines, strings.Join(l.bad, ""))
	}
}

// startLoggedBroker starts an in-process broker whose debug log is captured; the log is checked for
// panics when the test ends (after the broker's shutdown, so shutdown is checked too). With
// WARREN_TEST_URL set it returns the external broker and a nil capture.
func startLoggedBroker(t testing.TB, opts ...func(*server.Options)) (broker, *logCapture) {
	t.Helper()
	if externalURL != "" {
		return startBroker(t, opts...), nil
	}
	lc := &logCapture{}
	t.Cleanup(func() { lc.checkNoPanic(t) }) // registered first, so it runs after the broker stops
	logOpt := func(o *server.Options) {
		o.Logger = slog.New(slog.NewTextHandler(lc, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return startBroker(t, append([]func(*server.Options){logOpt}, opts...)...), lc
}

// procState is a snapshot of the test process: goroutines, open file descriptors and live heap.
type procState struct {
	Goroutines int
	FDs        int    // -1 where /proc/self/fd is missing
	Heap       uint64 // HeapAlloc after a GC
	RSS        uint64 // resident set size from /proc/self/statm, 0 where missing
}

func (p procState) String() string {
	return fmt.Sprintf("goroutines=%d fds=%d heap=%.1fMiB rss=%.1fMiB", p.Goroutines, p.FDs,
		float64(p.Heap)/(1<<20), float64(p.RSS)/(1<<20))
}

// takeProcState collects garbage and takes a snapshot.
func takeProcState() procState {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	st := procState{Goroutines: runtime.NumGoroutine(), FDs: -1, Heap: ms.HeapAlloc}
	if ents, err := os.ReadDir("/proc/self/fd"); err == nil {
		st.FDs = len(ents)
	}
	if b, err := os.ReadFile("/proc/self/statm"); err == nil {
		var size, res uint64
		if _, err := fmt.Sscan(string(b), &size, &res); err == nil {
			st.RSS = res * uint64(os.Getpagesize())
		}
	}
	return st
}

// leakBounds is how far a process may stay above its baseline once the work is done.
type leakBounds struct {
	Goroutines int
	FDs        int
	Heap       uint64
}

// waitBaseline waits up to within for the process to come back to base (plus the bounds) and fails t
// with the last snapshot if it does not. It returns that snapshot.
func waitBaseline(t testing.TB, base procState, b leakBounds, within time.Duration) procState {
	t.Helper()
	var st procState
	if !wait.Until(within, 50*time.Millisecond, func() bool {
		st = takeProcState()
		return st.Goroutines <= base.Goroutines+b.Goroutines &&
			(st.FDs < 0 || base.FDs < 0 || st.FDs <= base.FDs+b.FDs) &&
			st.Heap <= base.Heap+b.Heap
	}) {
		buf := make([]byte, 1<<20)
		n := runtime.Stack(buf, true)
		t.Errorf("not back to the baseline after %v:\nbaseline %v\nnow      %v (allowed +%d goroutines, +%d fds, +%d heap bytes)\n%s",
			within, base, st, b.Goroutines, b.FDs, b.Heap, buf[:n])
	}
	return st
}

// recordTB records Errorf calls, to test the checks above.
type recordTB struct {
	testing.TB
	errs []string
}

func (r *recordTB) Helper() {}
func (r *recordTB) Errorf(format string, args ...any) {
	r.errs = append(r.errs, fmt.Sprintf(format, args...))
}

// The log check finds a panic among many lines and keeps only a bounded tail.
func TestLogCaptureFindsPanic(t *testing.T) {
	lc := &logCapture{}
	for range 10000 {
		fmt.Fprintf(lc, "level=DEBUG msg=\"connection opened\" conn=%d\n", 1)
	}
	r := &recordTB{TB: t}
	lc.checkNoPanic(r)
	if len(r.errs) != 0 {
		t.Fatalf("clean log reported: %v", r.errs)
	}
	fmt.Fprintf(lc, "level=ERROR msg=\"recovered\" err=\"panic: runtime error: index out of range\"\n")
	lc.checkNoPanic(r)
	if len(r.errs) != 1 || !strings.Contains(r.errs[0], "index out of range") {
		t.Fatalf("panic not reported: %v", r.errs)
	}
	if n := len(lc.String()); n > 64<<10 {
		t.Fatalf("log capture keeps %d bytes", n)
	}
}
