package streamclient

import (
	"fmt"
	"testing"
	"time"

	amqp091 "github.com/rabbitmq/amqp091-go"
	"github.com/rabbitmq/rabbitmq-stream-go-client/pkg/amqp"
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

// Consecutive messages with the same and with different properties each arrive with their own
// (a subscription encodes the sections before the body once while the properties repeat), and
// never with the x-stream-offset header an AMQP 0-9-1 consumer gets.
func TestStreamPropertiesPerMessage(t *testing.T) {
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
	msg := func(body, mid string, app map[string]any) *amqp.AMQP10 {
		m := amqp.NewMessage([]byte(body))
		if mid != "" {
			m.Properties = &amqp.MessageProperties{MessageID: mid}
		}
		m.ApplicationProperties = app
		return m
	}
	msgs := []*amqp.AMQP10{msg("a", "m1", nil), msg("b", "m1", nil), msg("c", "m2", map[string]any{"k": "v"}),
		msg("d", "", nil), msg("e", "m2", map[string]any{"k": "v"})}
	confirms := p.NotifyPublishConfirmation()
	for _, m := range msgs {
		if err := p.Send(m); err != nil {
			t.Fatal(err)
		}
	}
	for n := 0; n < len(msgs); {
		select {
		case cs := <-confirms:
			n += len(cs)
		case <-time.After(10 * time.Second):
			t.Fatalf("%d of %d confirms", n, len(msgs))
		}
	}
	p.Close()
	got := consume(t, e, name, stream.OffsetSpecification{}.First(), len(msgs))
	for i, g := range got {
		w := msgs[i]
		var gotID, wantID any
		if g.msg.Properties != nil {
			gotID = g.msg.Properties.MessageID
		}
		if w.Properties != nil {
			wantID = w.Properties.MessageID
		}
		if g.body != string(w.GetData()[0]) || gotID != wantID || fmt.Sprint(g.msg.ApplicationProperties["k"]) != fmt.Sprint(w.ApplicationProperties["k"]) {
			t.Errorf("message %d: body %q message-id %v k %v, want %q %v %v", i, g.body, gotID,
				g.msg.ApplicationProperties["k"], w.GetData()[0], wantID, w.ApplicationProperties["k"])
		}
		if _, ok := g.msg.ApplicationProperties["x-stream-offset"]; ok {
			t.Errorf("message %d carries x-stream-offset", i)
		}
	}
}
