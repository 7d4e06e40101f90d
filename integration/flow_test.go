package integration

import (
	"context"
	"fmt"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/warrenmq/warren/server"
)

// Publisher flow control (server/queue_flow.go): a publisher faster than a queue's consumers is paused
// until they drain it, so the queue's backlog stays in a bounded part of its window.

const flowWindow = 64 // server.Options.QueueWindow for these tests: pause at 32 ready, resume at 16

func flowBroker(t *testing.T) broker {
	t.Helper()
	return startBroker(t, func(o *server.Options) { o.QueueWindow = flowWindow })
}

// flowPublish publishes n transient 100-byte messages to queue on a channel of conn (no confirms:
// nothing but flow control slows it down) and reports on the returned channel when it is done.
func flowPublish(t *testing.T, conn *amqp.Connection, queue string, n int) <-chan error {
	t.Helper()
	ch := amqpChannel(t, conn)
	done := make(chan error, 1)
	go func() {
		body := make([]byte, 100)
		for i := range n {
			if err := ch.Publish("", queue, false, false, amqp.Publishing{Body: body}); err != nil {
				done <- fmt.Errorf("publish %d: %w", i, err)
				return
			}
		}
		done <- nil
	}()
	return done
}

func queueInfo(t *testing.T, b broker, name string) server.QueueInfo {
	t.Helper()
	qi, err := b.Srv.Queue("/", name)
	if err != nil {
		t.Fatalf("queue %q: %v", name, err)
	}
	return qi
}

// A slow consumer on its own connection throttles a fast publisher: the queue never holds more
// than half its window and never pages; every message arrives.
func TestFlowSlowConsumerThrottlesPublisher(t *testing.T) {
	if externalURL != "" {
		t.Skip("reads the in-process broker's queue counters")
	}
	b := flowBroker(t)
	cconn := amqpDial(t, b)
	cch := amqpChannel(t, cconn)
	q := amqpQueue(t, b, cch, "q")
	if err := cch.Qos(10, 0, false); err != nil {
		t.Fatal(err)
	}
	deliveries := amqpConsume(t, cch, q, false)

	const n = 3000
	pubDone := flowPublish(t, amqpDial(t, b), q, n)
	var maxReady, maxMemory int64
	for i := range n {
		d := amqpRecv(t, deliveries)
		// The consumer is slow: it looks at the queue before every ack.
		qi := queueInfo(t, b, q)
		maxReady, maxMemory = max(maxReady, qi.Ready), max(maxMemory, qi.Memory)
		if qi.PagedOut != 0 {
			t.Fatalf("after %d deliveries the queue paged %d messages out: the publisher was not throttled (ready %d)", i, qi.PagedOut, qi.Ready)
		}
		if err := d.Ack(false); err != nil {
			t.Fatal(err)
		}
	}
	if err := <-pubDone; err != nil {
		t.Fatal(err)
	}
	// One publishing connection passes the high mark (half the window) by at most the publish
	// that reached it.
	if maxReady > flowWindow/2 {
		t.Errorf("the queue held up to %d ready messages; want at most %d", maxReady, flowWindow/2)
	}
	// Ready plus the consumer's prefetch of 10, about 300 bytes each with bookkeeping.
	if limit := int64(flowWindow/2+10) * 400; maxMemory > limit {
		t.Errorf("the queue's memory estimate reached %d bytes; want at most %d", maxMemory, limit)
	}
	if fs := b.Srv.FlowStats(); fs.Pauses == 0 {
		t.Errorf("flow stats %+v: the publisher was never paused", fs)
	}
	t.Logf("max ready %d, max memory %d, flow %+v", maxReady, maxMemory, b.Srv.FlowStats())
}

// A connection that publishes to a queue it consumes itself is never paused for it: its acks come
// on the socket a pause would stop reading, so pausing could never end.
func TestFlowSameConnectionPublishAndConsume(t *testing.T) {
	if externalURL != "" {
		t.Skip("reads the in-process broker's flow counters")
	}
	b := flowBroker(t)
	conn := amqpDial(t, b)
	cch := amqpChannel(t, conn)
	q := amqpQueue(t, b, cch, "q")
	if err := cch.Qos(10, 0, false); err != nil {
		t.Fatal(err)
	}
	deliveries := amqpConsume(t, cch, q, false)

	const n = 2000
	pubDone := flowPublish(t, conn, q, n)
	for range n {
		d := amqpRecv(t, deliveries)
		if err := d.Ack(false); err != nil {
			t.Fatal(err)
		}
	}
	if err := <-pubDone; err != nil {
		t.Fatal(err)
	}
	if fs := b.Srv.FlowStats(); fs.Pauses != 0 {
		t.Errorf("flow stats %+v: a connection was paused for a queue only it consumes", fs)
	}
}

// A consumer that holds its prefetch and never acks cannot drain the queue: a paused publisher
// gives up waiting for it, and the queue takes the backlog into the store as if it had no consumer.
func TestFlowStalledConsumerDoesNotBlockPublisher(t *testing.T) {
	if externalURL != "" {
		t.Skip("reads the in-process broker's flow counters")
	}
	b := flowBroker(t)
	cconn := amqpDial(t, b)
	cch := amqpChannel(t, cconn)
	q := amqpQueue(t, b, cch, "q")
	if err := cch.Qos(5, 0, false); err != nil {
		t.Fatal(err)
	}
	deliveries := amqpConsume(t, cch, q, false)

	const n = 500
	pch := amqpConfirmChannel(t, amqpDial(t, b))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	dcs := make([]*amqp.DeferredConfirmation, 0, n)
	published := make(chan error, 1)
	go func() { // a publish blocks while the broker does not read: bound the wait below
		for i := range n {
			dc, err := pch.PublishWithDeferredConfirm("", q, false, false, amqp.Publishing{Body: []byte("m")})
			if err != nil {
				published <- fmt.Errorf("publish %d: %w", i, err)
				return
			}
			dcs = append(dcs, dc)
		}
		published <- nil
	}()
	select {
	case err := <-published:
		if err != nil {
			t.Fatal(err)
		}
	case <-ctx.Done():
		t.Fatal("publishing hung: the publisher stayed paused for a consumer that does not ack")
	}
	for i, dc := range dcs {
		if ok, err := dc.WaitContext(ctx); !ok || err != nil {
			t.Fatalf("confirm %d: ack=%v err=%v", i, ok, err)
		}
	}
	qi := queueInfo(t, b, q)
	if qi.Ready+qi.Unacked != n || qi.PagedOut == 0 {
		t.Errorf("queue: ready %d (paged %d), unacked %d; want %d in all, some paged", qi.Ready, qi.PagedOut, qi.Unacked, n)
	}
	if fs := b.Srv.FlowStats(); fs.Stalls == 0 {
		t.Errorf("flow stats %+v: no pause was given up", fs)
	}
	// Acking lets everything through.
	for range n {
		if err := amqpRecv(t, deliveries).Ack(false); err != nil {
			t.Fatal(err)
		}
	}
}

// A queue without consumers takes a backlog: nothing pauses its publishers; past the window it
// pages to the store.
func TestFlowNoConsumerTakesBacklog(t *testing.T) {
	if externalURL != "" {
		t.Skip("reads the in-process broker's flow counters")
	}
	b := flowBroker(t)
	conn := amqpDial(t, b)
	q := amqpQueue(t, b, amqpChannel(t, conn), "q")
	const n = 1000
	pch := amqpConfirmChannel(t, amqpDial(t, b))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var last *amqp.DeferredConfirmation
	for i := range n {
		dc, err := pch.PublishWithDeferredConfirm("", q, false, false, amqp.Publishing{Body: make([]byte, 100)})
		if err != nil {
			t.Fatalf("publish %d: %v", i, err)
		}
		last = dc
	}
	if ok, err := last.WaitContext(ctx); !ok || err != nil { // confirms are in order
		t.Fatalf("last confirm: ack=%v err=%v", ok, err)
	}
	ch := amqpChannel(t, conn)
	if m, _ := amqpReady(t, conn, q); m != n {
		t.Fatalf("queue holds %d messages; want %d", m, n)
	}
	if qi := queueInfo(t, b, q); qi.PagedOut == 0 {
		t.Errorf("queue: %d ready, none paged; want a backlog past the window of %d in the store", qi.Ready, flowWindow)
	}
	if fs := b.Srv.FlowStats(); fs.Pauses != 0 {
		t.Errorf("flow stats %+v: a publisher was paused with no consumer", fs)
	}
	if err := ch.Qos(100, 0, false); err != nil {
		t.Fatal(err)
	}
	d := amqpConsume(t, ch, q, false)
	for range n {
		if err := amqpRecv(t, d).Ack(false); err != nil {
			t.Fatal(err)
		}
	}
}

// A no-ack consumer that stops reading its socket cannot take the queue's messages into its
// connection's write buffer without bound: past a few MiB waiting for its socket, deliveries to it
// wait and the messages stay in the queue (its window, then the store). When it reads again, they
// all come. (A raw client: amqp091-go reads and buffers every delivery whatever the application does.)
func TestFlowNoAckConsumerBufferIsBounded(t *testing.T) {
	if externalURL != "" {
		t.Skip("reads the in-process broker's queue counters")
	}
	b := flowBroker(t)
	conn := amqpDial(t, b)
	q := amqpQueue(t, b, amqpChannel(t, conn), "q")
	w := wireReady(t, b)
	w.send(wireMethodFrame(1, wireBasic, 20, wireArgs().short(0).shortstr(q).shortstr("slow").bits(false, true, false, false).table()))
	w.expect(1, wireBasic, 21) // consume-ok; from here on nothing is read until the publisher is done

	const n, size = 20000, 1024 // 20 MiB: more than the write buffer and the socket buffers hold
	pch := amqpConfirmChannel(t, conn)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	var last *amqp.DeferredConfirmation
	body := make([]byte, size)
	for i := range n {
		dc, err := pch.PublishWithDeferredConfirm("", q, false, false, amqp.Publishing{Body: body})
		if err != nil {
			t.Fatalf("publish %d: %v", i, err)
		}
		last = dc
	}
	if ok, err := last.WaitContext(ctx); !ok || err != nil {
		t.Fatalf("last confirm: ack=%v err=%v", ok, err)
	}
	if qi := queueInfo(t, b, q); qi.Ready == 0 {
		t.Errorf("every message left the queue for a consumer that reads nothing: its connection buffers them all")
	} else {
		t.Logf("held in the queue: %d ready (%d paged)", qi.Ready, qi.PagedOut)
	}
	for got := 0; got < n; {
		f, err := w.readFrameBy(time.Now().Add(10 * time.Second))
		if err != nil {
			t.Fatalf("after %d of %d deliveries: %v", got, n, err)
		}
		if f.Type == wireFrameMethod && f.Channel == 1 {
			got++
		}
	}
}

// A publisher paused by flow control first writes the deliveries its batch of frames made: they
// are what lets the consumer ack and the queue drain. (Deliveries a read loop makes are written
// when its batch ends, server/outbound.go; a pause ends the batch.) One socket write carries 45
// publishes: 10 go to the consumer (its prefetch), 32 more fill the queue to the high mark and
// pause the publisher. Held back, the 10 deliveries would leave the consumer nothing to ack and
// the pause would end only by the stall timeout.
func TestFlowPauseWritesBatchDeliveriesFirst(t *testing.T) {
	if externalURL != "" {
		t.Skip("reads the in-process broker's flow counters")
	}
	b := flowBroker(t)
	cch := amqpChannel(t, amqpDial(t, b))
	q := amqpQueue(t, b, cch, "q")
	if err := cch.Qos(10, 0, false); err != nil {
		t.Fatal(err)
	}
	deliveries := amqpConsume(t, cch, q, false)

	const n = 45
	w := wireHandshake(t, b)
	w.openChannel(1)
	var burst [][]byte
	for range n {
		burst = append(burst, wirePublish(1, "", q, nil))
	}
	w.send(burst...)
	for range n {
		if err := amqpRecv(t, deliveries).Ack(false); err != nil {
			t.Fatal(err)
		}
	}
	fs := b.Srv.FlowStats()
	if fs.Pauses == 0 {
		t.Fatalf("flow stats %+v: the burst never paused its publisher", fs)
	}
	if fs.Stalls != 0 {
		t.Fatalf("flow stats %+v: a pause ended by the stall timeout, not by the consumer draining the queue", fs)
	}
	w.closeConnection()
}
