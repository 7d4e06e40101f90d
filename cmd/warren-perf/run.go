package main

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
)

type config struct {
	url                  string
	producers, consumers int
	queues               int
	exchangeType         string
	size                 int
	duration, flushDelay time.Duration
	queue                string
	confirm, prefetch    int
	ackEvery             int
	autoack, persistent  bool
	jsonOut              bool
	drainTimeout         time.Duration
	durable, keep        bool
	queueType            string // x-queue-type ("": none)
	random               bool
	count                int64
	rate                 float64
	heartbeat            time.Duration
	client               string // "amqp091" (github.com/rabbitmq/amqp091-go) or "raw" (raw.go)
	pacer                string // "timerfd" or "sleep" (pacer.go)

	protocol            string        // "amqp" (the default), "mqtt" (mqtt.go) or "stomp" (stomp.go)
	mqttAddr, stompAddr string        // host:port of the MQTT / STOMP listener
	user, pass          string        // MQTT and STOMP login
	topics, qos         int           // MQTT: topics, QoS of publishes and subscriptions
	inflight            int           // MQTT QoS 1: unacknowledged publishes per producer
	drainMax            time.Duration // MQTT, STOMP: cut the drain after this long (0: never)
	idleSubscribe       bool          // --idle-conns with MQTT: one subscription per connection
	sourceAddrs         []net.IP      // --idle-conns with MQTT: local addresses to spread over
}

// Result is the report; it is also the --json output. Rates are over the timed window.
type Result struct {
	URL          string   `json:"url"`
	Protocol     string   `json:"protocol,omitempty"` // mqtt or stomp ("": AMQP 0-9-1)
	QoS          *int     `json:"qos,omitempty"`      // MQTT
	Topics       int      `json:"topics,omitempty"`   // MQTT, STOMP
	ExchangeType string   `json:"exchange_type"`
	Exchange     string   `json:"exchange,omitempty"`
	Queue        string   `json:"queue"` // the first queue
	Queues       int      `json:"queues"`
	Producers    int      `json:"producers"` // = publishing connections, one channel each
	Consumers    int      `json:"consumers"`
	Size         int      `json:"size"`
	Confirm      int      `json:"confirm"`
	Prefetch     int      `json:"prefetch"`
	AckEvery     int      `json:"ack_every"`
	AutoAck      bool     `json:"autoack"`
	Persistent   bool     `json:"persistent"`
	Durable      bool     `json:"durable"`
	Rate         float64  `json:"rate,omitempty"`  // target msg/s across producers (0: as fast as possible)
	Client       string   `json:"client"`          // amqp091 or raw
	Pacer        string   `json:"pacer,omitempty"` // with --rate: timerfd or sleep
	FlushDelay   string   `json:"flush_delay"`
	Seconds      float64  `json:"seconds"`
	Published    int64    `json:"published"`
	Consumed     int64    `json:"consumed"` // deliveries: with fanout, one per queue per message
	Confirmed    int64    `json:"confirmed"`
	Nacked       int64    `json:"nacked"`
	PublishRate  float64  `json:"published_per_sec"`
	ConsumeRate  float64  `json:"consumed_per_sec"`
	ConfirmRate  float64  `json:"confirmed_per_sec,omitempty"`
	PublishedAll int64    `json:"published_total"`
	ConsumedAll  int64    `json:"consumed_total"`
	ConfirmedAll int64    `json:"confirmed_total,omitempty"` // MQTT QoS 1: PUBACKs received, drain included
	Undrained    int64    `json:"undrained,omitempty"`       // MQTT, STOMP with --drain-max: still queued when the drain was cut
	Latency      *Latency `json:"latency_us,omitempty"`
	Errors       []string `json:"errors,omitempty"`
}

// Latency is the end-to-end latency (publish to delivery, both on this host's clock) of every
// delivery received, in microseconds. The producer writes the send time into the first 8 bytes
// of the body, so it needs --size >= 8.
type Latency struct {
	Count uint64  `json:"count"`
	P50   float64 `json:"p50"`
	P99   float64 `json:"p99"`
	P999  float64 `json:"p99_9"`
	Max   float64 `json:"max"`
}

type counters struct {
	published, consumed, confirmed, nacked atomic.Int64
	errMu                                  sync.Mutex
	errs                                   []string
	lat                                    hist // merged consumer histograms, under errMu
}

func (c *counters) fail(format string, a ...any) {
	c.errMu.Lock()
	c.errs = append(c.errs, fmt.Sprintf(format, a...))
	c.errMu.Unlock()
}

// dial connects with the client's writes batched (unless --flush-delay 0); the *bufConn is nil
// then.
func dial(cfg *config, name string) (*amqp.Connection, *bufConn, error) {
	props := amqp.NewConnectionProperties()
	props.SetClientConnectionName("warren-perf " + name)
	var bc *bufConn
	conn, err := amqp.DialConfig(cfg.url, amqp.Config{
		Properties: props,
		Heartbeat:  cfg.heartbeat,
		Dial: func(network, addr string) (net.Conn, error) {
			c, err := amqp.DefaultDial(30*time.Second)(network, addr)
			if err != nil || cfg.flushDelay <= 0 {
				return c, err
			}
			bc = newBufConn(c, cfg.flushDelay)
			return bc, nil
		},
	})
	return conn, bc, err
}

// target is where producers publish: an exchange and routing key per producer.
type target struct {
	exchange string
	queues   []string
}

func (t *target) route(producer int) (exchange, key string) {
	if t.exchange != "" {
		return t.exchange, ""
	}
	return "", t.queues[producer%len(t.queues)]
}

type producer struct {
	id     int
	conn   *amqp.Connection // amqp091 client
	bc     *bufConn
	ch     *amqp.Channel
	window chan struct{}
	done   chan struct{} // closed when the confirm listener ends

	raw     *rawConn   // raw client
	watched chan error // the raw connection's reader: why it ended
}

// setupProducer connects and opens the channel (and confirm mode), so that every producer is
// ready before the timed window starts.
func setupProducer(cfg *config, id int) (*producer, error) {
	if cfg.client == "raw" {
		rc, err := rawDial(cfg.url, fmt.Sprintf("producer-%d", id))
		if err != nil {
			return nil, fmt.Errorf("producer %d: dial: %w", id, err)
		}
		p := &producer{id: id, raw: rc, watched: make(chan error, 1)}
		go func() { p.watched <- rc.watch() }()
		return p, nil
	}
	conn, bc, err := dial(cfg, fmt.Sprintf("producer-%d", id))
	if err != nil {
		return nil, fmt.Errorf("producer %d: dial: %w", id, err)
	}
	p := &producer{id: id, conn: conn, bc: bc}
	if p.ch, err = conn.Channel(); err != nil {
		conn.Close()
		return nil, fmt.Errorf("producer %d: channel: %w", id, err)
	}
	if cfg.confirm > 0 {
		if err := p.ch.Confirm(false); err != nil {
			conn.Close()
			return nil, fmt.Errorf("producer %d: confirm.select: %w", id, err)
		}
	}
	return p, nil
}

func (p *producer) run(ctx context.Context, cfg *config, tgt *target, cnt *counters) {
	if p.raw != nil {
		p.runRaw(ctx, cfg, tgt, cnt)
		return
	}
	defer p.conn.Close()
	id, ch := p.id, p.ch
	if cfg.confirm > 0 {
		p.window = make(chan struct{}, cfg.confirm)
		confirms := ch.NotifyPublish(make(chan amqp.Confirmation, cfg.confirm))
		p.done = make(chan struct{})
		go func() {
			defer close(p.done)
			for c := range confirms { // closed when the channel closes
				if c.Ack {
					cnt.confirmed.Add(1)
				} else {
					cnt.nacked.Add(1)
				}
				<-p.window
			}
		}()
	}
	window := p.window
	msg := amqp.Publishing{Body: make([]byte, cfg.size)}
	if cfg.persistent {
		msg.DeliveryMode = amqp.Persistent
	}
	exchange, key := tgt.route(id)
	flush := func() error {
		if p.bc != nil {
			return p.bc.Flush()
		}
		return nil
	}
	publish := func(body []byte) error {
		if window != nil {
			select {
			case window <- struct{}{}:
			case <-ctx.Done():
				return ctx.Err()
			}
		}
		// amqp091-go has copied the previous body into its buffer by now: reuse is safe.
		msg.Body = body
		if err := ch.PublishWithContext(ctx, exchange, key, false, false, msg); err != nil {
			if window != nil {
				<-window // not published (the window closed under us): no confirm will come
			}
			return err
		}
		return nil
	}
	publishLoop(ctx, cfg, id, msg.Body, publish, flush, cnt)
	if window != nil {
		// Wait for the outstanding confirms while they keep coming, then close.
		last, lastT := len(window), time.Now()
		for len(window) > 0 && time.Since(lastT) < cfg.drainTimeout {
			time.Sleep(time.Millisecond)
			if n := len(window); n != last {
				last, lastT = n, time.Now()
			}
		}
		if n := len(window); n > 0 {
			cnt.fail("producer %d: %d confirms outstanding, none for %v", id, n, cfg.drainTimeout)
		}
	}
	if err := ch.Close(); err != nil {
		cnt.fail("producer %d: channel.close: %v", id, err)
	}
	if p.done != nil {
		<-p.done
	}
}

// runRaw is run for the raw client: no confirms (rejected by the flags), one write per batch.
func (p *producer) runRaw(ctx context.Context, cfg *config, tgt *target, cnt *counters) {
	exchange, key := tgt.route(p.id)
	rp, err := newRawPublisher(p.raw, exchange, key, cfg.size, cfg.persistent)
	if err == nil {
		publishLoop(ctx, cfg, p.id, make([]byte, cfg.size), rp.add, rp.flush, cnt)
		err = rp.flush()
	}
	if err != nil {
		cnt.fail("producer %d: %v", p.id, err)
	}
	// Close politely; the reader sees close-ok (or the socket end) and returns. A broker sends
	// close-ok only after the publishes before it, which a broker applying flow control may
	// still be reading: closing the socket before then would drop them unread.
	if err := p.raw.sendClose(); err == nil {
		select {
		case err := <-p.watched:
			p.watched <- err
		case <-time.After(cfg.drainTimeout):
			cnt.fail("producer %d: no connection.close-ok within %v: publishes the broker had not read yet are lost", p.id, cfg.drainTimeout)
		}
	}
	p.raw.nc.Close()
	if err := <-p.watched; err != nil && !errors.Is(err, net.ErrClosed) && !errors.Is(err, io.EOF) {
		cnt.fail("producer %d: %v", p.id, err)
	}
}

// publishLoop publishes until ctx ends or the --count quota is spent, paced to the producer's
// share of --rate if one is set. publish queues one message (the client may batch it); flush
// writes what is batched, and is called before the loop waits for the next slot, so batching
// never delays a paced message.
func publishLoop(ctx context.Context, cfg *config, id int, body []byte, publish func([]byte) error, flush func() error, cnt *counters) {
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
	var pc pacer
	if cfg.rate > 0 { // this producer's share of --rate
		pc = newPacer(ctx, cfg.pacer, time.Duration(float64(time.Second)*float64(cfg.producers)/cfg.rate))
		defer pc.close()
	}
	for ctx.Err() == nil && quota != 0 {
		if pc != nil {
			if !pc.ready() {
				// Nothing more is due: send what is batched before waiting.
				if err := flush(); err != nil {
					cnt.fail("producer %d: publish: %v", id, err)
					return
				}
				if !pc.wait() {
					return
				}
			}
			pc.take()
		}
		quota--
		if rng != nil {
			// A fresh body per message: incompressible, as real payloads mostly are.
			body = make([]byte, cfg.size)
			rng.Read(body)
		}
		if cfg.size >= 8 {
			binary.BigEndian.PutUint64(body, uint64(time.Now().UnixNano()))
		}
		if err := publish(body); err != nil {
			if ctx.Err() == nil {
				cnt.fail("producer %d: publish: %v", id, err)
			}
			return
		}
		cnt.published.Add(1)
	}
}

func consume(cfg *config, id int, queue string, cnt *counters, ready *sync.WaitGroup, stop <-chan struct{}) {
	if cfg.client == "raw" {
		consumeRaw(cfg, id, queue, cnt, ready, stop)
		return
	}
	conn, _, err := dial(cfg, fmt.Sprintf("consumer-%d", id))
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
		ds, err = ch.Consume(queue, "", cfg.autoack, false, false, false, nil)
	}
	ready.Done()
	if err != nil {
		cnt.fail("consumer %d: setup: %v", id, err)
		return
	}
	var lat hist
	defer func() {
		cnt.errMu.Lock()
		cnt.lat.merge(&lat)
		cnt.errMu.Unlock()
	}()
	var unacked int
	var last amqp.Delivery
	for {
		select {
		case d, ok := <-ds:
			if !ok {
				cnt.fail("consumer %d: delivery channel closed early", id)
				return
			}
			if len(d.Body) >= 8 && cfg.size >= 8 {
				sent := int64(binary.BigEndian.Uint64(d.Body))
				lat.record(uint64(max(0, time.Now().UnixNano()-sent)))
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

// declare creates the queues (and the fanout exchange) the run uses.
func declare(cfg *config, ach *amqp.Channel) (*target, error) {
	tgt := &target{}
	for i := 0; i < cfg.queues; i++ {
		name := cfg.queue
		if name != "" && cfg.queues > 1 {
			name = fmt.Sprintf("%s-%d", cfg.queue, i)
		}
		var args amqp.Table
		durable := cfg.durable
		if cfg.queueType != "" {
			args = amqp.Table{"x-queue-type": cfg.queueType}
			if cfg.queueType == "quorum" {
				// Quorum queues are durable, not auto-delete, and named by the client.
				durable = true
				if name == "" {
					name = fmt.Sprintf("warren-perf.%d.%d.%d", os.Getpid(), time.Now().UnixNano(), i)
				}
			}
		}
		q, err := ach.QueueDeclare(name, durable, !durable, false, false, args)
		if err != nil {
			return tgt, fmt.Errorf("queue.declare: %w", err)
		}
		tgt.queues = append(tgt.queues, q.Name)
	}
	if cfg.exchangeType == "fanout" {
		tgt.exchange = fmt.Sprintf("warren-perf.fanout.%d.%d", os.Getpid(), time.Now().UnixNano())
		if err := ach.ExchangeDeclare(tgt.exchange, "fanout", cfg.durable, !cfg.keep, false, false, nil); err != nil {
			return tgt, fmt.Errorf("exchange.declare: %w", err)
		}
		for _, q := range tgt.queues {
			if err := ach.QueueBind(q, "", tgt.exchange, false, nil); err != nil {
				return tgt, fmt.Errorf("queue.bind: %w", err)
			}
		}
	}
	return tgt, nil
}

func cleanup(cfg *config, ach *amqp.Channel, tgt *target, cnt *counters) {
	if cfg.keep {
		return // leave the queues and their messages (to measure a backlog or a restart)
	}
	notFound := func(err error) bool {
		var e *amqp.Error
		return errors.As(err, &e) && e.Code == amqp.NotFound
	}
	for _, q := range tgt.queues {
		if _, err := ach.QueueDelete(q, false, false, false); err != nil {
			// auto-delete may already have removed it (404 closes the channel): not an error.
			if !notFound(err) && !errors.Is(err, amqp.ErrClosed) {
				cnt.fail("queue.delete: %v", err)
			}
		}
	}
	if tgt.exchange != "" {
		if err := ach.ExchangeDelete(tgt.exchange, false, false); err != nil && !notFound(err) && !errors.Is(err, amqp.ErrClosed) {
			cnt.fail("exchange.delete: %v", err)
		}
	}
}

func run(cfg *config) (*Result, error) {
	admin, _, err := dial(cfg, "admin")
	if err != nil {
		return nil, err
	}
	defer admin.Close()
	ach, err := admin.Channel()
	if err != nil {
		return nil, err
	}
	cnt := &counters{}
	tgt, err := declare(cfg, ach)
	if err != nil {
		cleanup(cfg, ach, tgt, cnt)
		return nil, err
	}

	stop := make(chan struct{})
	var cwg, ready sync.WaitGroup
	for i := 0; i < cfg.consumers; i++ {
		cwg.Add(1)
		ready.Add(1)
		go func() { defer cwg.Done(); consume(cfg, i, tgt.queues[i%len(tgt.queues)], cnt, &ready, stop) }()
	}
	ready.Wait()

	// Connect every producer before the clock starts (100 connections take a while to open).
	prods := make([]*producer, cfg.producers)
	var swg sync.WaitGroup
	for i := range prods {
		swg.Go(func() {
			p, err := setupProducer(cfg, i)
			if err != nil {
				cnt.fail("%v", err)
				return
			}
			prods[i] = p
		})
	}
	swg.Wait()

	ctx, cancel := context.WithCancel(context.Background())
	var pwg sync.WaitGroup
	start := time.Now()
	for _, p := range prods {
		if p != nil {
			pwg.Go(func() { p.run(ctx, cfg, tgt, cnt) })
		}
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
		if tgt.exchange != "" {
			total *= int64(len(tgt.queues)) // fanout: one delivery per queue
		}
		lastN, lastT := cnt.consumed.Load(), time.Now()
		for cnt.consumed.Load() < total && time.Since(lastT) < cfg.drainTimeout {
			time.Sleep(5 * time.Millisecond)
			if n := cnt.consumed.Load(); n != lastN {
				lastN, lastT = n, time.Now()
			}
		}
		if n := cnt.consumed.Load(); n < total {
			cnt.fail("%d of %d deliveries missing after draining for %v without progress", total-n, total, cfg.drainTimeout)
		}
	}
	close(stop)
	cwg.Wait()
	cleanup(cfg, ach, tgt, cnt)

	r := &Result{
		URL: cfg.url, ExchangeType: cfg.exchangeType, Exchange: tgt.exchange, Queue: tgt.queues[0],
		Queues: len(tgt.queues), Producers: cfg.producers, Consumers: cfg.consumers,
		Size: cfg.size, Confirm: cfg.confirm, Prefetch: cfg.prefetch, AckEvery: cfg.ackEvery,
		AutoAck: cfg.autoack, Persistent: cfg.persistent, Durable: cfg.durable, Rate: cfg.rate,
		Client: cfg.client, Pacer: map[bool]string{true: cfg.pacer}[cfg.rate > 0], FlushDelay: cfg.flushDelay.String(), Seconds: secs,
		Published: pub, Consumed: con, Confirmed: conf, Nacked: cnt.nacked.Load(),
		PublishRate: float64(pub) / secs, ConsumeRate: float64(con) / secs,
		PublishedAll: cnt.published.Load(), ConsumedAll: cnt.consumed.Load(), Errors: cnt.errs,
	}
	if cfg.confirm > 0 {
		r.ConfirmRate = float64(conf) / secs
	}
	r.Latency = cnt.lat.latency()
	return r, nil
}
