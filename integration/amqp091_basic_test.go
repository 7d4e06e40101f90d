package integration

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
)

func amqpPublishN(t *testing.T, ch *amqp.Channel, queue string, n int) []string {
	t.Helper()
	var bodies []string
	for i := range n {
		body := fmt.Sprint("m", i)
		amqpPublish(t, ch, "", queue, body)
		bodies = append(bodies, body)
	}
	return bodies
}

// basic.deliver fields: consumer tag (given or server-generated amq.ctag-), increasing delivery tags,
// exchange, routing key, redelivered=false on first delivery.
func TestBasicConsumeDeliver(t *testing.T) {
	b, _, ch := amqpSetup(t)
	q := amqpQueue(t, b, ch, "q")
	d, err := ch.Consume(q, "my-tag", false, false, false, false, nil)
	if err != nil {
		t.Fatal(err)
	}
	want := amqpPublishN(t, ch, q, 3)
	for i, w := range want {
		m := amqpRecv(t, d)
		if string(m.Body) != w || m.ConsumerTag != "my-tag" || m.DeliveryTag != uint64(i+1) ||
			m.Exchange != "" || m.RoutingKey != q || m.Redelivered {
			t.Fatalf("delivery %d: body %q tag %q dtag %d exchange %q key %q redelivered %v", i, m.Body, m.ConsumerTag, m.DeliveryTag, m.Exchange, m.RoutingKey, m.Redelivered)
		}
		if err := m.Ack(false); err != nil {
			t.Fatal(err)
		}
	}
	// amqp091-go makes up a tag ("ctag-<program>-<n>") when given none, so the broker never generates
	// one here; the tag it sent is the one deliveries carry.
	q2 := amqpQueue(t, b, ch, "q2")
	d2 := amqpConsume(t, ch, q2, true)
	amqpPublish(t, ch, "", q2, "x")
	m := amqpRecv(t, d2)
	if !strings.HasPrefix(m.ConsumerTag, "ctag-") {
		t.Fatalf("consumer tag %q, want the client's ctag-...", m.ConsumerTag)
	}
	if m.DeliveryTag != 4 {
		t.Fatalf("delivery tag %d, want 4 (tags count per channel)", m.DeliveryTag)
	}
}

// Several consumers on one queue share it round-robin; each message goes to one of them.
func TestBasicConsumersShareQueue(t *testing.T) {
	b, conn, ch := amqpSetup(t)
	q := amqpQueue(t, b, ch, "q")
	d1 := amqpConsume(t, amqpChannel(t, conn), q, true)
	d2 := amqpConsume(t, amqpChannel(t, conn), q, true)
	amqpPublishN(t, ch, q, 10)
	seen := map[string]int{}
	n1 := 0
	for range 10 {
		select {
		case m := <-d1:
			seen[string(m.Body)]++
			n1++
		case m := <-d2:
			seen[string(m.Body)]++
		case <-time.After(amqpTimeout):
			t.Fatal("timed out")
		}
	}
	if len(seen) != 10 {
		t.Fatalf("got %v, want 10 distinct messages once each", seen)
	}
	if n1 != 5 {
		t.Fatalf("first consumer got %d of 10, want 5 (round-robin)", n1)
	}
}

// basic.qos prefetch_count (global=false) limits each consumer's unacked deliveries.
func TestBasicQosPerConsumer(t *testing.T) {
	b, conn, ch := amqpSetup(t)
	q := amqpQueue(t, b, ch, "q")
	amqpPublishN(t, ch, q, 5)
	if err := ch.Qos(2, 0, false); err != nil {
		t.Fatal(err)
	}
	d := amqpConsume(t, ch, q, false)
	m1, m2 := amqpRecv(t, d), amqpRecv(t, d)
	if n, _ := amqpReady(t, conn, q); n != 3 {
		t.Fatalf("%d ready with 2 unacked at prefetch 2, want 3", n)
	}
	if err := m1.Ack(false); err != nil {
		t.Fatal(err)
	}
	m3 := amqpRecv(t, d)
	if string(m3.Body) != "m2" {
		t.Fatalf("third delivery %q, want m2", m3.Body)
	}
	if n, _ := amqpReady(t, conn, q); n != 2 {
		t.Fatalf("%d ready, want 2", n)
	}
	// A second consumer on the same channel gets its own prefetch of 2.
	q2 := amqpQueue(t, b, ch, "q2")
	amqpPublishN(t, ch, q2, 5)
	d2 := amqpConsume(t, ch, q2, false)
	amqpRecv(t, d2)
	amqpRecv(t, d2)
	if n, _ := amqpReady(t, conn, q2); n != 3 {
		t.Fatalf("second consumer: %d ready, want 3", n)
	}
	_ = m2
	if err := m3.Ack(true); err != nil { // multiple ack of tags 2..3 (1 is settled) on the first consumer...
		t.Fatal(err)
	}
	amqpRecvBodies(t, d, 2) // ...frees both its slots
	if n, _ := amqpReady(t, conn, q); n != 0 {
		t.Fatalf("%d ready, want 0", n)
	}
}

// basic.qos global=true (RabbitMQ's meaning): one limit for the whole channel, shared by its consumers.
func TestBasicQosGlobal(t *testing.T) {
	b, conn, ch := amqpSetup(t)
	q1, q2 := amqpQueue(t, b, ch, "q1"), amqpQueue(t, b, ch, "q2")
	amqpPublishN(t, ch, q1, 3)
	amqpPublishN(t, ch, q2, 3)
	if err := ch.Qos(3, 0, true); err != nil {
		t.Fatal(err)
	}
	d1 := amqpConsume(t, ch, q1, false)
	d2 := amqpConsume(t, ch, q2, false)
	var got []amqp.Delivery
	for range 3 {
		select {
		case m := <-d1:
			got = append(got, m)
		case m := <-d2:
			got = append(got, m)
		case <-time.After(amqpTimeout):
			t.Fatal("timed out")
		}
	}
	r1, _ := amqpReady(t, conn, q1)
	r2, _ := amqpReady(t, conn, q2)
	if r1+r2 != 3 {
		t.Fatalf("%d+%d ready with a channel-wide prefetch of 3 over 6 messages, want 3 in all", r1, r2)
	}
	if err := got[0].Ack(false); err != nil {
		t.Fatal(err)
	}
	select {
	case <-d1:
	case <-d2:
	case <-time.After(amqpTimeout):
		t.Fatal("no delivery after an ack freed a channel-wide slot")
	}
	r1, _ = amqpReady(t, conn, q1)
	r2, _ = amqpReady(t, conn, q2)
	if r1+r2 != 2 {
		t.Fatalf("%d+%d ready, want 2 in all", r1, r2)
	}
}

// basic.qos with prefetch_size != 0 is not implemented by RabbitMQ: connection error 540.
func TestBasicQosPrefetchSize(t *testing.T) {
	_, conn, ch := amqpSetup(t)
	closed := conn.NotifyClose(make(chan *amqp.Error, 1))
	amqpAssertConnectionError(t, conn, closed, ch.Qos(1, 4096, false), amqp.NotImplemented, "NOT_IMPLEMENTED - prefetch_size!=0 (4096)")
}

// no-ack consumers: messages are settled on delivery and acking them is 406 unknown delivery tag.
func TestBasicConsumeNoAck(t *testing.T) {
	b, conn, ch := amqpSetup(t)
	q := amqpQueue(t, b, ch, "q")
	d := amqpConsume(t, ch, q, true)
	want := amqpPublishN(t, ch, q, 3)
	if got := amqpRecvBodies(t, d, 3); !slices.Equal(got, want) {
		t.Fatalf("got %q", got)
	}
	closed := ch.NotifyClose(make(chan *amqp.Error, 1))
	if err := ch.Ack(1, false); err != nil {
		t.Fatal(err)
	}
	amqpAssertChannelError(t, conn, ch, nil, amqpWaitClose(t, closed), amqp.PreconditionFailed, "PRECONDITION_FAILED - unknown delivery tag 1")
	if n, _ := amqpReady(t, conn, q); n != 0 {
		t.Fatalf("no-ack messages came back: %d ready", n)
	}
}

// basic.cancel ends a consumer: its delivery channel closes and later messages stay in the queue.
func TestBasicCancel(t *testing.T) {
	b, conn, ch := amqpSetup(t)
	q := amqpQueue(t, b, ch, "q")
	d, err := ch.Consume(q, "c1", true, false, false, false, nil)
	if err != nil {
		t.Fatal(err)
	}
	amqpPublish(t, ch, "", q, "before")
	amqpRecv(t, d)
	if err := ch.Cancel("c1", false); err != nil {
		t.Fatal(err)
	}
	select {
	case m, ok := <-d:
		if ok {
			t.Fatalf("delivery %q after cancel", m.Body)
		}
	case <-time.After(amqpTimeout):
		t.Fatal("delivery channel not closed after basic.cancel")
	}
	amqpPublish(t, ch, "", q, "after")
	if n, c := amqpReady(t, conn, q); n != 1 || c != 0 {
		t.Fatalf("after cancel: %d ready %d consumers, want 1 and 0", n, c)
	}
	// The tag is free again.
	if _, err := ch.Consume(q, "c1", true, false, false, false, nil); err != nil {
		t.Fatalf("reusing a cancelled tag: %v", err)
	}
}

// The broker sends basic.cancel to a consumer whose queue is deleted (consumer_cancel_notify).
func TestBasicCancelNotifyOnQueueDelete(t *testing.T) {
	b, conn, ch := amqpSetup(t)
	q := amqpQueue(t, b, ch, "q")
	cancels := ch.NotifyCancel(make(chan string, 1))
	d, err := ch.Consume(q, "doomed", false, false, false, false, nil)
	if err != nil {
		t.Fatal(err)
	}
	other := amqpChannel(t, conn)
	if _, err := other.QueueDelete(q, false, false, false); err != nil {
		t.Fatal(err)
	}
	select {
	case tag := <-cancels:
		if tag != "doomed" {
			t.Fatalf("cancel for %q, want doomed", tag)
		}
	case <-time.After(amqpTimeout):
		t.Fatal("no basic.cancel after the queue was deleted")
	}
	select {
	case _, ok := <-d:
		if ok {
			t.Fatal("delivery after cancel")
		}
	case <-time.After(amqpTimeout):
		t.Fatal("delivery channel not closed after basic.cancel from the broker")
	}
	if ch.IsClosed() {
		t.Fatal("channel closed; only the consumer should end")
	}
	amqpAssertAlive(t, conn)
}

// An exclusive consumer keeps others out (403), and cannot start while another consumer exists (403).
func TestBasicExclusiveConsumer(t *testing.T) {
	b, conn, ch := amqpSetup(t)
	q := amqpQueue(t, b, ch, "q")
	if _, err := ch.Consume(q, "solo", false, true, false, false, nil); err != nil {
		t.Fatal(err)
	}
	inUse := "ACCESS_REFUSED - queue '" + q + "' in vhost '/' in exclusive use"
	c2 := amqpChannel(t, conn)
	closed := c2.NotifyClose(make(chan *amqp.Error, 1))
	_, err := c2.Consume(q, "", false, false, false, false, nil)
	amqpAssertChannelError(t, conn, c2, closed, err, amqp.AccessRefused, inUse)

	q2 := amqpQueue(t, b, ch, "q2")
	if _, err := ch.Consume(q2, "shared", false, false, false, false, nil); err != nil {
		t.Fatal(err)
	}
	c3 := amqpChannel(t, conn)
	closed3 := c3.NotifyClose(make(chan *amqp.Error, 1))
	_, err = c3.Consume(q2, "", false, true, false, false, nil)
	amqpAssertChannelError(t, conn, c3, closed3, err, amqp.AccessRefused, "ACCESS_REFUSED - queue '"+q2+"' in vhost '/' in exclusive use")

	// Once the exclusive consumer is cancelled, others may consume.
	if err := ch.Cancel("solo", false); err != nil {
		t.Fatal(err)
	}
	c4 := amqpChannel(t, conn)
	if _, err := c4.Consume(q, "", false, false, false, false, nil); err != nil {
		t.Fatalf("consume after the exclusive consumer left: %v", err)
	}
}

// Reusing a consumer tag on the same channel is a connection error 530 NOT_ALLOWED.
func TestBasicConsumerTagReuse(t *testing.T) {
	b, conn, ch := amqpSetup(t)
	q := amqpQueue(t, b, ch, "q")
	if _, err := ch.Consume(q, "dup", false, false, false, false, nil); err != nil {
		t.Fatal(err)
	}
	// The same tag on another channel is fine.
	if _, err := amqpChannel(t, conn).Consume(q, "dup", false, false, false, false, nil); err != nil {
		t.Fatalf("same tag on another channel: %v", err)
	}
	closed := conn.NotifyClose(make(chan *amqp.Error, 1))
	_, err := ch.Consume(q, "dup", false, false, false, false, nil)
	amqpAssertConnectionError(t, conn, closed, err, amqp.NotAllowed, "NOT_ALLOWED - attempt to reuse consumer tag 'dup'")
}

// mandatory: an unroutable message comes back as basic.return 312 NO_ROUTE with its content; a
// routable one does not; without mandatory an unroutable message is dropped silently.
func TestBasicMandatoryReturn(t *testing.T) {
	b, conn, ch := amqpSetup(t)
	q := amqpQueue(t, b, ch, "q")
	returns := ch.NotifyReturn(make(chan amqp.Return, 4))
	if err := ch.Confirm(false); err != nil {
		t.Fatal(err)
	}
	confirms := ch.NotifyPublish(make(chan amqp.Confirmation, 4))
	x := amqpExchange(t, b, ch, "direct", "x")
	pub := func(exchange, key string, mandatory bool, body string) {
		t.Helper()
		if err := ch.Publish(exchange, key, mandatory, false, amqp.Publishing{Body: []byte(body), MessageId: body, Headers: amqp.Table{"h": body}}); err != nil {
			t.Fatal(err)
		}
	}
	pub("", q, true, "routable")
	pub(x, "nowhere", true, "unroutable")
	pub(x, "nowhere", false, "dropped")
	for i := range 3 {
		select {
		case c := <-confirms:
			if !c.Ack || c.DeliveryTag != uint64(i+1) {
				t.Fatalf("confirm %+v, want ack %d", c, i+1)
			}
		case <-time.After(amqpTimeout):
			t.Fatal("timed out waiting for confirms")
		}
	}
	// basic.return precedes the confirm of its message, so it has arrived.
	select {
	case r := <-returns:
		if r.ReplyCode != amqp.NoRoute || r.ReplyText != "NO_ROUTE" || r.Exchange != x || r.RoutingKey != "nowhere" ||
			string(r.Body) != "unroutable" || r.MessageId != "unroutable" || r.Headers["h"] != "unroutable" {
			t.Fatalf("return %d %q exchange %q key %q body %q", r.ReplyCode, r.ReplyText, r.Exchange, r.RoutingKey, r.Body)
		}
	default:
		t.Fatal("no basic.return for a mandatory unroutable message")
	}
	select {
	case r := <-returns:
		t.Fatalf("unexpected return of %q", r.Body)
	default:
	}
	if n, _ := amqpReady(t, conn, q); n != 1 {
		t.Fatalf("%d ready, want 1", n)
	}
}

// immediate=true is not implemented by RabbitMQ: connection error 540 NOT_IMPLEMENTED.
func TestBasicPublishImmediate(t *testing.T) {
	b, conn, ch := amqpSetup(t)
	q := amqpQueue(t, b, ch, "q")
	closed := conn.NotifyClose(make(chan *amqp.Error, 1))
	if err := ch.Publish("", q, false, true, amqp.Publishing{Body: []byte("now")}); err != nil {
		t.Fatal(err)
	}
	e := amqpWaitClose(t, closed)
	amqpAssertConnectionError(t, conn, nil, e, amqp.NotImplemented, "NOT_IMPLEMENTED - immediate=true")
}

// basic.get: get-empty on an empty queue, message-count of what remains, ack and no-ack modes.
func TestBasicGet(t *testing.T) {
	b, conn, ch := amqpSetup(t)
	q := amqpQueue(t, b, ch, "q")
	amqpGetEmpty(t, ch, q)
	amqpPublishN(t, ch, q, 3)
	m := amqpGet(t, ch, q, false)
	if string(m.Body) != "m0" || m.MessageCount != 2 || m.Redelivered || m.DeliveryTag != 1 || m.RoutingKey != q {
		t.Fatalf("get: body %q count %d redelivered %v tag %d key %q", m.Body, m.MessageCount, m.Redelivered, m.DeliveryTag, m.RoutingKey)
	}
	m2 := amqpGet(t, ch, q, true)
	if string(m2.Body) != "m1" || m2.MessageCount != 1 || m2.DeliveryTag != 2 {
		t.Fatalf("get no-ack: body %q count %d tag %d", m2.Body, m2.MessageCount, m2.DeliveryTag)
	}
	if err := m.Ack(false); err != nil {
		t.Fatal(err)
	}
	amqpGet(t, ch, q, true)
	amqpGetEmpty(t, ch, q)
	if err := ch.Close(); err != nil {
		t.Fatal(err)
	}
	if n, _ := amqpReady(t, conn, q); n != 0 {
		t.Fatalf("%d ready after everything was acked, want 0", n)
	}
}

// ack with multiple=true settles every tag up to and including the given one; the rest are requeued,
// in their order and redelivered, when the channel closes.
func TestBasicAckMultipleAndRequeueOnClose(t *testing.T) {
	b, conn, ch := amqpSetup(t)
	q := amqpQueue(t, b, ch, "q")
	amqpPublishN(t, ch, q, 6)
	c := amqpChannel(t, conn)
	d := amqpConsume(t, c, q, false)
	var ms []amqp.Delivery
	for range 6 {
		ms = append(ms, amqpRecv(t, d))
	}
	if err := ms[2].Ack(true); err != nil { // m0..m2
		t.Fatal(err)
	}
	if err := ms[4].Ack(false); err != nil { // m4
		t.Fatal(err)
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	if n, _ := amqpReady(t, conn, q); n != 2 {
		t.Fatalf("%d ready after close, want 2 (m3, m5)", n)
	}
	d2 := amqpConsume(t, ch, q, false)
	for _, want := range []string{"m3", "m5"} {
		m := amqpRecv(t, d2)
		if string(m.Body) != want || !m.Redelivered {
			t.Fatalf("got %q redelivered=%v, want %q redelivered", m.Body, m.Redelivered, want)
		}
	}
}

// Unacked messages return to their queue in their original order when the connection closes, ahead of
// messages that were never delivered.
func TestBasicRequeueOrderOnConnectionClose(t *testing.T) {
	b, conn, ch := amqpSetup(t)
	q := amqpQueue(t, b, ch, "q")
	all := amqpPublishN(t, ch, q, 8)
	c2 := amqpDial(t, b)
	cch := amqpChannel(t, c2)
	if err := cch.Qos(5, 0, false); err != nil {
		t.Fatal(err)
	}
	d := amqpConsume(t, cch, q, false)
	got := amqpRecvBodies(t, d, 5)
	if !slices.Equal(got, all[:5]) {
		t.Fatalf("first deliveries %q", got)
	}
	if err := c2.Close(); err != nil {
		t.Fatal(err)
	}
	d2 := amqpConsume(t, ch, q, true)
	for i, want := range all {
		m := amqpRecv(t, d2)
		if string(m.Body) != want || m.Redelivered != (i < 5) {
			t.Fatalf("message %d: %q redelivered=%v, want %q redelivered=%v", i, m.Body, m.Redelivered, want, i < 5)
		}
	}
	_ = conn
}

// nack and reject: requeue=true puts the message back (redelivered, at the head), requeue=false drops
// it; nack multiple covers every earlier unacked tag.
func TestBasicNackReject(t *testing.T) {
	b, conn, ch := amqpSetup(t)
	q := amqpQueue(t, b, ch, "q")
	amqpPublishN(t, ch, q, 4)
	m0 := amqpGet(t, ch, q, false)
	if err := m0.Reject(true); err != nil {
		t.Fatal(err)
	}
	again := amqpGet(t, ch, q, false)
	if string(again.Body) != "m0" || !again.Redelivered {
		t.Fatalf("after reject requeue: %q redelivered=%v, want m0 redelivered", again.Body, again.Redelivered)
	}
	if err := again.Reject(false); err != nil {
		t.Fatal(err)
	}
	m1 := amqpGet(t, ch, q, false)
	m2 := amqpGet(t, ch, q, false)
	if string(m1.Body) != "m1" || string(m2.Body) != "m2" {
		t.Fatalf("got %q %q", m1.Body, m2.Body)
	}
	if err := m2.Nack(true, true); err != nil { // m1 and m2 back
		t.Fatal(err)
	}
	var got []string
	var last amqp.Delivery
	for range 3 {
		last = amqpGet(t, ch, q, false)
		got = append(got, fmt.Sprintf("%s:%v", last.Body, last.Redelivered))
	}
	if want := []string{"m1:true", "m2:true", "m3:false"}; !slices.Equal(got, want) {
		t.Fatalf("after nack: %q, want %q", got, want)
	}
	if err := last.Nack(true, false); err != nil { // drop all three
		t.Fatal(err)
	}
	amqpGetEmpty(t, ch, q)
	if err := ch.Close(); err != nil {
		t.Fatal(err)
	}
	if n, _ := amqpReady(t, conn, q); n != 0 {
		t.Fatalf("%d ready after nack requeue=false, want 0 (dropped)", n)
	}
}

// Acking a delivery tag the channel never issued, or acking one twice, is 406 PRECONDITION_FAILED.
func TestBasicUnknownDeliveryTag(t *testing.T) {
	b, conn, ch := amqpSetup(t)
	q := amqpQueue(t, b, ch, "q")
	for _, c := range []struct {
		name   string
		do     func(ch *amqp.Channel)
		prefix string
	}{
		{"ack never issued", func(ch *amqp.Channel) { _ = ch.Ack(42, false) }, "PRECONDITION_FAILED - unknown delivery tag 42"},
		{"double ack", func(ch *amqp.Channel) {
			m := amqpGet(t, ch, q, false)
			_ = m.Ack(false)
			_ = m.Ack(false)
		}, "PRECONDITION_FAILED - unknown delivery tag 1"},
		{"nack never issued", func(ch *amqp.Channel) { _ = ch.Nack(7, false, true) }, "PRECONDITION_FAILED - unknown delivery tag 7"},
		{"reject never issued", func(ch *amqp.Channel) { _ = ch.Reject(9, true) }, "PRECONDITION_FAILED - unknown delivery tag 9"},
	} {
		t.Run(c.name, func(t *testing.T) {
			amqpPublish(t, ch, "", q, "m")
			c2 := amqpChannel(t, conn)
			closed := c2.NotifyClose(make(chan *amqp.Error, 1))
			c.do(c2)
			amqpAssertChannelError(t, conn, c2, nil, amqpWaitClose(t, closed), amqp.PreconditionFailed, c.prefix)
		})
	}
}

// basic.recover requeue=true redelivers every unacked message (redelivered=true); RabbitMQ answers
// requeue=false with connection error 540 NOT_IMPLEMENTED.
func TestBasicRecover(t *testing.T) {
	b, conn, ch := amqpSetup(t)
	q := amqpQueue(t, b, ch, "q")
	amqpPublishN(t, ch, q, 2)
	d := amqpConsume(t, ch, q, false)
	first := amqpRecvBodies(t, d, 2)
	//lint:ignore SA1019 basic.recover is what this test checks
	if err := ch.Recover(true); err != nil {
		t.Fatal(err)
	}
	for _, want := range first {
		m := amqpRecv(t, d)
		if string(m.Body) != want || !m.Redelivered {
			t.Fatalf("after recover: %q redelivered=%v, want %q redelivered", m.Body, m.Redelivered, want)
		}
	}
	closed := conn.NotifyClose(make(chan *amqp.Error, 1))
	//lint:ignore SA1019 basic.recover is what this test checks
	amqpAssertConnectionError(t, conn, closed, ch.Recover(false), amqp.NotImplemented, "NOT_IMPLEMENTED - requeue=false")
}

// PublishWithContext and the large and empty bodies through a consumer.
func TestBasicPublishWithContextBodies(t *testing.T) {
	b, _, ch := amqpSetup(t)
	q := amqpQueue(t, b, ch, "q")
	d := amqpConsume(t, ch, q, true)
	big := []byte(strings.Repeat("0123456789abcdef", 1<<16)) // 1 MiB
	for _, body := range [][]byte{big, {}, []byte("small")} {
		if err := ch.PublishWithContext(t.Context(), "", q, false, false, amqp.Publishing{Body: body}); err != nil {
			t.Fatal(err)
		}
		if m := amqpRecv(t, d); string(m.Body) != string(body) {
			t.Fatalf("body of %d bytes came back with %d", len(body), len(m.Body))
		}
	}
}
