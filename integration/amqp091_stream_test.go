package integration

// Streams over AMQP 0-9-1 (x-queue-type: stream), as RabbitMQ 3.10.8 has them: the refusals with
// their codes and whether the channel or the connection closes, x-stream-offset, the
// x-stream-offset header, independent consumers, acks that remove nothing, retention by whole
// segments and restart. Every test but the restart one also runs against RabbitMQ
// (WARREN_TEST_URL), where the refusals' codes and texts were first observed.

import (
	"context"
	"fmt"
	"regexp"
	"strings"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/warrenmq/warren/server"
	"github.com/warrenmq/warren/storage"
)

var streamArgs = amqp.Table{"x-queue-type": "stream"}

func withStream(extra amqp.Table) amqp.Table {
	a := amqp.Table{"x-queue-type": "stream"}
	for k, v := range extra {
		a[k] = v
	}
	return a
}

// streamDeclare declares a durable stream with a unique name (deleted when the test ends).
func streamDeclare(t *testing.T, b broker, ch *amqp.Channel, what string, args amqp.Table) string {
	t.Helper()
	q := amqpName(t, what)
	if _, err := ch.QueueDeclare(q, true, false, false, false, args); err != nil {
		t.Fatalf("declare stream %q: %v", q, err)
	}
	amqpCleanup(t, b, "queue", q)
	return q
}

// streamPublish publishes bodies one at a time on a confirm channel, each waiting for its
// confirm (so each is its own chunk on RabbitMQ and on Warren).
func streamPublish(t *testing.T, ch *amqp.Channel, q string, bodies ...string) {
	t.Helper()
	for _, body := range bodies {
		amqpPublish(t, ch, "", q, body)
	}
}

// streamConsume opens a channel on conn with prefetch and consumes q from offset (nil: none given).
func streamConsume(t *testing.T, conn *amqp.Connection, q string, prefetch int, offset any) (*amqp.Channel, <-chan amqp.Delivery) {
	t.Helper()
	ch := amqpChannel(t, conn)
	if err := ch.Qos(prefetch, 0, false); err != nil {
		t.Fatal(err)
	}
	var args amqp.Table
	if offset != nil {
		args = amqp.Table{"x-stream-offset": offset}
	}
	d, err := ch.Consume(q, "", false, false, false, false, args)
	if err != nil {
		t.Fatalf("consume %q from %v: %v", q, offset, err)
	}
	return ch, d
}

// streamRecv receives n deliveries and returns their bodies and x-stream-offset headers, acking none.
func streamRecv(t *testing.T, d <-chan amqp.Delivery, n int) (bodies []string, offsets []int64) {
	t.Helper()
	for range n {
		m := amqpRecv(t, d)
		off, ok := m.Headers["x-stream-offset"].(int64)
		if !ok {
			t.Fatalf("delivery %q: x-stream-offset header %T %v, want a long", m.Body, m.Headers["x-stream-offset"], m.Headers["x-stream-offset"])
		}
		if m.Redelivered {
			t.Fatalf("delivery %q redelivered", m.Body)
		}
		bodies = append(bodies, string(m.Body))
		offsets = append(offsets, off)
	}
	return bodies, offsets
}

func TestAMQP091StreamDeclareRefusals(t *testing.T) {
	b, conn, ch := amqpSetup(t)
	_ = ch
	type tc struct {
		name                      string
		durable, autoDelete, excl bool
		args                      amqp.Table
		code                      int
		text                      string // %[1]s is the queue's name
		connection                bool
	}
	cases := []tc{
		{"non-durable", false, false, false, nil, 406, "invalid property 'non-durable' for queue '%[1]s' in vhost '/'", false},
		{"exclusive", true, false, true, nil, 406, "invalid property 'exclusive-owner' for queue '%[1]s' in vhost '/'", false},
		{"auto-delete", true, true, false, nil, 406, "invalid property 'auto-delete' for queue '%[1]s' in vhost '/'", false},
		{"auto-delete before non-durable", false, true, false, nil, 406, "invalid property 'auto-delete' for queue '%[1]s' in vhost '/'", false},
		{"exclusive before non-durable", false, false, true, nil, 406, "invalid property 'exclusive-owner' for queue '%[1]s' in vhost '/'", false},
		{"max-priority", true, false, false, amqp.Table{"x-max-priority": int32(5)}, 406, "invalid arg 'x-max-priority' for queue '%[1]s' in vhost '/' of queue type rabbit_stream_queue", false},
		{"message-ttl", true, false, false, amqp.Table{"x-message-ttl": int32(5)}, 406, "invalid arg 'x-message-ttl' for queue '%[1]s' in vhost '/' of queue type rabbit_stream_queue", false},
		{"expires", true, false, false, amqp.Table{"x-expires": int32(5000)}, 406, "invalid arg 'x-expires' for queue '%[1]s' in vhost '/' of queue type rabbit_stream_queue", false},
		{"dead-letter-exchange", true, false, false, amqp.Table{"x-dead-letter-exchange": "x"}, 406, "invalid arg 'x-dead-letter-exchange' for queue '%[1]s' in vhost '/' of queue type rabbit_stream_queue", false},
		{"max-length", true, false, false, amqp.Table{"x-max-length": int32(5)}, 406, "invalid arg 'x-max-length' for queue '%[1]s' in vhost '/' of queue type rabbit_stream_queue", false},
		{"overflow", true, false, false, amqp.Table{"x-overflow": "drop-head"}, 406, "invalid arg 'x-overflow' for queue '%[1]s' in vhost '/' of queue type rabbit_stream_queue", false},
		{"single-active-consumer", true, false, false, amqp.Table{"x-single-active-consumer": true}, 406, "invalid arg 'x-single-active-consumer' for queue '%[1]s' in vhost '/' of queue type rabbit_stream_queue", false},
		{"queue-mode", true, false, false, amqp.Table{"x-queue-mode": "lazy"}, 406, "invalid arg 'x-queue-mode' for queue '%[1]s' in vhost '/' of queue type rabbit_stream_queue", false},
		{"delivery-limit", true, false, false, amqp.Table{"x-delivery-limit": int32(5)}, 406, "invalid arg 'x-delivery-limit' for queue '%[1]s' in vhost '/' of queue type rabbit_stream_queue", false},
		{"unsupported arg before non-durable", false, false, false, amqp.Table{"x-max-priority": int32(5)}, 406, "invalid arg 'x-max-priority' for queue '%[1]s' in vhost '/' of queue type rabbit_stream_queue", false},
		{"max-length-bytes negative", true, false, false, amqp.Table{"x-max-length-bytes": int32(-1)}, 406, "invalid arg 'x-max-length-bytes' for queue '%[1]s' in vhost '/': {value_negative,-1}", false},
		{"max-length-bytes string", true, false, false, amqp.Table{"x-max-length-bytes": "abc"}, 406, "invalid arg 'x-max-length-bytes' for queue '%[1]s' in vhost '/': \"expected integer, got longstr\"", false},
		{"bad value before unsupported arg", true, false, false, amqp.Table{"x-max-length-bytes": int32(-1), "x-max-priority": int32(5)}, 406, "invalid arg 'x-max-length-bytes' for queue '%[1]s' in vhost '/': {value_negative,-1}", false},
		{"bad value before non-durable", false, false, false, amqp.Table{"x-max-length-bytes": int32(-1)}, 406, "invalid arg 'x-max-length-bytes' for queue '%[1]s' in vhost '/': {value_negative,-1}", false},
		{"segment size negative", true, false, false, amqp.Table{"x-stream-max-segment-size-bytes": int32(-5)}, 406, "invalid arg 'x-stream-max-segment-size-bytes' for queue '%[1]s' in vhost '/': {value_negative,-5}", false},
		{"segment size string", true, false, false, amqp.Table{"x-stream-max-segment-size-bytes": "x"}, 406, "invalid arg 'x-stream-max-segment-size-bytes' for queue '%[1]s' in vhost '/': \"expected integer, got longstr\"", false},
		{"max-age integer", true, false, false, amqp.Table{"x-max-age": int32(5)}, 406, "invalid arg 'x-max-age' for queue '%[1]s' in vhost '/': {unacceptable_type,signedint}", false},
		{"max-age 0s", true, false, false, amqp.Table{"x-max-age": "0s"}, 406, "invalid arg 'x-max-age' for queue '%[1]s' in vhost '/': invalid_max_age", false},
		{"max-age unit", true, false, false, amqp.Table{"x-max-age": "1H"}, 406, "invalid arg 'x-max-age' for queue '%[1]s' in vhost '/': invalid_max_age", false},
		{"max-age two units", true, false, false, amqp.Table{"x-max-age": "1h1m"}, 406, "invalid arg 'x-max-age' for queue '%[1]s' in vhost '/': invalid_max_age", false},
		{"max-age no digits", true, false, false, amqp.Table{"x-max-age": "bad"}, 541, "INTERNAL_ERROR", true},
		{"max-age negative", true, false, false, amqp.Table{"x-max-age": "-1h"}, 541, "INTERNAL_ERROR", true},
		{"initial cluster size 0", true, false, false, amqp.Table{"x-initial-cluster-size": int32(0)}, 406, "invalid arg 'x-initial-cluster-size' for queue '%[1]s' in vhost '/': {value_zero,0}", false},
		{"leader locator", true, false, false, amqp.Table{"x-queue-leader-locator": "bogus"}, 406, "invalid arg 'x-queue-leader-locator' for queue '%[1]s' in vhost '/': invalid_queue_locator_arg", false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			conn := amqpDial(t, b)
			ch := amqpChannel(t, conn)
			chClosed := ch.NotifyClose(make(chan *amqp.Error, 1))
			connClosed := conn.NotifyClose(make(chan *amqp.Error, 1))
			q := amqpName(t, "s")
			_, err := ch.QueueDeclare(q, c.durable, c.autoDelete, c.excl, false, withStream(c.args))
			if err == nil {
				amqpCleanup(t, b, "queue", q)
			}
			text := c.text
			if strings.Contains(text, "%[1]s") {
				text = fmt.Sprintf(text, q)
			}
			if c.connection {
				amqpAssertConnectionError(t, conn, connClosed, err, c.code, text)
			} else {
				amqpAssertChannelError(t, conn, ch, chClosed, err, c.code, "PRECONDITION_FAILED - "+text)
			}
		})
	}
	// Server-named: refused as for quorum queues.
	c := amqpChannel(t, conn)
	_, err := c.QueueDeclare("", true, false, false, false, streamArgs)
	amqpWantError(t, err, 406, "PRECONDITION_FAILED - Cannot declare a server-named queue for type rabbit_stream_queue")

	// Accepted: the arguments a stream takes, and arguments nobody knows.
	ch2 := amqpChannel(t, conn)
	okArgs := amqp.Table{"x-max-length-bytes": int64(1 << 30), "x-max-age": "7D",
		"x-stream-max-segment-size-bytes": int32(1 << 20), "x-initial-cluster-size": int32(1), "x-queue-leader-locator": "balanced", "x-foo": "bar"}
	q := streamDeclare(t, b, ch2, "ok", withStream(okArgs))
	// A redeclare must have the same stream arguments.
	for _, c := range []struct {
		key  string
		val  any
		text string
	}{
		{"x-max-age", "2h", "received '2h' but current is '7D'"},
		{"x-max-age", nil, "received none but current is the value '7D' of type 'longstr'"},
		{"x-stream-max-segment-size-bytes", int32(5), "received '5' but current is '1048576'"},
		{"x-initial-cluster-size", int32(2), "received '2' but current is '1'"},
		{"x-queue-leader-locator", "client-local", "received 'client-local' but current is 'balanced'"},
	} {
		args := withStream(okArgs)
		if c.val == nil {
			delete(args, c.key)
		} else {
			args[c.key] = c.val
		}
		rc := amqpChannel(t, conn)
		_, err := rc.QueueDeclare(q, true, false, false, false, args)
		amqpWantError(t, err, 406, fmt.Sprintf("PRECONDITION_FAILED - inequivalent arg '%s' for queue '%s' in vhost '/': %s", c.key, q, c.text))
	}
	rc := amqpChannel(t, conn)
	if _, err := rc.QueueDeclare(q, true, false, false, false, withStream(okArgs)); err != nil {
		t.Fatalf("an equivalent redeclare: %v", err)
	}
}

func TestAMQP091StreamConsumeRefusals(t *testing.T) {
	b, _, ch := amqpSetup(t)
	q := streamDeclare(t, b, ch, "s", streamArgs)
	streamPublish(t, ch, q, "m0", "m1", "m2")
	qdesc := fmt.Sprintf("queue '%s' in vhost '/'", q)
	type tc struct {
		name       string
		qos        int // per-consumer prefetch; 0: none
		global     int // global prefetch; 0: none
		noAck      bool
		args       amqp.Table
		code       int
		text       string
		connection bool
	}
	cases := []tc{
		{"no prefetch", 0, 0, false, nil, 406, "PRECONDITION_FAILED - consumer prefetch count is not set for '" + qdesc + "'", false},
		{"global qos only", 0, 10, false, nil, 406, "PRECONDITION_FAILED - consumer prefetch count is not set for '" + qdesc + "'", false},
		{"no-ack", 10, 0, true, nil, 540, "NOT_IMPLEMENTED - automatic acknowledgement not supported by stream queues " + qdesc, true},
		{"prefetch before no-ack", 0, 0, true, nil, 406, "PRECONDITION_FAILED - consumer prefetch count is not set for '" + qdesc + "'", false},
		{"x-priority", 10, 0, false, amqp.Table{"x-priority": int32(3)}, 406, "PRECONDITION_FAILED - invalid arg 'x-priority' for " + qdesc + " of queue type rabbit_stream_queue", false},
		{"x-priority before prefetch", 0, 0, false, amqp.Table{"x-priority": int32(3)}, 406, "PRECONDITION_FAILED - invalid arg 'x-priority' for " + qdesc + " of queue type rabbit_stream_queue", false},
		{"offset word", 10, 0, false, amqp.Table{"x-stream-offset": "bogus"}, 541, "INTERNAL_ERROR", true},
		{"offset word before prefetch", 0, 0, false, amqp.Table{"x-stream-offset": "FIRST"}, 541, "INTERNAL_ERROR", true},
		{"offset bool", 10, 0, false, amqp.Table{"x-stream-offset": true}, 541, "INTERNAL_ERROR", true},
		{"offset bad unit", 10, 0, false, amqp.Table{"x-stream-offset": "1x"}, 406, "PRECONDITION_FAILED - invalid arg 'x-stream-offset' for " + qdesc + ": {invalid_stream_offset_arg,{longstr,<<\"1x\">>}}", false},
		{"offset no unit", 10, 0, false, amqp.Table{"x-stream-offset": "10"}, 406, "PRECONDITION_FAILED - invalid arg 'x-stream-offset' for " + qdesc + ": {invalid_stream_offset_arg,{longstr,<<\"10\">>}}", false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			conn := amqpDial(t, b)
			ch := amqpChannel(t, conn)
			chClosed := ch.NotifyClose(make(chan *amqp.Error, 1))
			connClosed := conn.NotifyClose(make(chan *amqp.Error, 1))
			if c.global > 0 {
				if err := ch.Qos(c.global, 0, true); err != nil {
					t.Fatal(err)
				}
			}
			if c.qos > 0 {
				if err := ch.Qos(c.qos, 0, false); err != nil {
					t.Fatal(err)
				}
			}
			_, err := ch.Consume(q, "", c.noAck, false, false, false, c.args)
			if c.connection {
				amqpAssertConnectionError(t, conn, connClosed, err, c.code, c.text)
			} else {
				amqpAssertChannelError(t, conn, ch, chClosed, err, c.code, c.text)
			}
		})
	}
	t.Run("global and consumer qos", func(t *testing.T) {
		conn := amqpDial(t, b)
		ch := amqpChannel(t, conn)
		if err := ch.Qos(10, 0, true); err != nil {
			t.Fatal(err)
		}
		if err := ch.Qos(10, 0, false); err != nil {
			t.Fatal(err)
		}
		d, err := ch.Consume(q, "", false, false, false, false, amqp.Table{"x-stream-offset": "first"})
		if err != nil {
			t.Fatal(err)
		}
		if bodies, _ := streamRecv(t, d, 3); strings.Join(bodies, ",") != "m0,m1,m2" {
			t.Fatalf("got %v", bodies)
		}
	})
	connErr := func(name string, op func(conn *amqp.Connection, ch *amqp.Channel) error, code int, text string) {
		t.Run(name, func(t *testing.T) {
			conn := amqpDial(t, b)
			connClosed := conn.NotifyClose(make(chan *amqp.Error, 1))
			ch := amqpChannel(t, conn)
			err := op(conn, ch)
			if err == nil {
				err = amqpWaitClose(t, connClosed)
				connClosed = nil
			}
			amqpAssertConnectionError(t, conn, connClosed, err, code, text)
		})
	}
	connErr("get", func(_ *amqp.Connection, ch *amqp.Channel) error {
		_, _, err := ch.Get(q, false)
		return err
	}, 540, "NOT_IMPLEMENTED - basic.get not supported by stream queues "+qdesc)
	connErr("get no-ack", func(_ *amqp.Connection, ch *amqp.Channel) error {
		_, _, err := ch.Get(q, true)
		return err
	}, 540, "NOT_IMPLEMENTED - basic.get not supported by stream queues "+qdesc)
	connErr("purge", func(_ *amqp.Connection, ch *amqp.Channel) error {
		_, err := ch.QueuePurge(q, false)
		return err
	}, 540, "NOT_IMPLEMENTED - queue.purge not supported by stream queues "+qdesc)
	settle := func(name string, fn func(m amqp.Delivery) error, code int, text string) {
		connErr(name, func(conn *amqp.Connection, _ *amqp.Channel) error {
			_, d := streamConsume(t, conn, q, 10, "first")
			m := amqpRecv(t, d)
			amqpRecv(t, d)
			if err := fn(m); err != nil {
				return err
			}
			return nil
		}, code, text)
	}
	nackText := "NOT_IMPLEMENTED - basic.nack and basic.reject not supported by stream queues " + qdesc
	settle("nack requeue", func(m amqp.Delivery) error { return m.Nack(false, true) }, 540, nackText)
	settle("nack discard", func(m amqp.Delivery) error { return m.Nack(false, false) }, 540, nackText)
	settle("nack multiple", func(m amqp.Delivery) error { return m.Nack(true, true) }, 540, nackText)
	settle("reject requeue", func(m amqp.Delivery) error { return m.Reject(true) }, 540, nackText)
	settle("reject discard", func(m amqp.Delivery) error { return m.Reject(false) }, 540, nackText)
}

// basic.recover with stream deliveries unacked: RabbitMQ 3.10.8 fails with 541 and closes the connection.
func TestAMQP091StreamRecover(t *testing.T) {
	b, conn, ch := amqpSetup(t)
	q := streamDeclare(t, b, ch, "s", streamArgs)
	streamPublish(t, ch, q, "m0")
	c2 := amqpDial(t, b)
	closed := c2.NotifyClose(make(chan *amqp.Error, 1))
	cch, d := streamConsume(t, c2, q, 10, "first")
	amqpRecv(t, d)
	//lint:ignore SA1019 basic.recover is what this test checks
	err := cch.Recover(true)
	if err == nil {
		err = amqpWaitClose(t, closed)
		closed = nil
	}
	amqpAssertConnectionError(t, c2, closed, err, 541, "INTERNAL_ERROR")
	_ = conn
}

func TestAMQP091StreamOffsets(t *testing.T) {
	b, conn, ch := amqpSetup(t)
	q := streamDeclare(t, b, ch, "s", streamArgs)
	before := time.Now()
	streamPublish(t, ch, q, "m0", "m1", "m2", "m3", "m4")
	all := "m0,m1,m2,m3,m4"
	check := func(name string, offset any, want string, wantFirst int64) {
		t.Run(name, func(t *testing.T) {
			c, d := streamConsume(t, conn, q, 10, offset)
			defer c.Close()
			n := len(strings.Split(want, ","))
			bodies, offs := streamRecv(t, d, n)
			if got := strings.Join(bodies, ","); got != want {
				t.Fatalf("from %v: got %s, want %s", offset, got, want)
			}
			for i, o := range offs {
				if o != wantFirst+int64(i) {
					t.Fatalf("from %v: offsets %v, want from %d", offset, offs, wantFirst)
				}
			}
		})
	}
	check("first", "first", all, 0)
	check("absolute", int64(2), "m2,m3,m4", 2)
	check("absolute int32", int32(3), "m3,m4", 3)
	check("negative", int64(-1), all, 0)
	check("last", "last", "m4", 4) // each message was its own chunk
	check("interval", "1h", all, 0)
	check("interval days", "7D", all, 0)
	check("timestamp before", before.Add(-time.Minute), all, 0)

	// next, a future timestamp and no offset: only what comes after; an offset past the end
	// waits for that offset.
	type pending struct {
		name string
		d    <-chan amqp.Delivery
		want string
	}
	var ps []pending
	for name, off := range map[string]any{"next": "next", "future": time.Now().Add(10 * time.Minute), "default": nil, "beyond": int64(6)} {
		_, d := streamConsume(t, conn, q, 10, off)
		want := "m5"
		if name == "beyond" {
			want = "m6"
		}
		ps = append(ps, pending{name, d, want})
	}
	streamPublish(t, ch, q, "m5", "m6")
	for _, p := range ps {
		if bodies, _ := streamRecv(t, p.d, 1); bodies[0] != p.want {
			t.Errorf("%s: first delivery %v, want %s", p.name, bodies, p.want)
		}
	}
}

// Deliveries keep the message's headers and add x-stream-offset; the other properties are kept.
func TestAMQP091StreamDeliveryProperties(t *testing.T) {
	b, conn, ch := amqpSetup(t)
	q := streamDeclare(t, b, ch, "s", streamArgs)
	dc, err := ch.PublishWithDeferredConfirm("", q, false, false, amqp.Publishing{
		ContentType: "text/plain", ContentEncoding: "utf8", Headers: amqp.Table{"h": int32(7)},
		CorrelationId: "cid", Body: []byte("with headers")})
	if err != nil || !dc.Wait() {
		t.Fatalf("publish: %v", err)
	}
	amqpPublish(t, ch, "", q, "without headers")
	_, d := streamConsume(t, conn, q, 10, "first")
	m := amqpRecv(t, d)
	if m.ContentType != "text/plain" || m.ContentEncoding != "utf8" || m.CorrelationId != "cid" ||
		m.Headers["h"] != int32(7) || m.Headers["x-stream-offset"] != int64(0) || string(m.Body) != "with headers" {
		t.Fatalf("got %+v", m)
	}
	m = amqpRecv(t, d)
	if len(m.Headers) != 1 || m.Headers["x-stream-offset"] != int64(1) || string(m.Body) != "without headers" {
		t.Fatalf("got headers %v body %q", m.Headers, m.Body)
	}
}

// Two consumers read the same stream independently; acks give credit and remove nothing.
func TestAMQP091StreamReplayAndCredit(t *testing.T) {
	b, conn, ch := amqpSetup(t)
	q := streamDeclare(t, b, ch, "s", streamArgs)
	var bodies []string
	for i := range 20 {
		bodies = append(bodies, fmt.Sprintf("m%d", i))
	}
	streamPublish(t, ch, q, bodies...)

	// Prefetch 3: three deliveries, then one more per ack.
	_, d1 := streamConsume(t, conn, q, 3, "first")
	_, d2 := streamConsume(t, amqpDial(t, b), q, 50, "first")
	var got1 []string
	var third amqp.Delivery
	for range 3 {
		third = amqpRecv(t, d1)
		got1 = append(got1, string(third.Body))
	}
	select {
	case m := <-d1:
		t.Fatalf("a fourth delivery %q with prefetch 3 and nothing acked", m.Body)
	case <-time.After(200 * time.Millisecond):
	}
	got2, _ := streamRecv(t, d2, 20)
	if err := third.Ack(true); err != nil {
		t.Fatal(err)
	}
	for len(got1) < 20 {
		m := amqpRecv(t, d1)
		if err := m.Ack(false); err != nil {
			t.Fatal(err)
		}
		got1 = append(got1, string(m.Body))
	}
	if strings.Join(got1, ",") != strings.Join(bodies, ",") || strings.Join(got2, ",") != strings.Join(bodies, ",") {
		t.Fatalf("consumer 1 got %v\nconsumer 2 got %v", got1, got2)
	}
	// After acks a new consumer still reads everything.
	_, d3 := streamConsume(t, amqpDial(t, b), q, 50, "first")
	if got3, _ := streamRecv(t, d3, 20); strings.Join(got3, ",") != strings.Join(bodies, ",") {
		t.Fatalf("consumer 3 got %v", got3)
	}
	if b.Srv != nil { // RabbitMQ's declare-ok count lags by its metrics interval
		if n, _ := amqpReady(t, conn, q); n != 20 {
			t.Fatalf("declare-ok message count %d after acks, want 20", n)
		}
		qi, err := b.Srv.Queue("/", q)
		if err != nil || qi.Ready != 20 || qi.Unacked != 0 || qi.Consumers != 3 {
			t.Fatalf("queue info %+v %v", qi, err)
		}
	}
}

// Retention drops whole segments, oldest first, when a segment rolls: with 1000-byte segments and
// at most 3000 bytes, the oldest messages go and what stays is a contiguous tail.
func TestAMQP091StreamRetentionBySegment(t *testing.T) {
	b, conn, ch := amqpSetup(t)
	q := streamDeclare(t, b, ch, "s", withStream(amqp.Table{"x-stream-max-segment-size-bytes": int32(1000), "x-max-length-bytes": int32(3000)}))
	body := strings.Repeat("x", 100)
	for range 100 {
		amqpPublish(t, ch, "", q, body)
	}
	// The newest chunk is the last message; every consumer from first starts at the oldest kept.
	_, dl := streamConsume(t, conn, q, 10, "last")
	_, lastOffs := streamRecv(t, dl, 1)
	last := lastOffs[0]
	_, d := streamConsume(t, conn, q, 200, "first")
	_, offs := streamRecv(t, d, 1)
	first := offs[0]
	if first == 0 {
		t.Fatal("nothing was dropped")
	}
	kept := 1
	for off := first; off < last; {
		_, o := streamRecv(t, d, 1)
		if o[0] <= off {
			t.Fatalf("offsets went from %d to %d", off, o[0])
		}
		off = o[0]
		kept++
	}
	t.Logf("kept offsets %d..%d (%d messages)", first, last, kept)
	if kept >= 100 || kept*100 > 3000+1000 {
		t.Fatalf("kept %d messages of 100 bytes with max-length-bytes 3000", kept)
	}
	if b.Srv == nil {
		return
	}
	// Warren: offsets are contiguous, segments hold ~1000 bytes, and each drop took whole ones.
	if kept != int(last-first+1) {
		t.Fatalf("kept %d messages for offsets %d..%d", kept, first, last)
	}
	qi, err := b.Srv.Queue("/", q)
	if err != nil || qi.Ready != int64(kept) {
		t.Fatalf("queue info ready %d, want %d (%v)", qi.Ready, kept, err)
	}
}

// Messages survive a restart; offsets go on from where they were; "last" is the last chunk.
func TestAMQP091StreamRestart(t *testing.T) {
	store := storage.NewMemStore()
	b1 := startBroker(t, func(o *server.Options) { o.Store = store })
	conn := amqpDial(t, b1)
	ch := amqpConfirmChannel(t, conn)
	q := amqpName(t, "s")
	args := withStream(amqp.Table{"x-stream-max-segment-size-bytes": int32(500)})
	if _, err := ch.QueueDeclare(q, true, false, false, false, args); err != nil {
		t.Fatal(err)
	}
	var want []string
	for i := range 30 {
		want = append(want, fmt.Sprintf("before-%d", i))
	}
	streamPublish(t, ch, q, want...)
	conn.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := b1.Srv.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}

	store = store.Reopen()
	b2 := startBroker(t, func(o *server.Options) { o.Store = store })
	conn2 := amqpDial(t, b2)
	ch2 := amqpConfirmChannel(t, conn2)
	if _, err := ch2.QueueDeclare(q, true, false, false, false, args); err != nil {
		t.Fatal(err)
	}
	_, dl := streamConsume(t, conn2, q, 10, "last")
	if bodies, offs := streamRecv(t, dl, 1); bodies[0] != "before-29" || offs[0] != 29 {
		t.Fatalf("last after restart: %v at %v", bodies, offs)
	}
	streamPublish(t, ch2, q, "after-0", "after-1")
	want = append(want, "after-0", "after-1")
	_, d := streamConsume(t, conn2, q, 100, "first")
	bodies, offs := streamRecv(t, d, 32)
	if strings.Join(bodies, ",") != strings.Join(want, ",") || offs[0] != 0 || offs[31] != 31 {
		t.Fatalf("after restart got %v at %v", bodies, offs)
	}
	qi, err := b2.Srv.Queue("/", q)
	if err != nil || qi.Ready != 32 {
		t.Fatalf("queue info %+v %v", qi, err)
	}
	// Delete drops every key of the stream.
	if _, err := ch2.QueueDelete(q, false, false, false); err != nil {
		t.Fatal(err)
	}
	if err := b2.Srv.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	left := 0
	for _, p := range []string{"Y", "Z"} {
		if err := store.Scan([]byte(p), func(k, v []byte) error { left++; return nil }); err != nil {
			t.Fatal(err)
		}
	}
	if left != 0 {
		t.Fatalf("%d stream keys left after the queue's delete", left)
	}
}

// Retention set by a policy (stream-max-segment-size-bytes, max-length-bytes) works as the
// arguments do.
func TestAMQP091StreamRetentionByPolicy(t *testing.T) {
	b, conn, ch := amqpSetup(t)
	q := amqpName(t, "s")
	setPolicy(t, b, amqpName(t, "pol"), "^"+regexp.QuoteMeta(q)+"$", "queues", 0,
		map[string]any{"stream-max-segment-size-bytes": int64(1000), "max-length-bytes": int64(3000), "max-age": "1D"})
	if _, err := ch.QueueDeclare(q, true, false, false, false, streamArgs); err != nil {
		t.Fatal(err)
	}
	amqpCleanup(t, b, "queue", q)
	body := strings.Repeat("x", 100)
	for range 100 {
		amqpPublish(t, ch, "", q, body)
	}
	_, d := streamConsume(t, conn, q, 200, "first")
	_, offs := streamRecv(t, d, 1)
	if offs[0] == 0 {
		t.Fatal("the policy's retention dropped nothing")
	}
	t.Logf("oldest offset kept: %d", offs[0])
}

// Filtering as RabbitMQ 3.13 has it (3.10.8 has none): a consumer with x-stream-filter gets the
// messages published with one of its values in x-stream-filter-value, and with
// x-stream-match-unfiltered also those published without one. Warren filters each message, so
// the client-side filter RabbitMQ asks for finds nothing more to drop.
func TestAMQP091StreamFilter(t *testing.T) {
	b, conn, ch := amqpSetup(t)
	if b.Srv == nil {
		t.Skip("RabbitMQ 3.10.8 has no stream filtering")
	}
	q := streamDeclare(t, b, ch, "s", streamArgs)
	pub := func(body, filter string) {
		t.Helper()
		p := amqp.Publishing{Body: []byte(body)}
		if filter != "" {
			p.Headers = amqp.Table{"x-stream-filter-value": filter}
		}
		dc, err := ch.PublishWithDeferredConfirm("", q, false, false, p)
		if err != nil || !dc.Wait() {
			t.Fatalf("publish %s: %v", body, err)
		}
	}
	for i := range 30 {
		pub(fmt.Sprintf("red-%d", i), "red")
		pub(fmt.Sprintf("blue-%d", i), "blue")
		pub(fmt.Sprintf("none-%d", i), "")
		pub(fmt.Sprintf("green-%d", i), "green")
	}
	consume := func(args amqp.Table, n int) []string {
		t.Helper()
		c := amqpChannel(t, conn)
		if err := c.Qos(5, 0, false); err != nil {
			t.Fatal(err)
		}
		args["x-stream-offset"] = "first"
		d, err := c.Consume(q, "", false, false, false, false, args)
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for range n {
			m := amqpRecv(t, d)
			got = append(got, string(m.Body))
			if err := m.Ack(false); err != nil {
				t.Fatal(err)
			}
		}
		select {
		case m := <-d:
			t.Fatalf("an extra delivery %q", m.Body)
		case <-time.After(100 * time.Millisecond):
		}
		return got
	}
	only := func(got []string, prefixes ...string) {
		t.Helper()
		for _, g := range got {
			ok := false
			for _, p := range prefixes {
				ok = ok || strings.HasPrefix(g, p+"-")
			}
			if !ok {
				t.Fatalf("got %q, want only %v", g, prefixes)
			}
		}
	}
	got := consume(amqp.Table{"x-stream-filter": "red"}, 30)
	only(got, "red")
	if got[0] != "red-0" || got[29] != "red-29" {
		t.Fatalf("red: %v", got)
	}
	only(consume(amqp.Table{"x-stream-filter": []any{"blue", "green"}}, 60), "blue", "green")
	only(consume(amqp.Table{"x-stream-filter": "green", "x-stream-match-unfiltered": true}, 60), "green", "none")
	if got := consume(amqp.Table{}, 120); len(got) != 120 {
		t.Fatalf("without a filter: %d messages", len(got))
	}
	c := amqpChannel(t, conn)
	closed := c.NotifyClose(make(chan *amqp.Error, 1))
	if err := c.Qos(5, 0, false); err != nil {
		t.Fatal(err)
	}
	_, err := c.Consume(q, "", false, false, false, false, amqp.Table{"x-stream-filter": int32(5)})
	amqpAssertChannelError(t, conn, c, closed, err, 406, "PRECONDITION_FAILED - invalid arg 'x-stream-filter'")
}
