package integration

import (
	"context"
	"errors"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/warrenmq/warren/server"
	"github.com/warrenmq/warren/storage"
)

// Durable exchanges, queues and bindings (with their arguments) come back after a restart on the
// same store; transient ones and exclusive queues do not.
func TestRestartKeepsDurableTopology(t *testing.T) {
	store := storage.NewMemStore()
	b1 := startBroker(t, func(o *server.Options) { o.Store = store })
	conn, err := amqp.Dial(b1.URL)
	if err != nil {
		t.Fatal(err)
	}
	ch, err := conn.Channel()
	if err != nil {
		t.Fatal(err)
	}
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(ch.ExchangeDeclare("d.x", "topic", true, false, false, false, amqp.Table{"alternate-exchange": "amq.fanout"}))
	must(ch.ExchangeDeclare("t.x", "fanout", false, false, false, false, nil))
	_, err = ch.QueueDeclare("d.q", true, false, false, false, amqp.Table{"x-max-length": int32(10)})
	must(err)
	_, err = ch.QueueDeclare("t.q", false, false, false, false, nil)
	must(err)
	_, err = ch.QueueDeclare("x.q", true, false, true, false, nil) // exclusive: never survives
	must(err)
	must(ch.QueueBind("d.q", "a.*", "d.x", false, nil))
	must(ch.QueueBind("t.q", "a.*", "d.x", false, nil)) // to a transient queue: not kept
	must(ch.QueueBind("d.q", "", "t.x", false, nil))    // from a transient exchange: not kept
	must(ch.ExchangeDeclare("d.gone", "direct", true, false, false, false, nil))
	must(ch.ExchangeDelete("d.gone", false, false))
	conn.Close()

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	must(b1.Srv.Shutdown(ctx))

	b2 := startBroker(t, func(o *server.Options) { o.Store = store.Reopen() })
	conn2, err := amqp.Dial(b2.URL)
	must(err)
	defer conn2.Close()
	ch2, err := conn2.Channel()
	must(err)
	// Same arguments: an equivalent redeclare succeeds; a different one would be 406.
	must(ch2.ExchangeDeclare("d.x", "topic", true, false, false, false, amqp.Table{"alternate-exchange": "amq.fanout"}))
	q, err := ch2.QueueDeclare("d.q", true, false, false, false, amqp.Table{"x-max-length": int32(10)})
	must(err)
	if q.Messages != 0 {
		t.Fatalf("d.q has %d messages", q.Messages)
	}
	for _, name := range []string{"t.q", "x.q"} {
		c, err := conn2.Channel()
		must(err)
		_, err = c.QueueDeclarePassive(name, false, false, false, false, nil)
		var ae *amqp.Error
		if !errors.As(err, &ae) || ae.Code != amqp.NotFound {
			t.Fatalf("queue %s after restart: %v, want 404", name, err)
		}
	}
	for _, name := range []string{"t.x", "d.gone"} {
		c, err := conn2.Channel()
		must(err)
		err = c.ExchangeDeclarePassive(name, "direct", false, false, false, false, nil)
		var ae *amqp.Error
		if !errors.As(err, &ae) || ae.Code != amqp.NotFound {
			t.Fatalf("exchange %s after restart: %v, want 404", name, err)
		}
	}
	// The durable binding routes again.
	must(ch2.Confirm(false))
	confirms := ch2.NotifyPublish(make(chan amqp.Confirmation, 1))
	must(ch2.Publish("d.x", "a.b", false, false, amqp.Publishing{Body: []byte("after")}))
	select {
	case <-confirms:
	case <-time.After(5 * time.Second):
		t.Fatal("no confirm")
	}
	m, ok, err := ch2.Get("d.q", true)
	must(err)
	if !ok || string(m.Body) != "after" {
		t.Fatalf("get: ok=%v body=%q, want the message routed by the recovered binding", ok, m.Body)
	}
}
