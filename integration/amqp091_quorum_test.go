package integration

// Quorum queues (x-queue-type: quorum) on one node: a Raft group of one member whose log is in the
// broker's store. These run against RabbitMQ 3.10.8 too, except the restart tests.

import (
	"errors"
	"fmt"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
	"github.com/warrenmq/warren/internal/wait"
	"github.com/warrenmq/warren/server"
	"github.com/warrenmq/warren/storage"
)

// confirmAll publishes bodies on a confirm channel and returns the acks in order (true: ack).
func quorumPublishConfirmed(t testing.TB, ch *amqp.Channel, queue string, bodies []string) []bool {
	t.Helper()
	if err := ch.Confirm(false); err != nil {
		t.Fatal(err)
	}
	cf := ch.NotifyPublish(make(chan amqp.Confirmation, len(bodies)+1))
	for _, b := range bodies {
		if err := ch.Publish("", queue, false, false, amqp.Publishing{DeliveryMode: amqp.Persistent, Body: []byte(b)}); err != nil {
			t.Fatal(err)
		}
	}
	out := make([]bool, 0, len(bodies))
	for range bodies {
		select {
		case c := <-cf:
			out = append(out, c.Ack)
		case <-time.After(amqpTimeout):
			t.Fatalf("%d of %d confirms", len(out), len(bodies))
		}
	}
	return out
}

// Published with confirms, consumed in order with a prefetch, acked: the queue ends empty, and
// a nacked delivery comes back redelivered with x-delivery-count 1 to the consumer (RabbitMQ
// 3.10.8 sets the header on a consumer's delivery only from the first redelivery; basic.get has it
// from 0).
func TestQuorumPublishConfirmConsumeAck(t *testing.T) {
	b, conn, ch := amqpSetup(t)
	q := dlimQuorum(t, b, ch, "qq", nil)
	pch := amqpChannel(t, conn)
	bodies := seqBodies("m", 0, 200)
	for i, ok := range quorumPublishConfirmed(t, pch, q, bodies) {
		if !ok {
			t.Fatalf("publish %d nacked", i)
		}
	}
	ttlWaitReady(t, conn, q, 200)
	if err := ch.Qos(10, 0, false); err != nil {
		t.Fatal(err)
	}
	d := amqpConsume(t, ch, q, false)
	for i := range 200 {
		m := amqpRecv(t, d)
		if string(m.Body) != bodies[i] || m.Redelivered {
			t.Fatalf("delivery %d: %q redelivered=%v, want %q", i, m.Body, m.Redelivered, bodies[i])
		}
		if _, ok := m.Headers["x-delivery-count"]; ok {
			t.Fatalf("first delivery with x-delivery-count: %v", m.Headers)
		}
		if i == 199 {
			if err := m.Nack(false, true); err != nil {
				t.Fatal(err)
			}
			break
		}
		if err := m.Ack(false); err != nil {
			t.Fatal(err)
		}
	}
	m := amqpRecv(t, d)
	if string(m.Body) != "m199" || !m.Redelivered {
		t.Fatalf("requeued: %q redelivered=%v", m.Body, m.Redelivered)
	}
	dlimCount(t, m, 1)
	if err := m.Ack(false); err != nil {
		t.Fatal(err)
	}
	ttlWaitReady(t, conn, q, 0)
}

// x-max-length with x-overflow reject-publish: a publish over the limit is nacked (rabbit_fifo
// takes the one that reaches past the limit and refuses the next ones until the queue is at or
// below 80% of it).
func TestQuorumRejectPublishNacks(t *testing.T) {
	b, conn, ch := amqpSetup(t)
	q := dlimQuorum(t, b, ch, "full", amqp.Table{"x-max-length": int32(2), "x-overflow": "reject-publish"})
	pch := amqpChannel(t, conn)
	if err := pch.Confirm(false); err != nil {
		t.Fatal(err)
	}
	cf := pch.NotifyPublish(make(chan amqp.Confirmation, 1))
	// One at a time: RabbitMQ reports a quorum queue's overflow to the channel asynchronously, so
	// it acks pipelined publishes past the limit; waiting for each confirm is exact on both.
	var got []bool
	for _, body := range seqBodies("m", 0, 5) {
		if err := pch.Publish("", q, false, false, amqp.Publishing{Body: []byte(body)}); err != nil {
			t.Fatal(err)
		}
		select {
		case c := <-cf:
			got = append(got, c.Ack)
		case <-time.After(amqpTimeout):
			t.Fatal("no confirm")
		}
	}
	if want := []bool{true, true, true, false, false}; fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("confirms %v, want %v", got, want)
	}
	ttlWaitReady(t, conn, q, 3)
}

// A clean restart and a crash (the store as a kill -9 leaves it) keep every confirmed message;
// those delivered and not acked come back redelivered with their delivery count.
func TestQuorumRestartKeepsMessages(t *testing.T) {
	persistSkipExternal(t)
	for _, crash := range []bool{false, true} {
		t.Run(fmt.Sprintf("crash=%v", crash), func(t *testing.T) {
			store := storage.NewMemStore()
			b1 := startBroker(t, func(o *server.Options) { o.Store = store })
			c := persistDial(t, b1.URL, true)
			args := amqp.Table{"x-queue-type": "quorum"}
			if _, err := c.ch.QueueDeclare("qq.restart", true, false, false, false, args); err != nil {
				t.Fatal(err)
			}
			if n := c.publish("qq.restart", amqp.Transient, seqBodies("m", 0, 100)...); n != 100 {
				t.Fatalf("%d of 100 acked", n)
			}
			// Three delivered, not acked; two acked.
			for i := range 5 {
				d, ok, err := c.ch.Get("qq.restart", false)
				if err != nil || !ok {
					t.Fatalf("get %d: %v %v", i, ok, err)
				}
				if i >= 3 {
					if err := d.Ack(false); err != nil {
						t.Fatal(err)
					}
				}
			}
			// The acks are proposed after the get-ok: wait until they are applied.
			ttlWaitReady(t, c.conn, "qq.restart", 95)
			if !waitUnacked(t, b1.Srv, "qq.restart", 3) {
				t.Fatal("acks not applied")
			}
			var reopened storage.Store
			if crash {
				reopened = store.Reopen()
			} else {
				c.conn.Close()
				shutdown(t, b1.Srv)
				reopened = store.Reopen()
			}
			b2 := startBroker(t, func(o *server.Options) { o.Store = reopened })
			c2 := persistDial(t, b2.URL, false)
			if _, err := c2.ch.QueueDeclare("qq.restart", true, false, false, false, args); err != nil {
				t.Fatal(err)
			}
			bodies, redelivered := c2.getAll("qq.restart")
			want := append(seqBodies("m", 0, 3), seqBodies("m", 5, 100)...)
			if !equalStrings(bodies, want) {
				t.Fatalf("after the restart: %d messages %q..., want %d", len(bodies), bodies[:min(6, len(bodies))], len(want))
			}
			for i, r := range redelivered {
				if r != (i < 3) {
					t.Fatalf("%s: redelivered=%v", bodies[i], r)
				}
			}
		})
	}
}

// waitUnacked waits until the queue shows want unacknowledged messages.
func waitUnacked(t *testing.T, s *server.Server, queue string, want int64) bool {
	t.Helper()
	return wait.Until(amqpTimeout, wait.Interval, func() bool {
		qi, err := s.Queue("/", queue)
		return err == nil && qi.Unacked == want
	})
}

// Dead-lettering (at most once) for each reason a quorum queue has: rejected, expired (x-message-ttl,
// through the queue's timer), maxlen (drop-head).
func TestQuorumDeadLetterReasons(t *testing.T) {
	b, conn, ch := amqpSetup(t)
	dead := amqpQueue(t, b, ch, "dead")
	dl := amqp.Table{"x-dead-letter-exchange": "", "x-dead-letter-routing-key": dead}
	with := func(extra amqp.Table) amqp.Table {
		a := amqp.Table{}
		for k, v := range dl {
			a[k] = v
		}
		for k, v := range extra {
			a[k] = v
		}
		return a
	}

	rq := dlimQuorum(t, b, ch, "rejects", with(nil))
	amqpPublish(t, ch, "", rq, "r")
	ttlWaitReady(t, conn, rq, 1)
	if err := amqpGet(t, ch, rq, false).Reject(false); err != nil {
		t.Fatal(err)
	}
	m := dlxGet(t, conn, ch, dead)
	dlxDeath(t, m, 0, "rejected", rq, "", 1, rq)

	eq := dlimQuorum(t, b, ch, "expires", with(amqp.Table{"x-message-ttl": int32(50)}))
	amqpPublish(t, ch, "", eq, "e")
	m = dlxGet(t, conn, ch, dead)
	dlxDeath(t, m, 0, "expired", eq, "", 1, eq)
	ttlWaitReady(t, conn, eq, 0)

	mq := dlimQuorum(t, b, ch, "maxlen", with(amqp.Table{"x-max-length": int32(1)}))
	amqpPublish(t, ch, "", mq, "m1")
	amqpPublish(t, ch, "", mq, "m2")
	m = dlxGet(t, conn, ch, dead)
	if string(m.Body) != "m1" {
		t.Fatalf("dropped %q, want the head m1", m.Body)
	}
	dlxDeath(t, m, 0, "maxlen", mq, "", 1, mq)
	ttlWaitReady(t, conn, mq, 1)
}

// Single active consumer: only the first consumer gets messages; when it is cancelled its unacked
// message comes back, and the next one takes over. Purge drops what is ready.
func TestQuorumSingleActiveConsumerAndPurge(t *testing.T) {
	b, conn, ch := amqpSetup(t)
	q := dlimQuorum(t, b, ch, "sac", amqp.Table{"x-single-active-consumer": true})
	if err := ch.Qos(1, 0, false); err != nil {
		t.Fatal(err)
	}
	ch2 := amqpChannel(t, conn)
	if err := ch2.Qos(1, 0, false); err != nil {
		t.Fatal(err)
	}
	d1 := amqpConsume(t, ch, q, false)
	d2 := amqpConsume(t, ch2, q, false)
	amqpPublish(t, ch, "", q, "a")
	amqpPublish(t, ch, "", q, "b")
	m := amqpRecv(t, d1)
	if string(m.Body) != "a" {
		t.Fatalf("active consumer got %q", m.Body)
	}
	select {
	case m := <-d2:
		t.Fatalf("waiting consumer got %q", m.Body)
	case <-time.After(200 * time.Millisecond):
	}
	if err := ch.Close(); err != nil { // a is unacked: it comes back, to the next consumer
		t.Fatal(err)
	}
	m = amqpRecv(t, d2)
	if string(m.Body) != "a" || !m.Redelivered {
		t.Fatalf("next consumer got %q redelivered=%v, want a redelivered", m.Body, m.Redelivered)
	}
	if err := m.Ack(false); err != nil {
		t.Fatal(err)
	}
	m = amqpRecv(t, d2)
	if string(m.Body) != "b" {
		t.Fatalf("then %q, want b", m.Body)
	}
	if err := ch2.Cancel("", false); err != nil {
		t.Fatal(err)
	}
	pch := amqpChannel(t, conn)
	for _, body := range []string{"c", "d", "e"} {
		amqpPublish(t, pch, "", q, body)
	}
	ttlWaitReady(t, conn, q, 3)
	n, err := pch.QueuePurge(q, false)
	if err != nil || n != 3 {
		t.Fatalf("purge: %d %v, want 3", n, err)
	}
	ttlWaitReady(t, conn, q, 0)
}

// x-expires: a quorum queue unused for that long is deleted (the state machine's timer, proposed
// as a Tick).
func TestQuorumExpires(t *testing.T) {
	b, conn, ch := amqpSetup(t)
	q := dlimQuorum(t, b, ch, "expires", amqp.Table{"x-expires": int32(300)})
	if !wait.Until(20*time.Second, 50*time.Millisecond, func() bool {
		c := amqpChannel(t, conn)
		defer c.Close()
		_, err := c.QueueDeclarePassive(q, true, false, false, false, nil)
		var ae *amqp.Error
		return errors.As(err, &ae) && ae.Code == amqp.NotFound
	}) {
		t.Fatal("the queue did not expire")
	}
}

// Past the host's snapshot interval (8192 entries) the queue restarts from its snapshot (state with
// bodies) plus the log after it: messages and their delivery counts come back.
func TestQuorumRestartFromSnapshot(t *testing.T) {
	persistSkipExternal(t)
	store := storage.NewMemStore()
	b1 := startBroker(t, func(o *server.Options) { o.Store = store })
	c := persistDial(t, b1.URL, true)
	args := amqp.Table{"x-queue-type": "quorum"}
	if _, err := c.ch.QueueDeclare("qq.snap", true, false, false, false, args); err != nil {
		t.Fatal(err)
	}
	if n := c.publish("qq.snap", amqp.Persistent, seqBodies("m", 0, 10)...); n != 10 {
		t.Fatalf("%d of 10 acked", n)
	}
	const cycles = 4200 // a get and a requeue each: 8400 entries
	for i := range cycles {
		d, ok, err := c.ch.Get("qq.snap", false)
		if err != nil || !ok {
			t.Fatalf("get %d: %v %v", i, ok, err)
		}
		if err := d.Reject(true); err != nil {
			t.Fatal(err)
		}
	}
	ttlWaitReady(t, c.conn, "qq.snap", 10)
	c.conn.Close()
	shutdown(t, b1.Srv)
	b2 := startBroker(t, func(o *server.Options) { o.Store = store.Reopen() })
	c2 := persistDial(t, b2.URL, false)
	d, ok, err := c2.ch.Get("qq.snap", true)
	if err != nil || !ok {
		t.Fatalf("get after restart: %v %v", ok, err)
	}
	if string(d.Body) != "m0" {
		t.Fatalf("head %q, want m0", d.Body)
	}
	dlimCount(t, d, cycles)
	bodies, _ := c2.getAll("qq.snap")
	if want := seqBodies("m", 1, 10); !equalStrings(bodies, want) {
		t.Fatalf("then %q, want %q", bodies, want)
	}
}
