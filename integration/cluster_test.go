package integration

// A Warren cluster in one process (testbroker.StartCluster: three members, each on its own
// loopback address, with a short Raft tick).

import (
	"fmt"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
	"github.com/warrenmq/warren/internal/testbroker"
	"github.com/warrenmq/warren/internal/wait"
)

// startCluster starts n members and returns them as brokers under test; it skips the test when
// WARREN_TEST_URL points at an external broker (a single one).
func startCluster(t testing.TB, n int) []broker {
	t.Helper()
	if externalURL != "" {
		t.Skip("starts an in-process cluster; WARREN_TEST_URL points at an external broker")
	}
	var out []broker
	for _, tb := range testbroker.StartCluster(t, n) {
		out = append(out, broker{URL: "amqp://guest:guest@" + tb.Addr + "/", Addr: tb.Addr, Srv: tb.Srv})
	}
	wait.For(t, 20*time.Second, "the meta group to elect a leader every member knows", func() bool {
		for _, b := range out {
			if b.Srv.MetaLeader() == "" {
				return false
			}
		}
		return true
	})
	return out
}

// On a cluster member, a quorum queue of one member (x-quorum-initial-group-size 1: a group of
// this one member on the cluster's Raft host, declared through the meta group) confirms, delivers
// and survives nothing else changing: the single-node behaviour holds when the node runs the
// cluster's host and transport.
func TestClusterMemberQuorumQueue(t *testing.T) {
	bs := startCluster(t, 3)
	conn := amqpDial(t, bs[1])
	ch := amqpChannel(t, conn)
	q := amqpName(t, "qq")
	if _, err := ch.QueueDeclare(q, true, false, false, false, amqp.Table{"x-queue-type": "quorum", "x-quorum-initial-group-size": int32(1)}); err != nil {
		t.Fatal(err)
	}
	pch := amqpChannel(t, conn)
	bodies := seqBodies("m", 0, 50)
	for i, ok := range quorumPublishConfirmed(t, pch, q, bodies) {
		if !ok {
			t.Fatalf("publish %d nacked", i)
		}
	}
	if err := ch.Qos(10, 0, false); err != nil {
		t.Fatal(err)
	}
	d := amqpConsume(t, ch, q, false)
	for i := range bodies {
		m := amqpRecv(t, d)
		if string(m.Body) != bodies[i] {
			t.Fatalf("delivery %d: %q, want %q", i, m.Body, bodies[i])
		}
		if err := m.Ack(false); err != nil {
			t.Fatal(err)
		}
	}
}

// A quorum queue declared over AMQP on a three-member cluster (the meta group places it on all
// three): published on one member, consumed and acked on another, drained by basic.get on the
// third; every message is delivered once and the queue ends empty everywhere.
func TestClusterQuorumQueueAcrossMembers(t *testing.T) {
	bs := startCluster(t, 3)
	conns := []*amqp.Connection{amqpDial(t, bs[0]), amqpDial(t, bs[1]), amqpDial(t, bs[2])}
	ch0 := amqpChannel(t, conns[0])
	q := amqpName(t, "qq")
	if _, err := ch0.QueueDeclare(q, true, false, false, false, amqp.Table{"x-queue-type": "quorum"}); err != nil {
		t.Fatal(err)
	}
	bodies := seqBodies("m", 0, 100)
	for i, ok := range quorumPublishConfirmed(t, amqpChannel(t, conns[1]), q, bodies) {
		if !ok {
			t.Fatalf("publish %d nacked", i)
		}
	}
	ch2 := amqpChannel(t, conns[2])
	if err := ch2.Qos(10, 0, false); err != nil {
		t.Fatal(err)
	}
	d := amqpConsume(t, ch2, q, false)
	for i := range 60 {
		m := amqpRecv(t, d)
		if string(m.Body) != bodies[i] || m.Redelivered {
			t.Fatalf("delivery %d: %q redelivered=%v, want %q", i, m.Body, m.Redelivered, bodies[i])
		}
		if err := m.Ack(false); err != nil {
			t.Fatal(err)
		}
	}
	if err := ch2.Close(); err != nil {
		t.Fatal(err)
	}
	// The rest by basic.get on the first member; the consumer's unacked deliveries come back
	// redelivered, nothing twice, nothing acked.
	seen := map[string]bool{}
	gch := amqpChannel(t, conns[0])
	wait.For(t, 20*time.Second, "the other 40 messages by basic.get", func() bool {
		for {
			m, ok, err := gch.Get(q, false)
			if err != nil {
				t.Fatal(err)
			}
			if !ok {
				return len(seen) == 40
			}
			if seen[string(m.Body)] {
				t.Fatalf("%q got twice", m.Body)
			}
			seen[string(m.Body)] = true
			if err := m.Ack(false); err != nil {
				t.Fatal(err)
			}
		}
	})
	for i, b := range bs {
		wait.For(t, 10*time.Second, fmt.Sprintf("the queue empty on member %d", i+1), func() bool {
			qi, err := b.Srv.Queue("/", q)
			return err == nil && qi.Ready == 0 && qi.Unacked == 0
		})
	}
}
