package integration

// The mixed-workload soak: publishers with confirms, consumers with acks, declares and deletes, and
// transient connections, all at once for WARREN_SOAK (for example WARREN_SOAK=10m), against an
// in-process broker on Pebble. The process's heap and RSS are sampled every interval; after a warm-up the
// last samples must stay within a bound of the first ones, and everything must come back to the baseline
// once the load stops. Without WARREN_SOAK the test is skipped.
//
//	WARREN_SOAK=10m go test -run TestSoak -count=1 -timeout 20m -v ./integration

import (
	"context"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/warrenmq/warren/server"
	"github.com/warrenmq/warren/storage"
)

// soakCounters are the work done, for the report.
type soakCounters struct {
	published, confirmed, nacked, consumed, declares, transient, errors atomic.Int64
}

func TestSoak(t *testing.T) {
	env := os.Getenv("WARREN_SOAK")
	if env == "" {
		t.Skip("set WARREN_SOAK=10m to run the mixed-workload soak")
	}
	persistSkipExternal(t)
	total, err := time.ParseDuration(env)
	if err != nil || total < 10*time.Second {
		t.Fatalf("WARREN_SOAK=%q: want a duration of at least 10s", env)
	}
	store, err := storage.OpenPebble(t.TempDir(), storage.PebbleOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() }) // after the broker's shutdown
	b, _ := startLoggedBroker(t, func(o *server.Options) { o.Store = store })

	base := takeProcState()
	t.Logf("baseline %v", base)

	const (
		queues     = 4
		publishers = 4
		maxLen     = 20000 // bounds each queue whatever the relative speeds
	)
	setup := amqpDial(t, b)
	sch := amqpChannel(t, setup)
	var qnames []string
	for i := range queues {
		q := fmt.Sprintf("soak.q%d", i)
		if _, err := sch.QueueDeclare(q, true, false, false, false, amqp.Table{"x-max-length": int32(maxLen)}); err != nil {
			t.Fatal(err)
		}
		qnames = append(qnames, q)
	}

	var n soakCounters
	ctx, cancel := context.WithTimeout(context.Background(), total)
	defer cancel()
	var wg sync.WaitGroup
	run := func(f func(ctx context.Context)) {
		wg.Add(1)
		go func() { defer wg.Done(); f(ctx) }()
	}
	for i := range publishers {
		run(func(ctx context.Context) { soakPublisher(ctx, b, qnames[i%queues], &n) })
	}
	for i := range queues {
		run(func(ctx context.Context) { soakConsumer(ctx, b, qnames[i], &n) })
	}
	run(func(ctx context.Context) { soakDeclarer(ctx, b, &n) })
	run(func(ctx context.Context) { soakTransient(ctx, b, &n) })

	// Sample every interval; the first fifth of the run is warm-up.
	interval := max(total/40, 2*time.Second)
	var samples []procState
	tick := time.NewTicker(interval)
sampling:
	for {
		select {
		case <-ctx.Done():
			break sampling
		case <-tick.C:
			st := takeProcState()
			samples = append(samples, st)
			t.Logf("t=%-6v %v published=%d confirmed=%d consumed=%d declares=%d transient=%d errors=%d",
				time.Duration(len(samples))*interval, st, n.published.Load(), n.confirmed.Load(),
				n.consumed.Load(), n.declares.Load(), n.transient.Load(), n.errors.Load())
		}
	}
	tick.Stop()
	wg.Wait()
	for _, q := range qnames {
		if _, err := sch.QueueDelete(q, false, false, false); err != nil {
			t.Errorf("delete %s: %v", q, err)
		}
	}
	setup.Close()

	t.Logf("soak %v: published=%d confirmed=%d nacked=%d consumed=%d declare/delete cycles=%d transient connections=%d client errors=%d",
		total, n.published.Load(), n.confirmed.Load(), n.nacked.Load(), n.consumed.Load(), n.declares.Load(),
		n.transient.Load(), n.errors.Load())
	if n.confirmed.Load() == 0 || n.consumed.Load() == 0 || n.declares.Load() == 0 || n.transient.Load() == 0 {
		t.Fatal("some part of the workload did no work")
	}
	if n.nacked.Load() > 0 {
		t.Errorf("%d publishes were nacked", n.nacked.Load())
	}
	if n.errors.Load() > 0 {
		t.Errorf("%d client operations failed", n.errors.Load())
	}

	// Flat memory: the mean of the last quarter of the samples within 1.5x + 32 MiB of the mean of the
	// first quarter after the warm-up (heap and RSS alike).
	warm := len(samples) / 5
	rest := samples[warm:]
	if len(rest) < 8 {
		t.Fatalf("only %d samples after warm-up", len(rest))
	}
	q := len(rest) / 4
	mean := func(s []procState, f func(procState) uint64) uint64 {
		var sum uint64
		for _, x := range s {
			sum += f(x)
		}
		return sum / uint64(len(s))
	}
	for _, m := range []struct {
		name string
		f    func(procState) uint64
	}{{"heap", func(p procState) uint64 { return p.Heap }}, {"rss", func(p procState) uint64 { return p.RSS }}} {
		first, last := mean(rest[:q], m.f), mean(rest[len(rest)-q:], m.f)
		var peak uint64
		for _, s := range rest {
			peak = max(peak, m.f(s))
		}
		t.Logf("%s after warm-up: first quarter mean %.1f MiB, last quarter mean %.1f MiB, peak %.1f MiB",
			m.name, float64(first)/(1<<20), float64(last)/(1<<20), float64(peak)/(1<<20))
		if first > 0 && last > first*3/2+32<<20 {
			t.Errorf("%s grew from %.1f MiB to %.1f MiB over the soak", m.name, float64(first)/(1<<20), float64(last)/(1<<20))
		}
	}
	end := waitBaseline(t, base, leakBounds{Goroutines: 10, FDs: 10, Heap: 64 << 20}, 30*time.Second)
	t.Logf("after the load: %v", end)
}

// soakDial connects, retrying briefly; it returns nil when ctx ends first.
func soakDial(ctx context.Context, b broker, n *soakCounters) *amqp.Connection {
	for ctx.Err() == nil {
		c, err := amqp.DialConfig(b.URL, amqp.Config{Heartbeat: 10 * time.Second})
		if err == nil {
			return c
		}
		n.errors.Add(1)
		select { // back off before the next attempt
		case <-ctx.Done():
		case <-time.After(100 * time.Millisecond):
		}
	}
	return nil
}

// soakChannel dials (as soakDial) and opens a channel; a nil channel means the worker stops (the
// connection is closed and the error counted).
func soakChannel(ctx context.Context, b broker, n *soakCounters) (*amqp.Connection, *amqp.Channel) {
	c := soakDial(ctx, b, n)
	if c == nil {
		return nil, nil
	}
	ch, err := c.Channel()
	if err != nil {
		n.errors.Add(1)
		c.Close()
		return nil, nil
	}
	return c, ch
}

// soakPublisher publishes persistent messages in batches of 100 and waits for their confirms.
func soakPublisher(ctx context.Context, b broker, q string, n *soakCounters) {
	c, ch := soakChannel(ctx, b, n)
	if ch == nil {
		return
	}
	defer c.Close()
	if err := ch.Confirm(false); err != nil {
		n.errors.Add(1)
		return
	}
	body := make([]byte, 512)
	for ctx.Err() == nil {
		var pending []*amqp.DeferredConfirmation
		for range 100 {
			dc, err := ch.PublishWithDeferredConfirmWithContext(context.Background(), "", q, false, false,
				amqp.Publishing{DeliveryMode: amqp.Persistent, Body: body})
			if err != nil {
				n.errors.Add(1)
				return
			}
			n.published.Add(1)
			pending = append(pending, dc)
		}
		for _, dc := range pending {
			ok, err := dc.WaitContext(context.Background())
			switch {
			case err != nil:
				n.errors.Add(1)
				return
			case ok:
				n.confirmed.Add(1)
			default:
				n.nacked.Add(1)
			}
		}
	}
}

// soakConsumer consumes with prefetch 50 and acks every delivery.
func soakConsumer(ctx context.Context, b broker, q string, n *soakCounters) {
	c, ch := soakChannel(ctx, b, n)
	if ch == nil {
		return
	}
	defer c.Close()
	if err := ch.Qos(50, 0, false); err != nil {
		n.errors.Add(1)
		return
	}
	d, err := ch.Consume(q, "", false, false, false, false, nil)
	if err != nil {
		n.errors.Add(1)
		return
	}
	for {
		select {
		case <-ctx.Done():
			return
		case m, ok := <-d:
			if !ok {
				n.errors.Add(1)
				return
			}
			if m.Ack(false) != nil {
				n.errors.Add(1)
				return
			}
			n.consumed.Add(1)
		}
	}
}

// soakDeclarer declares an exchange, a queue and a binding, publishes through them, reads the message
// back and deletes both, over and over on one connection.
func soakDeclarer(ctx context.Context, b broker, n *soakCounters) {
	c, ch := soakChannel(ctx, b, n)
	if ch == nil {
		return
	}
	defer c.Close()
	for i := 0; ctx.Err() == nil; i++ {
		ex, q := fmt.Sprintf("soak.x%d", i), fmt.Sprintf("soak.d%d", i)
		err := ch.ExchangeDeclare(ex, "topic", i%2 == 0, false, false, false, nil)
		if err == nil {
			_, err = ch.QueueDeclare(q, i%2 == 0, false, false, false, nil)
		}
		if err == nil {
			err = ch.QueueBind(q, "a.#", ex, false, nil)
		}
		if err == nil {
			err = ch.PublishWithContext(context.Background(), ex, "a.b", false, false, amqp.Publishing{Body: []byte("x")})
		}
		if err == nil {
			for ctx.Err() == nil {
				var ok bool
				if _, ok, err = ch.Get(q, true); err != nil || ok {
					break
				}
			}
		}
		if err == nil {
			_, err = ch.QueueDelete(q, false, false, false)
		}
		if err == nil {
			err = ch.ExchangeDelete(ex, false, false)
		}
		if err != nil {
			n.errors.Add(1)
			return
		}
		n.declares.Add(1)
	}
}

// soakTransient opens a connection and a channel, declares an exclusive queue, publishes to it and
// closes, in a loop, with a few connections in flight at once.
func soakTransient(ctx context.Context, b broker, n *soakCounters) {
	var wg sync.WaitGroup
	defer wg.Wait()
	for range 3 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				c := soakDial(ctx, b, n)
				if c == nil {
					return
				}
				ch, err := c.Channel()
				if err == nil {
					var q amqp.Queue
					q, err = ch.QueueDeclare("", false, true, true, false, nil)
					if err == nil {
						err = ch.PublishWithContext(context.Background(), "", q.Name, false, false, amqp.Publishing{Body: []byte("t")})
					}
				}
				if cerr := c.Close(); err == nil {
					err = cerr
				}
				if err != nil {
					n.errors.Add(1)
					return
				}
				n.transient.Add(1)
			}
		}()
	}
}
