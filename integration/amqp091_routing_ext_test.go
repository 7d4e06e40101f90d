package integration

// RabbitMQ's routing extensions: alternate exchanges and sender-selected distribution (CC, BCC).

import (
	"testing"

	amqp "github.com/rabbitmq/amqp091-go"
)

func TestAMQP091AlternateExchange(t *testing.T) {
	b, conn, ch := amqpSetup(t)
	ae := amqpExchange(t, b, ch, "fanout", "ae")
	aeQ := amqpQueue(t, b, ch, "aeq")
	if err := ch.QueueBind(aeQ, "", ae, false, nil); err != nil {
		t.Fatal(err)
	}
	main := amqpName(t, "main")
	if err := ch.ExchangeDeclare(main, "direct", false, false, false, false, amqp.Table{"alternate-exchange": ae}); err != nil {
		t.Fatal(err)
	}
	amqpCleanup(t, b, "exchange", main)
	mainQ := amqpQueue(t, b, ch, "mainq")
	if err := ch.QueueBind(mainQ, "k", main, false, nil); err != nil {
		t.Fatal(err)
	}
	returns := ch.NotifyReturn(make(chan amqp.Return, 4))
	if err := ch.Publish(main, "k", true, false, amqp.Publishing{Body: []byte("routed")}); err != nil {
		t.Fatal(err)
	}
	if err := ch.Publish(main, "nowhere", true, false, amqp.Publishing{Body: []byte("unroutable")}); err != nil {
		t.Fatal(err)
	}
	if d := amqpGet(t, ch, mainQ, true); string(d.Body) != "routed" {
		t.Fatalf("main queue got %q", d.Body)
	}
	d := amqpGet(t, ch, aeQ, true)
	if string(d.Body) != "unroutable" || d.Exchange != main || d.RoutingKey != "nowhere" {
		t.Fatalf("alternate queue got %q from %q/%q, want the unroutable message with its exchange and key", d.Body, d.Exchange, d.RoutingKey)
	}
	amqpGetEmpty(t, ch, aeQ)

	// Recursively: x1 -> x2 -> ae; and a cycle x3 <-> x4 with no queue ends with a return.
	x1, x2, x3, x4 := amqpName(t, "x1"), amqpName(t, "x2"), amqpName(t, "x3"), amqpName(t, "x4")
	for _, x := range []struct{ name, alt string }{{x2, ae}, {x1, x2}, {x3, x4}, {x4, x3}} {
		if err := ch.ExchangeDeclare(x.name, "topic", false, false, false, false, amqp.Table{"alternate-exchange": x.alt}); err != nil {
			t.Fatal(err)
		}
		amqpCleanup(t, b, "exchange", x.name)
	}
	if err := ch.Publish(x1, "deep", true, false, amqp.Publishing{Body: []byte("two hops")}); err != nil {
		t.Fatal(err)
	}
	if err := ch.Publish(x3, "cycle", true, false, amqp.Publishing{Body: []byte("cycle")}); err != nil {
		t.Fatal(err)
	}
	if d := amqpGet(t, ch, aeQ, true); string(d.Body) != "two hops" {
		t.Fatalf("alternate queue got %q, want the message through two alternate exchanges", d.Body)
	}
	select {
	case r := <-returns:
		if string(r.Body) != "cycle" || r.ReplyCode != 312 {
			t.Fatalf("returned %q %d, want only the message caught in the cycle", r.Body, r.ReplyCode)
		}
	case <-conn.NotifyClose(make(chan *amqp.Error, 1)):
		t.Fatal("connection closed")
	}
}

func TestAMQP091SenderSelectedDistribution(t *testing.T) {
	b, conn, ch := amqpSetup(t)
	x := amqpExchange(t, b, ch, "direct", "x")
	qs := map[string]string{}
	for _, k := range []string{"a", "b", "c", "d"} {
		qs[k] = amqpQueue(t, b, ch, "q"+k)
		if err := ch.QueueBind(qs[k], k, x, false, nil); err != nil {
			t.Fatal(err)
		}
	}
	err := ch.Publish(x, "a", false, false, amqp.Publishing{Body: []byte("m"), Headers: amqp.Table{
		"CC": []any{"b"}, "BCC": []any{"c"}, "other": "kept",
	}})
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"a", "b", "c"} {
		d := amqpGet(t, ch, qs[k], true)
		if d.RoutingKey != "a" {
			t.Errorf("queue %s: routing key %q, want the published one", k, d.RoutingKey)
		}
		if _, ok := d.Headers["BCC"]; ok {
			t.Errorf("queue %s: BCC delivered: %v", k, d.Headers)
		}
		if cc, ok := d.Headers["CC"].([]any); !ok || len(cc) != 1 || cc[0] != "b" || d.Headers["other"] != "kept" {
			t.Errorf("queue %s: headers %v, want CC and other kept", k, d.Headers)
		}
	}
	amqpGetEmpty(t, ch, qs["d"])

	// Through the default exchange, CC names queues.
	if err := ch.Publish("", qs["a"], false, false, amqp.Publishing{Body: []byte("n"), Headers: amqp.Table{"CC": []any{qs["d"]}}}); err != nil {
		t.Fatal(err)
	}
	amqpGet(t, ch, qs["a"], true)
	amqpGet(t, ch, qs["d"], true)

	// A CC that is not an array closes the channel with 406.
	bad := amqpChannel(t, conn)
	closed := bad.NotifyClose(make(chan *amqp.Error, 1))
	if err := bad.Publish(x, "a", false, false, amqp.Publishing{Headers: amqp.Table{"CC": "b"}}); err != nil {
		t.Fatal(err)
	}
	e := amqpWaitClose(t, closed)
	if e.Code != 406 || e.Reason != `PRECONDITION_FAILED - invalid message: {unacceptable_type_in_header,"CC",longstr}` {
		t.Fatalf("bad CC: %d %q", e.Code, e.Reason)
	}
}
