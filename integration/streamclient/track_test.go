package streamclient

import (
	"testing"
	"time"

	amqp091 "github.com/rabbitmq/amqp091-go"
	"github.com/rabbitmq/rabbitmq-stream-go-client/pkg/amqp"
	"github.com/rabbitmq/rabbitmq-stream-go-client/pkg/stream"
)

// TestStreamTrackAcrossProtocols: an AMQP 0-9-1 consumer's server-side tracked offset (its tag
// the reference) is what the stream protocol's query_offset answers, and an offset stored over
// the stream protocol is where a tracking AMQP 0-9-1 consumer resumes. Warren only (RabbitMQ has
// no tracking over AMQP 0-9-1).
func TestStreamTrackAcrossProtocols(t *testing.T) {
	if externalURL != "" {
		t.Skip("RabbitMQ has no server-side offset tracking over AMQP 0-9-1")
	}
	b := startStream(t, nil)
	e := env(t, b.streamURI)
	name := streamName(t)
	if err := e.DeclareStream(name, nil); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.DeleteStream(name) })
	p, err := e.NewProducer(name, nil)
	if err != nil {
		t.Fatal(err)
	}
	publishConfirmed(t, p, bodies("x", 10))
	p.Close()

	conn, err := amqp091.Dial(b.amqpURL)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	consume := func(tag string) (*amqp091.Channel, <-chan amqp091.Delivery) {
		t.Helper()
		ch, err := conn.Channel()
		if err != nil {
			t.Fatal(err)
		}
		if err := ch.Qos(20, 0, false); err != nil {
			t.Fatal(err)
		}
		d, err := ch.Consume(name, tag, false, false, false, false, amqp091.Table{"x-stream-offset": nil})
		if err != nil {
			t.Fatal(err)
		}
		return ch, d
	}
	recv := func(d <-chan amqp091.Delivery) amqp091.Delivery {
		t.Helper()
		select {
		case m := <-d:
			return m
		case <-time.After(10 * time.Second):
			t.Fatal("no delivery")
		}
		panic("unreachable")
	}

	ch, d := consume("amqp-reader")
	var last amqp091.Delivery
	for range 5 {
		last = recv(d)
	}
	if err := last.Ack(true); err != nil {
		t.Fatal(err)
	}
	if err := ch.Close(); err != nil { // the ack is processed before close-ok
		t.Fatal(err)
	}
	if off, err := e.QueryOffset("amqp-reader", name); err != nil || off != 4 {
		t.Fatalf("QueryOffset(amqp-reader) = %d, %v; want 4", off, err)
	}

	// The other way: an offset stored over the stream protocol.
	c, err := e.NewConsumer(name, func(stream.ConsumerContext, *amqp.Message) {},
		stream.NewConsumerOptions().SetConsumerName("stream-reader").SetOffset(stream.OffsetSpecification{}.First()).SetManualCommit())
	if err != nil {
		t.Fatal(err)
	}
	if err := c.StoreCustomOffset(7); err != nil {
		t.Fatal(err)
	}
	// On the consumer's own connection: store_offset (no response) is read before query_offset.
	if off, err := c.QueryOffset(); err != nil || off != 7 {
		t.Fatalf("QueryOffset(stream-reader) = %d, %v; want 7", off, err)
	}
	c.Close()
	ch, d = consume("stream-reader")
	if m := recv(d); string(m.Body) != "x-8" || m.Headers["x-stream-offset"] != int64(8) {
		t.Fatalf("resumed at %q (offset %v), want x-8 at 8", m.Body, m.Headers["x-stream-offset"])
	}
	ch.Close()
}
