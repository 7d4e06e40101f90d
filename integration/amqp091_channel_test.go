package integration

import (
	"bytes"
	"fmt"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
)

// channel.open and channel.close from the client; the connection goes on.
func TestChannelOpenClose(t *testing.T) {
	_, conn, ch := amqpSetup(t)
	closed := ch.NotifyClose(make(chan *amqp.Error, 1))
	if err := ch.Close(); err != nil {
		t.Fatalf("channel.close: %v", err)
	}
	amqpWaitCleanClose(t, closed)
	if !ch.IsClosed() {
		t.Fatal("channel open after channel.close")
	}
	if _, err := ch.QueueDeclare("", false, true, true, false, nil); err == nil {
		t.Fatal("queue.declare on a closed channel succeeded")
	}
	if conn.IsClosed() {
		t.Fatal("closing a channel closed the connection")
	}
	// Many channels at once, each usable, each closed independently.
	var chans []*amqp.Channel
	for range 20 {
		chans = append(chans, amqpChannel(t, conn))
	}
	for i, c := range chans {
		if i%2 == 0 {
			if err := c.Close(); err != nil {
				t.Fatalf("close channel %d: %v", i, err)
			}
		}
	}
	for i, c := range chans {
		if i%2 == 1 {
			if _, err := c.QueueDeclare("", false, true, true, false, nil); err != nil {
				t.Fatalf("channel %d: %v", i, err)
			}
		}
	}
	amqpAssertAlive(t, conn)
}

// A channel error closes that channel only: each soft code (403, 404, 405, 406) closes its channel with
// that code, while the connection and the other channels keep working.
func TestChannelErrorsAreSoft(t *testing.T) {
	b := startBroker(t)
	owner := amqpDial(t, b)
	ownerCh := amqpChannel(t, owner)
	excl, err := ownerCh.QueueDeclare("", false, false, true, false, nil)
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name   string
		code   int
		prefix string
		do     func(ch *amqp.Channel) error
	}{
		{"403 reserved name", amqp.AccessRefused, "ACCESS_REFUSED - ", func(ch *amqp.Channel) error {
			return ch.ExchangeDeclare("amq."+amqpName(t, "x"), "direct", false, false, false, false, nil)
		}},
		{"404 passive", amqp.NotFound, "NOT_FOUND - ", func(ch *amqp.Channel) error {
			_, err := ch.QueueDeclarePassive(amqpName(t, "missing"), false, false, false, false, nil)
			return err
		}},
		{"405 exclusive", amqp.ResourceLocked, "RESOURCE_LOCKED - ", func(ch *amqp.Channel) error {
			_, err := ch.QueueDeclarePassive(excl.Name, false, false, false, false, nil)
			return err
		}},
		{"406 unknown tag", amqp.PreconditionFailed, "PRECONDITION_FAILED - ", func(ch *amqp.Channel) error {
			return ch.Ack(99, false) // asynchronous: the error comes as channel.close
		}},
	}
	conn := amqpDial(t, b)
	bystander := amqpChannel(t, conn)
	q := amqpQueue(t, b, bystander, "q")
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			ch := amqpChannel(t, conn)
			closed := ch.NotifyClose(make(chan *amqp.Error, 1))
			if err := c.do(ch); err != nil {
				amqpAssertChannelError(t, conn, ch, closed, err, c.code, c.prefix)
			} else {
				amqpAssertChannelError(t, conn, ch, nil, amqpWaitClose(t, closed), c.code, c.prefix)
			}
			// The bystander channel opened before still works.
			amqpPublish(t, bystander, "", q, c.name)
			if m := amqpGet(t, bystander, q, true); string(m.Body) != c.name {
				t.Fatalf("bystander got %q", m.Body)
			}
			// The closed channel refuses new work locally.
			if err := ch.Publish("", q, false, false, amqp.Publishing{}); err == nil {
				t.Fatal("publish on a channel closed by the broker succeeded")
			}
		})
	}
}

// channel.flow active=true is answered flow-ok; RabbitMQ does not implement active=false from a client
// and closes the connection with 540 NOT_IMPLEMENTED.
func TestChannelFlow(t *testing.T) {
	_, conn, ch := amqpSetup(t)
	if err := ch.Flow(true); err != nil {
		t.Fatalf("channel.flow active=true: %v", err)
	}
	amqpAssertAlive(t, conn)
	closed := conn.NotifyClose(make(chan *amqp.Error, 1))
	amqpAssertConnectionError(t, conn, closed, ch.Flow(false), amqp.NotImplemented, "NOT_IMPLEMENTED - active=false")
}

// Content assembly: bodies of every size around the frame boundary, a body far larger than frame_max
// (many body frames), and an empty body (no body frame), all arrive intact through deliver and get.
func TestChannelContentSizes(t *testing.T) {
	b, conn, ch := amqpSetup(t)
	q := amqpQueue(t, b, ch, "q")
	fm := conn.Config.FrameSize
	sizes := []int{0, 1, fm - 9, fm - 8, fm - 7, fm, fm + 1, 3*fm + 5, 1 << 20}
	for _, n := range sizes {
		body := make([]byte, n)
		for i := range body {
			body[i] = byte(i*7 + n)
		}
		if err := ch.Publish("", q, false, false, amqp.Publishing{Body: body, MessageId: fmt.Sprint(n)}); err != nil {
			t.Fatalf("publish %d bytes: %v", n, err)
		}
	}
	// Half through basic.get, half through basic.deliver.
	check := func(m amqp.Delivery, n int) {
		t.Helper()
		if m.MessageId != fmt.Sprint(n) || len(m.Body) != n {
			t.Fatalf("got message %q with %d bytes, want %d", m.MessageId, len(m.Body), n)
		}
		for i, c := range m.Body {
			if c != byte(i*7+n) {
				t.Fatalf("%d-byte body differs at %d", n, i)
			}
		}
	}
	for _, n := range sizes[:4] {
		check(amqpGet(t, ch, q, true), n)
	}
	d := amqpConsume(t, ch, q, true)
	for _, n := range sizes[4:] {
		check(amqpRecv(t, d), n)
	}
}

// Every basic property and every field-table type travels unchanged from publisher to consumer.
func TestChannelPropertiesRoundTrip(t *testing.T) {
	b, _, ch := amqpSetup(t)
	q := amqpQueue(t, b, ch, "q")
	ts := time.Unix(1700000000, 0)
	headers := amqp.Table{
		"string":  "hello",
		"bool":    true,
		"int8":    int8(-8),
		"int16":   int16(-16),
		"int32":   int32(-32),
		"int64":   int64(-64),
		"float32": float32(1.5),
		"float64": float64(2.25),
		"decimal": amqp.Decimal{Scale: 2, Value: 12345},
		"time":    ts,
		"bytes":   []byte{0, 1, 2, 255},
		"nil":     nil,
		"table":   amqp.Table{"nested": "yes", "n": int32(1)},
		"array":   []interface{}{"a", int32(2), true},
	}
	pub := amqp.Publishing{
		Headers:         headers,
		ContentType:     "application/json",
		ContentEncoding: "gzip",
		DeliveryMode:    amqp.Persistent,
		Priority:        7,
		CorrelationId:   "corr-1",
		ReplyTo:         "reply-q",
		Expiration:      "60000",
		MessageId:       "msg-1",
		Timestamp:       ts,
		Type:            "kind",
		UserId:          "guest",
		AppId:           "warren-tests",
		Body:            []byte(`{"a":1}`),
	}
	if err := ch.Publish("", q, false, false, pub); err != nil {
		t.Fatal(err)
	}
	m := amqpGet(t, ch, q, true)
	if m.ContentType != pub.ContentType || m.ContentEncoding != pub.ContentEncoding ||
		m.DeliveryMode != pub.DeliveryMode || m.Priority != pub.Priority ||
		m.CorrelationId != pub.CorrelationId || m.ReplyTo != pub.ReplyTo ||
		m.Expiration != pub.Expiration || m.MessageId != pub.MessageId ||
		!m.Timestamp.Equal(pub.Timestamp) || m.Type != pub.Type || m.UserId != pub.UserId ||
		m.AppId != pub.AppId || !bytes.Equal(m.Body, pub.Body) {
		t.Fatalf("properties changed:\n got %+v\nwant %+v", m, pub)
	}
	for k, want := range headers {
		got, ok := m.Headers[k]
		if !ok {
			t.Errorf("header %q missing", k)
			continue
		}
		if fmt.Sprintf("%T %v", got, got) != fmt.Sprintf("%T %v", want, want) {
			t.Errorf("header %q: got %T %v, want %T %v", k, got, got, want, want)
		}
	}
	if len(m.Headers) != len(headers) {
		t.Errorf("headers %v, want %d entries", m.Headers, len(headers))
	}
}

// A user_id property that is not the authenticated user is refused: channel error 406.
func TestChannelUserIDMismatch(t *testing.T) {
	b, conn, ch := amqpSetup(t)
	q := amqpQueue(t, b, ch, "q")
	closed := ch.NotifyClose(make(chan *amqp.Error, 1))
	if err := ch.Publish("", q, false, false, amqp.Publishing{UserId: "mallory", Body: []byte("x")}); err != nil {
		t.Fatal(err)
	}
	e := amqpWaitClose(t, closed)
	amqpAssertChannelError(t, conn, ch, nil, e, amqp.PreconditionFailed,
		"PRECONDITION_FAILED - user_id property set to 'mallory' but authenticated user was 'guest'")
	if n, _ := amqpReady(t, conn, q); n != 0 {
		t.Fatalf("refused message was enqueued: %d ready", n)
	}
}
