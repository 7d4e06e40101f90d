package streamclient

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	amqp091 "github.com/rabbitmq/amqp091-go"

	"github.com/rabbitmq/rabbitmq-stream-go-client/pkg/amqp"
	"github.com/rabbitmq/rabbitmq-stream-go-client/pkg/message"
	"github.com/rabbitmq/rabbitmq-stream-go-client/pkg/stream"

	"github.com/warrenmq/warren/storage"
)

// BenchmarkStreamClient measures publish with confirms and consume from first with the Go
// stream client: against an in-process Warren on a Pebble store in a temporary directory (fsync
// as in production), or with WARREN_TEST_URL against that RabbitMQ's stream port. msgs/s is
// the rate; one op is one message.
//
//	go test -run XXX -bench BenchmarkStreamClient -benchtime 200000x ./integration/streamclient
//	WARREN_TEST_URL=amqp://guest:guest@127.0.0.1:5672/ go test -run XXX -bench BenchmarkStreamClient -benchtime 200000x ./integration/streamclient
//
// The environment uses the kernel's socket buffers (envOptions): with the client's 8 KiB default
// both brokers' consumers stall on loopback.
func BenchmarkStreamClient(b *testing.B) {
	var store storage.Store
	if externalURL == "" {
		st, err := storage.OpenPebble(b.TempDir(), storage.PebbleOptions{})
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { st.Close() })
		store = st
	}
	tg := startStream(b, store)
	e := env(b, tg.streamURI)
	for _, size := range []int{16, 1024} {
		name := streamName(b)
		if err := e.DeclareStream(name, nil); err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { e.DeleteStream(name) })
		b.Run(fmt.Sprintf("publish/%dB", size), func(b *testing.B) {
			p, err := e.NewProducer(name, stream.NewProducerOptions().SetBatchSize(100))
			if err != nil {
				b.Fatal(err)
			}
			defer p.Close()
			var confirmed atomic.Int64
			done := make(chan struct{})
			ch := p.NotifyPublishConfirmation()
			go func() {
				for cs := range ch {
					for _, c := range cs {
						if !c.IsConfirmed() {
							b.Error("not confirmed")
						}
					}
					if confirmed.Add(int64(len(cs))) == int64(b.N) {
						close(done)
					}
				}
			}()
			body := make([]byte, size)
			batch := make([]message.StreamMessage, 0, 100)
			b.ResetTimer()
			start := time.Now()
			for i := 0; i < b.N; i++ {
				batch = append(batch, amqp.NewMessage(body))
				if len(batch) == cap(batch) || i == b.N-1 {
					if err := p.BatchSend(batch); err != nil {
						b.Fatal(err)
					}
					batch = batch[:0]
				}
			}
			select {
			case <-done:
			case <-time.After(5 * time.Minute):
				b.Fatalf("%d of %d confirmed", confirmed.Load(), b.N)
			}
			b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "msgs/s")
		})
		b.Run(fmt.Sprintf("consume/%dB", size), func(b *testing.B) {
			// What publish left there, topped up to b.N.
			p, err := e.NewProducer(name, stream.NewProducerOptions().SetBatchSize(100))
			if err != nil {
				b.Fatal(err)
			}
			body := make([]byte, size)
			pub := make([]message.StreamMessage, 0, 100)
			for i := 0; i < b.N; i++ {
				pub = append(pub, amqp.NewMessage(body))
				if len(pub) == cap(pub) || i == b.N-1 {
					p.BatchSend(pub)
					pub = pub[:0]
				}
			}
			p.Close()
			var n atomic.Int64
			done := make(chan struct{})
			b.ResetTimer()
			start := time.Now()
			c, err := e.NewConsumer(name, func(_ stream.ConsumerContext, _ *amqp.Message) {
				if n.Add(1) == int64(b.N) {
					close(done)
				}
			}, stream.NewConsumerOptions().SetOffset(stream.OffsetSpecification{}.First()).SetCRCCheck(true))
			if err != nil {
				b.Fatal(err)
			}
			select {
			case <-done:
			case <-time.After(5 * time.Minute):
				b.Fatalf("%d of %d consumed", n.Load(), b.N)
			}
			b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "msgs/s")
			c.Close()
		})
	}
}

// BenchmarkStreamAMQP is BenchmarkStreamClient over AMQP 0-9-1 (amqp091-go): publish to a stream
// with confirms (at most 1000 unconfirmed, persistent), then consume from first with a prefetch
// of 1000 and an ack (multiple) every 100 deliveries. msgs/s is the rate; one op is one message.
//
//	go test -run XXX -bench BenchmarkStreamAMQP -benchtime 200000x ./integration/streamclient
func BenchmarkStreamAMQP(b *testing.B) {
	var store storage.Store
	if externalURL == "" {
		st, err := storage.OpenPebble(b.TempDir(), storage.PebbleOptions{})
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { st.Close() })
		store = st
	}
	tg := startStream(b, store)
	conn, err := amqp091.Dial(tg.amqpURL)
	if err != nil {
		b.Fatal(err)
	}
	defer conn.Close()
	const window = 1000
	publish := func(b *testing.B, name string, n, size int) {
		ch, err := conn.Channel()
		if err != nil {
			b.Fatal(err)
		}
		defer ch.Close()
		if err := ch.Confirm(false); err != nil {
			b.Fatal(err)
		}
		confirms := ch.NotifyPublish(make(chan amqp091.Confirmation, window))
		body := make([]byte, size)
		ctx := context.Background()
		acked := 0
		wait := func() {
			select {
			case c := <-confirms:
				if !c.Ack {
					b.Fatalf("message %d nacked", c.DeliveryTag)
				}
				acked++
			case <-time.After(time.Minute):
				b.Fatalf("%d of %d confirmed", acked, n)
			}
		}
		for i := 0; i < n; i++ {
			if i-acked >= window {
				wait()
			}
			if err := ch.PublishWithContext(ctx, "", name, false, false, amqp091.Publishing{Body: body, DeliveryMode: 2}); err != nil {
				b.Fatal(err)
			}
		}
		for acked < n {
			wait()
		}
	}
	for _, size := range []int{16, 1024} {
		name := streamName(b)
		ch, err := conn.Channel()
		if err != nil {
			b.Fatal(err)
		}
		if _, err := ch.QueueDeclare(name, true, false, false, false, amqp091.Table{"x-queue-type": "stream"}); err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() {
			if ch, err := conn.Channel(); err == nil {
				ch.QueueDelete(name, false, false, false)
				ch.Close()
			}
		})
		ch.Close()
		b.Run(fmt.Sprintf("publish/%dB", size), func(b *testing.B) {
			start := time.Now()
			publish(b, name, b.N, size)
			b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "msgs/s")
		})
		b.Run(fmt.Sprintf("consume/%dB", size), func(b *testing.B) {
			publish(b, name, b.N, size) // what publish left there, topped up to b.N
			ch, err := conn.Channel()
			if err != nil {
				b.Fatal(err)
			}
			defer ch.Close()
			if err := ch.Qos(window, 0, false); err != nil {
				b.Fatal(err)
			}
			b.ResetTimer()
			start := time.Now()
			dels, err := ch.Consume(name, "", false, false, false, false, amqp091.Table{"x-stream-offset": "first"})
			if err != nil {
				b.Fatal(err)
			}
			for i := 1; i <= b.N; i++ {
				select {
				case d := <-dels:
					if i%100 == 0 || i == b.N {
						d.Ack(true)
					}
				case <-time.After(time.Minute):
					b.Fatalf("%d of %d consumed", i-1, b.N)
				}
			}
			b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "msgs/s")
		})
	}
}
