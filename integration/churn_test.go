package integration

// Churn and idle-connection tests: many short connections, and many idle connections held open with
// heartbeats, must leave nothing behind (goroutines, open files, heap), with the broker's log free
// of panics.
//
//	WARREN_CHURN=10000 go test -run TestChurn -count=1 ./integration     (default 10,000; 2,000 with -short)
//	WARREN_IDLE=5000 go test -run TestIdleConnections -count=1 ./integration   (default 500)

import (
	"os"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/warrenmq/warren/server"
)

// envInt reads a positive count from the environment, or def.
func envInt(t *testing.T, name string, def int) int {
	t.Helper()
	s := os.Getenv(name)
	if s == "" {
		return def
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 1 {
		t.Fatalf("%s=%q: want a positive count", name, s)
	}
	return n
}

// cycleTB runs a test's cleanups at the end of one cycle instead of the end of the test, so that
// thousands of cycles do not keep thousands of closed sockets reachable until then.
type cycleTB struct {
	testing.TB
	cleanups []func()
}

func (c *cycleTB) Cleanup(f func()) { c.cleanups = append(c.cleanups, f) }

func (c *cycleTB) done() {
	for i := len(c.cleanups) - 1; i >= 0; i-- {
		c.cleanups[i]()
	}
	wireTracked(c)
}

// TestChurn runs connect / open channel / declare a queue / publish and get / close cycles from a
// few parallel raw clients, then checks that the process is back to its baseline.
func TestChurn(t *testing.T) {
	persistSkipExternal(t)
	def := 10000 // about 5 s, or 14 s under -race, on a loaded 2-core machine
	if testing.Short() {
		def = 2000
	}
	cycles := envInt(t, "WARREN_CHURN", def)
	b, _ := startLoggedBroker(t)
	wireCheckServing(t, b)
	base := takeProcState()
	const workers = 4
	start := time.Now()
	var wg sync.WaitGroup
	for i := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for c := i; c < cycles && !t.Failed(); c += workers {
				ct := &cycleTB{TB: t}
				w := wireHandshake(ct, b)
				w.openChannel(1)
				q := w.declareQueue(1)
				w.roundTrip(1, q, "churn")
				w.closeConnection()
				ct.done()
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	end := waitBaseline(t, base, leakBounds{Goroutines: 2, FDs: 2, Heap: 8 << 20}, 10*time.Second)
	t.Logf("%d connect/channel/declare/publish/get/close cycles in %v (%.0f/s); before %v; after %v",
		cycles, elapsed.Round(time.Millisecond), float64(cycles)/elapsed.Seconds(), base, end)
	if got := len(b.Srv.Connections()); got != 0 {
		t.Errorf("%d connections still listed", got)
	}
}

// raiseFileLimit raises RLIMIT_NOFILE to its hard limit and returns the soft limit now in force.
func raiseFileLimit(t *testing.T) uint64 {
	t.Helper()
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		t.Fatalf("getrlimit: %v", err)
	}
	if lim.Cur < lim.Max {
		old := lim
		lim.Cur = lim.Max
		if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
			t.Logf("setrlimit: %v", err)
			return old.Cur
		}
		t.Cleanup(func() { _ = syscall.Setrlimit(syscall.RLIMIT_NOFILE, &old) })
	}
	return lim.Cur
}

// TestIdleConnections opens many connections that negotiate a short heartbeat and keep sending theirs,
// holds them for a few heartbeat intervals (none may be dropped), closes them and checks that the
// process is back to its baseline.
func TestIdleConnections(t *testing.T) {
	persistSkipExternal(t)
	n := envInt(t, "WARREN_IDLE", 500)
	hold := 4 * time.Second
	if s := os.Getenv("WARREN_IDLE_HOLD"); s != "" {
		d, err := time.ParseDuration(s)
		if err != nil {
			t.Fatalf("WARREN_IDLE_HOLD=%q: %v", s, err)
		}
		hold = d
	}
	if lim := raiseFileLimit(t); lim < uint64(2*n+100) {
		t.Skipf("RLIMIT_NOFILE %d is too low for %d connections (both ends are in this process)", lim, n)
	}
	// A 1 s heartbeat up to 1,000 connections, then 1 s more per 1,000 (5 s for 5,000), so that a
	// loaded 2-core machine running both ends keeps up.
	hb := time.Duration(max(1, n/1000)) * time.Second
	b, _ := startLoggedBroker(t, func(o *server.Options) { o.Heartbeat = hb })
	wireCheckServing(t, b)
	base := takeProcState()

	// Each connection sends its heartbeats, at half the interval, from the moment it is open, in its
	// own goroutine as a client library would; the broker's heartbeats wait in the socket buffer
	// (closeConnection skips them).
	stop := make(chan struct{})
	var wg sync.WaitGroup
	errs := make(chan error, n)
	beat := func(w *wireConn) {
		defer wg.Done()
		tick := time.NewTicker(hb / 2)
		defer tick.Stop()
		for {
			select {
			case <-stop:
				return
			case <-tick.C:
			}
			if err := w.write(wireHeartbeatFrame()); err != nil {
				errs <- err
				return
			}
		}
	}
	conns := make([]*wireConn, n)
	ct := &cycleTB{TB: t}
	start := time.Now()
	for i := range conns {
		conns[i] = wireHandshake(ct, b)
		if time.Duration(conns[i].tu.Heartbeat)*time.Second != hb {
			t.Fatalf("heartbeat %d, want %v", conns[i].tu.Heartbeat, hb)
		}
		wg.Add(1)
		go beat(conns[i])
	}
	opened := time.Since(start)
	held := takeProcState()
	if got := len(b.Srv.Connections()); got != n {
		t.Errorf("%d connections listed once all were opened, want %d", got, n)
	}
	time.Sleep(hold)
	close(stop)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Errorf("an idle connection failed while sending heartbeats: %v", err)
	}
	if got := len(b.Srv.Connections()); got != n {
		t.Errorf("%d connections listed after %v of heartbeats, want %d", got, hold, n)
	}
	for _, w := range conns {
		w.closeConnection()
	}
	ct.done()
	conns = nil
	end := waitBaseline(t, base, leakBounds{Goroutines: 2, FDs: 2, Heap: 8 << 20}, 20*time.Second)
	t.Logf("%d idle connections opened in %v, held %v with %v heartbeats; baseline %v; held %v (%.1f KiB heap per connection, both ends); after %v",
		n, opened.Round(time.Millisecond), hold, hb, base, held, float64(held.Heap-base.Heap)/float64(n)/1024, end)
}
