package integration

import (
	"fmt"
	"testing"

	amqp "github.com/rabbitmq/amqp091-go"
)

// BenchmarkPublishDeliver publishes b.N transient 16-byte messages on one connection to a queue
// that one consumer on another connection drains (no-ack, or acking every 100th delivery with
// multiple, prefetch 1000): the publish and deliver hot path over loopback, client included.
//
//	go test -run '^$' -bench PublishDeliver -benchmem ./integration
func BenchmarkPublishDeliver(b *testing.B) {
	for _, noAck := range []bool{true, false} {
		b.Run(fmt.Sprintf("noack=%v", noAck), func(b *testing.B) {
			br := startBroker(b)
			pc, err := amqp.Dial(br.URL)
			if err != nil {
				b.Fatal(err)
			}
			defer pc.Close()
			cc, err := amqp.Dial(br.URL)
			if err != nil {
				b.Fatal(err)
			}
			defer cc.Close()
			pch, err := pc.Channel()
			if err != nil {
				b.Fatal(err)
			}
			cch, err := cc.Channel()
			if err != nil {
				b.Fatal(err)
			}
			q, err := cch.QueueDeclare("", false, true, true, false, nil)
			if err != nil {
				b.Fatal(err)
			}
			if err := cch.Qos(1000, 0, false); err != nil {
				b.Fatal(err)
			}
			ds, err := cch.Consume(q.Name, "", noAck, false, false, false, nil)
			if err != nil {
				b.Fatal(err)
			}
			body := make([]byte, 16)
			done := make(chan error, 1)
			b.ReportAllocs()
			b.ResetTimer()
			go func() {
				for i := 1; i <= b.N; i++ {
					d, ok := <-ds
					if !ok {
						done <- fmt.Errorf("deliveries closed after %d", i-1)
						return
					}
					if !noAck && (i%100 == 0 || i == b.N) {
						if err := d.Ack(true); err != nil {
							done <- err
							return
						}
					}
				}
				done <- nil
			}()
			for range b.N {
				if err := pch.Publish("", q.Name, false, false, amqp.Publishing{Body: body}); err != nil {
					b.Fatal(err)
				}
			}
			if err := <-done; err != nil {
				b.Fatal(err)
			}
			b.StopTimer()
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
		})
	}
}
