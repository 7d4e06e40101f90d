package integration

// Shared helpers of the amqp091_*_test.go files: the amqp091-go client used the way applications use it.

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"net"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
)

// amqpTimeout bounds every wait for something the broker should send.
const amqpTimeout = 5 * time.Second

// amqpName returns a name unique to this test and run, so that state a broker keeps between runs never
// collides. It never starts with "amq." (reserved).
func amqpName(t testing.TB, what string) string {
	t.Helper()
	var b [4]byte
	if _, err := rand.Read(b[:]); err != nil {
		t.Fatal(err)
	}
	n := strings.NewReplacer("/", ".", " ", "_", "#", "_", "*", "_").Replace(t.Name())
	if len(n) > 150 {
		n = n[:150]
	}
	return "it." + n + "." + what + "." + hex.EncodeToString(b[:])
}

// amqpDial connects with the client's defaults and closes the connection when the test ends.
func amqpDial(t testing.TB, b broker) *amqp.Connection {
	t.Helper()
	conn, err := amqp.Dial(b.URL)
	if err != nil {
		t.Fatalf("dial %s: %v", b.URL, err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	return conn
}

// amqpDialConfig connects with cfg and closes the connection when the test ends.
func amqpDialConfig(t testing.TB, b broker, cfg amqp.Config) *amqp.Connection {
	t.Helper()
	conn, err := amqp.DialConfig(b.URL, cfg)
	if err != nil {
		t.Fatalf("dial %s: %v", b.URL, err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	return conn
}

// amqpChannel opens a channel on conn.
func amqpChannel(t testing.TB, conn *amqp.Connection) *amqp.Channel {
	t.Helper()
	ch, err := conn.Channel()
	if err != nil {
		t.Fatalf("channel: %v", err)
	}
	return ch
}

// amqpConfirmChannel opens a channel in confirm mode: amqpPublish on it waits for the broker's confirm,
// so the message is in its queues before the test looks at them from another channel.
func amqpConfirmChannel(t testing.TB, conn *amqp.Connection) *amqp.Channel {
	t.Helper()
	ch := amqpChannel(t, conn)
	if err := ch.Confirm(false); err != nil {
		t.Fatalf("confirm.select: %v", err)
	}
	return ch
}

// amqpSetup starts (or points at) the broker and returns it with one connection and one channel in
// confirm mode.
func amqpSetup(t testing.TB) (broker, *amqp.Connection, *amqp.Channel) {
	t.Helper()
	b := startBroker(t)
	conn := amqpDial(t, b)
	return b, conn, amqpConfirmChannel(t, conn)
}

// amqpCleanup deletes, when the test ends, a queue ("queue") or an exchange ("exchange") through a fresh
// connection, since the test's own channel may have been closed by an error.
func amqpCleanup(t testing.TB, b broker, kind, name string) {
	t.Helper()
	t.Cleanup(func() {
		conn, err := amqp.Dial(b.URL)
		if err != nil {
			t.Logf("cleanup dial: %v", err)
			return
		}
		defer conn.Close()
		ch, err := conn.Channel()
		if err != nil {
			t.Logf("cleanup channel: %v", err)
			return
		}
		switch kind {
		case "queue":
			_, err = ch.QueueDelete(name, false, false, false)
		case "exchange":
			err = ch.ExchangeDelete(name, false, false)
		default:
			t.Errorf("amqpCleanup: unknown kind %q", kind)
		}
		if err != nil {
			t.Logf("cleanup %s %q: %v", kind, name, err)
		}
	})
}

// amqpQueue declares a transient queue with a unique name, deleted when the test ends.
func amqpQueue(t testing.TB, b broker, ch *amqp.Channel, what string) string {
	t.Helper()
	name := amqpName(t, what)
	if _, err := ch.QueueDeclare(name, false, false, false, false, nil); err != nil {
		t.Fatalf("queue.declare %q: %v", name, err)
	}
	amqpCleanup(t, b, "queue", name)
	return name
}

// amqpExchange declares a transient exchange of kind with a unique name, deleted when the test ends.
func amqpExchange(t testing.TB, b broker, ch *amqp.Channel, kind, what string) string {
	t.Helper()
	name := amqpName(t, what)
	if err := ch.ExchangeDeclare(name, kind, false, false, false, false, nil); err != nil {
		t.Fatalf("exchange.declare %q (%s): %v", name, kind, err)
	}
	amqpCleanup(t, b, "exchange", name)
	return name
}

// amqpPublish publishes a transient text message and fails the test if the client reports an error.
// On a channel in confirm mode it waits for the confirm (ack or nack).
func amqpPublish(t testing.TB, ch *amqp.Channel, exchange, key, body string) {
	t.Helper()
	dc, err := ch.PublishWithDeferredConfirm(exchange, key, false, false, amqp.Publishing{Body: []byte(body)})
	if err != nil {
		t.Fatalf("publish to %q/%q: %v", exchange, key, err)
	}
	if dc == nil {
		return
	}
	select {
	case <-dc.Done():
	case <-time.After(amqpTimeout):
		t.Fatalf("publish to %q/%q: no confirm", exchange, key)
	}
}

// amqpRecv waits for one delivery.
func amqpRecv(t testing.TB, d <-chan amqp.Delivery) amqp.Delivery {
	t.Helper()
	select {
	case m, ok := <-d:
		if !ok {
			t.Fatal("delivery channel closed")
		}
		return m
	case <-time.After(amqpTimeout):
		t.Fatal("timed out waiting for a delivery")
	}
	panic("unreachable")
}

// amqpRecvBodies waits for n deliveries and returns their bodies in arrival order.
func amqpRecvBodies(t testing.TB, d <-chan amqp.Delivery, n int) []string {
	t.Helper()
	var out []string
	for range n {
		out = append(out, string(amqpRecv(t, d).Body))
	}
	return out
}

// amqpConsume starts a consumer with a server-generated tag.
func amqpConsume(t testing.TB, ch *amqp.Channel, queue string, autoAck bool) <-chan amqp.Delivery {
	t.Helper()
	d, err := ch.Consume(queue, "", autoAck, false, false, false, nil)
	if err != nil {
		t.Fatalf("basic.consume %q: %v", queue, err)
	}
	return d
}

// amqpGet fetches one message with basic.get and fails if the queue is empty.
func amqpGet(t testing.TB, ch *amqp.Channel, queue string, autoAck bool) amqp.Delivery {
	t.Helper()
	m, ok, err := ch.Get(queue, autoAck)
	if err != nil {
		t.Fatalf("basic.get %q: %v", queue, err)
	}
	if !ok {
		t.Fatalf("basic.get %q: get-empty, want a message", queue)
	}
	return m
}

// amqpGetEmpty asserts that basic.get answers get-empty.
func amqpGetEmpty(t testing.TB, ch *amqp.Channel, queue string) {
	t.Helper()
	m, ok, err := ch.Get(queue, true)
	if err != nil {
		t.Fatalf("basic.get %q: %v", queue, err)
	}
	if ok {
		t.Fatalf("basic.get %q: got %q, want get-empty", queue, m.Body)
	}
}

// amqpReady returns the number of ready messages of queue (queue.declare-ok message-count) through a new
// channel on conn, so the caller's channel state is untouched.
func amqpReady(t testing.TB, conn *amqp.Connection, queue string) (messages, consumers int) {
	t.Helper()
	ch := amqpChannel(t, conn)
	defer ch.Close()
	q, err := ch.QueueDeclarePassive(queue, false, false, false, false, nil)
	if err != nil {
		t.Fatalf("passive queue.declare %q: %v", queue, err)
	}
	return q.Messages, q.Consumers
}

// amqpWantError asserts that err is an *amqp.Error sent by the broker with code, whose text starts with
// prefix (when prefix is not empty).
func amqpWantError(t testing.TB, err error, code int, prefix string) *amqp.Error {
	t.Helper()
	if err == nil {
		t.Fatalf("got no error, want %d %s", code, prefix)
	}
	var e *amqp.Error
	if !errors.As(err, &e) {
		t.Fatalf("got %T %v, want *amqp.Error %d", err, err, code)
	}
	if e.Code != code {
		t.Fatalf("got code %d (%q), want %d %s", e.Code, e.Reason, code, prefix)
	}
	if !strings.HasPrefix(e.Reason, prefix) {
		t.Fatalf("got text %q, want prefix %q", e.Reason, prefix)
	}
	t.Logf("broker said %d %q (server=%v)", e.Code, e.Reason, e.Server)
	return e
}

// amqpWaitClose waits for a close notification that carries an error.
func amqpWaitClose(t testing.TB, c <-chan *amqp.Error) *amqp.Error {
	t.Helper()
	select {
	case e, ok := <-c:
		if !ok || e == nil {
			t.Fatal("closed without an error, want an error")
		}
		return e
	case <-time.After(amqpTimeout):
		t.Fatal("timed out waiting for a close notification")
	}
	panic("unreachable")
}

// amqpWaitCleanClose waits for a close notification channel to be closed without an error.
func amqpWaitCleanClose(t testing.TB, c <-chan *amqp.Error) {
	t.Helper()
	select {
	case e, ok := <-c:
		if ok && e != nil {
			t.Fatalf("closed with error %v, want a clean close", e)
		}
	case <-time.After(amqpTimeout):
		t.Fatal("timed out waiting for the close notification")
	}
}

// amqpAssertChannelError asserts that err is the channel error code+prefix, that it closed ch (and only
// ch: conn and a fresh channel still work).
func amqpAssertChannelError(t testing.TB, conn *amqp.Connection, ch *amqp.Channel, closed <-chan *amqp.Error, err error, code int, prefix string) {
	t.Helper()
	amqpWantError(t, err, code, prefix)
	if closed != nil {
		e := amqpWaitClose(t, closed)
		if e.Code != code {
			t.Fatalf("channel close notification code %d, want %d", e.Code, code)
		}
	}
	if !ch.IsClosed() {
		t.Fatal("channel still open after a channel error")
	}
	if conn.IsClosed() {
		t.Fatal("a channel error closed the connection")
	}
	amqpAssertAlive(t, conn)
}

// amqpAssertAlive proves the connection still works: a new channel can declare and delete a queue.
func amqpAssertAlive(t testing.TB, conn *amqp.Connection) {
	t.Helper()
	ch, err := conn.Channel()
	if err != nil {
		t.Fatalf("connection unusable: channel.open: %v", err)
	}
	defer ch.Close()
	q, err := ch.QueueDeclare("", false, true, true, false, nil)
	if err != nil {
		t.Fatalf("connection unusable: queue.declare: %v", err)
	}
	if _, err := ch.QueueDelete(q.Name, false, false, false); err != nil {
		t.Fatalf("connection unusable: queue.delete: %v", err)
	}
}

// amqpAssertConnectionError asserts that err is the connection error code+prefix and that conn closed.
func amqpAssertConnectionError(t testing.TB, conn *amqp.Connection, closed <-chan *amqp.Error, err error, code int, prefix string) {
	t.Helper()
	amqpWantError(t, err, code, prefix)
	if closed != nil {
		e := amqpWaitClose(t, closed)
		if e.Code != code {
			t.Fatalf("connection close notification code %d, want %d", e.Code, code)
		}
	}
	if !conn.IsClosed() {
		t.Fatal("connection still open after a connection error")
	}
	if _, err := conn.Channel(); err == nil {
		t.Fatal("channel.open succeeded on a closed connection")
	}
}

// amqpHeartbeatFrame is a whole heartbeat frame: type 8, channel 0, size 0, frame-end.
var amqpHeartbeatFrame = []byte{8, 0, 0, 0, 0, 0, 0, 0xCE}

// amqpTapConn wraps the client's socket: it reports heartbeat frames it reads, and once muted it
// silently drops everything the client writes (a peer that went quiet).
type amqpTapConn struct {
	net.Conn
	mute       atomic.Bool
	heartbeats chan struct{}
}

func (c *amqpTapConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	if n > 0 && bytes.Contains(p[:n], amqpHeartbeatFrame) {
		select {
		case c.heartbeats <- struct{}{}:
		default:
		}
	}
	return n, err
}

func (c *amqpTapConn) Write(p []byte) (int, error) {
	if c.mute.Load() {
		return len(p), nil
	}
	return c.Conn.Write(p)
}

// amqpTapDial returns a Config.Dial that wraps the socket in an amqpTapConn and hands it over.
func amqpTapDial(tap chan<- *amqpTapConn) func(network, addr string) (net.Conn, error) {
	return func(network, addr string) (net.Conn, error) {
		c, err := net.DialTimeout(network, addr, amqpTimeout)
		if err != nil {
			return nil, err
		}
		tc := &amqpTapConn{Conn: c, heartbeats: make(chan struct{}, 16)}
		tap <- tc
		return tc, nil
	}
}
