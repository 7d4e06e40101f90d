// Command warren-perf is a minimal AMQP 0-9-1 load tool in the spirit of
// RabbitMQ's PerfTest. It points at any AMQP URL, so the same run can measure
// Warren and RabbitMQ side by side.
//
// It declares one queue (auto-named, non-durable, auto-delete; deleted at the
// end), starts --producers publishers and --consumers consumers, each on its
// own connection, runs for --duration, then stops the producers, drains the
// consumers and reports published/s, consumed/s (and confirmed/s with
// --confirm) over the timed window, plus the counts.
//
//	warren-perf --url amqp://guest:guest@127.0.0.1:5672/ --size 16 --duration 10s
//
// Client-side write batching: amqp091-go flushes its bufio.Writer after every
// frame set, so a single publisher makes one write syscall per message and the
// client, not the broker, becomes the bottleneck. warren-perf therefore gives
// amqp091-go (through Config.Dial) a net.Conn whose Write only appends to a
// 64 KiB bufio.Writer. A per-connection flusher goroutine is woken by the first
// write of a burst, waits --flush-delay (default 200µs) so the burst can
// accumulate, then flushes; bufio also writes through when the buffer fills.
// Close stops the flusher, flushes what is left and closes the socket. Pass
// --flush-delay 0 to disable the trick and measure the stock client.
package main

import (
	"bufio"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
)

// bufConn batches writes; see the package comment.
type bufConn struct {
	net.Conn
	delay   time.Duration
	mu      sync.Mutex
	w       *bufio.Writer
	pending bool
	err     error
	kick    chan struct{}
	done    chan struct{}
	stopped chan struct{}
	once    sync.Once
}

func newBufConn(c net.Conn, delay time.Duration) *bufConn {
	b := &bufConn{
		Conn:    c,
		delay:   delay,
		w:       bufio.NewWriterSize(c, 64<<10),
		kick:    make(chan struct{}, 1),
		done:    make(chan struct{}),
		stopped: make(chan struct{}),
	}
	go b.flusher()
	return b
}

func (b *bufConn) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.err != nil {
		return 0, b.err
	}
	n, err := b.w.Write(p)
	if err != nil {
		b.err = err
		return n, err
	}
	if !b.pending && b.w.Buffered() > 0 {
		b.pending = true
		select {
		case b.kick <- struct{}{}:
		default:
		}
	}
	return n, nil
}

func (b *bufConn) flusher() {
	defer close(b.stopped)
	t := time.NewTimer(time.Hour)
	t.Stop()
	for {
		select {
		case <-b.done:
			return
		case <-b.kick:
		}
		t.Reset(b.delay)
		select {
		case <-b.done:
			t.Stop()
			return
		case <-t.C:
		}
		b.mu.Lock()
		b.pending = false
		if b.err == nil {
			b.err = b.w.Flush()
		}
		b.mu.Unlock()
	}
}

func (b *bufConn) Close() error {
	b.once.Do(func() {
		close(b.done)
		<-b.stopped
		b.mu.Lock()
		if b.err == nil {
			b.err = b.w.Flush()
		}
		if b.err == nil {
			b.err = net.ErrClosed
		}
		b.mu.Unlock()
	})
	return b.Conn.Close()
}

type config struct {
	url                  string
	producers, consumers int
	size                 int
	duration, flushDelay time.Duration
	queue                string
	confirm, prefetch    int
	ackEvery             int
	autoack, persistent  bool
	jsonOut              bool
	drainTimeout         time.Duration
	durable, keep        bool
	random               bool
	count                int64
}

// Result is the report; it is also the --json output.
type Result struct {
	URL          string   `json:"url"`
	Queue        string   `json:"queue"`
	Producers    int      `json:"producers"`
	Consumers    int      `json:"consumers"`
	Size         int      `json:"size"`
	Confirm      int      `json:"confirm"`
	Prefetch     int      `json:"prefetch"`
	AckEvery     int      `json:"ack_every"`
	AutoAck      bool     `json:"autoack"`
	Persistent   bool     `json:"persistent"`
	Seconds      float64  `json:"seconds"`
	Published    int64    `json:"published"`
	Consumed     int64    `json:"consumed"`
	Confirmed    int64    `json:"confirmed"`
	Nacked       int64    `json:"nacked"`
	PublishRate  float64  `json:"published_per_sec"`
	ConsumeRate  float64  `json:"consumed_per_sec"`
	ConfirmRate  float64  `json:"confirmed_per_sec,omitempty"`
	PublishedAll int64    `json:"published_total"`
	ConsumedAll  int64    `json:"consumed_total"`
	Errors       []string `json:"errors,omitempty"`
}

type counters struct {
	published, consumed, confirmed, nacked atomic.Int64
	errMu                                  sync.Mutex
	errs                                   []string
}

func (c *counters) fail(format string, a ...any) {
	c.errMu.Lock()
	c.errs = append(c.errs, fmt.Sprintf(format, a...))
	c.errMu.Unlock()
}

func dial(cfg *config, name string) (*amqp.Connection, error) {
	props := amqp.NewConnectionProperties()
	props.SetClientConnectionName("warren-perf " + name)
	return amqp.DialConfig(cfg.url, amqp.Config{
		Properties: props,
		Heartbeat:  10 * time.Second,
		Dial: func(network, addr string) (net.Conn, error) {
			c, err := amqp.DefaultDial(30*time.Second)(network, addr)
			if err != nil || cfg.flushDelay <= 0 {
				return c, err
			}
			return newBufConn(c, cfg.flushDelay), nil
		},
	})
}

func produce(ctx context.Context, cfg *config, id int, cnt *counters) {
	conn, err := dial(cfg, fmt.Sprintf("producer-%d", id))
	if err != nil {
		cnt.fail("producer %d: dial: %v", id, err)
		return
	}
	defer conn.Close()
	ch, err := conn.Channel()
	if err != nil {
		cnt.fail("producer %d: channel: %v", id, err)
		return
	}
	var window chan struct{}
	var confirmsDone chan struct{}
	if cfg.confirm > 0 {
		if err := ch.Confirm(false); err != nil {
			cnt.fail("producer %d: confirm.select: %v", id, err)
			return
		}
		window = make(chan struct{}, cfg.confirm)
		confirms := ch.NotifyPublish(make(chan amqp.Confirmation, cfg.confirm))
		confirmsDone = make(chan struct{})
		go func() {
			defer close(confirmsDone)
			for c := range confirms { // closed when the channel closes
				if c.Ack {
					cnt.confirmed.Add(1)
				} else {
					cnt.nacked.Add(1)
				}
				<-window
			}
		}()
	}
	msg := amqp.Publishing{Body: make([]byte, cfg.size)}
	if cfg.persistent {
		msg.DeliveryMode = amqp.Persistent
	}
	var rng *rand.ChaCha8
	if cfg.random {
		var seed [32]byte
		seed[0] = byte(id)
		rng = rand.NewChaCha8(seed)
	}
	quota := int64(-1)
	if cfg.count > 0 {
		quota = cfg.count / int64(cfg.producers)
		if int64(id) < cfg.count%int64(cfg.producers) {
			quota++
		}
	}
	for ctx.Err() == nil && quota != 0 {
		quota--
		if window != nil {
			select {
			case window <- struct{}{}:
			case <-ctx.Done():
				continue
			}
		}
		if rng != nil {
			// A fresh body per message: incompressible, as real payloads mostly are.
			msg.Body = make([]byte, cfg.size)
			rng.Read(msg.Body)
		}
		if err := ch.PublishWithContext(ctx, "", cfg.queue, false, false, msg); err != nil {
			if ctx.Err() == nil {
				cnt.fail("producer %d: publish: %v", id, err)
			}
			break
		}
		cnt.published.Add(1)
	}
	if window != nil {
		// Wait (bounded) for the outstanding confirms, then close.
		deadline := time.Now().Add(cfg.drainTimeout)
		for len(window) > 0 && time.Now().Before(deadline) {
			time.Sleep(time.Millisecond)
		}
		if n := len(window); n > 0 {
			cnt.fail("producer %d: %d confirms outstanding after %v", id, n, cfg.drainTimeout)
		}
	}
	if err := ch.Close(); err != nil {
		cnt.fail("producer %d: channel.close: %v", id, err)
	}
	if confirmsDone != nil {
		<-confirmsDone
	}
}

func consume(cfg *config, id int, cnt *counters, ready *sync.WaitGroup, stop <-chan struct{}) {
	conn, err := dial(cfg, fmt.Sprintf("consumer-%d", id))
	if err != nil {
		cnt.fail("consumer %d: dial: %v", id, err)
		ready.Done()
		return
	}
	defer conn.Close()
	ch, err := conn.Channel()
	if err == nil && !cfg.autoack {
		err = ch.Qos(cfg.prefetch, 0, false)
	}
	var ds <-chan amqp.Delivery
	if err == nil {
		ds, err = ch.Consume(cfg.queue, "", cfg.autoack, false, false, false, nil)
	}
	ready.Done()
	if err != nil {
		cnt.fail("consumer %d: setup: %v", id, err)
		return
	}
	var unacked int
	var last amqp.Delivery
	for {
		select {
		case d, ok := <-ds:
			if !ok {
				cnt.fail("consumer %d: delivery channel closed early", id)
				return
			}
			cnt.consumed.Add(1)
			if cfg.autoack {
				continue
			}
			unacked++
			last = d
			if unacked >= cfg.ackEvery {
				if err := d.Ack(true); err != nil {
					cnt.fail("consumer %d: ack: %v", id, err)
					return
				}
				unacked = 0
			}
		case <-stop:
			if unacked > 0 {
				_ = last.Ack(true)
			}
			if err := ch.Close(); err != nil {
				cnt.fail("consumer %d: channel.close: %v", id, err)
			}
			return
		}
	}
}

func run(cfg *config) (*Result, error) {
	admin, err := dial(cfg, "admin")
	if err != nil {
		return nil, err
	}
	defer admin.Close()
	ach, err := admin.Channel()
	if err != nil {
		return nil, err
	}
	q, err := ach.QueueDeclare(cfg.queue, cfg.durable, !cfg.durable, false, false, nil)
	if err != nil {
		return nil, fmt.Errorf("queue.declare: %w", err)
	}
	cfg.queue = q.Name

	cnt := &counters{}
	stop := make(chan struct{})
	var cwg, ready sync.WaitGroup
	for i := 0; i < cfg.consumers; i++ {
		cwg.Add(1)
		ready.Add(1)
		go func() { defer cwg.Done(); consume(cfg, i, cnt, &ready, stop) }()
	}
	ready.Wait()

	ctx, cancel := context.WithCancel(context.Background())
	var pwg sync.WaitGroup
	start := time.Now()
	for i := 0; i < cfg.producers; i++ {
		pwg.Add(1)
		go func() { defer pwg.Done(); produce(ctx, cfg, i, cnt) }()
	}
	producersDone := make(chan struct{})
	if cfg.producers > 0 { // with none, consumers run for the whole duration (to drain a backlog)
		go func() { pwg.Wait(); close(producersDone) }()
	}
	select { // the window ends after duration, or when a --count run has published everything
	case <-time.After(cfg.duration):
	case <-producersDone:
	}
	pub, con, conf := cnt.published.Load(), cnt.consumed.Load(), cnt.confirmed.Load()
	secs := time.Since(start).Seconds()
	cancel()
	pwg.Wait()

	// Drain: wait until everything published was consumed or nothing arrives for a while.
	if cfg.consumers > 0 {
		total := cnt.published.Load()
		lastN, lastT := cnt.consumed.Load(), time.Now()
		for cnt.consumed.Load() < total && time.Since(lastT) < cfg.drainTimeout {
			time.Sleep(5 * time.Millisecond)
			if n := cnt.consumed.Load(); n != lastN {
				lastN, lastT = n, time.Now()
			}
		}
	}
	close(stop)
	cwg.Wait()
	if cfg.keep {
		// leave the queue and its messages (to measure a backlog or a restart)
	} else if _, err := ach.QueueDelete(cfg.queue, false, false, false); err != nil {
		// auto-delete may already have removed it (404 closes the channel): not an error.
		if e, ok := err.(*amqp.Error); !ok || e.Code != amqp.NotFound {
			cnt.fail("queue.delete: %v", err)
		}
	}

	r := &Result{
		URL: cfg.url, Queue: cfg.queue, Producers: cfg.producers, Consumers: cfg.consumers,
		Size: cfg.size, Confirm: cfg.confirm, Prefetch: cfg.prefetch, AckEvery: cfg.ackEvery,
		AutoAck: cfg.autoack, Persistent: cfg.persistent, Seconds: secs,
		Published: pub, Consumed: con, Confirmed: conf, Nacked: cnt.nacked.Load(),
		PublishRate: float64(pub) / secs, ConsumeRate: float64(con) / secs,
		PublishedAll: cnt.published.Load(), ConsumedAll: cnt.consumed.Load(), Errors: cnt.errs,
	}
	if cfg.confirm > 0 {
		r.ConfirmRate = float64(conf) / secs
	}
	return r, nil
}

func main() {
	cfg := &config{}
	flag.StringVar(&cfg.url, "url", "amqp://guest:guest@127.0.0.1:5672/", "AMQP URL")
	flag.IntVar(&cfg.producers, "producers", 1, "producer connections")
	flag.IntVar(&cfg.consumers, "consumers", 1, "consumer connections")
	flag.IntVar(&cfg.size, "size", 16, "message body size in bytes")
	flag.DurationVar(&cfg.duration, "duration", 10*time.Second, "timed window")
	flag.StringVar(&cfg.queue, "queue", "", "queue name (default: server-named)")
	flag.IntVar(&cfg.confirm, "confirm", 0, "publisher confirms window (0 = off)")
	flag.IntVar(&cfg.prefetch, "prefetch", 1000, "consumer prefetch (basic.qos) with manual acks")
	flag.IntVar(&cfg.ackEvery, "ack-every", 0, "ack with multiple=true every N deliveries (default prefetch/10)")
	flag.BoolVar(&cfg.autoack, "autoack", false, "consume with no-ack")
	flag.BoolVar(&cfg.persistent, "persistent", false, "publish with delivery-mode 2")
	flag.BoolVar(&cfg.jsonOut, "json", false, "print the result as JSON")
	flag.DurationVar(&cfg.flushDelay, "flush-delay", 200*time.Microsecond, "client write batching delay (0 = one write per frame set)")
	flag.DurationVar(&cfg.drainTimeout, "drain-timeout", 5*time.Second, "at the end, give up draining after this long without progress")
	flag.BoolVar(&cfg.durable, "durable", false, "declare the queue durable (default: transient, auto-delete)")
	flag.BoolVar(&cfg.keep, "keep", false, "do not delete the queue at the end")
	flag.Int64Var(&cfg.count, "count", 0, "publish this many messages in all, then stop (0 = for --duration)")
	flag.BoolVar(&cfg.random, "random", false, "random bodies, a new one per message (default: zeros, which a store compresses)")
	flag.Parse()
	if cfg.ackEvery <= 0 {
		cfg.ackEvery = max(1, cfg.prefetch/10)
	}
	if cfg.prefetch > 0 && cfg.ackEvery > cfg.prefetch {
		cfg.ackEvery = cfg.prefetch
	}
	r, err := run(cfg)
	if err != nil {
		fmt.Fprintln(os.Stderr, "warren-perf:", err)
		os.Exit(1)
	}
	if cfg.jsonOut {
		enc := json.NewEncoder(os.Stdout)
		_ = enc.Encode(r)
	} else {
		fmt.Printf("%.1fs  published %.0f msg/s  consumed %.0f msg/s", r.Seconds, r.PublishRate, r.ConsumeRate)
		if cfg.confirm > 0 {
			fmt.Printf("  confirmed %.0f msg/s", r.ConfirmRate)
		}
		fmt.Printf("  (window: published %d consumed %d; total: published %d consumed %d)\n",
			r.Published, r.Consumed, r.PublishedAll, r.ConsumedAll)
		for _, e := range r.Errors {
			fmt.Println("error:", e)
		}
	}
	if len(r.Errors) > 0 {
		os.Exit(2)
	}
}
