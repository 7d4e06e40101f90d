package integration

import (
	"encoding/json"
	"fmt"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/warrenmq/warren/internal/testbroker"
	"github.com/warrenmq/warren/internal/wait"
	"github.com/warrenmq/warren/server"
	"github.com/warrenmq/warren/shovel"
)

// shovelLedger is what the producer at the source knows: the messages it published, and those
// the source confirmed.
type shovelLedger struct {
	mu        sync.Mutex
	next      int
	confirmed map[int]bool
	published int
}

func (l *shovelLedger) confirmedCount() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.confirmed)
}

// produce publishes persistent messages with confirms to queue at url() in batches of 50 until
// stop is closed, reconnecting (every 50 ms) while the broker is down. A message counts as
// confirmed only when its confirm arrived.
func (l *shovelLedger) produce(url func() string, queue string, stop <-chan struct{}) {
	for {
		select {
		case <-stop:
			return
		default:
		}
		l.session(url(), queue, stop)
		select {
		case <-stop:
			return
		case <-time.After(50 * time.Millisecond):
		}
	}
}

func (l *shovelLedger) session(url, queue string, stop <-chan struct{}) {
	conn, err := amqp.Dial(url)
	if err != nil {
		return
	}
	defer conn.Close()
	ch, err := conn.Channel()
	if err != nil || ch.Confirm(false) != nil {
		return
	}
	if _, err := ch.QueueDeclare(queue, true, false, false, false, nil); err != nil {
		return
	}
	for {
		select {
		case <-stop:
			return
		default:
		}
		type sent struct {
			n  int
			dc *amqp.DeferredConfirmation
		}
		var batch []sent
		for range 50 {
			l.mu.Lock()
			n := l.next
			l.next++
			l.published++
			l.mu.Unlock()
			dc, err := ch.PublishWithDeferredConfirm("", queue, false, false, amqp.Publishing{DeliveryMode: amqp.Persistent, Body: []byte(strconv.Itoa(n))})
			if err != nil {
				return
			}
			batch = append(batch, sent{n, dc})
		}
		for _, s := range batch {
			select {
			case <-s.dc.Done():
			case <-time.After(30 * time.Second):
				return
			}
			if !s.dc.Acked() {
				return // nacked, or the connection died: not confirmed
			}
			l.mu.Lock()
			l.confirmed[s.n] = true
			l.mu.Unlock()
		}
	}
}

// A shovel on broker B moves a queue from broker A (a real process) to B with ack-mode
// on-confirm while a producer keeps publishing with confirms to A; A is killed with SIGKILL
// midway and restarted on its data directory. Every message A confirmed arrives at B (issue 15's
// headline use: moving a live queue without losing a message); duplicates are allowed
// (at-least-once) and reported.
func TestShovelSourceKilledMidway(t *testing.T) {
	persistSkipExternal(t)
	if testing.Short() {
		t.Skip("-short: builds and kills a broker process")
	}
	const queue = "shovel-kill.src"
	dataDir := t.TempDir()
	a := startProc(t, dataDir)
	addr := strings.TrimSuffix(strings.TrimPrefix(a.url, "amqp://guest:guest@"), "/")
	var urlMu sync.Mutex
	aURL := func() string { urlMu.Lock(); defer urlMu.Unlock(); return a.url }

	b := testbroker.Start(t)
	eng := shovel.New(b.Srv, shovel.Options{Logger: testbroker.Logger(t)})
	t.Cleanup(eng.Close) // before the broker stops

	l := &shovelLedger{confirmed: map[int]bool{}}
	stop := make(chan struct{})
	var producer sync.WaitGroup
	producer.Add(1)
	go func() {
		defer producer.Done()
		l.produce(aURL, queue, stop)
	}()
	stopProducer := sync.OnceFunc(func() { close(stop); producer.Wait() })
	defer stopProducer()
	wait.For(t, 30*time.Second, "the producer's first confirms", func() bool { return l.confirmedCount() > 0 })

	// Go values: PutParameter reads them back as JSON, as the API would have decoded them.
	def := map[string]any{
		"src-uri": a.url, "src-queue": queue, "dest-uri": "amqp://", "dest-queue": "shovel-kill.dst",
		"ack-mode": "on-confirm", "src-prefetch-count": 200, "reconnect-delay": 0.1,
	}
	if _, err := b.Srv.PutParameter(server.Parameter{Component: shovel.Component, Vhost: "/", Name: "mv", Value: def}); err != nil {
		t.Fatal(err)
	}

	// The consumer at B: every message, counted, acked.
	bc, err := amqp.Dial(b.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer bc.Close()
	bch, err := bc.Channel()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := bch.QueueDeclare("shovel-kill.dst", true, false, false, false, nil); err != nil {
		t.Fatal(err)
	}
	deliveries, err := bch.Consume("shovel-kill.dst", "", true, false, false, false, nil)
	if err != nil {
		t.Fatal(err)
	}
	var recvMu sync.Mutex
	received := map[int]int{}
	var consumer sync.WaitGroup
	consumer.Add(1)
	go func() {
		defer consumer.Done()
		for d := range deliveries {
			n, err := strconv.Atoi(string(d.Body))
			if err != nil {
				continue
			}
			recvMu.Lock()
			received[n]++
			recvMu.Unlock()
		}
	}()
	defer consumer.Wait()
	defer bc.Close()
	receivedCount := func() int { recvMu.Lock(); defer recvMu.Unlock(); return len(received) }

	wait.For(t, 60*time.Second, "3000 confirmed at A and 1000 moved to B", func() bool {
		return l.confirmedCount() >= 3000 && receivedCount() >= 1000
	})
	atKill, movedAtKill := l.confirmedCount(), receivedCount()
	a.kill()
	urlMu.Lock()
	a = startProc(t, dataDir, "--amqp-addr", addr)
	urlMu.Unlock()
	t.Logf("killed A (kill -9) with %d confirmed, %d moved; restarted on %s", atKill, movedAtKill, addr)
	wait.For(t, 60*time.Second, "3000 more confirmed after the restart", func() bool { return l.confirmedCount() >= atKill+3000 })
	stopProducer()

	l.mu.Lock()
	confirmed := l.confirmed
	published := l.published
	l.mu.Unlock()
	missing := func() []int {
		recvMu.Lock()
		defer recvMu.Unlock()
		var out []int
		for n := range confirmed {
			if received[n] == 0 {
				out = append(out, n)
			}
		}
		return out
	}
	if !wait.Until(90*time.Second, 50*time.Millisecond, func() bool { return len(missing()) == 0 }) {
		m := missing()
		t.Fatalf("%d of %d messages confirmed at A never reached B (e.g. %v); shovel %+v\nA's log:\n%s", len(m), len(confirmed), m[:min(10, len(m))], eng.Statuses(), a.log)
	}
	// Wait for the source to drain (messages published but unconfirmed may arrive too), then count.
	ac, err := amqp.Dial(a.url)
	if err != nil {
		t.Fatal(err)
	}
	defer ac.Close()
	ach, err := ac.Channel()
	if err != nil {
		t.Fatal(err)
	}
	wait.For(t, 60*time.Second, "A's queue drained", func() bool {
		q, err := ach.QueueDeclarePassive(queue, true, false, false, false, nil)
		return err == nil && q.Messages == 0
	})
	recvMu.Lock()
	dups, unconfirmed := 0, 0
	for n, c := range received {
		dups += c - 1
		if !confirmed[n] {
			unconfirmed++
		}
	}
	distinct := len(received)
	recvMu.Unlock()
	t.Logf("published %d, confirmed at A %d, received at B %d distinct (%d not confirmed at A), %d duplicates, 0 lost",
		published, len(confirmed), distinct, unconfirmed, dups)
}

var httpRe = regexp.MustCompile(`msg="warren ready".* http=(\S+)`)

// The warren binary runs the shovels: one set through the management API of a broker process
// moves messages, and after a kill -9 and a restart on the same data directory it runs again from
// its stored definition (issue 15: shovels are definitions).
func TestShovelProcessRestart(t *testing.T) {
	persistSkipExternal(t)
	if testing.Short() {
		t.Skip("-short: builds and kills a broker process")
	}
	dataDir := t.TempDir()
	start := func() (*proc, string) {
		p := startProc(t, dataDir, "--http-addr", "127.0.0.1:0")
		m := httpRe.FindStringSubmatch(p.log.String())
		if m == nil {
			t.Fatalf("no management address in the log:\n%s", p.log)
		}
		return p, "http://" + m[1]
	}
	p, api := start()
	put := func(path, body string) {
		t.Helper()
		req, err := http.NewRequest(http.MethodPut, api+path, strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		req.SetBasicAuth("guest", "guest")
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		if res.StatusCode != http.StatusCreated {
			t.Fatalf("PUT %s: %s", path, res.Status)
		}
	}
	running := func(api string) bool {
		req, _ := http.NewRequest(http.MethodGet, api+"/api/shovels/%2F", nil)
		req.SetBasicAuth("guest", "guest")
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			return false
		}
		defer res.Body.Close()
		var st []map[string]any
		return json.NewDecoder(res.Body).Decode(&st) == nil && len(st) == 1 && st[0]["state"] == "running"
	}
	put("/api/parameters/shovel/%2F/keep", `{"value":{"src-uri":"amqp://","src-queue":"pr.src","dest-uri":"amqp://","dest-queue":"pr.dst"}}`)
	wait.For(t, 10*time.Second, "the shovel running", func() bool { return running(api) })
	seen := map[int]int{}
	moved := func(url string, from, n int, total int) {
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
		if err := ch.Confirm(false); err != nil {
			t.Fatal(err)
		}
		for i := from; i < from+n; i++ {
			dc, err := ch.PublishWithDeferredConfirm("", "pr.src", false, false, amqp.Publishing{DeliveryMode: amqp.Persistent, Body: []byte(strconv.Itoa(i))})
			if err != nil || !dc.Wait() {
				t.Fatalf("publish %d: %v", i, err)
			}
		}
		// Every message 0..total-1 arrives; an ack at the source not yet synced when the broker
		// was killed brings its message back, so duplicates are allowed (at-least-once).
		wait.For(t, 10*time.Second, fmt.Sprintf("messages 0..%d at pr.dst", total-1), func() bool {
			for {
				d, ok, err := ch.Get("pr.dst", true)
				if err != nil {
					t.Fatal(err)
				}
				if !ok {
					break
				}
				n, _ := strconv.Atoi(string(d.Body))
				seen[n]++
			}
			for i := range total {
				if seen[i] == 0 {
					return false
				}
			}
			return true
		})
	}
	moved(p.url, 0, 10, 10)
	p.kill()
	p, api = start()
	wait.For(t, 10*time.Second, "the shovel running after kill -9 and restart", func() bool { return running(api) })
	moved(p.url, 10, 10, 20)
	dups := 0
	for _, c := range seen {
		dups += c - 1
	}
	t.Logf("20 of 20 moved across the kill -9 and restart, %d duplicates", dups)
}
