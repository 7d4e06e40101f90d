package streamclient

import (
	"fmt"
	"sync/atomic"
	"testing"
	"time"

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
