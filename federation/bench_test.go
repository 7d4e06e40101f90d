package federation_test

import (
	"testing"
	"time"

	amqp091 "github.com/rabbitmq/amqp091-go"

	"github.com/warrenmq/warren/internal/testbroker"
	"github.com/warrenmq/warren/internal/wait"
	"github.com/warrenmq/warren/server"
	"github.com/warrenmq/warren/storage"
)

// BenchmarkFederatedExchangePersistent: persistent messages published to an upstream Warren's
// exchange until all of them are in the durable queue bound downstream, a Warren on a Pebble store
// (each confirm waits for an fsync: the link pipelines them, acking upstream in batches).
func BenchmarkFederatedExchangePersistent(b *testing.B) {
	up := testbroker.Start(b)
	st, err := storage.OpenPebble(b.TempDir(), storage.PebbleOptions{})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { st.Close() }) // registered first, so it runs after the broker's cleanup
	down := testbroker.Start(b, func(o *server.Options) { o.Store = st })
	if _, err := up.Srv.DeclareExchange("/", "bx", server.ExchangeSpec{Type: "fanout", Durable: true}); err != nil {
		b.Fatal(err)
	}
	if _, err := down.Srv.DeclareExchange("/", "bx", server.ExchangeSpec{Type: "fanout", Durable: true}); err != nil {
		b.Fatal(err)
	}
	if _, err := down.Srv.DeclareQueue("/", "bq", server.QueueSpec{Durable: true}); err != nil {
		b.Fatal(err)
	}
	if err := down.Srv.Bind("/", "bx", "queue", "bq", "", nil); err != nil {
		b.Fatal(err)
	}
	if _, err := down.Srv.PutParameter(server.Parameter{Component: "federation-upstream", Vhost: "/", Name: "u", Value: map[string]any{"uri": up.URL}}); err != nil {
		b.Fatal(err)
	}
	if _, err := down.Srv.PutPolicy(server.Policy{Vhost: "/", Name: "p", Pattern: "^bx$", Definition: map[string]any{"federation-upstream": "u"}}); err != nil {
		b.Fatal(err)
	}
	wait.For(b, 10*time.Second, "the upstream binding", func() bool {
		bs, _ := up.Srv.VhostBindings("/")
		for _, x := range bs {
			if x.Source == "bx" {
				return true
			}
		}
		return false
	})
	conn, err := amqp091.Dial(up.URL)
	if err != nil {
		b.Fatal(err)
	}
	defer conn.Close()
	ch, err := conn.Channel()
	if err != nil {
		b.Fatal(err)
	}
	body := make([]byte, 100)
	b.ResetTimer()
	start := time.Now()
	for i := 0; i < b.N; i++ {
		if err := ch.Publish("bx", "", false, false, amqp091.Publishing{DeliveryMode: 2, Body: body}); err != nil {
			b.Fatal(err)
		}
	}
	wait.For(b, time.Minute, "every message downstream", func() bool {
		q, err := down.Srv.Queue("/", "bq")
		return err == nil && q.Ready+q.Unacked >= int64(b.N)
	})
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "msgs/s")
}
