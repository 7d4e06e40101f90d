package integration

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/warrenmq/warren/internal/wait"
)

var httpReadyRe = regexp.MustCompile(`msg="warren ready".* http=(\S+)`)

// memNode is what the flood test reads of /api/nodes.
type memNode struct {
	MemUsed  int64 `json:"mem_used"`
	MemLimit int64 `json:"mem_limit"`
	MemAlarm bool  `json:"mem_alarm"`
}

func httpGet(t *testing.T, url string) (int, []byte) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.SetBasicAuth("guest", "guest")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, body
}

func getMemNode(t *testing.T, base string) memNode {
	t.Helper()
	code, body := httpGet(t, base+"/api/nodes")
	var ns []memNode
	if code != http.StatusOK || json.Unmarshal(body, &ns) != nil || len(ns) != 1 {
		t.Fatalf("/api/nodes: %d %s", code, body)
	}
	return ns[0]
}

// The memory alarm on a broker process of its own (issue 15): with an absolute watermark of 80 MiB
// (its resident memory is about 25 MiB idle), a consumer that takes every message and acks none
// makes the broker hold a flood of 64 KiB messages in memory, where paging cannot reach them. The
// publisher gets connection.blocked ("low on memory") and /api/nodes says mem_alarm. As in
// RabbitMQ, which has no hysteresis, the alarm clears whenever memory falls below the watermark
// (here when a GC frees the flood's garbage), so the publisher goes on in spurts until what the
// consumer holds fills the broker's memory; then it stays blocked (no confirm, no
// connection.unblocked) with memory near the watermark. Once the consumer acks (drains), memory
// falls, the publisher gets connection.unblocked and publishing resumes; every confirmed message
// was delivered once.
func TestMemoryAlarmFlood(t *testing.T) {
	persistSkipExternal(t)
	const limit = 80 << 20
	p := startProc(t, t.TempDir(), "--http-addr", "127.0.0.1:0", "--memory-high-watermark", strconv.Itoa(limit),
		"--memory-monitor-interval", "20ms")
	m := httpReadyRe.FindStringSubmatch(p.log.String())
	if m == nil {
		t.Fatalf("no http address in the ready line:\n%s", p.log)
	}
	base := "http://" + m[1]
	if n := getMemNode(t, base); n.MemLimit != limit || n.MemAlarm || n.MemUsed <= 0 || n.MemUsed > limit/2 {
		t.Fatalf("idle broker: %+v, want mem_limit %d, no alarm, mem_used under half of it", n, limit)
	}

	const queue = "memalarm.flood"
	cons := persistDial(t, p.url, false)
	if _, err := cons.ch.QueueDeclare(queue, false, false, false, false, nil); err != nil {
		t.Fatal(err)
	}
	deliveries, err := cons.ch.Consume(queue, "", false, false, false, false, nil)
	if err != nil {
		t.Fatal(err)
	}
	// The consumer keeps what it gets, unacked, until told to drain.
	var (
		heldMu   sync.Mutex
		held     []amqp.Delivery
		received = map[string]int{}
	)
	drain := make(chan struct{})
	consDone := make(chan struct{})
	go func() {
		defer close(consDone)
		for d := range deliveries {
			heldMu.Lock()
			received[d.MessageId]++
			select {
			case <-drain:
				d.Ack(false)
			default:
				held = append(held, d)
			}
			heldMu.Unlock()
		}
	}()

	pubConn, err := amqp.Dial(p.url)
	if err != nil {
		t.Fatal(err)
	}
	defer pubConn.Close()
	blockedCh := pubConn.NotifyBlocked(make(chan amqp.Blocking, 16))
	var bs blockState
	blockDone := make(chan struct{})
	go func() {
		defer close(blockDone)
		for b := range blockedCh {
			if b.Active && b.Reason != "low on memory" {
				t.Errorf("blocking = %+v, want reason low on memory", b)
			}
			bs.set(b.Active)
		}
	}()
	pub, err := pubConn.Channel()
	if err != nil {
		t.Fatal(err)
	}
	if err := pub.Confirm(false); err != nil {
		t.Fatal(err)
	}
	confirms := pub.NotifyPublish(make(chan amqp.Confirmation, 1<<16))
	body := make([]byte, 64<<10)
	var (
		confMu    sync.Mutex
		confirmed = map[uint64]bool{}
	)
	countConfirms := func() int {
		confMu.Lock()
		defer confMu.Unlock()
		return len(confirmed)
	}
	confDone := make(chan struct{})
	go func() {
		defer close(confDone)
		for c := range confirms {
			if !c.Ack {
				t.Errorf("publish %d was nacked", c.DeliveryTag)
			}
			confMu.Lock()
			confirmed[c.DeliveryTag] = true
			confMu.Unlock()
		}
	}()
	// The flood: publish until blocked (a publish in flight then waits in the socket).
	stopFlood := make(chan struct{})
	floodDone := make(chan int)
	go func() {
		n := 0
		defer func() { floodDone <- n }()
		for {
			select {
			case <-stopFlood:
				return
			default:
			}
			n++ // delivery tags count from 1, in publish order
			if err := pub.Publish("", queue, false, false, amqp.Publishing{MessageId: strconv.Itoa(n), Body: body}); err != nil {
				n--
				return
			}
		}
	}()
	wait.For(t, 30*time.Second, "connection.blocked", func() bool { active, _, _ := bs.get(); return active })
	// Memory while the flood goes on in spurts, until the publisher stays blocked: blocked, with
	// no change of state nor confirm for half a second.
	start := time.Now()
	var maxUsed, sum, samples int64
	lastConfirms, lastChange := -1, time.Now()
	wait.For(t, 30*time.Second, "the publisher to stay blocked", func() bool {
		n := getMemNode(t, base)
		maxUsed, sum, samples = max(maxUsed, n.MemUsed), sum+n.MemUsed, samples+1
		active, _, since := bs.get()
		if c := countConfirms(); c != lastConfirms {
			lastConfirms, lastChange = c, time.Now()
		}
		return active && n.MemAlarm && time.Since(since) > 500*time.Millisecond && time.Since(lastChange) > 500*time.Millisecond
	})
	_, flips, _ := bs.get()
	t.Logf("flood until the publisher stayed blocked: %v, %d block/unblock notifications, %d confirmed publishes of 64 KiB; mem_used max %d MiB, mean %d MiB over %d samples (watermark %d MiB)",
		time.Since(start).Round(time.Millisecond), flips, countConfirms(), maxUsed>>20, sum/samples>>20, samples, limit>>20)
	if maxUsed > limit*3/2 {
		t.Errorf("memory %d MiB during the flood, more than 1.5 times the watermark %d MiB", maxUsed>>20, limit>>20)
	}
	if code, body := httpGet(t, base+"/api/health/checks/alarms"); code != http.StatusServiceUnavailable ||
		!strings.Contains(string(body), `"resource":"memory"`) || !strings.Contains(string(body), `"status":"failed"`) {
		t.Errorf("/api/health/checks/alarms during the alarm: %d %s", code, body)
	}
	if code, body := httpGet(t, base+"/api/health/checks/local-alarms"); code != http.StatusServiceUnavailable {
		t.Errorf("/api/health/checks/local-alarms during the alarm: %d %s", code, body)
	}
	if _, body := httpGet(t, base+"/metrics"); !strings.Contains(string(body), "rabbitmq_alarms_memory_used_watermark 1\n") ||
		!strings.Contains(string(body), fmt.Sprintf("rabbitmq_resident_memory_limit_bytes %d\n", limit)) &&
			!strings.Contains(string(body), "rabbitmq_resident_memory_limit_bytes 8.388608e+07\n") {
		t.Errorf("/metrics during the alarm lacks the memory alarm or limit:\n%s", grepLines(string(body), "memory"))
	}

	// Held: for a second, memory stays near the watermark, the alarm on and nothing confirmed.
	before, _, _ := bs.get()
	_, flipsBefore, _ := bs.get()
	confirmsBefore := countConfirms()
	maxUsed, sum, samples = 0, 0, 0
	minUsed := int64(limit * 2)
	tick := time.NewTicker(100 * time.Millisecond)
	for range 10 {
		<-tick.C
		n := getMemNode(t, base)
		if !n.MemAlarm {
			t.Errorf("the alarm cleared while the consumer held every message: %+v", n)
		}
		maxUsed, minUsed, sum, samples = max(maxUsed, n.MemUsed), min(minUsed, n.MemUsed), sum+n.MemUsed, samples+1
	}
	tick.Stop()
	if _, flips, _ := bs.get(); !before || flips != flipsBefore {
		t.Errorf("connection.unblocked while the consumer held every message")
	}
	if after := countConfirms(); after != confirmsBefore {
		t.Errorf("%d publishes confirmed while blocked", after-confirmsBefore)
	}
	heldMu.Lock()
	nHeld := len(held)
	heldMu.Unlock()
	t.Logf("held: %d confirmed, %d messages (%d MiB of bodies) held unacked by the consumer; mem_used over 1s while blocked: min %d MiB, max %d MiB, mean %d MiB (watermark %d MiB)",
		confirmsBefore, nHeld, nHeld>>4, minUsed>>20, maxUsed>>20, sum/samples>>20, limit>>20)
	if maxUsed > limit*3/2 || minUsed < limit/2 {
		t.Errorf("memory between %d and %d MiB while blocked: not near the watermark %d MiB", minUsed>>20, maxUsed>>20, limit>>20)
	}

	// Drain: the flood stops (its publish in flight waits in the socket); the consumer acks what
	// it holds and everything after; the alarm clears.
	close(stopFlood)
	heldMu.Lock()
	close(drain)
	for _, d := range held {
		if err := d.Ack(false); err != nil {
			t.Fatal(err)
		}
	}
	held = nil
	heldMu.Unlock()
	wait.For(t, 30*time.Second, "connection.unblocked after the consumer drained", func() bool { active, _, _ := bs.get(); return !active })
	flooded := <-floodDone
	if n := getMemNode(t, base); n.MemAlarm {
		t.Errorf("/api/nodes after connection.unblocked: %+v", n)
	}
	if code, body := httpGet(t, base+"/api/health/checks/alarms"); code != http.StatusOK {
		t.Errorf("/api/health/checks/alarms after the alarm: %d %s", code, body)
	}
	// Publishing resumes.
	const more = 50
	for i := range more {
		id := strconv.Itoa(flooded + 1 + i)
		if err := pub.Publish("", queue, false, false, amqp.Publishing{MessageId: id, Body: []byte("after")}); err != nil {
			t.Fatal(err)
		}
	}
	total := flooded + more
	wait.For(t, 30*time.Second, "every publish confirmed", func() bool { return countConfirms() == total })
	// Nothing confirmed is lost: every message was delivered, once.
	wait.For(t, 30*time.Second, "every confirmed message delivered", func() bool {
		heldMu.Lock()
		defer heldMu.Unlock()
		return len(received) == total
	})
	heldMu.Lock()
	for id, n := range received {
		if n != 1 {
			t.Errorf("message %s delivered %d times", id, n)
		}
	}
	heldMu.Unlock()
	t.Logf("%d flood publishes and %d after the alarm: all confirmed and delivered once", flooded, more)
	cons.conn.Close()
	pubConn.Close()
	<-consDone
	<-confDone
	<-blockDone
}

// blockState is what a connection was last told: blocked or not, since when, and how many
// notifications came.
type blockState struct {
	mu     sync.Mutex
	active bool
	flips  int
	since  time.Time
}

func (b *blockState) set(active bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.active, b.since = active, time.Now()
	b.flips++
}

func (b *blockState) get() (active bool, flips int, since time.Time) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.active, b.flips, b.since
}

// grepLines returns the lines of s that contain sub.
func grepLines(s, sub string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

// Under the memory alarm queues page their messages out (issue 15): a broker process with an 80
// MiB watermark takes 160 MiB of transient 64 KiB messages spread over 8 queues without consumers.
// Their windows (8 MiB each) would hold 64 MiB in memory; past the watermark the alarm blocks the
// publisher and the queues page out to the store, which frees the memory and clears the alarm,
// so the publisher goes on. Memory stays near the watermark (plus the store's buffers), every
// publish is confirmed, the queues report paged-out messages, and every message is delivered once.
func TestMemoryAlarmPagesQueuesOut(t *testing.T) {
	persistSkipExternal(t)
	const limit = 80 << 20
	const queues, total = 8, 2560 // 160 MiB of bodies
	p := startProc(t, t.TempDir(), "--http-addr", "127.0.0.1:0", "--memory-high-watermark", strconv.Itoa(limit),
		"--memory-monitor-interval", "20ms")
	m := httpReadyRe.FindStringSubmatch(p.log.String())
	if m == nil {
		t.Fatalf("no http address in the ready line:\n%s", p.log)
	}
	base := "http://" + m[1]
	pub := persistDial(t, p.url, true)
	blockedCh := pub.conn.NotifyBlocked(make(chan amqp.Blocking, 64))
	var bs blockState
	blockDone := make(chan struct{})
	go func() {
		defer close(blockDone)
		for b := range blockedCh {
			bs.set(b.Active)
		}
	}()
	for i := range queues {
		if _, err := pub.ch.QueueDeclare(fmt.Sprintf("memalarm.page.%d", i), false, false, false, false, nil); err != nil {
			t.Fatal(err)
		}
	}
	// Memory is sampled while the flood runs.
	stopSampling := make(chan struct{})
	sampled := make(chan [3]int64, 1) // max mem_used, samples, samples with the alarm
	go func() {
		var maxUsed, n, alarmed int64
		tick := time.NewTicker(50 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-stopSampling:
				sampled <- [3]int64{maxUsed, n, alarmed}
				return
			case <-tick.C:
			}
			req, _ := http.NewRequest(http.MethodGet, base+"/api/nodes", nil)
			req.SetBasicAuth("guest", "guest")
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				continue
			}
			var ns []memNode
			err = json.NewDecoder(resp.Body).Decode(&ns)
			resp.Body.Close()
			if err != nil || len(ns) != 1 {
				continue
			}
			maxUsed, n = max(maxUsed, ns[0].MemUsed), n+1
			if ns[0].MemAlarm {
				alarmed++
			}
		}
	}()
	start := time.Now()
	body := make([]byte, 64<<10)
	pubErr := make(chan error, 1)
	go func() {
		for i := range total {
			err := pub.ch.Publish("", fmt.Sprintf("memalarm.page.%d", i%queues), false, false, amqp.Publishing{MessageId: strconv.Itoa(i), Body: body})
			if err != nil {
				pubErr <- err
				return
			}
		}
		pubErr <- nil
	}()
	for i := range total {
		select {
		case c := <-pub.acks:
			if !c.Ack {
				t.Fatalf("publish %d nacked", c.DeliveryTag)
			}
		case <-time.After(30 * time.Second):
			_, nodes := httpGet(t, base+"/api/nodes")
			// Kill the broker first: the publisher is blocked writing to it, and the client's
			// Close in the cleanup would wait for that write forever.
			p.kill()
			t.Fatalf("%d of %d confirms after 30s; node %s\n%s", i, total, grepLines(strings.ReplaceAll(string(nodes), ",", "\n"), "mem"), p.log)
		}
	}
	if err := <-pubErr; err != nil {
		t.Fatal(err)
	}
	took := time.Since(start)
	close(stopSampling)
	s := <-sampled
	_, flips, _ := bs.get()
	var pagedOut int64
	for i := range queues {
		code, body := httpGet(t, fmt.Sprintf("%s/api/queues/%%2F/memalarm.page.%d", base, i))
		var q struct {
			Messages         int64 `json:"messages"`
			MessagesPagedOut int64 `json:"messages_paged_out"`
		}
		if code != http.StatusOK || json.Unmarshal(body, &q) != nil || q.Messages != total/queues {
			t.Fatalf("queue %d: %d %s", i, code, body)
		}
		pagedOut += q.MessagesPagedOut
	}
	t.Logf("%d publishes of 64 KiB (%d MiB) confirmed in %v; %d block/unblock notifications; mem_used max %d MiB over %d samples, %d with the alarm (watermark %d MiB); %d messages paged out",
		total, total>>4, took.Round(time.Millisecond), flips, s[0]>>20, s[1], s[2], limit>>20, pagedOut)
	if flips == 0 || pagedOut == 0 {
		t.Errorf("the alarm did not page the queues out: %d notifications, %d paged out", flips, pagedOut)
	}
	// Paging has a fixed cost on top of the watermark: the store's memtables (Pebble's, 16 MiB
	// each, one filling while another is flushed, in C memory) take the paged records. Measured
	// on the 2-core machine: 116-124 MiB at most with the 80 MiB watermark.
	if s[0] > limit+64<<20 {
		t.Errorf("memory %d MiB during the flood, more than the watermark %d MiB and 64 MiB of store buffers", s[0]>>20, limit>>20)
	}
	wait.For(t, 10*time.Second, "the publisher unblocked", func() bool { active, _, _ := bs.get(); return !active })
	// Every message comes back once.
	cons := persistDial(t, p.url, false)
	seen := make(map[string]bool, total)
	for i := range queues {
		for {
			d, ok, err := cons.ch.Get(fmt.Sprintf("memalarm.page.%d", i), true)
			if err != nil {
				t.Fatal(err)
			}
			if !ok {
				break
			}
			if seen[d.MessageId] {
				t.Fatalf("message %s delivered twice", d.MessageId)
			}
			seen[d.MessageId] = true
		}
	}
	if len(seen) != total {
		t.Errorf("%d of %d messages delivered", len(seen), total)
	}
	pub.conn.Close()
	<-blockDone
}
