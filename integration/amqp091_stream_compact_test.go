package integration

// Key-based compaction of streams (Warren's; RabbitMQ has none, so these run only against
// Warren): x-stream-compaction "key" (or the policy key stream-compaction) removes, when a segment
// is sealed, the older messages whose key header has a newer value later; survivors keep their
// offsets.

import (
	"fmt"
	"regexp"
	"strings"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/warrenmq/warren/internal/wait"
)

// compactPublishKeyed publishes, one confirm at a time, n messages with header h = k(i%keys) and
// body "v<offset>" from offset base, then filler+1 unkeyed messages "f<offset> ..." that push
// every keyed one into sealed segments.
func compactPublishKeyed(t *testing.T, ch *amqp.Channel, q, h string, base, n, keys, filler int) {
	t.Helper()
	publish := func(p amqp.Publishing) {
		t.Helper()
		dc, err := ch.PublishWithDeferredConfirm("", q, false, false, p)
		if err != nil {
			t.Fatal(err)
		}
		select {
		case <-dc.Done():
		case <-time.After(amqpTimeout):
			t.Fatal("no confirm")
		}
	}
	for i := range n {
		publish(amqp.Publishing{Body: []byte(fmt.Sprintf("v%d", base+i)), Headers: amqp.Table{h: fmt.Sprintf("k%d", i%keys)}})
	}
	pad := strings.Repeat("x", 100)
	for i := range filler + 1 {
		publish(amqp.Publishing{Body: []byte(fmt.Sprintf("f%d %s", base+n+i, pad))})
	}
}

// compactReadAll consumes q from first and returns offset -> body for want messages.
func compactReadAll(t *testing.T, conn *amqp.Connection, q string, want int) map[int64]string {
	t.Helper()
	c, d := streamConsume(t, conn, q, 1000, "first")
	defer c.Close()
	bodies, offs := streamRecv(t, d, want)
	got := map[int64]string{}
	for i := range bodies {
		if i > 0 && offs[i] <= offs[i-1] {
			t.Fatalf("offsets out of order: %v", offs)
		}
		got[offs[i]] = bodies[i]
	}
	return got
}

func TestAMQP091StreamCompaction(t *testing.T) {
	b, conn, ch := amqpSetup(t)
	if b.Srv == nil {
		t.Skip("RabbitMQ 3.10.8 has no stream compaction")
	}
	q := streamDeclare(t, b, ch, "s", withStream(amqp.Table{"x-stream-max-segment-size-bytes": int32(1000), "x-stream-compaction": "key"}))
	// 30 keyed (5 keys), then 31 unkeyed: offsets 0..60.
	compactPublishKeyed(t, ch, q, "x-key", 0, 30, 5, 30)
	const survivors = 5 + 31
	wait.For(t, 10*time.Second, "compaction down to the latest per key", func() bool {
		qi, err := b.Srv.Queue("/", q)
		return err == nil && qi.Ready == survivors
	})
	got := compactReadAll(t, conn, q, survivors)
	for off := int64(0); off < 61; off++ {
		body, ok := got[off]
		switch {
		case off < 25 && ok:
			t.Fatalf("offset %d (%q) survived; its key has a newer value", off, body)
		case off >= 25 && off < 30 && body != fmt.Sprintf("v%d", off):
			t.Fatalf("offset %d holds %q, want the latest value v%d", off, body, off)
		case off >= 30 && !strings.HasPrefix(body, fmt.Sprintf("f%d ", off)):
			t.Fatalf("offset %d holds %q: an unkeyed message was removed or moved", off, body)
		}
	}
	// A consumer from an absolute offset inside a gap starts at the next survivor.
	c, d := streamConsume(t, conn, q, 10, int64(3))
	if bodies, offs := streamRecv(t, d, 1); offs[0] != 25 || bodies[0] != "v25" {
		t.Fatalf("from offset 3: got %q at %d, want v25 at 25", bodies[0], offs[0])
	}
	c.Close()
}

// The header is named by x-stream-compaction-key-header; a stream declared without compaction
// starts compacting when a policy sets stream-compaction, catching up the segments sealed before.
func TestAMQP091StreamCompactionHeaderAndPolicy(t *testing.T) {
	b, conn, ch := amqpSetup(t)
	if b.Srv == nil {
		t.Skip("RabbitMQ 3.10.8 has no stream compaction")
	}
	q := amqpName(t, "s")
	if _, err := ch.QueueDeclare(q, true, false, false, false, withStream(amqp.Table{
		"x-stream-max-segment-size-bytes": int32(1000), "x-stream-compaction-key-header": "entity"})); err != nil {
		t.Fatal(err)
	}
	amqpCleanup(t, b, "queue", q)
	compactPublishKeyed(t, ch, q, "entity", 0, 20, 4, 20) // offsets 0..40
	qi, err := b.Srv.Queue("/", q)
	if err != nil || qi.Ready != 41 {
		t.Fatalf("without compaction: %d messages, %v", qi.Ready, err)
	}
	setPolicy(t, b, amqpName(t, "pol"), "^"+regexp.QuoteMeta(q)+"$", "queues", 0, map[string]any{"stream-compaction": "key"})
	compactPublishKeyed(t, ch, q, "entity", 41, 0, 1, 20) // offsets 41..61: rolls
	const survivors = 4 + 21 + 21
	wait.For(t, 10*time.Second, "compaction after the policy", func() bool {
		qi, err := b.Srv.Queue("/", q)
		return err == nil && qi.Ready == survivors
	})
	got := compactReadAll(t, conn, q, survivors)
	for off := int64(16); off < 20; off++ {
		if got[off] != fmt.Sprintf("v%d", off) {
			t.Fatalf("offset %d holds %q", off, got[off])
		}
	}
}

// Bad compaction arguments: 406, closing the channel, like the other stream arguments.
func TestAMQP091StreamCompactionRefusals(t *testing.T) {
	b, conn, _ := amqpSetup(t)
	if b.Srv == nil {
		t.Skip("RabbitMQ 3.10.8 has no stream compaction")
	}
	for _, args := range []amqp.Table{
		{"x-stream-compaction": "yes"},
		{"x-stream-compaction": int32(1)},
		{"x-stream-compaction": "key", "x-stream-compaction-key-header": ""},
		{"x-stream-compaction": "key", "x-stream-compaction-key-header": int32(5)},
	} {
		c := amqpChannel(t, conn)
		closed := c.NotifyClose(make(chan *amqp.Error, 1))
		q := amqpName(t, "s")
		_, err := c.QueueDeclare(q, true, false, false, false, withStream(args))
		amqpAssertChannelError(t, conn, c, closed, err, amqp.PreconditionFailed, "PRECONDITION_FAILED - invalid arg 'x-stream-compaction")
	}
}
