package integration

import (
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
