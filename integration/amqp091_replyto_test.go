package integration

// Direct reply-to (amq.rabbitmq.reply-to).

import (
	"strings"
	"testing"

	amqp "github.com/rabbitmq/amqp091-go"
)

func TestAMQP091DirectReplyTo(t *testing.T) {
	b, conn, srvCh := amqpSetup(t)
	rpcQ := amqpQueue(t, b, srvCh, "rpc")
	requests := amqpConsume(t, srvCh, rpcQ, true)

	cli := amqpChannel(t, conn)
	replies, err := cli.Consume("amq.rabbitmq.reply-to", "", true, false, false, false, nil)
	if err != nil {
		t.Fatalf("consume amq.rabbitmq.reply-to: %v", err)
	}
	if err := cli.Publish("", rpcQ, false, false, amqp.Publishing{ReplyTo: "amq.rabbitmq.reply-to", CorrelationId: "c1", Body: []byte("ping")}); err != nil {
		t.Fatal(err)
	}
	req := amqpRecv(t, requests)
	if !strings.HasPrefix(req.ReplyTo, "amq.rabbitmq.reply-to.") || len(req.ReplyTo) <= len("amq.rabbitmq.reply-to.") {
		t.Fatalf("request reply_to %q, want a generated amq.rabbitmq.reply-to.<token>", req.ReplyTo)
	}
	if req.CorrelationId != "c1" || string(req.Body) != "ping" {
		t.Fatalf("request %q %q", req.CorrelationId, req.Body)
	}
	// The reply goes through the default exchange, mandatory: delivered, not returned.
	returns := srvCh.NotifyReturn(make(chan amqp.Return, 1))
	if err := srvCh.Publish("", req.ReplyTo, true, false, amqp.Publishing{CorrelationId: req.CorrelationId, Body: []byte("pong")}); err != nil {
		t.Fatal(err)
	}
	rep := amqpRecv(t, replies)
	if string(rep.Body) != "pong" || rep.CorrelationId != "c1" || rep.Exchange != "" || rep.RoutingKey != req.ReplyTo {
		t.Fatalf("reply %q %q via %q/%q", rep.Body, rep.CorrelationId, rep.Exchange, rep.RoutingKey)
	}
	// A round trip on the replying channel: a basic.return would have arrived before its answer.
	if _, err := srvCh.QueueDeclarePassive(rpcQ, false, true, false, false, nil); err != nil {
		t.Fatal(err)
	}
	select {
	case r := <-returns:
		// RabbitMQ 3.10 delivers a mandatory direct reply and also returns it (NO_ROUTE, as no queue
		// was routed to); Warren deliberately does not return a message it delivered.
		if b.Srv != nil {
			t.Fatalf("reply returned: %d %s", r.ReplyCode, r.ReplyText)
		}
		t.Logf("reference broker returned the delivered reply: %d %s", r.ReplyCode, r.ReplyText)
	default:
	}

	// Consuming with acks is refused.
	ch := amqpChannel(t, conn)
	closed := ch.NotifyClose(make(chan *amqp.Error, 1))
	_, err = ch.Consume("amq.rabbitmq.reply-to", "", false, false, false, false, nil)
	amqpWantError(t, err, 406, "PRECONDITION_FAILED - reply consumer cannot acknowledge")
	amqpWaitClose(t, closed)

	// Publishing with that reply_to without consuming first is refused.
	ch = amqpChannel(t, conn)
	closed = ch.NotifyClose(make(chan *amqp.Error, 1))
	if err := ch.Publish("", rpcQ, false, false, amqp.Publishing{ReplyTo: "amq.rabbitmq.reply-to"}); err != nil {
		t.Fatal(err)
	}
	if e := amqpWaitClose(t, closed); e.Code != 406 || e.Reason != "PRECONDITION_FAILED - fast reply consumer does not exist" {
		t.Fatalf("publish without a reply consumer: %d %q", e.Code, e.Reason)
	}
}
