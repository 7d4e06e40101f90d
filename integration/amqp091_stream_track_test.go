package integration

// Server-side offset tracking for AMQP 0-9-1 stream consumers (Warren's, as LavinMQ has it;
// RabbitMQ 3.10.8 has none, so these tests run only against Warren): x-stream-offset void or
// x-stream-automatic-offset-tracking with a client-chosen consumer tag; the consumer resumes
// after the last offset below which everything it was delivered is acked, across consumes and
// restarts.

import (
	"context"
	"encoding/binary"
	"fmt"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/warrenmq/warren/server"
	"github.com/warrenmq/warren/storage"
)

// trackConsume consumes q on a new channel of conn with tag and args, prefetch 100.
func trackConsume(t *testing.T, conn *amqp.Connection, q, tag string, args amqp.Table) (*amqp.Channel, <-chan amqp.Delivery) {
	t.Helper()
	ch := amqpChannel(t, conn)
	if err := ch.Qos(100, 0, false); err != nil {
		t.Fatal(err)
	}
	d, err := ch.Consume(q, tag, false, false, false, false, args)
	if err != nil {
		t.Fatalf("consume %q as %q with %v: %v", q, tag, args, err)
	}
	return ch, d
}

// trackRecv receives n deliveries and returns them with their offsets.
func trackRecv(t *testing.T, d <-chan amqp.Delivery, n int) ([]amqp.Delivery, []int64) {
	t.Helper()
	var ms []amqp.Delivery
	var offs []int64
	for range n {
		m := amqpRecv(t, d)
		off, ok := m.Headers["x-stream-offset"].(int64)
		if !ok {
			t.Fatalf("delivery %q without x-stream-offset", m.Body)
		}
		ms = append(ms, m)
		offs = append(offs, off)
	}
	return ms, offs
}

// closeChannel closes ch and checks that it closed cleanly (every ack before it was processed).
func closeChannel(t *testing.T, ch *amqp.Channel) {
	t.Helper()
	if err := ch.Close(); err != nil {
		t.Fatalf("closing channel: %v", err)
	}
}

func trackBodies(prefix string, n int) []string {
	var out []string
	for i := range n {
		out = append(out, fmt.Sprintf("%s-%d", prefix, i))
	}
	return out
}

// With x-stream-offset void the consumer starts from first; a later consume with the same tag
// resumes after the contiguous acked prefix (an ack out of order does not move it).
func TestAMQP091StreamTrackVoidOffset(t *testing.T) {
	b, conn, ch := amqpSetup(t)
	if b.Srv == nil {
		t.Skip("RabbitMQ 3.10.8 has no server-side offset tracking over AMQP 0-9-1")
	}
	q := streamDeclare(t, b, ch, "s", streamArgs)
	streamPublish(t, ch, q, trackBodies("m", 10)...)
	void := amqp.Table{"x-stream-offset": nil}

	c1, d1 := trackConsume(t, conn, q, "reader-a", void)
	ms, offs := trackRecv(t, d1, 10)
	if offs[0] != 0 || offs[9] != 9 {
		t.Fatalf("first consume got offsets %v, want 0..9", offs)
	}
	if err := ms[3].Ack(true); err != nil { // 0..3
		t.Fatal(err)
	}
	if err := ms[5].Ack(false); err != nil { // 5, past the unacked 4
		t.Fatal(err)
	}
	closeChannel(t, c1)

	c2, d2 := trackConsume(t, conn, q, "reader-a", void)
	ms, offs = trackRecv(t, d2, 6)
	if offs[0] != 4 || string(ms[0].Body) != "m-4" {
		t.Fatalf("second consume started at %d (%q), want 4", offs[0], ms[0].Body)
	}
	// Everything acked (multiple): the next consume waits after 9.
	if err := ms[5].Ack(true); err != nil {
		t.Fatal(err)
	}
	closeChannel(t, c2)

	// Another tag has its own offset: it starts from first.
	c3, d3 := trackConsume(t, conn, q, "reader-b", void)
	if _, offs = trackRecv(t, d3, 1); offs[0] != 0 {
		t.Fatalf("a new tag started at %d, want 0", offs[0])
	}
	closeChannel(t, c3)

	streamPublish(t, ch, q, "m-10")
	c4, d4 := trackConsume(t, conn, q, "reader-a", void)
	if ms, offs = trackRecv(t, d4, 1); offs[0] != 10 || string(ms[0].Body) != "m-10" {
		t.Fatalf("third consume started at %d (%q), want 10", offs[0], ms[0].Body)
	}
	closeChannel(t, c4)

	// Without tracking the same tag is an ordinary consumer: x-stream-offset as given.
	c5, d5 := trackConsume(t, conn, q, "reader-a", amqp.Table{"x-stream-offset": "first"})
	if _, offs = trackRecv(t, d5, 1); offs[0] != 0 {
		t.Fatalf("an untracked consume from first started at %d", offs[0])
	}
	closeChannel(t, c5)
}

// With x-stream-automatic-offset-tracking the first consume starts at x-stream-offset; later ones
// resume from the stored offset whatever x-stream-offset says. The string "true" works too.
func TestAMQP091StreamTrackAutomatic(t *testing.T) {
	b, conn, ch := amqpSetup(t)
	if b.Srv == nil {
		t.Skip("RabbitMQ 3.10.8 has no server-side offset tracking over AMQP 0-9-1")
	}
	q := streamDeclare(t, b, ch, "s", streamArgs)
	streamPublish(t, ch, q, trackBodies("m", 10)...)

	for _, on := range []any{true, "true"} {
		tag := fmt.Sprintf("auto-%T", on)
		args := amqp.Table{"x-stream-offset": int64(6), "x-stream-automatic-offset-tracking": on}
		c1, d1 := trackConsume(t, conn, q, tag, args)
		ms, offs := trackRecv(t, d1, 2)
		if offs[0] != 6 || offs[1] != 7 {
			t.Fatalf("%v: first consume got %v, want 6, 7", on, offs)
		}
		if err := ms[0].Ack(false); err != nil {
			t.Fatal(err)
		}
		closeChannel(t, c1)
		args["x-stream-offset"] = "first"
		c2, d2 := trackConsume(t, conn, q, tag, args)
		if _, offs = trackRecv(t, d2, 1); offs[0] != 7 {
			t.Fatalf("%v: second consume started at %d, want 7 (after the stored 6)", on, offs[0])
		}
		closeChannel(t, c2)
	}

	// false (or the string "false") is no tracking: nothing is stored for the tag.
	args := amqp.Table{"x-stream-offset": "first", "x-stream-automatic-offset-tracking": "false"}
	c3, d3 := trackConsume(t, conn, q, "not-tracked", args)
	ms, _ := trackRecv(t, d3, 3)
	if err := ms[2].Ack(true); err != nil {
		t.Fatal(err)
	}
	closeChannel(t, c3)
	c4, d4 := trackConsume(t, conn, q, "not-tracked", amqp.Table{"x-stream-offset": nil})
	if _, offs := trackRecv(t, d4, 1); offs[0] != 0 {
		t.Fatalf("an untracked consumer's acks were stored: void started at %d", offs[0])
	}
	closeChannel(t, c4)
}

// Tracking needs a tag chosen by the client; a bad x-stream-automatic-offset-tracking is refused.
func TestAMQP091StreamTrackRefusals(t *testing.T) {
	b, conn, ch := amqpSetup(t)
	if b.Srv == nil {
		t.Skip("RabbitMQ 3.10.8 has no server-side offset tracking over AMQP 0-9-1")
	}
	q := streamDeclare(t, b, ch, "s", streamArgs)
	for _, tc := range []struct {
		tag  string
		args amqp.Table
		want string
	}{
		// A tag the server generates (amqp091-go makes its own for an empty one, so the form is
		// given here: the server refuses tracking under any amq.ctag- tag).
		{"amq.ctag-mine", amqp.Table{"x-stream-offset": nil}, "server-side offset tracking on queue"},
		{"amq.ctag-mine", amqp.Table{"x-stream-automatic-offset-tracking": true}, "server-side offset tracking on queue"},
		{"t", amqp.Table{"x-stream-automatic-offset-tracking": int32(1)}, "invalid arg 'x-stream-automatic-offset-tracking'"},
		{"t", amqp.Table{"x-stream-automatic-offset-tracking": "yes"}, "invalid arg 'x-stream-automatic-offset-tracking'"},
	} {
		c := amqpChannel(t, conn)
		if err := c.Qos(10, 0, false); err != nil {
			t.Fatal(err)
		}
		closed := c.NotifyClose(make(chan *amqp.Error, 1))
		_, err := c.Consume(q, tc.tag, false, false, false, false, tc.args)
		amqpAssertChannelError(t, conn, c, closed, err, amqp.PreconditionFailed, "PRECONDITION_FAILED - "+tc.want)
	}
}

// The tracked offset is the stream protocol's stored offset for the reference (the tag), and
// survives a restart: written with the acks' commit groups, synced at shutdown.
func TestAMQP091StreamTrackRestart(t *testing.T) {
	store := storage.NewMemStore()
	b1 := startBroker(t, func(o *server.Options) { o.Store = store })
	conn := amqpDial(t, b1)
	ch := amqpConfirmChannel(t, conn)
	q := amqpName(t, "s")
	if _, err := ch.QueueDeclare(q, true, false, false, false, streamArgs); err != nil {
		t.Fatal(err)
	}
	streamPublish(t, ch, q, trackBodies("m", 20)...)
	c1, d1 := trackConsume(t, conn, q, "durable-reader", amqp.Table{"x-stream-offset": nil})
	ms, _ := trackRecv(t, d1, 20)
	for _, i := range []int{0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11} { // acked one at a time
		if err := ms[i].Ack(false); err != nil {
			t.Fatal(err)
		}
	}
	closeChannel(t, c1)
	conn.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := b1.Srv.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}

	// The stored value is the stream protocol's offset record for the reference: 11.
	found := false
	if err := store.Scan([]byte("Z"), func(k, v []byte) error {
		if len(k) < 9 || string(k) != string(storage.StreamOffsetKey(binary.BigEndian.Uint64(k[1:]), "durable-reader")) {
			return nil
		}
		found = true
		if len(v) != 8 || binary.BigEndian.Uint64(v) != 11 {
			t.Errorf("stored offset record %x, want 11", v)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if !found {
		t.Fatal("no offset record stored for the tag")
	}

	store = store.Reopen()
	b2 := startBroker(t, func(o *server.Options) { o.Store = store })
	conn2 := amqpDial(t, b2)
	c2, d2 := trackConsume(t, conn2, q, "durable-reader", amqp.Table{"x-stream-offset": nil})
	ms, offs := trackRecv(t, d2, 8)
	if offs[0] != 12 || string(ms[0].Body) != "m-12" || offs[7] != 19 {
		t.Fatalf("after restart resumed at %v (%q), want 12..19", offs, ms[0].Body)
	}
	closeChannel(t, c2)
	ch2 := amqpChannel(t, conn2)
	if _, err := ch2.QueueDelete(q, false, false, false); err != nil {
		t.Fatal(err)
	}
}
