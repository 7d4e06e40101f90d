package integration

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"sync"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
)

// The kill -9 test runs the real broker binary on a Pebble data directory, publishes persistent
// messages with confirms while a consumer acks, kills the process at a random moment, restarts it
// and checks what came back. WARREN_CRASH_CYCLES sets the number of cycles (default 5).

var (
	buildOnce sync.Once
	binPath   string
	buildErr  error
)

// warrenBinary builds cmd/warren once per test run.
func warrenBinary(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "warren-bin")
		if err != nil {
			buildErr = err
			return
		}
		binPath = filepath.Join(dir, "warren")
		out, err := exec.Command("go", "build", "-o", binPath, "../cmd/warren").CombinedOutput()
		if err != nil {
			buildErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return binPath
}

// proc is a broker process.
type proc struct {
	cmd  *exec.Cmd
	url  string
	done chan struct{} // closed when the process has exited and its output is read
	log  *logTail
}

// logTail keeps the last lines a process wrote, for failure messages.
type logTail struct {
	mu    sync.Mutex
	lines []string
}

func (l *logTail) add(s string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.lines = append(l.lines, s)
	if len(l.lines) > 40 {
		l.lines = l.lines[len(l.lines)-40:]
	}
}

func (l *logTail) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	s := ""
	for _, x := range l.lines {
		s += x + "\n"
	}
	return s
}

var readyRe = regexp.MustCompile(`msg="warren ready".* amqp=(\S+)`)

// startProc runs the broker on dataDir with an AMQP listener on a free port and waits for its
// ready line.
func startProc(t *testing.T, dataDir string, extra ...string) *proc {
	t.Helper()
	args := append([]string{"--amqp-addr", "127.0.0.1:0", "--http-addr", "", "--data-dir", dataDir}, extra...)
	cmd := exec.Command(warrenBinary(t), args...)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout = io.Discard
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &proc{cmd: cmd, done: make(chan struct{}), log: &logTail{}}
	ready := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			line := sc.Text()
			p.log.add(line)
			if m := readyRe.FindStringSubmatch(line); m != nil {
				ready <- m[1]
			}
		}
		cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() { p.kill() })
	select {
	case addr := <-ready:
		p.url = "amqp://guest:guest@" + addr + "/"
		return p
	case <-p.done:
		t.Fatalf("broker exited before it was ready:\n%s", p.log)
	case <-time.After(60 * time.Second):
		t.Fatalf("broker not ready after 60s:\n%s", p.log)
	}
	return nil
}

func (p *proc) kill() {
	p.cmd.Process.Kill()
	<-p.done
}

// crashLedger is what the clients know across crashes.
type crashLedger struct {
	mu        sync.Mutex
	published map[string]bool
	confirmed map[string]bool
	acked     map[string]bool // an ack was sent (the broker may not have seen it)
	args      amqp.Table      // the queue's declare arguments
	// confirmTimes are the confirms' times in the order the publishers saw them.
	confirmTimes []time.Time

	lost, unexpected, duplicated, ackedNotRedelivered int
}

// drain takes every message from the queue after a restart, checks it against the ledger and
// acks it.
func (l *crashLedger) drain(t *testing.T, url, queue string) int {
	t.Helper()
	conn, err := amqp.Dial(url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ch, err := conn.Channel()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ch.QueueDeclare(queue, true, false, false, false, l.args); err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for {
		d, ok, err := ch.Get(queue, false)
		if err != nil {
			t.Fatal(err)
		}
		if !ok {
			break
		}
		l.drained(t, string(d.Body), d.Redelivered, seen)
		if err := d.Ack(false); err != nil {
			t.Fatal(err)
		}
	}
	l.missing(t)
	return len(seen)
}

// drained checks one message taken by a drain against the ledger: published, not twice in the
// drain (seen), flagged redelivered if it was acked before; it counts as acked from now on.
func (l *crashLedger) drained(t *testing.T, id string, redelivered bool, seen map[string]bool) {
	t.Helper()
	l.mu.Lock()
	defer l.mu.Unlock()
	switch {
	case !l.published[id]:
		l.unexpected++
		t.Errorf("message %q was never published", id)
	case seen[id]:
		l.duplicated++
		t.Errorf("message %q delivered twice in one drain", id)
	case l.acked[id] && !redelivered:
		l.ackedNotRedelivered++
		t.Errorf("acked message %q came back with redelivered=false", id)
	}
	seen[id] = true
	l.acked[id] = true
}

// missing counts (once) the confirmed messages no consumer acked and no drain found: lost.
func (l *crashLedger) missing(t *testing.T) {
	t.Helper()
	l.mu.Lock()
	defer l.mu.Unlock()
	for id := range l.confirmed {
		if !l.acked[id] {
			l.lost++
			t.Errorf("confirmed message %q is missing", id)
			l.acked[id] = true // count it once
		}
	}
}

// load publishes with confirms and consumes with acks until ctx ends (or the broker dies).
func (l *crashLedger) load(ctx context.Context, url, queue, prefix string) {
	var wg sync.WaitGroup
	defer wg.Wait()
	wg.Add(2)
	go func() {
		defer wg.Done()
		n := 0
		l.publishOn(ctx, url, queue, prefix, &n, 64, 0)
	}()
	go func() {
		defer wg.Done()
		l.consumeOn(ctx, url, queue)
	}()
}

// confirmedAt records a confirm, with its time (the cluster fault test's gaps).
func (l *crashLedger) confirmedAt(id string) {
	l.mu.Lock()
	l.confirmed[id] = true
	l.confirmTimes = append(l.confirmTimes, time.Now())
	l.mu.Unlock()
}

// publishOn publishes persistent messages prefix+n (n counts on across calls) with confirms
// through url, at most window unconfirmed and one every pace (0: as fast as confirms allow),
// until ctx ends, the connection fails, or no confirm comes for 5 s.
func (l *crashLedger) publishOn(ctx context.Context, url, queue, prefix string, n *int, window int, pace time.Duration) {
	conn, err := amqp.DialConfig(url, amqp.Config{Dial: amqp.DefaultDial(2 * time.Second), Heartbeat: time.Second})
	if err != nil {
		return
	}
	defer conn.Close()
	ch, err := conn.Channel()
	if err != nil || ch.Confirm(false) != nil {
		return
	}
	confirms := ch.NotifyPublish(make(chan amqp.Confirmation, 2*window))
	ids := map[uint64]string{}
	var tag uint64
	var tick <-chan time.Time
	if pace > 0 {
		t := time.NewTicker(pace)
		defer t.Stop()
		tick = t.C
	}
	for ctx.Err() == nil {
		if tick != nil {
			select {
			case <-tick:
			case <-ctx.Done():
				return
			}
		}
		id := prefix + strconv.Itoa(*n)
		*n++
		l.mu.Lock()
		l.published[id] = true
		l.mu.Unlock()
		if ch.Publish("", queue, false, false, amqp.Publishing{DeliveryMode: amqp.Persistent, Body: []byte(id)}) != nil {
			return
		}
		tag++
		ids[tag] = id
		for len(ids) >= window {
			select {
			case cf, ok := <-confirms:
				if !ok {
					return
				}
				if cf.Ack {
					l.confirmedAt(ids[cf.DeliveryTag])
				}
				delete(ids, cf.DeliveryTag)
			case <-ctx.Done():
				return
			case <-time.After(5 * time.Second):
				return // a broker that stopped answering
			}
		}
	}
}

// consumeOn consumes with acks through url, prefetch 32, leaving every third delivery unacked
// (they must come back), until ctx ends, the connection fails, or nothing arrives for 5 s.
func (l *crashLedger) consumeOn(ctx context.Context, url, queue string) {
	conn, err := amqp.DialConfig(url, amqp.Config{Dial: amqp.DefaultDial(2 * time.Second), Heartbeat: time.Second})
	if err != nil {
		return
	}
	defer conn.Close()
	ch, err := conn.Channel()
	if err != nil || ch.Qos(32, 0, false) != nil {
		return
	}
	ds, err := ch.Consume(queue, "", false, false, false, false, nil)
	if err != nil {
		return
	}
	for i := 0; ; i++ {
		select {
		case d, ok := <-ds:
			if !ok {
				return
			}
			if i%3 == 2 {
				continue
			}
			l.mu.Lock()
			l.acked[string(d.Body)] = true
			l.mu.Unlock()
			if d.Ack(false) != nil {
				return
			}
		case <-ctx.Done():
			return
		case <-time.After(5 * time.Second):
			return
		}
	}
}

func TestCrashKill9KeepsConfirmedMessages(t *testing.T) { crashKill9(t, nil) }

// The same with a quorum queue: its messages are in its Raft log.
func TestCrashKill9QuorumKeepsConfirmedMessages(t *testing.T) {
	crashKill9(t, amqp.Table{"x-queue-type": "quorum"})
}

func crashKill9(t *testing.T, args amqp.Table) {
	persistSkipExternal(t)
	if testing.Short() {
		t.Skip("-short: builds and kills a broker process")
	}
	cycles := 5
	if s := os.Getenv("WARREN_CRASH_CYCLES"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 {
			t.Fatalf("WARREN_CRASH_CYCLES=%q", s)
		}
		cycles = n
	}
	dataDir := t.TempDir()
	l := &crashLedger{published: map[string]bool{}, confirmed: map[string]bool{}, acked: map[string]bool{}, args: args}
	const queue = "crash.q"
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 1))
	drained := 0
	for c := 0; c < cycles; c++ {
		p := startProc(t, dataDir)
		drained += l.drain(t, p.url, queue)
		ctx, cancel := context.WithCancel(context.Background())
		loadDone := make(chan struct{})
		go func() { l.load(ctx, p.url, queue, fmt.Sprintf("c%d-", c)); close(loadDone) }()
		time.Sleep(time.Duration(100+rng.IntN(400)) * time.Millisecond) // a random moment to crash
		p.kill()
		cancel()
		<-loadDone
		if t.Failed() {
			t.Logf("broker log:\n%s", p.log)
			break
		}
	}
	p := startProc(t, dataDir)
	drained += l.drain(t, p.url, queue)
	p.kill()
	l.mu.Lock()
	defer l.mu.Unlock()
	t.Logf("kill -9 cycles=%d published=%d confirmed=%d acked=%d drained=%d lost=%d unexpected=%d duplicated=%d acked-without-redelivered=%d",
		cycles, len(l.published), len(l.confirmed), len(l.acked), drained, l.lost, l.unexpected, l.duplicated, l.ackedNotRedelivered)
	if len(l.confirmed) == 0 {
		t.Fatal("no publish was confirmed: the test measured nothing")
	}
}

// runProcUntilExit runs the broker binary with args and returns its exit code and output; it must
// exit by itself (it is killed after 30s).
func runProcUntilExit(t *testing.T, args ...string) (int, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, warrenBinary(t), args...).CombinedOutput()
	if ctx.Err() != nil {
		t.Fatalf("the broker did not exit:\n%s", out)
	}
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return code, string(out)
}

// A second broker on a data directory in use exits with a clear error; a corrupt store is refused
// with an error naming the file, never replaced by an empty one.
func TestDataDirLockedAndCorrupt(t *testing.T) {
	persistSkipExternal(t)
	if testing.Short() {
		t.Skip("-short: builds and runs the broker binary")
	}
	dir := t.TempDir()
	p := startProc(t, dir)
	code, out := runProcUntilExit(t, "--amqp-addr", "127.0.0.1:0", "--http-addr", "", "--data-dir", dir)
	if code == 0 || !regexp.MustCompile(`data directory .* is locked by another broker`).MatchString(out) {
		t.Fatalf("second broker on the same directory: exit %d\n%s", code, out)
	}
	p.kill()

	manifests, _ := filepath.Glob(filepath.Join(dir, "MANIFEST-*"))
	if len(manifests) == 0 {
		t.Fatal("no MANIFEST in the data directory")
	}
	for _, m := range manifests {
		if err := os.WriteFile(m, []byte("not a manifest, garbage garbage garbage"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	code, out = runProcUntilExit(t, "--amqp-addr", "127.0.0.1:0", "--http-addr", "", "--data-dir", dir)
	if code == 0 || !regexp.MustCompile(`is corrupt: .*MANIFEST-\d+`).MatchString(out) {
		t.Fatalf("broker on a corrupt store: exit %d\n%s", code, out)
	}
}
