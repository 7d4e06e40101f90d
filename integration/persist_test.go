package integration

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/warrenmq/warren/internal/wait"
	"github.com/warrenmq/warren/server"
	"github.com/warrenmq/warren/storage"
)

// Tests of message durability against the broker's store. They run the broker in-process on a
// MemStore (Reopen is what a restart sees); storage/ runs the same contract over Pebble, and
// crash_test.go kill -9s a real broker process on Pebble.

func persistSkipExternal(t *testing.T) {
	if externalURL != "" {
		t.Skip("needs an in-process broker and its store")
	}
}

type persistClient struct {
	t    *testing.T
	conn *amqp.Connection
	ch   *amqp.Channel
	acks <-chan amqp.Confirmation
}

func persistDial(t *testing.T, url string, confirm bool) *persistClient {
	t.Helper()
	conn, err := amqp.Dial(url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	ch, err := conn.Channel()
	if err != nil {
		t.Fatal(err)
	}
	c := &persistClient{t: t, conn: conn, ch: ch}
	if confirm {
		if err := ch.Confirm(false); err != nil {
			t.Fatal(err)
		}
		c.acks = ch.NotifyPublish(make(chan amqp.Confirmation, 100000))
	}
	return c
}

// publish sends bodies to queue (default exchange) and, in confirm mode, waits for every confirm
// and returns how many were acked.
func (c *persistClient) publish(queue string, mode uint8, bodies ...string) int {
	c.t.Helper()
	for _, b := range bodies {
		if err := c.ch.Publish("", queue, false, false, amqp.Publishing{DeliveryMode: mode, Body: []byte(b)}); err != nil {
			c.t.Fatal(err)
		}
	}
	if c.acks == nil {
		return 0
	}
	acked := 0
	for range bodies {
		select {
		case cf := <-c.acks:
			if cf.Ack {
				acked++
			}
		case <-time.After(10 * time.Second):
			c.t.Fatal("timed out waiting for confirms")
		}
	}
	return acked
}

// getAll takes every message of queue with basic.get (autoack) and returns bodies and
// redelivered flags.
func (c *persistClient) getAll(queue string) (bodies []string, redelivered []bool) {
	c.t.Helper()
	for {
		d, ok, err := c.ch.Get(queue, true)
		if err != nil {
			c.t.Fatal(err)
		}
		if !ok {
			return bodies, redelivered
		}
		bodies = append(bodies, string(d.Body))
		redelivered = append(redelivered, d.Redelivered)
	}
}

func seqBodies(prefix string, from, to int) []string {
	var out []string
	for i := from; i < to; i++ {
		out = append(out, prefix+strconv.Itoa(i))
	}
	return out
}

func shutdown(t *testing.T, s *server.Server) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := s.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
}

func equalStrings(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// Persistent messages on a durable queue survive a clean restart in order; acked ones do not come
// back; delivered-but-unacked ones come back redelivered; transient messages and messages on
// transient queues are gone.
func TestPersistRestartKeepsPersistentMessages(t *testing.T) {
	persistSkipExternal(t)
	forEachRestartableStore(t, testPersistRestart)
}

// restartable is a store that can be opened again, as a restarted broker would.
type restartable struct {
	storage.Store
	reopen func(t *testing.T) storage.Store // after the broker using Store has shut down
}

// forEachRestartableStore runs f over the in-memory store and Pebble in a temporary directory.
func forEachRestartableStore(t *testing.T, f func(t *testing.T, s restartable)) {
	t.Run("mem", func(t *testing.T) {
		m := storage.NewMemStore()
		f(t, restartable{Store: m, reopen: func(t *testing.T) storage.Store { return m.Reopen() }})
	})
	t.Run("pebble", func(t *testing.T) {
		dir := t.TempDir()
		open := func(t *testing.T) storage.Store {
			p, err := storage.OpenPebble(dir, storage.PebbleOptions{})
			if err != nil {
				t.Fatal(err)
			}
			return p
		}
		first := open(t)
		t.Cleanup(func() { first.Close() }) // after the broker's shutdown; a no-op if reopen closed it
		f(t, restartable{Store: first, reopen: func(t *testing.T) storage.Store {
			if err := first.Close(); err != nil {
				t.Fatal(err)
			}
			s := open(t)
			t.Cleanup(func() { s.Close() }) // after the broker's shutdown
			return s
		}})
	})
}

func testPersistRestart(t *testing.T, store restartable) {
	b1 := startBroker(t, func(o *server.Options) { o.Store = store })
	c := persistDial(t, b1.URL, true)
	for _, q := range []string{"d.q", "t.q"} {
		if _, err := c.ch.QueueDeclare(q, q == "d.q", false, false, false, nil); err != nil {
			t.Fatal(err)
		}
	}
	if n := c.publish("d.q", amqp.Persistent, seqBodies("p", 0, 30)...); n != 30 {
		t.Fatalf("%d of 30 persistent publishes acked", n)
	}
	c.publish("d.q", amqp.Transient, "transient")
	c.publish("t.q", amqp.Persistent, "on a transient queue")

	// A consumer gets p0..p9, acks p0..p4 and leaves p5..p9 unacked when its connection closes.
	cons := persistDial(t, b1.URL, false)
	var got []amqp.Delivery
	for i := 0; i < 10; i++ {
		d, ok, err := cons.ch.Get("d.q", false)
		if err != nil || !ok {
			t.Fatalf("get %d: ok=%v err=%v", i, ok, err)
		}
		if want := fmt.Sprintf("p%d", i); string(d.Body) != want {
			t.Fatalf("get %d = %q, want %q", i, d.Body, want)
		}
		got = append(got, d)
	}
	for _, d := range got[:5] {
		if err := d.Ack(false); err != nil {
			t.Fatal(err)
		}
	}
	cons.conn.Close()
	c.conn.Close()
	shutdown(t, b1.Srv)

	store2 := store.reopen(t)
	b2 := startBroker(t, func(o *server.Options) { o.Store = store2 })
	c2 := persistDial(t, b2.URL, false)
	bodies, redelivered := c2.getAll("d.q")
	if want := seqBodies("p", 5, 30); !equalStrings(bodies, want) {
		t.Fatalf("after restart d.q has %q, want %q", bodies, want)
	}
	for i, r := range redelivered {
		if want := i < 5; r != want {
			t.Fatalf("%s redelivered=%v, want %v", bodies[i], r, want)
		}
	}
	if _, err := c2.ch.QueueDeclarePassive("t.q", false, false, false, false, nil); err == nil {
		t.Fatal("transient queue t.q survived the restart")
	}
	// Every record (and delivered mark) is gone once the messages are consumed (autoack deletes).
	waitRecords(t, store2, storage.MessagePrefix(), 0)
}

// waitRecords polls the store until it holds want records under prefix (deletes are written
// asynchronously, after the ack that caused them).
func waitRecords(t *testing.T, s storage.Store, prefix []byte, want int) {
	t.Helper()
	var n int
	if !wait.Until(5*time.Second, wait.Interval, func() bool {
		n = countRecords(t, s, prefix)
		return n == want
	}) {
		t.Fatalf("store has %d records under %q, want %d", n, prefix, want)
	}
}

func countRecords(t *testing.T, s storage.Store, prefix []byte) int {
	t.Helper()
	n := 0
	if err := s.Scan(prefix, func(k, v []byte) error { n++; return nil }); err != nil {
		t.Fatal(err)
	}
	return n
}

// After a crash (the store as it was, without a clean shutdown) every confirmed message is there,
// and every recovered message is flagged redelivered: the broker cannot know which were delivered.
func TestPersistCrashRecoveryFlagsRedelivered(t *testing.T) {
	persistSkipExternal(t)
	store := storage.NewMemStore()
	b1 := startBroker(t, func(o *server.Options) { o.Store = store })
	c := persistDial(t, b1.URL, true)
	if _, err := c.ch.QueueDeclare("crash.q", true, false, false, false, nil); err != nil {
		t.Fatal(err)
	}
	if n := c.publish("crash.q", amqp.Persistent, seqBodies("m", 0, 100)...); n != 100 {
		t.Fatalf("%d of 100 acked", n)
	}
	crashed := store.Reopen() // what a kill -9 leaves: everything confirmed, no clean mark

	b2 := startBroker(t, func(o *server.Options) { o.Store = crashed })
	c2 := persistDial(t, b2.URL, false)
	bodies, redelivered := c2.getAll("crash.q")
	if want := seqBodies("m", 0, 100); !equalStrings(bodies, want) {
		t.Fatalf("after the crash: %d messages %q..., want m0..m99", len(bodies), bodies[:min(3, len(bodies))])
	}
	for i, r := range redelivered {
		if !r {
			t.Fatalf("%s came back with redelivered=false after a crash", bodies[i])
		}
	}
}

// A queue keeps only its window in memory; the rest is paged to the store and read back in order,
// for consumers and basic.get, persistent or not. Purge and delete drop the paged records.
func TestPersistPagingKeepsOrder(t *testing.T) {
	persistSkipExternal(t)
	forEachRestartableStore(t, testPersistPaging)
}

func testPersistPaging(t *testing.T, store restartable) {
	b := startBroker(t, func(o *server.Options) { o.Store = store; o.QueueWindow = 8 })
	c := persistDial(t, b.URL, true)
	for _, q := range []string{"page.d", "page.t"} {
		if _, err := c.ch.QueueDeclare(q, q == "page.d", false, false, false, nil); err != nil {
			t.Fatal(err)
		}
	}
	const n = 500
	for i := 0; i < n; i++ {
		mode := amqp.Transient
		if i%2 == 0 {
			mode = amqp.Persistent
		}
		c.publish("page.d", mode, fmt.Sprintf("m%d", i))
		c.publish("page.t", mode, fmt.Sprintf("m%d", i))
	}
	for _, q := range []string{"page.d", "page.t"} {
		st, err := c.ch.QueueDeclarePassive(q, false, false, false, false, nil)
		if err != nil || st.Messages != n {
			t.Fatalf("%s: %d messages (%v), want %d", q, st.Messages, err, n)
		}
	}
	// Most messages are in the store, not in memory.
	if recs := countRecords(t, store, storage.MessagePrefix()); recs < n {
		t.Fatalf("only %d message records for %d messages in two queues with a window of 8", recs, 2*n)
	}

	// A consumer with prefetch drains page.d in order, acking as it goes.
	cons := persistDial(t, b.URL, false)
	if err := cons.ch.Qos(20, 0, false); err != nil {
		t.Fatal(err)
	}
	ds, err := cons.ch.Consume("page.d", "", false, false, false, false, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < n; i++ {
		select {
		case d := <-ds:
			if want := fmt.Sprintf("m%d", i); string(d.Body) != want {
				t.Fatalf("delivery %d = %q, want %q", i, d.Body, want)
			}
			if d.Redelivered {
				t.Fatalf("%s redelivered", d.Body)
			}
			if err := d.Ack(false); err != nil {
				t.Fatal(err)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("timed out after %d deliveries", i)
		}
	}
	// basic.get reads page.t through its paged range, half of it.
	for i := 0; i < n/2; i++ {
		d, ok, err := c.ch.Get("page.t", true)
		if err != nil || !ok {
			t.Fatalf("get %d: ok=%v err=%v", i, ok, err)
		}
		if want := fmt.Sprintf("m%d", i); string(d.Body) != want {
			t.Fatalf("get %d = %q, want %q", i, d.Body, want)
		}
	}
	// Purge drops the rest, paged ones included.
	purged, err := c.ch.QueuePurge("page.t", false)
	if err != nil || purged != n/2 {
		t.Fatalf("purge = %d, %v; want %d", purged, err, n/2)
	}
	waitRecords(t, store, storage.MessagePrefix(), 0)

	// Delete drops a paged backlog with one range delete.
	c.publish("page.t", amqp.Transient, seqBodies("x", 0, 50)...)
	if _, err := c.ch.QueueDelete("page.t", false, false, false); err != nil {
		t.Fatal(err)
	}
	waitRecords(t, store, storage.MessagePrefix(), 0)
}

// failingStore fails every Apply once fail is set: a disk that stopped taking writes.
type failingStore struct {
	storage.Store
	fail atomic.Bool
}

func (s *failingStore) Apply(b *storage.Batch, sync bool) error {
	if s.fail.Load() {
		return errors.New("injected write failure")
	}
	return s.Store.Apply(b, sync)
}

// A persistent message whose write fails is nacked, never acked; transient ones are still acked.
func TestPersistWriteFailureNacks(t *testing.T) {
	persistSkipExternal(t)
	store := &failingStore{Store: storage.NewMemStore()}
	b := startBroker(t, func(o *server.Options) { o.Store = store })
	c := persistDial(t, b.URL, true)
	if _, err := c.ch.QueueDeclare("fail.q", true, false, false, false, nil); err != nil {
		t.Fatal(err)
	}
	if n := c.publish("fail.q", amqp.Persistent, "before"); n != 1 {
		t.Fatal("publish before the failure was not acked")
	}
	store.fail.Store(true)
	if n := c.publish("fail.q", amqp.Persistent, seqBodies("lost", 0, 20)...); n != 0 {
		t.Fatalf("%d persistent publishes acked while the store fails every write", n)
	}
	if n := c.publish("fail.q", amqp.Transient, "transient"); n != 1 {
		t.Fatal("a transient publish was not acked")
	}
	// In a transaction, a commit whose messages cannot be written is not answered with commit-ok:
	// the connection closes with 541.
	tx := persistDial(t, b.URL, false)
	if err := tx.ch.Tx(); err != nil {
		t.Fatal(err)
	}
	tx.publish("fail.q", amqp.Persistent, "in a transaction")
	err := tx.ch.TxCommit()
	var ae *amqp.Error
	if !errors.As(err, &ae) || ae.Code != amqp.InternalError {
		t.Fatalf("tx.commit while the store fails: %v, want 541", err)
	}
	store.fail.Store(false)
	if n := c.publish("fail.q", amqp.Persistent, "after"); n != 1 {
		t.Fatal("publish after the failure was not acked")
	}
}
