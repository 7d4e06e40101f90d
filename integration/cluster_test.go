package integration

// A Warren cluster in one process (testbroker.StartCluster: three members, each on its own
// loopback address, with a short Raft tick).

import (
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
