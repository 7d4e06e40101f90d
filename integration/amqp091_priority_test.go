package integration

// Priority queues (x-max-priority): the highest priority first when there is a backlog, FIFO
// within a priority, priorities above the maximum treated as the maximum.

import (
	"fmt"
	"testing"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/warrenmq/warren/server"
)

type prioMsg struct {
	body string
	prio uint8
}

func prioPublish(t testing.TB, ch *amqp.Channel, queue string, mode uint8, ms ...prioMsg) {
	t.Helper()
	for _, m := range ms {
		dc, err := ch.PublishWithDeferredConfirm("", queue, false, false, amqp.Publishing{Body: []byte(m.body), Priority: m.prio, DeliveryMode: mode})
		if err != nil {
			t.Fatal(err)
		}
		if dc != nil && !dc.Wait() {
			t.Fatalf("%q nacked", m.body)
		}
	}
}

var prioInput = []prioMsg{{"p1", 1}, {"none", 0}, {"p5a", 5}, {"p3", 3}, {"p9", 9}, {"p5b", 5}, {"p1b", 1}}
var prioOrder = []string{"p5a", "p9", "p5b", "p3", "p1", "p1b", "none"}

func prioGetAll(t testing.TB, ch *amqp.Channel, queue string) []string {
	t.Helper()
	var got []string
	for {
		m, ok, err := ch.Get(queue, true)
		if err != nil {
			t.Fatal(err)
		}
		if !ok {
			return got
		}
		got = append(got, string(m.Body))
	}
}

func TestAMQPPriorityOrder(t *testing.T) {
	b, conn, ch := amqpSetup(t)
	q := ttlDeclare(t, b, ch, "prio", amqp.Table{"x-max-priority": int32(5)})
	prioPublish(t, ch, q, amqp.Transient, prioInput...)
	// A requeued message goes back to its place in its priority.
	m := amqpGet(t, ch, q, false)
	if string(m.Body) != "p5a" {
		t.Fatalf("first %q", m.Body)
	}
	if err := m.Nack(false, true); err != nil {
		t.Fatal(err)
	}
	ttlWaitReady(t, conn, q, len(prioInput))
	if got := prioGetAll(t, ch, q); !equalStrings(got, prioOrder) {
		t.Fatalf("order %q, want %q", got, prioOrder)
	}

	// A consumer with a backlog gets the same order.
	prioPublish(t, ch, q, amqp.Transient, prioInput...)
	cch := amqpChannel(t, conn)
	if err := cch.Qos(1, 0, false); err != nil {
		t.Fatal(err)
	}
	d := amqpConsume(t, cch, q, false)
	var got []string
	for range prioInput {
		m := amqpRecv(t, d)
		got = append(got, string(m.Body))
		if err := m.Ack(false); err != nil {
			t.Fatal(err)
		}
	}
	if !equalStrings(got, prioOrder) {
		t.Fatalf("consumed %q, want %q", got, prioOrder)
	}
}

func TestAMQPPriorityArgs(t *testing.T) {
	_, conn, _ := amqpSetup(t)
	for _, c := range []struct {
		v    any
		text string
	}{
		{int32(256), "PRECONDITION_FAILED - invalid arg 'x-max-priority' for queue '%s' in vhost '/': {max_value_exceeded,256}"},
		{int32(-1), "PRECONDITION_FAILED - invalid arg 'x-max-priority' for queue '%s' in vhost '/': {value_negative,-1}"},
	} {
		ch := amqpChannel(t, conn)
		name := amqpName(t, "badprio")
		_, err := ch.QueueDeclare(name, false, true, false, false, amqp.Table{"x-max-priority": c.v})
		e := amqpWantError(t, err, 406, "")
		if want := fmt.Sprintf(c.text, name); e.Reason != want {
			t.Errorf("%v: %q, want %q", c.v, e.Reason, want)
		}
	}
}

// Persistent messages of a durable priority queue come back in priority order after a restart.
func TestAMQPPriorityRestart(t *testing.T) {
	persistSkipExternal(t)
	forEachRestartableStore(t, func(t *testing.T, store restartable) {
		b1 := startBroker(t, func(o *server.Options) { o.Store = store; o.QueueWindow = 2 })
		c := persistDial(t, b1.URL, true)
		if _, err := c.ch.QueueDeclare("prio.d", true, false, false, false, amqp.Table{"x-max-priority": int32(5)}); err != nil {
			t.Fatal(err)
		}
		prioPublish(t, c.ch, "prio.d", amqp.Persistent, prioInput...)
		c.conn.Close()
		shutdown(t, b1.Srv)
		b2 := startBroker(t, func(o *server.Options) { o.Store = store.reopen(t); o.QueueWindow = 2 })
		ch := amqpChannel(t, amqpDial(t, b2))
		if got := prioGetAll(t, ch, "prio.d"); !equalStrings(got, prioOrder) {
			t.Fatalf("order %q, want %q", got, prioOrder)
		}
	})
}
