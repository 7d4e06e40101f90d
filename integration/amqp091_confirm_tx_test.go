package integration

import (
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
)

func amqpWaitConfirms(t *testing.T, confirms <-chan amqp.Confirmation, n int) []amqp.Confirmation {
	t.Helper()
	var out []amqp.Confirmation
	for range n {
		select {
		case c := <-confirms:
			out = append(out, c)
		case <-time.After(amqpTimeout):
			t.Fatalf("timed out after %d of %d confirms", len(out), n)
		}
	}
	return out
}

// confirm.select: every publish after it is acked once with sequence numbers 1..n (the broker may ack
// ranges with multiple=true; the client expands them), routed or not, persistent or not.
func TestConfirmAcks(t *testing.T) {
	b, conn, ch := amqpSetup(t)
	q := amqpQueue(t, b, ch, "q")
	if err := ch.Confirm(false); err != nil {
		t.Fatal(err)
	}
	confirms := ch.NotifyPublish(make(chan amqp.Confirmation, 300))
	const n = 200
	for i := range n {
		if got := ch.GetNextPublishSeqNo(); got != uint64(i+1) {
			t.Fatalf("next publish seq %d, want %d", got, i+1)
		}
		key := q
		if i%10 == 9 {
			key = "unroutable-" + q
		}
		mode := amqp.Transient
		if i%2 == 0 {
			mode = amqp.Persistent
		}
		if err := ch.Publish("", key, false, false, amqp.Publishing{DeliveryMode: mode, Body: []byte("c")}); err != nil {
			t.Fatal(err)
		}
	}
	for i, c := range amqpWaitConfirms(t, confirms, n) {
		if !c.Ack || c.DeliveryTag != uint64(i+1) {
			t.Fatalf("confirm %d: %+v, want ack of %d", i, c, i+1)
		}
	}
	if got, _ := amqpReady(t, conn, q); got != n-n/10 {
		t.Fatalf("%d ready, want %d", got, n-n/10)
	}
	// Deferred confirmations wait for their own ack.
	dc, err := ch.PublishWithDeferredConfirm("", q, false, false, amqp.Publishing{Body: []byte("d")})
	if err != nil {
		t.Fatal(err)
	}
	select {
	case <-dc.Done():
		if !dc.Acked() || dc.DeliveryTag != n+1 {
			t.Fatalf("deferred confirm tag %d acked=%v", dc.DeliveryTag, dc.Acked())
		}
	case <-time.After(amqpTimeout):
		t.Fatal("no confirm for the deferred publish")
	}
	amqpWaitConfirms(t, confirms, 1)
}

// A publish the broker refuses (queue full with x-overflow=reject-publish) is confirmed with basic.nack.
func TestConfirmNack(t *testing.T) {
	b, _, ch := amqpSetup(t)
	q := amqpName(t, "full")
	if _, err := ch.QueueDeclare(q, false, false, false, false, amqp.Table{"x-max-length": int32(1), "x-overflow": "reject-publish"}); err != nil {
		t.Fatal(err)
	}
	amqpCleanup(t, b, "queue", q)
	if err := ch.Confirm(false); err != nil {
		t.Fatal(err)
	}
	confirms := ch.NotifyPublish(make(chan amqp.Confirmation, 4))
	amqpPublish(t, ch, "", q, "fits")
	amqpPublish(t, ch, "", q, "rejected")
	cs := amqpWaitConfirms(t, confirms, 2)
	if !cs[0].Ack || cs[0].DeliveryTag != 1 || cs[1].Ack || cs[1].DeliveryTag != 2 {
		t.Fatalf("confirms %+v, want ack 1 then nack 2", cs)
	}
	if m := amqpGet(t, ch, q, true); string(m.Body) != "fits" {
		t.Fatalf("got %q", m.Body)
	}
	amqpGetEmpty(t, ch, q)
}

// confirm and tx modes exclude each other: 406 PRECONDITION_FAILED.
func TestConfirmTxExclusive(t *testing.T) {
	_, conn, _ := amqpSetup(t)
	c1 := amqpChannel(t, conn)
	if err := c1.Confirm(false); err != nil {
		t.Fatal(err)
	}
	closed := c1.NotifyClose(make(chan *amqp.Error, 1))
	amqpAssertChannelError(t, conn, c1, closed, c1.Tx(), amqp.PreconditionFailed, "PRECONDITION_FAILED - cannot switch from confirm to tx mode")

	c2 := amqpChannel(t, conn)
	if err := c2.Tx(); err != nil {
		t.Fatal(err)
	}
	closed2 := c2.NotifyClose(make(chan *amqp.Error, 1))
	amqpAssertChannelError(t, conn, c2, closed2, c2.Confirm(false), amqp.PreconditionFailed, "PRECONDITION_FAILED - cannot switch from tx to confirm mode")
}

// tx.commit and tx.rollback on a channel that is not transactional: 406 PRECONDITION_FAILED.
func TestTxNotSelected(t *testing.T) {
	_, conn, _ := amqpSetup(t)
	for name, do := range map[string]func(*amqp.Channel) error{
		"commit":   (*amqp.Channel).TxCommit,
		"rollback": (*amqp.Channel).TxRollback,
	} {
		t.Run(name, func(t *testing.T) {
			ch := amqpChannel(t, conn)
			closed := ch.NotifyClose(make(chan *amqp.Error, 1))
			amqpAssertChannelError(t, conn, ch, closed, do(ch), amqp.PreconditionFailed, "PRECONDITION_FAILED - channel is not transactional")
		})
	}
}

// In a transaction, publishes are not routed until commit; rollback discards them; the channel stays
// transactional after either.
func TestTxPublish(t *testing.T) {
	b, conn, ch := amqpSetup(t)
	q := amqpQueue(t, b, ch, "q")
	tx := amqpChannel(t, conn)
	if err := tx.Tx(); err != nil {
		t.Fatal(err)
	}
	amqpPublish(t, tx, "", q, "a")
	amqpPublish(t, tx, "", q, "b")
	if n, _ := amqpReady(t, conn, q); n != 0 {
		t.Fatalf("%d ready before commit, want 0", n)
	}
	if err := tx.TxCommit(); err != nil {
		t.Fatal(err)
	}
	if n, _ := amqpReady(t, conn, q); n != 2 {
		t.Fatalf("%d ready after commit, want 2", n)
	}
	amqpPublish(t, tx, "", q, "discarded")
	if err := tx.TxRollback(); err != nil {
		t.Fatal(err)
	}
	if err := tx.TxCommit(); err != nil { // commits nothing
		t.Fatal(err)
	}
	if n, _ := amqpReady(t, conn, q); n != 2 {
		t.Fatalf("%d ready after rollback and empty commit, want 2", n)
	}
	for _, want := range []string{"a", "b"} {
		if m := amqpGet(t, ch, q, true); string(m.Body) != want {
			t.Fatalf("got %q, want %q", m.Body, want)
		}
	}
	// A mandatory unroutable publish in a transaction is returned at commit.
	returns := tx.NotifyReturn(make(chan amqp.Return, 1))
	if err := tx.Publish("", "no-queue-"+q, true, false, amqp.Publishing{Body: []byte("r")}); err != nil {
		t.Fatal(err)
	}
	if err := tx.TxCommit(); err != nil {
		t.Fatal(err)
	}
	select {
	case r := <-returns:
		if r.ReplyCode != amqp.NoRoute {
			t.Fatalf("return code %d", r.ReplyCode)
		}
	case <-time.After(amqpTimeout):
		t.Fatal("no basic.return for a committed mandatory unroutable publish")
	}
}

// In a transaction, acks (and nacks/rejects) take effect at commit; rollback forgets them and the
// messages stay unacked (requeued when the channel closes).
func TestTxAcks(t *testing.T) {
	b, conn, ch := amqpSetup(t)
	q := amqpQueue(t, b, ch, "q")
	amqpPublishN(t, ch, q, 3)

	tx := amqpChannel(t, conn)
	if err := tx.Tx(); err != nil {
		t.Fatal(err)
	}
	m0 := amqpGet(t, tx, q, false)
	if err := m0.Ack(false); err != nil {
		t.Fatal(err)
	}
	if err := tx.TxRollback(); err != nil {
		t.Fatal(err)
	}
	if err := tx.Close(); err != nil { // m0 was never acked: requeued
		t.Fatal(err)
	}
	if n, _ := amqpReady(t, conn, q); n != 3 {
		t.Fatalf("%d ready after rolled-back ack and close, want 3", n)
	}

	tx2 := amqpChannel(t, conn)
	if err := tx2.Tx(); err != nil {
		t.Fatal(err)
	}
	a := amqpGet(t, tx2, q, false)
	r := amqpGet(t, tx2, q, false)
	if string(a.Body) != "m0" || !a.Redelivered {
		t.Fatalf("got %q redelivered=%v, want m0 redelivered", a.Body, a.Redelivered)
	}
	if err := a.Ack(false); err != nil {
		t.Fatal(err)
	}
	if err := r.Reject(false); err != nil {
		t.Fatal(err)
	}
	if err := tx2.TxCommit(); err != nil {
		t.Fatal(err)
	}
	if err := tx2.Close(); err != nil {
		t.Fatal(err)
	}
	if n, _ := amqpReady(t, conn, q); n != 1 {
		t.Fatalf("%d ready after committed ack+reject and close, want 1", n)
	}
	if m := amqpGet(t, ch, q, true); string(m.Body) != "m2" {
		t.Fatalf("got %q, want m2", m.Body)
	}
}
