package integration

import (
	"strings"
	"testing"

	"github.com/warrenmq/warren/stomp"
)

// STOMP throughput, the same load against Warren and, with WARREN_TEST_URL, RabbitMQ's
// rabbitmq_stomp: go test -run '^$' -bench STOMP -benchtime 20000x ./integration

// BenchmarkSTOMPSend: one connection sends b.N 100-byte SEND frames to a queue, pipelined, and
// waits for the receipt of the last (transient messages: no fsync).
func BenchmarkSTOMPSend(b *testing.B) {
	sb := startSTOMP(b)
	conn := amqpDial(b, sb.amqp())
	ch := amqpChannel(b, conn)
	q := amqpQueue(b, sb.amqp(), ch, "q")
	c := dialSTOMP(b, sb.STOMP)
	c.connect()
	frame := "SEND\ndestination:/amq/queue/" + q + "\ncontent-length:100\n\n" + strings.Repeat("x", 100) + "\x00"
	var batch strings.Builder
	for range 100 {
		batch.WriteString(frame)
	}
	b.SetBytes(100)
	b.ResetTimer()
	sent := 0
	for sent+100 <= b.N {
		c.raw(batch.String())
		sent += 100
	}
	for ; sent < b.N; sent++ {
		c.raw(frame)
	}
	c.frame(stomp.CmdSend, "last", "destination:/amq/queue/"+q, "receipt:last")
	c.expect(stomp.CmdReceipt)
	b.StopTimer()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
	if _, err := ch.QueuePurge(q, false); err != nil {
		b.Fatal(err)
	}
}

// BenchmarkSTOMPConsume: b.N messages published over AMQP are received by a STOMP subscription
// with ack:client-individual and prefetch-count 1000, each acknowledged.
func BenchmarkSTOMPConsume(b *testing.B) {
	sb := startSTOMP(b)
	conn := amqpDial(b, sb.amqp())
	ch := amqpConfirmChannel(b, conn)
	q := amqpQueue(b, sb.amqp(), ch, "q")
	body := strings.Repeat("x", 100)
	c := dialSTOMP(b, sb.STOMP)
	c.connect()
	c.frame(stomp.CmdSend, "", "destination:/amq/queue/"+q)
	for range b.N - 1 {
		c.raw("SEND\ndestination:/amq/queue/" + q + "\ncontent-length:100\n\n" + body + "\x00")
	}
	c.frame(stomp.CmdSend, body, "destination:/amq/queue/"+q, "receipt:loaded")
	c.expect(stomp.CmdReceipt)
	b.SetBytes(100)
	b.ResetTimer()
	c.frame(stomp.CmdSubscribe, "", "id:s", "destination:/amq/queue/"+q, "ack:client-individual", "prefetch-count:1000")
	var acks strings.Builder
	for i := range b.N + 1 {
		m := c.expect(stomp.CmdMessage)
		acks.WriteString("ACK\nid:" + get(m, "ack") + "\n\n\x00")
		if i%100 == 99 || i == b.N {
			c.raw(acks.String())
			acks.Reset()
		}
	}
	c.frame(stomp.CmdDisconnect, "", "receipt:done")
	c.expect(stomp.CmdReceipt)
	b.StopTimer()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
}
