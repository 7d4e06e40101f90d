package streamclient

import (
	"testing"
	"time"

	amqp091 "github.com/rabbitmq/amqp091-go"
	"github.com/rabbitmq/rabbitmq-stream-go-client/pkg/stream"
)

// Sub-entry batches as the Go client sends them (SetSubEntrySize with compression none and
// gzip): every message is stored with its own offset and delivered, in order, to a stream
// consumer and to an AMQP 0-9-1 consumer (Warren uncompresses on publish; RabbitMQ 3.10.8 stores
// the batch as it came and gives an AMQP 0-9-1 consumer an empty body for a gzip batch).
func TestStreamSubEntryBatches(t *testing.T) {
	b := startStream(t, nil)
	e := env(t, b.streamURI)
	for _, comp := range []struct {
		name string
		c    stream.Compression
	}{{"none", stream.Compression{}.None()}, {"gzip", stream.Compression{}.Gzip()}} {
		t.Run(comp.name, func(t *testing.T) {
			name := streamName(t)
			if err := e.DeclareStream(name, nil); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { e.DeleteStream(name) })
			p, err := e.NewProducer(name, stream.NewProducerOptions().SetSubEntrySize(10).SetCompression(comp.c))
			if err != nil {
				t.Fatal(err)
			}
			want := bodies("sub-"+comp.name, 25) // batches of 10, 10 and 5
			publishConfirmed(t, p, want)
			p.Close()

			gotMsgs := consume(t, e, name, stream.OffsetSpecification{}.First(), len(want))
			for i, g := range gotMsgs {
				if g.body != want[i] || g.offset != int64(i) {
					t.Fatalf("stream delivery %d: offset %d body %q, want %d %q", i, g.offset, g.body, i, want[i])
				}
			}

			if externalURL != "" && comp.name == "gzip" {
				return // RabbitMQ 3.10.8 hands AMQP 0-9-1 consumers a compressed batch as one empty message
			}
			conn, err := amqp091.Dial(b.amqpURL)
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			ch, err := conn.Channel()
			if err != nil {
				t.Fatal(err)
			}
			if err := ch.Qos(100, 0, false); err != nil {
				t.Fatal(err)
			}
			dels, err := ch.Consume(name, "", false, false, false, false, amqp091.Table{"x-stream-offset": "first"})
			if err != nil {
				t.Fatal(err)
			}
			for i := range want {
				select {
				case d := <-dels:
					if string(d.Body) != want[i] || d.Headers["x-stream-offset"] != int64(i) {
						t.Fatalf("AMQP 0-9-1 delivery %d: body %q x-stream-offset %v, want %q %d", i, d.Body, d.Headers["x-stream-offset"], want[i], i)
					}
				case <-time.After(10 * time.Second):
					t.Fatalf("%d of %d AMQP 0-9-1 deliveries", i, len(want))
				}
			}
		})
	}
}
